import Foundation
import NIOConcurrencyHelpers
public import NIOCore
public import PluginAPI

/// The `passwd` authentication plugin: users and hashes from a Mosquitto password file (`password_file`).
///
/// Answers: a known user with the right password is allowed; a known user with a wrong or missing password
/// is denied (Bad user name or password); an unknown user and a client without a user name get `.abstain`, so
/// a later plugin may know them (the host refuses a client every plugin abstained on).
///
/// The users live in an immutable snapshot behind a lock: `reload()` reads and parses the whole new file
/// first and swaps only then, so a missing or broken file on reload throws and leaves the last good users in
/// force. Passwords and hashes are never logged.
public final class PasswordFilePlugin: AuthenticationPlugin, ReloadablePlugin, Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(
        name: "passwd",
        summary: "users from a Mosquitto password file ($7$ PBKDF2-SHA512 or $6$ SHA-512 hashes)",
        commands: [PluginCommand(name: "passwd", usage: "passwd [-c | -D | -U] [-b] [-H sha512|sha512-pbkdf2] [-I N] FILE USER [PASSWORD]   (as mosquitto_passwd)",
                                 run: PasswdTool.run(arguments:))],
        pathOptions: ["password_file"]
    ) { options, context in
        try PasswordFilePlugin(options: &options, context: context)
    }

    /// Hashes with at most this many PBKDF2 iterations are checked on the event loop (well under a
    /// millisecond); costlier ones run in a task and answer `.later`.
    public static let inlineIterationLimit = 1000

    /// Costly hashes checked at once or waiting, at most (`plugin_opt_max_pending_hashes`). A CONNECT that
    /// would be one more is refused as if the server were busy (CONNACK 0x88 for 5.0, 3 for 3.x), so that a
    /// flood of wrong passwords costs bounded CPU and memory; clients whose hash is cheap are not affected.
    public static let defaultMaxPendingHashes = 32

    /// The absolute path of the password file.
    public let path: String
    private let context: PluginContext
    private let snapshot: NIOLockedValueBox<PasswordFile>
    private let maxPendingHashes: Int
    /// Costly hashes being checked or waiting now, and whether a refusal was logged since the last admission.
    private let pending = NIOLockedValueBox((now: 0, refusedLogged: false))

    /// Options: `password_file` (required; a relative path resolves against the config directory),
    /// `max_pending_hashes` (default 32).
    public convenience init(options: inout PluginOptions, context: PluginContext) throws {
        let file = try options.requiredString("password_file")
        let maxPending = try options.int("max_pending_hashes") ?? Self.defaultMaxPendingHashes
        guard maxPending > 0 else {
            throw PluginError(pluginName: "passwd", message: "max_pending_hashes must be at least 1")
        }
        try options.finish()
        try self.init(path: file, context: context, maxPendingHashes: maxPending)
    }

    /// Loads `path` (relative paths resolve against `context.configDirectory`); throws naming the file, and
    /// the line for a line that cannot be parsed.
    public init(path: String, context: PluginContext, maxPendingHashes: Int = defaultMaxPendingHashes) throws {
        self.maxPendingHashes = maxPendingHashes
        if path.hasPrefix("/") || context.configDirectory.isEmpty {
            self.path = path
        } else {
            let directory = context.configDirectory.hasSuffix("/") ? String(context.configDirectory.dropLast())
                                                                   : context.configDirectory
            self.path = "\(directory)/\(path)"
        }
        self.context = context
        let loaded = try Self.load(path: self.path, context: context)
        self.snapshot = NIOLockedValueBox(loaded)
        context.logger.info("Loaded \(loaded.userCount) user(s) from password file \(self.path).")
    }

    /// The users in force now.
    public var passwordFile: PasswordFile {
        snapshot.withLockedValue { $0 }
    }

    public func authenticate(client: ClientInfo, credentials: Credentials,
                             on eventLoop: any EventLoop) -> PluginAnswer<Decision> {
        guard let username = credentials.username else { return .now(.abstain) }
        guard let hash = passwordFile.hash(for: username) else { return .now(.abstain) }
        guard let password = credentials.password else { return .now(.deny(.badUserNameOrPassword)) }
        let bytes = Array(password.readableBytesView)
        if hash.iterations <= Self.inlineIterationLimit {
            return .now(Self.decide(hash: hash, password: bytes))
        }
        let (admitted, firstRefusal) = pending.withLockedValue { state -> (Bool, Bool) in
            if state.now < maxPendingHashes {
                state.now += 1
                state.refusedLogged = false
                return (true, false)
            }
            defer { state.refusedLogged = true }
            return (false, !state.refusedLogged)
        }
        guard admitted else {
            if firstRefusal {
                context.logger.warning("\(maxPendingHashes) password checks are running or waiting (max_pending_hashes): further CONNECTs are refused as server unavailable until they finish (logged once while it lasts).")
            }
            return .now(.deny(.serverUnavailable))
        }
        let pending = self.pending
        return .later(eventLoop.makeFutureWithTask {
            defer { pending.withLockedValue { $0.now -= 1 } }
            return Self.decide(hash: hash, password: bytes)
        })
    }

    /// Costly hashes being checked or waiting now.
    public var pendingHashes: Int { pending.withLockedValue { $0.now } }

    /// The password file.
    public var watchedFiles: [String] { [path] }

    /// Reads and parses the file again; the commit replaces the users at once. A missing or broken file
    /// throws, and the old users stay.
    public func prepareReload() async throws -> PreparedReload {
        let fresh = try Self.load(path: path, context: context)
        return PreparedReload { [self] in
            snapshot.withLockedValue { $0 = fresh }
            context.logger.info("Reloaded \(fresh.userCount) user(s) from password file \(path).")
        }
    }

    private static func decide(hash: PasswordHash, password: [UInt8]) -> Decision {
        hash.verify(password: password) ? .allow : .deny(.badUserNameOrPassword)
    }

    private static func load(path: String, context: PluginContext) throws -> PasswordFile {
        let contents: FileIO.Contents
        do {
            contents = try FileIO.read(path: path)
        } catch {
            throw PluginError(pluginName: "passwd", message: "unable to open password file '\(path)': \(error)")
        }
        let file: PasswordFile
        do {
            file = try PasswordFile(parsing: contents.bytes, file: path)
        } catch {
            throw error.pluginError()
        }
        if let warning = permissionWarning(path: path, mode: contents.mode) {
            context.logger.warning("\(warning)")
        }
        for warning in file.warnings { context.logger.warning("\(warning)") }
        return file
    }

    /// A warning when others (not the owner or group) may read or write the file, with the chmod that fixes
    /// it; nil otherwise. Group read is fine (Kubernetes mounts secrets group-readable through `fsGroup`).
    static func permissionWarning(path: String, mode: mode_t) -> String? {
        let others = mode & 0o006
        guard others != 0 else { return nil }
        let what = others == 0o006 ? "world-readable and world-writable"
            : others == 0o004 ? "world-readable" : "world-writable"
        let fixed = mode & 0o7770
        return "Password file \(path) is \(what) (mode \(octal(mode))); "
            + "to fix this, run `chmod \(octal(fixed)) \(path)`."
    }

    private static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
