public import PluginAPI

/// The users of a Mosquitto password file: `username:$7$…` or `username:$6$…` lines.
///
/// Parsing follows Mosquitto 2.0's broker: a line whose first character is `#` is a comment, a line of blanks
/// is skipped, blanks around the user name and the hash are trimmed (so CRLF files work), the user name ends at
/// the first `:`, and when a user appears twice the last line wins. Unlike Mosquitto, which logs and skips
/// them, a line without `:`, an empty user name and a hash that is not a valid `$6$`/`$7$` string (a plain-text
/// password, say) are errors naming the file and line. User names are compared byte for byte (UTF-8), as
/// Mosquitto does, not by Unicode canonical equivalence.
public struct PasswordFile: Sendable {
    /// One user line.
    public struct Entry: Sendable, Hashable {
        public var username: String
        public var hash: PasswordHash
        /// 1-based line number in the source, 0 for entries added in memory.
        public var line: Int

        public init(username: String, hash: PasswordHash, line: Int = 0) {
            self.username = username
            self.hash = hash
            self.line = line
        }
    }

    /// The longest user name MQTT can carry (bytes of UTF-8).
    public static let maximumUsernameLength = 65535

    /// Every user line in file order (duplicates included; `hash(for:)` uses the last).
    public private(set) var entries: [Entry] = []
    /// Notes about lines that parsed but deserve a warning (a user given twice), as `file:line: message`.
    public private(set) var warnings: [String] = []
    private var index: [[UInt8]: Int] = [:]

    /// An empty file.
    public init() {}

    /// Parses the text of a password file; `file` names it in errors.
    public init(parsing text: String, file: String = "<password file>") throws(PasswordFileError) {
        try self.init(parsing: Array(text.utf8), file: file)
    }

