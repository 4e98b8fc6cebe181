import CCrypto

/// One hashed password in Mosquitto's format.
///
/// - `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 (Mosquitto 2.0 and later; 101 iterations by default).
/// - `$6$SALT$HASH`: a single SHA-512 over the password bytes followed by the salt bytes (Mosquitto 1.x). This is
///   not crypt(3)'s `$6$`.
///
/// SALT is 12 bytes and HASH 64 bytes, both in standard base64 with `=` padding. The same strings are used by
/// password files and by the SQLite plugin. The description never shows the salt or the hash.
public struct PasswordHash: Hashable, Sendable, CustomStringConvertible {
    /// The hashing scheme.
    public enum Algorithm: String, Hashable, Sendable, CaseIterable {
        /// `$6$`: SHA-512 of password then salt (Mosquitto 1.x, `mosquitto_passwd -H sha512`).
        case sha512 = "sha512"
        /// `$7$`: PBKDF2-HMAC-SHA512 (Mosquitto 2.0's default, `mosquitto_passwd -H sha512-pbkdf2`).
        case sha512PBKDF2 = "sha512-pbkdf2"

        /// The number between the first two `$`.
        public var identifier: Int { self == .sha512 ? 6 : 7 }
    }

    /// Salt length Mosquitto writes and requires.
    public static let saltLength = 12
    /// Hash length (SHA-512).
    public static let hashLength = 64
    /// Mosquitto 2.0's default PBKDF2 iteration count.
    public static let defaultIterations = 101

    /// The scheme.
    public let algorithm: Algorithm
    /// PBKDF2 iterations; always 1 for `.sha512`.
    public let iterations: Int
    /// The salt bytes (12).
    public let salt: [UInt8]
    /// The hash bytes (64).
    public let hash: [UInt8]

    /// A hash from its parts; nil when the salt or hash has the wrong length or the iterations are below 1.
    public init?(algorithm: Algorithm, iterations: Int = 1, salt: [UInt8], hash: [UInt8]) {
        guard salt.count == Self.saltLength, hash.count == Self.hashLength else { return nil }
        guard algorithm == .sha512 || (1...Int(Int32.max)).contains(iterations) else { return nil }
        self.algorithm = algorithm
        self.iterations = algorithm == .sha512 ? 1 : iterations
        self.salt = salt
        self.hash = hash
    }

