import CCrypto
import MQTT
import NIOCore
import PluginAPI

/// The user `MIDGE_ADMIN_USERNAME` / `MIDGE_ADMIN_PASSWORD` define, asked before every authentication
/// plugin of a chain: it accepts that user with that password and refuses it with any other, refuses the
/// default admin / admin (the installer replaced it), and abstains for everyone else, so the password file
/// or database decides for them. The password is kept only as a salted PBKDF2-SHA512 hash (libcrypto), and
/// compared in constant time.
final class InstallerUserAuthenticator: AuthenticationPlugin {
    let username: String
    private let salt: [UInt8]
    private let hash: [UInt8]
    /// Whether admin / admin is refused: unless the installer chose exactly those.
    private let refusesDefault: Bool

    /// Why the password could not be hashed.
    struct HashingFailed: Error, CustomStringConvertible {
        var description: String { "libcrypto could not make a salt or a PBKDF2 hash" }
    }

    private static let iterations: Int32 = 101
    private static let hashLength = 64

    init(_ user: InstallerUser) throws {
        username = user.username
        var salt = [UInt8](repeating: 0, count: 12)
        guard salt.withUnsafeMutableBufferPointer({ RAND_bytes($0.baseAddress, Int32($0.count)) }) == 1,
              let hash = Self.pbkdf2(Array(user.password.utf8), salt: salt) else { throw HashingFailed() }
        self.salt = salt
        self.hash = hash
        refusesDefault = !(user.username == "admin" && user.password == "admin")
    }

    private static func pbkdf2(_ password: [UInt8], salt: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: hashLength)
        let ok = password.withUnsafeBufferPointer { pw in
            salt.withUnsafeBufferPointer { st in
                out.withUnsafeMutableBufferPointer { o in
                    pw.withMemoryRebound(to: CChar.self) { pwc in
                        PKCS5_PBKDF2_HMAC(pwc.baseAddress, Int32(pw.count), st.baseAddress, Int32(st.count),
                                          iterations, EVP_sha512(), Int32(hashLength), o.baseAddress) == 1
                    }
                }
            }
        }
        return ok ? out : nil
    }

    private func verify(_ password: [UInt8]) -> Bool {
        guard let digest = Self.pbkdf2(password, salt: salt) else { return false }
        return digest.withUnsafeBytes { a in hash.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 } }
    }

    func authenticate(client: ClientInfo, credentials: Credentials, on eventLoop: any EventLoop) -> PluginAnswer<Decision> {
        guard let name = credentials.username else { return .now(.abstain) }
        let password = credentials.password.map { Array($0.readableBytesView) } ?? []
        if name == username {
            return .now(verify(password) ? .allow : .deny(.badUserNameOrPassword))
        }
        if refusesDefault && name == "admin" && password == Array("admin".utf8) {
            return .now(.deny(.badUserNameOrPassword))
        }
        return .now(.abstain)
    }
}