    /// Parses the bytes of a password file; `file` names it in errors.
    public init(parsing bytes: [UInt8], file: String = "<password file>") throws(PasswordFileError) {
        var lineNumber = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            guard let (user, field) = try Self.split(line: rawLine, file: file, lineNumber: lineNumber) else { continue }
            let username = String(decoding: user, as: UTF8.self)
            guard username.utf8.elementsEqual(user) else {
                throw PasswordFileError(file: file, line: lineNumber, reason: "user name is not valid UTF-8")
            }
            let hashText = String(decoding: field, as: UTF8.self)
            let hash: PasswordHash
            do {
                hash = try PasswordHash(parsing: hashText)
            } catch {
                throw PasswordFileError(file: file, line: lineNumber, reason: "user '\(username)': \(error)")
            }
            if let previous = index[Array(user)] {
                warnings.append("\(file):\(lineNumber): user '\(username)' also appears on line "
                                + "\(entries[previous].line); the last line is used, as in Mosquitto")
            }
            index[Array(user)] = entries.count
            entries.append(Entry(username: username, hash: hash, line: lineNumber))
        }
    }

    /// Reads and parses the file at `path`.
    public init(contentsOf path: String) throws(PasswordFileError) {
        let bytes: [UInt8]
        do {
            bytes = try FileIO.read(path: path).bytes
        } catch {
            throw PasswordFileError(file: path, line: nil, reason: "unable to read password file: \(error)")
        }
        try self.init(parsing: bytes, file: path)
    }

    /// Splits one line into trimmed user name and hash field; nil for comments and blank lines.
    /// Shared with `PasswdTool`, which keeps such lines as they are.
    static func split(line rawLine: ArraySlice<UInt8>, file: String,
                      lineNumber: Int) throws(PasswordFileError) -> (ArraySlice<UInt8>, ArraySlice<UInt8>)? {
        if rawLine.first == UInt8(ascii: "#") { return nil }
        let line = trimBlanks(rawLine)
        if line.isEmpty || line.first == UInt8(ascii: "#") { return nil }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            throw PasswordFileError(file: file, line: lineNumber, reason: "expected 'username:password-hash'")
        }
        let user = trimBlanks(line[..<colon])
        let field = trimBlanks(line[(colon + 1)...])
        guard !user.isEmpty else {
            throw PasswordFileError(file: file, line: lineNumber, reason: "empty user name")
        }
        guard user.count <= maximumUsernameLength else {
            throw PasswordFileError(file: file, line: lineNumber, reason: "user name longer than 65535 bytes")
        }
        guard !field.isEmpty else {
            let name = String(decoding: user, as: UTF8.self)
            throw PasswordFileError(file: file, line: lineNumber, reason: "user '\(name)' has no password hash")
        }
        return (user, field)
    }

    /// Strips C `isspace` characters from both ends, like Mosquitto's `misc__trimblanks`.
    static func trimBlanks(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        func blank(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
        var slice = bytes
        while let first = slice.first, blank(first) { slice = slice.dropFirst() }
        while let last = slice.last, blank(last) { slice = slice.dropLast() }
        return slice
    }

    /// Number of distinct users.
    public var userCount: Int { index.count }

    /// The hash in force for `username` (the last line naming it), or nil for an unknown user.
    public func hash(for username: String) -> PasswordHash? {
        index[Array(username.utf8)].map { entries[$0].hash }
    }

    /// Whether `username` is known and `password` matches its hash (compared in constant time).
    public func verify(username: String, password: some Collection<UInt8>) -> Bool {
        guard let hash = hash(for: username) else { return false }
        return hash.verify(password: password)
    }

    /// Whether `username` is known and the UTF-8 bytes of `password` match its hash.
    public func verify(username: String, password: String) -> Bool {
        verify(username: username, password: Array(password.utf8))
    }

    /// Hashes a password the way `mosquitto_passwd` does (fresh 12-byte salt unless one is given).
    public static func hash(password: String, algorithm: PasswordHash.Algorithm = .sha512PBKDF2,
                            iterations: Int = PasswordHash.defaultIterations,
                            salt: [UInt8]? = nil) throws(PasswordHashError) -> PasswordHash {
        try PasswordHash.make(password: password, algorithm: algorithm, iterations: iterations, salt: salt)
    }

    /// Why `username` cannot go in a password file (Mosquitto's rules plus non-empty), or nil when it can.
    public static func problem(withUsername username: String) -> String? {
        if username.isEmpty { return "Username must not be empty." }
        if username.utf8.count > maximumUsernameLength { return "Username must be less than 65536 characters long." }
        if username.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "Username must not contain control characters."
        }
        if username.contains(":") { return "Username must not contain the ':' character." }
        return nil
    }

    /// Sets (adds or replaces) a user's hash; an invalid user name is an error.
    public mutating func set(username: String, hash: PasswordHash) throws(PasswordFileError) {
        if let problem = Self.problem(withUsername: username) {
            throw PasswordFileError(file: "<password file>", line: nil, reason: problem)
        }
        let key = Array(username.utf8)
        if let first = entries.firstIndex(where: { Array($0.username.utf8) == key }) {
            entries[first].hash = hash
            entries = entries.enumerated()
                .filter { $0.offset == first || Array($0.element.username.utf8) != key }
                .map(\.element)
        } else {
            entries.append(Entry(username: username, hash: hash))
        }
        reindex()
    }

    /// Removes a user; returns whether they were there.
    @discardableResult
    public mutating func remove(username: String) -> Bool {
        let key = Array(username.utf8)
        let before = entries.count
        entries.removeAll { Array($0.username.utf8) == key }
        reindex()
        return entries.count != before
    }

    /// The file text: one `username:hash` line per entry, each ending in a newline.
    public func render() -> String {
        entries.map { "\($0.username):\($0.hash.encoded)\n" }.joined()
    }

    private mutating func reindex() {
        index = [:]
        for (position, entry) in entries.enumerated() { index[Array(entry.username.utf8)] = position }
    }
}

/// A password file that cannot be read or parsed: `file:line: reason`. Never contains a password or a hash.
public struct PasswordFileError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var reason: String

    public init(file: String, line: Int?, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String {
        line.map { "\(file):\($0): \(reason)" } ?? "\(file): \(reason)"
    }

    /// The same error as a `PluginError` whose origin is the file and line.
    public func pluginError(pluginName: String = "passwd") -> PluginError {
        PluginError(pluginName: pluginName, message: line == nil ? description : reason,
                    origin: line.map { PluginOptions.Origin(file: file, line: $0) })
    }
}
