import MQTT
import NIOCore
import PasswordFilePlugin
import PluginAPI

/// The user `MIDGE_ADMIN_USERNAME` / `MIDGE_ADMIN_PASSWORD` define, asked before every authentication
/// plugin of a chain: it accepts that user with that password and refuses it with any other, refuses the
/// default admin / admin (the installer replaced it), and abstains for everyone else, so the password file
/// or database decides for them. The password is kept only as a salted PBKDF2 hash.
final class InstallerUserAuthenticator: AuthenticationPlugin {
    let username: String
    private let hash: PasswordHash
    /// Whether admin / admin is refused: unless the installer chose exactly those.
    private let refusesDefault: Bool

    init(_ user: InstallerUser) throws {
        username = user.username
        hash = try PasswordHash.make(password: user.password)
        refusesDefault = !(user.username == "admin" && user.password == "admin")
    }

    func authenticate(client: ClientInfo, credentials: Credentials, on eventLoop: any EventLoop) -> PluginAnswer<Decision> {
        guard let name = credentials.username else { return .now(.abstain) }
        let password = credentials.password.map { Array($0.readableBytesView) } ?? []
        if name == username {
            return .now(hash.verify(password: password) ? .allow : .deny(.badUserNameOrPassword))
        }
        if refusesDefault && name == "admin" && password == Array("admin".utf8) {
            return .now(.deny(.badUserNameOrPassword))
        }
        return .now(.abstain)
    }
}