    /// Parses `$7$…` or `$6$…`; throws a reason that names no secret.
    public init(parsing text: some StringProtocol) throws(PasswordHashError) {
        let fields = Substring(text).split(separator: "$", omittingEmptySubsequences: false)
        // "$7$101$salt$hash" splits into ["", "7", "101", "salt", "hash"].
        guard fields.count >= 3, fields[0].isEmpty else { throw .notAHash }
        let algorithm: Algorithm
        var iterations = 1
        var rest: ArraySlice<Substring>
        switch fields[1] {
        case "7":
            algorithm = .sha512PBKDF2
            guard fields.count == 5 else { throw .wrongFieldCount(algorithm) }
            guard let count = Int(fields[2]), count >= 1, count <= Int(Int32.max),
                  fields[2].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw .badIterations
            }
            iterations = count
            rest = fields[3...]
        case "6":
            algorithm = .sha512
            guard fields.count == 4 else { throw .wrongFieldCount(algorithm) }
            rest = fields[2...]
        default:
            throw .unknownAlgorithm
        }
        guard let salt = Base64.decode(rest.removeFirst()) else { throw .badSalt }
        guard salt.count == Self.saltLength else { throw .badSalt }
        guard let hash = Base64.decode(rest.removeFirst()) else { throw .badHash }
        guard hash.count == Self.hashLength else { throw .badHash }
        self.init(algorithm: algorithm, iterations: iterations, salt: salt, hash: hash)!
    }

    /// Hashes `password` with a fresh random salt (or the one given, for tests and golden vectors).
    /// `iterations` is ignored for `.sha512`.
    public static func make(password: some Collection<UInt8>, algorithm: Algorithm = .sha512PBKDF2,
                            iterations: Int = defaultIterations, salt: [UInt8]? = nil) throws(PasswordHashError) -> PasswordHash {
        let saltBytes: [UInt8]
        if let salt { saltBytes = salt } else { saltBytes = try randomSalt() }
        guard saltBytes.count == saltLength else { throw .badSalt }
        guard algorithm == .sha512 || (1...Int(Int32.max)).contains(iterations) else { throw .badIterations }
        let digest = try compute(password: Array(password), algorithm: algorithm, iterations: iterations,
                                 salt: saltBytes)
        return PasswordHash(algorithm: algorithm, iterations: iterations, salt: saltBytes, hash: digest)!
    }

    /// Hashes a string's UTF-8 bytes; see `make(password:algorithm:iterations:salt:)`.
    public static func make(password: String, algorithm: Algorithm = .sha512PBKDF2,
                            iterations: Int = defaultIterations, salt: [UInt8]? = nil) throws(PasswordHashError) -> PasswordHash {
        try make(password: Array(password.utf8), algorithm: algorithm, iterations: iterations, salt: salt)
    }

    /// Whether `password` hashes to this hash; the final comparison takes constant time (`CRYPTO_memcmp`).
    public func verify(password: some Collection<UInt8>) -> Bool {
        guard let digest = try? Self.compute(password: Array(password), algorithm: algorithm,
                                             iterations: iterations, salt: salt) else { return false }
        return Self.constantTimeEqual(digest, hash)
    }

    /// Whether `password`'s UTF-8 bytes hash to this hash.
    public func verify(password: String) -> Bool { verify(password: Array(password.utf8)) }

    /// The Mosquitto string: `$7$ITERATIONS$SALT$HASH` or `$6$SALT$HASH`.
    public var encoded: String {
        switch algorithm {
        case .sha512PBKDF2: return "$7$\(iterations)$\(Base64.encode(salt))$\(Base64.encode(hash))"
        case .sha512: return "$6$\(Base64.encode(salt))$\(Base64.encode(hash))"
        }
    }

    /// Equality compares the hash bytes in constant time.
    public static func == (lhs: PasswordHash, rhs: PasswordHash) -> Bool {
        let same = constantTimeEqual(lhs.hash, rhs.hash)
        return same && lhs.algorithm == rhs.algorithm && lhs.iterations == rhs.iterations && lhs.salt == rhs.salt
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(algorithm)
        hasher.combine(iterations)
        hasher.combine(salt)
    }

    /// Names the scheme only: never the salt or the hash.
    public var description: String {
        algorithm == .sha512 ? "PasswordHash(sha512)" : "PasswordHash(sha512-pbkdf2, \(iterations) iterations)"
    }

    /// Equal-length byte arrays compared in constant time with OpenSSL's `CRYPTO_memcmp`; different lengths are
    /// unequal (lengths are not secret here: every hash is 64 bytes).
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        comparisonObserver?()
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }

    /// Tests bind this to see that verification goes through `constantTimeEqual`.
    @TaskLocal static var comparisonObserver: (@Sendable () -> Void)?

    /// Fresh random salt from OpenSSL's `RAND_bytes`.
    static func randomSalt() throws(PasswordHashError) -> [UInt8] {
        var salt = [UInt8](repeating: 0, count: saltLength)
        let ok = salt.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        guard ok == 1 else { throw .randomFailed }
        return salt
    }

    static func compute(password: [UInt8], algorithm: Algorithm, iterations: Int,
                        salt: [UInt8]) throws(PasswordHashError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: hashLength)
        let ok: Bool
        switch algorithm {
        case .sha512PBKDF2:
            guard password.count <= Int(Int32.max) else { throw .cryptoFailed }
            ok = password.withUnsafeBufferPointer { pw in
                salt.withUnsafeBufferPointer { st in
                    out.withUnsafeMutableBufferPointer { o in
                        pw.withMemoryRebound(to: CChar.self) { pwc in
                            PKCS5_PBKDF2_HMAC(pwc.baseAddress, Int32(pw.count), st.baseAddress, Int32(st.count),
                                              Int32(iterations), EVP_sha512(), Int32(hashLength), o.baseAddress) == 1
                        }
                    }
                }
            }
        case .sha512:
            var input = password
            input.append(contentsOf: salt)
            var length: UInt32 = 0
            ok = input.withUnsafeBytes { data in
                out.withUnsafeMutableBufferPointer { o in
                    EVP_Digest(data.baseAddress, data.count, o.baseAddress, &length, EVP_sha512(), nil) == 1
                }
            } && length == UInt32(hashLength)
            for index in input.indices { input[index] = 0 }
        }
        guard ok else { throw .cryptoFailed }
        return out
    }
}

/// Why a string is not a usable password hash, or why hashing failed. Never names a secret.
public enum PasswordHashError: Error, Hashable, Sendable, CustomStringConvertible {
    case notAHash
    case unknownAlgorithm
    case wrongFieldCount(PasswordHash.Algorithm)
    case badIterations
    case badSalt
    case badHash
    case randomFailed
    case cryptoFailed

    public var description: String {
        switch self {
        case .notAHash: return "not a password hash ($7$… or $6$…); plain-text passwords must be hashed first"
        case .unknownAlgorithm: return "unknown password hash type (only $6$ and $7$ are supported)"
        case .wrongFieldCount(.sha512PBKDF2): return "malformed $7$ hash (expected $7$ITERATIONS$SALT$HASH)"
        case .wrongFieldCount(.sha512): return "malformed $6$ hash (expected $6$SALT$HASH)"
        case .badIterations: return "invalid hash iterations (must be a whole number from 1 to 2147483647)"
        case .badSalt: return "invalid password salt (expected 12 bytes in base64)"
        case .badHash: return "invalid password hash (expected 64 bytes in base64)"
        case .randomFailed: return "insufficient entropy available to generate a salt"
        case .cryptoFailed: return "unable to hash password"
        }
    }
}
