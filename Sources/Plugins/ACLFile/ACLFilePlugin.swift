import Logging
import MQTT
public import NIOCore
public import PluginAPI

/// The `acl-file` authorization plugin: Mosquitto's `acl_file` (see `ACLFile` for the format).
///
/// Decisions, per client (anonymous section for clients without a user name, the user's section otherwise,
/// then the patterns with `%c`/`%u` substituted; `deny` rules first within each):
/// - `.write` (PUBLISH) and `.read` (each delivery) of a topic name: as Mosquitto 2.0, the first matching rule
///   that denies or grants the access decides (`.deny` / `.allow`). A topic no rule matches is `.abstain`,
///   so a later plugin may decide it (with this plugin alone the host then denies, as Mosquitto does); a topic
///   matched only by rules for the other access is `.deny`.
/// - A client id or user name with `+` or `#` gets nothing through patterns: once the file has a pattern,
///   whatever the client's own section does not allow is `.deny` (Mosquitto's rule).
/// - `.subscribe` of a filter (Midge's rule; Mosquitto 2.0 grants every SUBSCRIBE and filters deliveries):
///   `.allow` when some topic the filter matches is readable, `.deny` when none is and the rules decide every
///   topic it matches, `.abstain` when none is readable but some of its topics are not covered by any rule.
///   A `$share/GROUP/` prefix is checked as the filter behind it.
///
/// `authorize` runs on every PUBLISH and delivery: the rules of each connected client are compiled in
/// `prepare` (patterns substituted, filters split) and looked up under a read lock, and matching does not
/// allocate. `reload()` parses the whole file first and swaps it in with every client's rules recompiled;
/// an unreadable or invalid file throws and leaves the previous rules in force.
public final class ACLFilePlugin: AuthorizationPlugin, ReloadablePlugin, Sendable {
    /// The registry name.
    public static let name = "acl-file"

    /// Registry entry. Option: `acl_file` (required), the file's path (relative to the config's directory).
    public static let descriptor = PluginDescriptor(
        name: name, summary: "Mosquitto acl_file: topic, user and pattern rules", pathOptions: ["acl_file"]
    ) { options, context in
        try ACLFilePlugin(options: &options, context: context)
    }

    /// The ACL file's path.
    public let path: String
    private let logger: Logger?
    /// The rules in force, and each prepared client's rules compiled from them.
    private struct State: Sendable {
        var file: ACLFile
        var clients: [ClientInfo: ACLClientRules] = [:]
    }
    private let state: ReadWriteLocked<State>

    /// Reads option `acl_file` and loads the file.
    public convenience init(options: inout PluginOptions, context: PluginContext) throws {
        var path = try options.requiredString("acl_file")
        try options.finish()
        if !path.hasPrefix("/") && !context.configDirectory.isEmpty {
            path = context.configDirectory.hasSuffix("/") ? context.configDirectory + path
                                                         : context.configDirectory + "/" + path
        }
        try self.init(path: path, logger: context.logger)
    }

    /// Loads the ACL file at `path`.
    public init(path: String, logger: Logger? = nil) throws {
        self.path = path
        self.logger = logger
        let file = try Self.load(path: path)
        self.state = ReadWriteLocked(State(file: file))
        warnAboutPatterns(file)
    }

    /// Reads and parses an ACL file; the error names the file (and line).
    public static func load(path: String) throws -> ACLFile {
        switch readWholeFile(path) {
        case .failure(let failure):
            throw PluginError(pluginName: name, message: "cannot read acl_file '\(path)': \(failure.message)")
        case .success(let bytes):
            return try ACLFile(parsing: String(decoding: bytes, as: UTF8.self), path: path)
        }
    }

    /// The rules in force.
    public var current: ACLFile { state.withReadLock { $0.file } }

    /// The ACL file.
    public var watchedFiles: [String] { [path] }

    /// Parses the file again; the commit swaps it in with every connected client's rules recompiled.
    public func prepareReload() async throws -> PreparedReload {
        let fresh = try Self.load(path: path)
        return PreparedReload { [self] in
            state.withWriteLock { state in
                state.file = fresh
                for client in Array(state.clients.keys) { state.clients[client] = fresh.rules(for: client) }
            }
            warnAboutPatterns(fresh)
            logger?.info("Reloaded \(path): \(fresh.ruleCount) rules.")
        }
    }

    public func prepare(client: ClientInfo, on eventLoop: any EventLoop) -> PluginAnswer<Void> {
        state.withWriteLock { $0.clients[client] = $0.file.rules(for: client) }
        return .now(())
    }

    public func forget(client: ClientInfo) {
        state.withWriteLock { _ = $0.clients.removeValue(forKey: client) }
    }

    public func authorize(client: ClientInfo, access: Access, topic: String, qos: QoS, retain: Bool) -> Decision {
        // A client `prepare` was not called for is compiled on the spot (and not kept).
        let rules = state.withReadLock { $0.clients[client] ?? $0.file.rules(for: client) }
        switch access {
        case .write:
            return rules.decide(.write, topic: topic)
        case .read:
            return rules.decide(.read, topic: topic)
        case .subscribe:
            let filter: String
            switch Topic.parseShared(topic) {
            case .some(.some(let shared)): filter = shared.filter
            case .some(.none): filter = topic
            case .none: return .deny(.notAuthorized)
            }
            guard Topic.isValidFilter(filter) else { return .deny(.notAuthorized) }
            // A filter without wildcards matches one topic: the answer is that topic's `.read` answer, found
            // without the search over filters (which costs tens of microseconds, and runs before the
            // subscription can take effect).
            if !Self.hasWildcard(filter) { return rules.decide(.read, topic: filter) }
            return rules.decideSubscription(ACLFilter(filter))
        default:
            return .abstain  // an access acl_file has no rules for
        }
    }

    static func hasWildcard(_ filter: String) -> Bool {
        filter.utf8.contains { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }
    }

    /// The number of clients whose rules are cached (between `prepare` and `forget`).
    var cachedClientCount: Int { state.withReadLock { $0.clients.count } }

    private func warnAboutPatterns(_ file: ACLFile) {
        guard let logger else { return }
        for pattern in file.patterns where !pattern.text.contains("%c") && !pattern.text.contains("%u") {
            logger.warning("\(path):\(pattern.line): ACL pattern '\(pattern.text)' does not contain '%c' or '%u'.")
        }
    }
}
