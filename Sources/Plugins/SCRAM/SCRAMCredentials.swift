import Foundation

/// What the server keeps of one SCRAM-SHA-256 user (RFC 5802 section 3): never the password, only the salt,
/// the iteration count and the two keys derived from the salted password.
public struct SCRAMCredential: Hashable, Sendable {
    /// PBKDF2 iterations (RFC 7677 asks for at least 4096).
    public var iterations: Int
    /// The salt.
    public var salt: [UInt8]
    /// H(HMAC(SaltedPassword, "Client Key")).
    public var storedKey: [UInt8]
    /// HMAC(SaltedPassword, "Server Key").
    public var serverKey: [UInt8]

    /// The default iteration count of `midge scram`.
    public static let defaultIterations = 4096

    /// A credential from its stored parts.
    public init(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// Derives the keys from a password (its UTF-8 bytes; SASLprep is not applied) with a fresh random salt
    /// of 16 bytes, or `salt`.
    public init(password: String, iterations: Int = defaultIterations, salt: [UInt8]? = nil) {
        let salt = salt ?? SCRAMCrypto.random(16)
        let salted = SCRAMCrypto.pbkdf2(password: Array(password.utf8), salt: salt, iterations: iterations)
        let clientKey = SCRAMCrypto.hmac(key: salted, Array("Client Key".utf8))
        self.init(iterations: iterations, salt: salt, storedKey: SCRAMCrypto.sha256(clientKey),
                  serverKey: SCRAMCrypto.hmac(key: salted, Array("Server Key".utf8)))
    }

    /// The credentials-file line for `user`: `USER:ITERATIONS:SALT:STOREDKEY:SERVERKEY`, base64.
    public func line(user: String) -> String {
        [user, String(iterations), Data(salt).base64EncodedString(), Data(storedKey).base64EncodedString(),
         Data(serverKey).base64EncodedString()].joined(separator: ":")
    }
}

/// A SCRAM credentials file: one `USER:ITERATIONS:SALT:STOREDKEY:SERVERKEY` line per user (base64 fields),
/// `#` comments and blank lines ignored. `midge scram` writes it.
public struct SCRAMCredentialsFile: Sendable {
    /// The users, by name.
    public var users: [String: SCRAMCredential]
    /// The user names in file order (kept when the tool rewrites the file).
    public var order: [String]

    /// An empty file.
    public init() {
        users = [:]
        order = []
    }

    /// A line that cannot be read: `file:line: reason` (never the keys).
    public struct ParseError: Error, CustomStringConvertible {
        /// The file's path.
        public var file: String
        /// The line number, from 1.
        public var line: Int
        /// What is wrong with it.
        public var reason: String
        /// `file:line: reason`.
        public var description: String { "\(file):\(line): \(reason)" }
    }

    /// Parses the text of `file`.
    public init(parsing text: String, file: String) throws {
        self.init()
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            func fail(_ reason: String) -> ParseError { ParseError(file: file, line: index + 1, reason: reason) }
            let fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5 else { throw fail("expected USER:ITERATIONS:SALT:STOREDKEY:SERVERKEY") }
            let user = fields[0]
            guard !user.isEmpty else { throw fail("empty user name") }
            guard users[user] == nil else { throw fail("user '\(user)' appears twice") }
            guard let iterations = Int(fields[1]), iterations >= 1, iterations <= Int(Int32.max) else {
                throw fail("iterations must be a positive integer")
            }
            guard let salt = Data(base64Encoded: fields[2]), !salt.isEmpty else { throw fail("bad salt") }
            guard let stored = Data(base64Encoded: fields[3]), stored.count == 32 else { throw fail("bad stored key") }
            guard let server = Data(base64Encoded: fields[4]), server.count == 32 else { throw fail("bad server key") }
            users[user] = SCRAMCredential(iterations: iterations, salt: Array(salt), storedKey: Array(stored),
                                          serverKey: Array(server))
            order.append(user)
        }
    }

    /// The file's text.
    public var text: String {
        order.compactMap { user in users[user].map { $0.line(user: user) + "\n" } }.joined()
    }

    /// Adds or replaces a user.
    public mutating func set(_ user: String, _ credential: SCRAMCredential) {
        if users[user] == nil { order.append(user) }
        users[user] = credential
    }

    /// Removes a user; false when there was none.
    @discardableResult
    public mutating func remove(_ user: String) -> Bool {
        guard users.removeValue(forKey: user) != nil else { return false }
        order.removeAll { $0 == user }
        return true
    }
}
