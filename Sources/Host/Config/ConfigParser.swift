import Foundation
import PluginAPI

/// Reads Mosquitto 2.0 configuration files (mosquitto.conf(5) syntax) into a `BrokerConfig`.
///
/// ## Syntax
/// - One directive per line: `name value`. Name and value are separated by spaces or
///   tabs (mosquitto itself only accepts spaces). Leading/trailing whitespace is ignored.
/// - A line whose first non-blank character is `#` is a comment (mosquitto only allows
///   `#` in the very first column). Blank lines are ignored.
/// - There are no trailing comments. As in mosquitto, a path or other free-text value
///   runs to the end of the line, `#` included (Midge warns when a value contains ` #`).
///   For single-word values (booleans, numbers, keywords, `listener PORT [ADDRESS]`)
///   mosquitto silently ignores whatever follows; Midge accepts a trailing `# comment`
///   there but rejects any other extra word instead of silently dropping it.
/// - Booleans are `true`/`false` (mosquitto 2.0 also accepts `1`/`0`, so Midge does).
///   Numbers must be plain integers in range (mosquitto uses atoi and would read
///   `10abc` as 10; Midge rejects it).
/// - Relative paths (password_file, acl_file, certfile, keyfile, cafile, capath,
///   crlfile, dhparamfile, pid_file, include_dir, `log_dest file`, and the plugin_opt
///   values a plugin declares as paths, `PluginDescriptor.pathOptions`) are resolved against
///   the directory of the file that names them (mosquitto uses its working directory).
/// - Strings that mosquitto refuses to set twice (paths, `user`, `bind_address`,
///   `auto_id_prefix`, `mount_point`, TLS strings, ...) are an error when repeated.
///
/// ## Listeners
/// `listener PORT [ADDRESS]` starts a listener; listener options (`protocol`,
/// `max_connections`, `mount_point`, `socket_domain`, `bind_interface`, `max_qos`,
/// `max_topic_alias`, `use_username_as_clientid`, the TLS options and, with
/// `per_listener_settings true`, the security options) apply to the latest one in the
/// same file. Before any `listener` line of a file they apply, as in mosquitto, to the
/// "default listener", which the deprecated `port N` / `bind_address ADDR` configure
/// (port 1883 and all interfaces unless set). Mosquitto creates that listener as soon
/// as any of its options is set; when it is set only through listener options (e.g.
/// `max_connections 10` above the first `listener`), mosquitto silently opens an extra
/// listener on 0.0.0.0:1883 while staying in local-only (anonymous) mode, or fails
/// with "address in use". Midge refuses such a file with an error naming the directive.
/// `mount_point` before any `listener` is an error, as in mosquitto.
///
/// ## Directive decisions
///
/// | Directive(s) | Midge |
/// |---|---|
/// | `listener PORT [ADDRESS]` | Supported. `listener 0 PATH` (Unix socket): **error**, not supported yet. |
/// | `port`, `bind_address` | Supported: configure mosquitto's default listener (deprecated in mosquitto; warning). |
/// | `protocol` (`mqtt`/`websockets`), `max_connections`, `mount_point`, `socket_domain`, `bind_interface`, `max_qos`, `max_topic_alias`, `max_topic_alias_broker` (Mosquitto 2.1), `use_username_as_clientid` | Supported, per listener. |
/// | `certfile`, `keyfile`, `cafile`, `capath`, `crlfile`, `dhparamfile`, `ciphers`, `ciphers_tls1.3`, `tls_version`, `require_certificate`, `use_identity_as_username`, `use_subject_as_username`, `tls_engine`, `tls_engine_kpass_sha1`, `tls_keyform` | Kept per listener in `ListenerConfig.tls` for the TLS plugin. |
/// | `per_listener_settings`, `allow_anonymous`, `allow_zero_length_clientid`, `auto_id_prefix`, `password_file`, `acl_file` | Supported (global, or per listener under `per_listener_settings true`). |
/// | `plugin NAME`, `plugin_opt_*`, `auth_opt_*`, `auth_plugin_deny_special_chars` | Supported with built-in plugin names. A `.so` / path value: **error** (shared-library plugins, including the Dynamic Security plugin, not supported yet). |
/// | `auth_plugin` | Alias of `plugin`, with a deprecation warning. |
/// | `include_dir` | Supported (main file only; in an included file it is ignored with a warning, as mosquitto ignores it). |
/// | `log_dest` (`stdout`, `stderr`, `syslog`, `topic`, `file PATH`, `none`), `log_type`, `log_timestamp`, `log_timestamp_format`, `connection_messages` | Supported. `log_dest dlt`: warning, not implemented. |
/// | `max_inflight_messages`, `max_inflight_bytes`, `max_queued_messages`, `max_queued_bytes`, `queue_qos0_messages`, `max_keepalive`, `max_packet_size`, `message_size_limit`, `persistent_client_expiration`, `retain_available`, `upgrade_outgoing_qos`, `set_tcp_nodelay`, `sys_interval`, `user`, `pid_file` | Supported. |
/// | `log_format text\|json` (Midge only) | Supported: `text` (default) writes Mosquitto's lines; `json` one object per line with `time`, `level`, `logger`, `message` and `metadata`. |
/// | `generate_certificates true` (Midge only) | Generates a CA and a server certificate for TLS listeners whose `certfile` and `keyfile` are both missing. |
/// | `watch_interval SECONDS` (Midge only) | Global. How often the files plugins load (password file, ACL file, SQLite database, certificates, keys, CA, CRL) are checked for changes; a change (an edit, a replaced file, a Kubernetes `..data` symlink swap) reloads the plugins whose files changed, all or nothing, once the files have stayed the same for one more interval. Default 2; decimals allowed (`0.5`); 0 = not watched. |
/// | `max_connections_total N`, `max_connections_per_user N` (-1 = no limit), `max_connection_rate N [SECONDS]`, `max_publish_rate N`, `max_publish_bytes_rate N`, `max_queued_bytes_total N` (0 = no limit) (Midge only) | Global quotas; what each does per protocol version is in README, Quotas. |
/// | `admin_listener PORT [BIND_ADDRESS]` (Midge only) | Global, at most once. The admin HTTP listener: `/healthz`, `/readyz` and plugins' endpoints (such as `/metrics`). Port 0 picks an ephemeral port; no address means all interfaces. A port and address an MQTT listener also uses: **error**. |
/// | `persistence` / `retained_persistence` | `false`: accepted. `true`: **error**, persistence is not supported yet (data would silently be lost on restart). |
/// | `persistence_file`, `persistence_location`, `autosave_interval`, `autosave_on_changes` | Warning: accepted but not implemented (no effect without persistence). |
/// | `connection` and every bridge option (`address`, `topic`, `bridge_*`, `remote_*`, `local_*`, `cleansession`, `keepalive_interval`, `notifications*`, `restart_timeout`, `start_type`, `threshold`, `try_private`, `round_robin`, `idle_timeout`, `clientid`, `username`, `password`, ...) | **Error**: bridges are not supported yet. |
/// | `psk_hint`, `psk_file` | **Error**: TLS-PSK is not supported yet. |
/// | `clientid_prefixes` | **Error**: not supported yet (ignoring it would admit every client id). |
/// | `check_retain_source`, `allow_duplicate_messages`, `memory_limit`, `http_dir`, `websockets_log_level`, `websockets_headers_size`, `log_facility`, `retry_interval` | Warning: accepted but not implemented. |
/// | Mosquitto 2.1-only options (`global_plugin`, `accept_protocol_versions`, `enable_control_api`, ...) and anything else | **Error**: unknown directive. |
public enum ConfigParser {
    /// Reads and parses the config file at `path` (and its `include_dir` files); throws the first error.
    public static func load(path: String) throws -> BrokerConfig {
        try loadCollectingErrors(path: path).get()
    }

    /// Parses config text; throws the first error. `file` names it in errors; `baseDirectory` is where its
    /// relative paths (and `include_dir`) are resolved.
    public static func parse(text: String, file: String, baseDirectory: String) throws -> BrokerConfig {
        try parseCollectingErrors(text: text, file: file, baseDirectory: baseDirectory).get()
    }

    /// Reads the config file at `path` (and its `include_dir` files) to the end, collecting every error: a bad
    /// line is reported and parsing goes on with the next one; the checks that need the whole file follow.
    public static func loadCollectingErrors(path: String) -> ConfigParseResult {
        let absolute = ConfigPathResolver.absolute(path, relativeTo: FileManager.default.currentDirectoryPath)
        let text: String
        do {
            text = try readConfigFile(displayName: path, absolutePath: absolute)
        } catch {
            return ConfigParseResult(config: BrokerConfig(), errors: [ConfigParser.configError(error, file: path)])
        }
        let base = (absolute as NSString).deletingLastPathComponent
        return parseCollectingErrors(text: text, file: path, baseDirectory: base)
    }

    /// Parses config text to the end, collecting every error (see `loadCollectingErrors`).
    public static func parseCollectingErrors(text: String, file: String, baseDirectory: String) -> ConfigParseResult {
        let base = ConfigPathResolver.absolute(baseDirectory, relativeTo: FileManager.default.currentDirectoryPath)
        var parser = ConfigFileParser(mainFile: ConfigPathResolver.absolute(file, relativeTo: base))
        parser.parseFile(text: text, file: file, baseDirectory: base, level: 0)
        let config = parser.finish()
        return ConfigParseResult(config: config, errors: parser.errors)
    }

    static func configError(_ error: any Error, file: String, line: Int = 0) -> ConfigError {
        error as? ConfigError ?? ConfigError(file: file, line: line, message: "\(error)")
    }

    static func readConfigFile(displayName: String, absolutePath: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolutePath, isDirectory: &isDirectory) else {
            throw ConfigError(file: displayName, line: 0, message: "unable to open config file: no such file")
        }
        if isDirectory.boolValue {
            throw ConfigError(file: displayName, line: 0, message: "config file is a directory")
        }
        guard let data = FileManager.default.contents(atPath: absolutePath) else {
            throw ConfigError(file: displayName, line: 0, message: "unable to read config file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: displayName, line: 0, message: "malformed UTF-8 in config file")
        }
        return text
    }
}

// MARK: - Paths

enum ConfigPathResolver {
    /// `path` made absolute against `base`, with `.` and `..` removed lexically.
    static func absolute(_ path: String, relativeTo base: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        var parts: [Substring] = []
        for component in joined.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(component)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Mosquitto's include_dir order: case-insensitive first, and for letters equal
    /// but for case, upper case first (00.conf, 01.conf, A.conf, a.conf, B.conf, b.conf).
    static func mosquittoOrder(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8), b = Array(rhs.utf8)
        var i = 0
        while i < a.count && i < b.count {
            let ua = upper(a[i]), ub = upper(b[i])
            if ua != ub { return ua < ub }
            if a[i] != b[i] { return a[i] < b[i] }
            i += 1
        }
        return a.count < b.count
    }

    private static func upper(_ byte: UInt8) -> UInt8 {
        (byte >= 97 && byte <= 122) ? byte - 32 : byte
    }
}

// MARK: - ConfigFileParser

private struct ConfigLocation {
    var file: String
    var line: Int
    var baseDirectory: String
}

private enum ConfigListenerRef: Equatable {
    case defaultListener
    case explicit(Int)
    /// After a `listener` line with an error (at "FILE:LINE"): its options are checked, then dropped, so
    /// they neither land on another listener nor cause errors of their own.
    case discarded(String)

    var key: String {
        switch self {
        case .defaultListener: return "default listener"
        case .explicit(let index): return "listener \(index)"
        case .discarded(let place): return "discarded listener at \(place)"
        }
    }

    var isDiscarded: Bool {
        if case .discarded = self { return true }
        return false
    }
}

private enum ConfigSecurityRef {
    case global
    case listener(ConfigListenerRef)

    var key: String {
        switch self {
        case .global: return "global"
        case .listener(let ref): return ref.key
        }
    }
}

private struct ConfigPluginRef {
    var security: ConfigSecurityRef
    var index: Int
}

/// State that mosquitto resets for every file it reads.
private struct ConfigFileState {
    var level: Int
    var currentListener: ConfigListenerRef = .defaultListener
    var currentPlugin: ConfigPluginRef?
    /// After a `plugin` line with an error: its `plugin_opt_*` lines are dropped without errors of their own.
    var pluginDiscarded = false
}

private let configBridgeDirectives: Set<String> = [
    "address", "addresses", "cleansession", "clientid", "remote_clientid", "local_cleansession",
    "local_clientid", "local_password", "local_username", "idle_timeout", "keepalive_interval",
    "notifications", "notifications_local_only", "notification_topic", "password", "remote_password",
    "username", "remote_username", "restart_timeout", "round_robin", "start_type", "threshold", "topic",
    "try_private",
]

private let configMosquitto21Directives: Set<String> = [
    "global_plugin", "accept_protocol_versions", "enable_control_api",
    "global_max_clients", "global_max_connections", "disable_client_cert_date_checks", "quic_log_level",
]

private let configTLSPathDirectives: [String: any WritableKeyPath<ListenerTLSConfig, String?> & Sendable] = [
    "certfile": \.certfile, "keyfile": \.keyfile, "cafile": \.cafile, "capath": \.capath, "crlfile": \.crlfile,
    "dhparamfile": \.dhparamfile,
]
private let configTLSStringDirectives: [String: any WritableKeyPath<ListenerTLSConfig, String?> & Sendable] = [
    "ciphers": \.ciphers, "ciphers_tls1.3": \.ciphersTLS13, "tls_version": \.tlsVersion, "tls_engine": \.tlsEngine,
    "tls_engine_kpass_sha1": \.tlsEngineKpassSHA1,
]
private let configTLSBoolDirectives: [String: any WritableKeyPath<ListenerTLSConfig, Bool> & Sendable] = [
    "require_certificate": \.requireCertificate, "use_identity_as_username": \.useIdentityAsUsername,
    "use_subject_as_username": \.useSubjectAsUsername,
]

extension ListenerConfig {
    /// `tls`, made when a first TLS directive sets one of its fields.
    fileprivate var tlsDirectives: ListenerTLSConfig {
        get { tls ?? ListenerTLSConfig() }
        set { tls = newValue }
    }
}
private let configSecurityDirectives: Set<String> = ["allow_anonymous", "allow_zero_length_clientid", "auto_id_prefix",
                                               "password_file", "acl_file", "plugin", "auth_plugin"]
private let configAllLogTypes = ["error", "warning", "notice", "information", "debug", "subscribe", "unsubscribe",
                           "websockets", "internal"]

private struct ConfigFileParser {
    let mainFile: String
    var config = BrokerConfig()
    var explicitListeners: [ListenerConfig] = []
    var defaultListener = ListenerConfig(port: 1883, isDefaultListener: true)
    var defaultListenerDeclared: ConfigLocation?
    var defaultListenerFirstUse: (location: ConfigLocation, directive: String)?
    var portSet = false
    var global = SecurityConfig()
    var firstSecurityDirective: (location: ConfigLocation, directive: String)?
    var logDestSet = false
    var logTypeSet = false
    /// "scope/directive" -> where a set-once string was set.
    var setOnce: [String: ConfigLocation] = [:]
    /// Every error so far, in the order found.
    var errors: [ConfigError] = []
    /// Where the options of a discarded listener go.
    var discardedListener = ListenerConfig(port: 0)

    init(mainFile: String) {
        self.mainFile = mainFile
    }

    // MARK: Files and lines

    /// Parses every line; a line with an error adds it to `errors` and parsing goes on.
    mutating func parseFile(text: String, file: String, baseDirectory: String, level: Int) {
        config.loadedFiles.append(file)
        var state = ConfigFileState(level: level)
        var lineNumber = 0
        for rawLine in ConfigFileParser.lines(of: text) {
            lineNumber += 1
            let line = ConfigFileParser.trimmed(rawLine)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let location = ConfigLocation(file: file, line: lineNumber, baseDirectory: baseDirectory)
            let directive: String
            let value: String
            if let split = line.firstIndex(where: ConfigFileParser.isBlank) {
                directive = String(line[..<split])
                value = ConfigFileParser.trimmed(line[split...])
            } else {
                directive = line
                value = ""
            }
            do {
                try handle(directive: directive, value: value, at: location, state: &state)
            } catch {
                errors.append(ConfigParser.configError(error, file: file, line: lineNumber))
                recover(after: directive, at: location, state: &state)
            }
        }
    }

    /// After a bad line, the lines that depend on it must not fail for its sake (nor apply elsewhere).
    mutating func recover(after directive: String, at location: ConfigLocation, state: inout ConfigFileState) {
        switch directive {
        case "listener":
            discardedListener = ListenerConfig(port: 0, security: config.perListenerSettings ? SecurityConfig() : nil)
            state.currentListener = .discarded(ConfigFileParser.describe(location))
        case "plugin", "auth_plugin":
            state.currentPlugin = nil
            state.pluginDiscarded = true
        default:
            break
        }
    }

    /// Splits on "\n" at the scalar level (so "\r\n" is handled); "\r" is trimmed later.
    static func lines(of text: String) -> [Substring] {
        var result: [Substring] = []
        var start = text.unicodeScalars.startIndex
        var index = start
        let scalars = text.unicodeScalars
        while index < scalars.endIndex {
            if scalars[index] == "\n" {
                result.append(Substring(scalars[start..<index]))
                start = scalars.index(after: index)
            }
            index = scalars.index(after: index)
        }
        if start < scalars.endIndex { result.append(Substring(scalars[start..<scalars.endIndex])) }
        return result
    }

    static func isBlank(_ c: Character) -> Bool {
        c == " " || c == "\t" || c == "\r" || c == "\u{0B}" || c == "\u{0C}" || c == "\r\n"
    }

    static func trimmed<S: StringProtocol>(_ s: S) -> String {
        var slice = Substring(s)
        while let first = slice.first, isBlank(first) { slice = slice.dropFirst() }
        while let last = slice.last, isBlank(last) { slice = slice.dropLast() }
        return String(slice)
    }

    static func words(_ s: String) -> [String] {
        s.split(whereSeparator: isBlank).map(String.init)
    }

    // MARK: Diagnostics

    func error(_ location: ConfigLocation, _ message: String) -> ConfigError {
        ConfigError(file: location.file, line: location.line, message: message)
    }

    mutating func warn(_ location: ConfigLocation, _ message: String) {
        config.warnings.append(ConfigWarning(file: location.file, line: location.line, message: message))
    }

    mutating func notImplemented(_ directive: String, _ location: ConfigLocation, _ why: String) {
        warn(location, "accepted but not implemented: '\(directive)' (\(why))")
    }

    static func describe(_ location: ConfigLocation) -> String { "\(location.file):\(location.line)" }

    // MARK: Values

    /// A value that is one word (bool, number, keyword). A trailing `# comment` is
    /// allowed; any other extra word is an error (mosquitto would silently drop it).
    func singleWord(_ directive: String, _ value: String, _ location: ConfigLocation) throws -> String {
        let words = ConfigFileParser.words(value)
        guard let first = words.first, !first.hasPrefix("#") else {
            throw error(location, "missing value for '\(directive)'")
        }
        if words.count > 1 && !words[1].hasPrefix("#") {
            throw error(location, "unexpected '\(words[1])' after the value of '\(directive)' "
                + "(one value per line; comments must be on their own line)")
        }
        return first
    }

    /// A value that runs to the end of the line (paths, free text), as in mosquitto.
    mutating func restOfLine(_ directive: String, _ value: String, _ location: ConfigLocation) throws -> String {
        guard !value.isEmpty else { throw error(location, "missing value for '\(directive)'") }
        if value.hasPrefix("#") { throw error(location, "missing value for '\(directive)'") }
        if value.contains(" #") || value.contains("\t#") {
            warn(location, "the value of '\(directive)' contains '#': there are no trailing comments, "
                + "so it is part of the value ('\(value)')")
        }
        return value
    }

    func bool(_ directive: String, _ value: String, _ location: ConfigLocation) throws -> Bool {
        let word = try singleWord(directive, value, location)
        switch word {
        case "true", "1": return true
        case "false", "0": return false
        default: throw error(location, "invalid value '\(word)' for '\(directive)': expected true or false")
        }
    }

    func int(_ directive: String, _ value: String, _ location: ConfigLocation, _ range: ClosedRange<Int>,
             _ rangeText: String? = nil) throws -> Int {
        let word = try singleWord(directive, value, location)
        guard let number = Int(word) else {
            throw error(location, "invalid value '\(word)' for '\(directive)': expected an integer")
        }
        guard range.contains(number) else {
            let expected = rangeText ?? "between \(range.lowerBound) and \(range.upperBound)"
            throw error(location, "invalid value \(number) for '\(directive)': must be \(expected)")
        }
        return number
    }

    /// A number of seconds, with up to three decimals (`0.25`), in 0...`maximum`, as milliseconds.
    func milliseconds(_ directive: String, _ value: String, _ location: ConfigLocation, maximum: Int) throws -> Int {
        let word = try singleWord(directive, value, location)
        let parts = word.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let isDigits = { (text: String) in !text.isEmpty && text.allSatisfy { ("0"..."9").contains($0) } }
        guard isDigits(parts[0]), parts.count == 1 || isDigits(parts[1]) && parts[1].count <= 3,
              let whole = Int(parts[0]) else {
            throw error(location, "invalid value '\(word)' for '\(directive)': expected a number of seconds such as 2 or 0.5")
        }
        let fraction = parts.count == 2 ? Int(parts[1].padding(toLength: 3, withPad: "0", startingAt: 0))! : 0
        guard whole <= maximum, whole < maximum || fraction == 0 else {
            throw error(location, "invalid value \(word) for '\(directive)': must be between 0 and \(maximum) seconds")
        }
        return whole * 1000 + fraction
    }

    func path(_ value: String, _ location: ConfigLocation) -> String {
        ConfigPathResolver.absolute(value, relativeTo: location.baseDirectory)
    }

    /// Mosquitto refuses to set these strings twice in the same scope.
    mutating func setOnceCheck(_ scope: String, _ directive: String, _ location: ConfigLocation) throws {
        let key = scope + "/" + directive
        if let first = setOnce[key] {
            throw error(location, "duplicate '\(directive)' (already set at \(ConfigFileParser.describe(first)))")
        }
        setOnce[key] = location
    }

    // MARK: Listener and security targets

    /// The listener a listener option applies to. Before any `listener` line in the
    /// file that is mosquitto's default listener; see `finish()` for the check.
    mutating func listenerTarget(_ directive: String, _ location: ConfigLocation, _ state: ConfigFileState) -> ConfigListenerRef {
        if state.currentListener == .defaultListener && defaultListenerFirstUse == nil {
            defaultListenerFirstUse = (location, directive)
        }
        return state.currentListener
    }

    mutating func withListener(_ ref: ConfigListenerRef, _ body: (inout ListenerConfig) throws -> Void) rethrows {
        switch ref {
        case .defaultListener: try body(&defaultListener)
        case .explicit(let index): try body(&explicitListeners[index])
        case .discarded: try body(&discardedListener)
        }
    }

    func listener(_ ref: ConfigListenerRef) -> ListenerConfig {
        switch ref {
        case .defaultListener: return defaultListener
        case .explicit(let index): return explicitListeners[index]
        case .discarded: return discardedListener
        }
    }

    mutating func securityTarget(_ directive: String, _ location: ConfigLocation, _ state: ConfigFileState) -> ConfigSecurityRef {
        if firstSecurityDirective == nil { firstSecurityDirective = (location, directive) }
        guard config.perListenerSettings else { return .global }
        let ref = listenerTarget(directive, location, state)
        withListener(ref) { listener in
            if listener.security == nil { listener.security = SecurityConfig() }
        }
        return .listener(ref)
    }

    mutating func withSecurity(_ ref: ConfigSecurityRef, _ body: (inout SecurityConfig) throws -> Void) rethrows {
        switch ref {
        case .global:
            try body(&global)
        case .listener(let listenerRef):
            try withListener(listenerRef) { listener in
                var security = listener.security ?? SecurityConfig()
                try body(&security)
                listener.security = security
            }
        }
    }

    // MARK: Directives

    mutating func handle(directive: String, value: String, at location: ConfigLocation, state: inout ConfigFileState) throws {
        if value.isEmpty {
            throw error(location, configBridgeDirectives.contains(directive) || directive.hasPrefix("bridge_")
                        ? "missing value for '\(directive)' (and bridges are not supported yet)"
                        : "missing value for '\(directive)'")
        }

        // Plugin options have variable names.
        for prefix in ["plugin_opt_", "auth_opt_"] where directive.hasPrefix(prefix) {
            try pluginOption(key: String(directive.dropFirst(prefix.count)), directive: directive,
                             value: value, location, state)
            return
        }

        switch directive {
        // Listeners
        case "listener":
            try listenerLine(value, location, &state)

        case "port":
            let port = try int(directive, value, location, 1...65535)
            warn(location, "'port' is deprecated in mosquitto; prefer 'listener \(port)'")
            if portSet {
                warn(location, "default listener port specified multiple times; only the latest is used")
            }
            portSet = true
            defaultListener.port = port
            declareDefaultListener(location)

        case "bind_address":
            let address = try singleWord(directive, value, location)
            try setOnceCheck("default listener", directive, location)
            warn(location, "'bind_address' is deprecated in mosquitto; prefer 'listener PORT \(address)'")
            defaultListener.bindAddress = address
            declareDefaultListener(location)

        case "protocol":
            let name = try singleWord(directive, value, location)
            guard name == "mqtt" || name == "websockets" else {
                throw error(location, "invalid value '\(name)' for 'protocol': expected mqtt or websockets")
            }
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.protocolName = name }

        case "max_connections":
            let limit = try int(directive, value, location, -1...Int(Int32.max), "-1 (unlimited) or more")
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.maxConnections = limit }

        case "mount_point":
            let mountPoint = try restOfLine(directive, value, location)
            if explicitListeners.isEmpty && !state.currentListener.isDiscarded {
                throw error(location, "'mount_point' must come after a 'listener' line "
                    + "(mosquitto: you must create a listener before using mount_point)")
            }
            if mountPoint.contains("+") || mountPoint.contains("#") {
                throw error(location, "invalid mount_point '\(mountPoint)': it must not contain + or # wildcards")
            }
            let ref = listenerTarget(directive, location, state)
            try setOnceCheck(ref.key, directive, location)
            withListener(ref) { $0.mountPoint = mountPoint }

        case "socket_domain":
            let domain = try singleWord(directive, value, location)
            guard domain == "ipv4" || domain == "ipv6" else {
                throw error(location, "invalid value '\(domain)' for 'socket_domain': expected ipv4 or ipv6")
            }
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.socketDomain = domain }

        case "bind_interface":
            let device = try singleWord(directive, value, location)
            let ref = listenerTarget(directive, location, state)
            try setOnceCheck(ref.key, directive, location)
            withListener(ref) { $0.bindInterface = device }

        case "max_qos", "maximum_qos":
            let qos = try int(directive, value, location, 0...2)
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.maxQoS = qos }

        case "max_topic_alias":
            let aliases = try int(directive, value, location, 0...65535)
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.maxTopicAlias = aliases }

        case "max_topic_alias_broker":
            let aliases = try int(directive, value, location, 0...65535)
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.maxTopicAliasBroker = aliases }

        case "use_username_as_clientid":
            let flag = try bool(directive, value, location)
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.useUsernameAsClientID = flag }

        case _ where configTLSPathDirectives[directive] != nil:
            let file = path(try restOfLine(directive, value, location), location)
            let ref = listenerTarget(directive, location, state)
            try setOnceCheck(ref.key, directive, location)
            withListener(ref) { $0.tlsDirectives[keyPath: configTLSPathDirectives[directive]!] = file }

        case _ where configTLSStringDirectives[directive] != nil:
            let text = try restOfLine(directive, value, location)
            let ref = listenerTarget(directive, location, state)
            try setOnceCheck(ref.key, directive, location)
            withListener(ref) { $0.tlsDirectives[keyPath: configTLSStringDirectives[directive]!] = text }

        case _ where configTLSBoolDirectives[directive] != nil:
            let flag = try bool(directive, value, location)
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.tlsDirectives[keyPath: configTLSBoolDirectives[directive]!] = flag }

        case "tls_keyform":
            let form = try singleWord(directive, value, location)
            guard form == "pem" || form == "engine" else {
                throw error(location, "invalid value '\(form)' for 'tls_keyform': expected pem or engine")
            }
            let ref = listenerTarget(directive, location, state)
            withListener(ref) { $0.tlsDirectives.tlsKeyform = form }

        case "psk_hint", "psk_file":
            throw error(location, "'\(directive)' is not supported yet: Midge has no TLS-PSK support")

        // Security
        case "per_listener_settings":
            let flag = try bool(directive, value, location)
            if config.perListenerSettings {
                if !flag {
                    warn(location, "per_listener_settings is already true and cannot be unset (mosquitto ignores this)")
                }
                return
            }
            if flag, let first = firstSecurityDirective {
                throw error(location, "per_listener_settings must be set before any other security setting "
                    + "('\(first.directive)' at \(ConfigFileParser.describe(first.location)))")
            }
            config.perListenerSettings = flag

        case "allow_anonymous":
            let flag = try bool(directive, value, location)
            let ref = securityTarget(directive, location, state)
            withSecurity(ref) { $0.allowAnonymous = flag }

        case "allow_zero_length_clientid":
            let flag = try bool(directive, value, location)
            let ref = securityTarget(directive, location, state)
            withSecurity(ref) { $0.allowZeroLengthClientID = flag }

        case "auto_id_prefix":
            let prefix = try restOfLine(directive, value, location)
            let ref = securityTarget(directive, location, state)
            try setOnceCheck(ref.key, directive, location)
            withSecurity(ref) { $0.autoIDPrefix = prefix }

        case "password_file":
            let file = path(try restOfLine(directive, value, location), location)
            let ref = securityTarget(directive, location, state)
            try setOnceCheck(ref.key, directive, location)
            withSecurity(ref) { $0.passwordFile = file }

        case "acl_file":
            let file = path(try restOfLine(directive, value, location), location)
            let ref = securityTarget(directive, location, state)
            try setOnceCheck(ref.key, directive, location)
            withSecurity(ref) { $0.aclFile = file }

        case "plugin", "auth_plugin":
            let name = try singleWord(directive, value, location)
            if directive == "auth_plugin" {
                warn(location, "'auth_plugin' is deprecated; treated as 'plugin \(name)'")
            }
            if name.contains("/") || name.hasSuffix(".so") || name.hasSuffix(".dylib") || name.hasSuffix(".dll") {
                let dynsec = name.contains("dynamic_security") ? " (the Dynamic Security plugin is not available)" : ""
                throw error(location, "loading shared-library plugins is not supported yet; "
                    + "use a built-in plugin name ('\(directive) \(name)')\(dynsec)")
            }
            let ref = securityTarget(directive, location, state)
            var index = 0
            withSecurity(ref) { security in
                security.plugins.append(PluginConfig(name: name, file: location.file, line: location.line,
                                                     baseDirectory: location.baseDirectory))
                index = security.plugins.count - 1
            }
            state.currentPlugin = ConfigPluginRef(security: ref, index: index)
            state.pluginDiscarded = false

        case "auth_plugin_deny_special_chars":
            let flag = try bool(directive, value, location)
            if state.pluginDiscarded { return }
            guard let plugin = state.currentPlugin else {
                throw error(location, "'auth_plugin_deny_special_chars' without a preceding 'plugin' line in this file")
            }
            withSecurity(plugin.security) { $0.plugins[plugin.index].denySpecialChars = flag }

        case "check_retain_source":
            _ = try bool(directive, value, location)
            if firstSecurityDirective == nil { firstSecurityDirective = (location, directive) }
            notImplemented(directive, location, "retained messages are not re-checked against the publisher's access")

        case "clientid_prefixes":
            throw error(location, "'clientid_prefixes' is not supported yet "
                + "(ignoring it would let clients with any client id connect)")

        // Includes
        case "include_dir":
            let directory = path(try restOfLine(directive, value, location), location)
            if state.level > 0 {
                warn(location, "include_dir in an included file is ignored (mosquitto only processes it in the main file)")
                return
            }
            try includeDirectory(directory, location)

        // Logging
        case "log_dest":
            try logDestination(value, location)

        case "log_type":
            let type = try singleWord(directive, value, location)
            guard type == "none" || type == "all" || configAllLogTypes.contains(type) else {
                throw error(location, "invalid value '\(type)' for 'log_type': expected one of "
                    + (configAllLogTypes + ["none", "all"]).joined(separator: ", "))
            }
            if !logTypeSet { config.logTypes = []; logTypeSet = true }
            switch type {
            case "none": config.logTypes = []
            case "all": config.logTypes = configAllLogTypes
            default: if !config.logTypes.contains(type) { config.logTypes.append(type) }
            }

        case "log_timestamp":
            config.logTimestamp = try bool(directive, value, location)

        case "log_timestamp_format":
            let format = try restOfLine(directive, value, location)
            try setOnceCheck("global", directive, location)
            config.logTimestampFormat = format

        case "log_format":
            let word = try singleWord(directive, value, location)
            guard let format = LogFormat(rawValue: word) else {
                throw error(location, "invalid value '\(word)' for 'log_format': expected text or json")
            }
            config.logFormat = format

        case "connection_messages":
            config.connectionMessages = try bool(directive, value, location)

        // Limits and behaviour
        case "max_inflight_messages":
            let count = try int(directive, value, location, 0...65535, "between 0 (no limit) and 65535")
            config.maxInflightMessages = count == 65535 ? 0 : count

        case "max_inflight_bytes":
            config.maxInflightBytes = try int(directive, value, location, 0...Int(Int32.max), "0 (no limit) or more")

        case "max_queued_messages":
            config.maxQueuedMessages = try int(directive, value, location, 0...Int(Int32.max), "0 (no limit) or more")

        case "max_queued_bytes":
            config.maxQueuedBytes = try int(directive, value, location, 0...Int(Int32.max), "0 (no limit) or more")

        case "queue_qos0_messages":
            config.queueQoS0Messages = try bool(directive, value, location)

        case "max_keepalive":
            config.maxKeepalive = try int(directive, value, location, 10...65535)

        case "max_packet_size":
            let size = try int(directive, value, location, 0...Int(Int32.max), "at least 20 bytes")
            if size < 20 {
                throw error(location, "invalid value \(size) for 'max_packet_size': must be at least 20 bytes")
            }
            config.maxPacketSize = size

        case "message_size_limit":
            config.messageSizeLimit = try int(directive, value, location, 0...268_435_455,
                                              "between 0 (no limit) and 268435455")

        case "persistent_client_expiration":
            config.persistentClientExpiration = try expiration(directive, value, location)

        case "retain_available":
            config.retainAvailable = try bool(directive, value, location)

        case "upgrade_outgoing_qos":
            config.upgradeOutgoingQoS = try bool(directive, value, location)

        case "set_tcp_nodelay":
            config.setTCPNoDelay = try bool(directive, value, location)
        case "generate_certificates":
            // Midge only: create a CA and a server certificate for TLS listeners whose certfile and keyfile
            // do not exist yet (the default deployment). Never overwrites.
            config.generateCertificates = try bool(directive, value, location)

        case "admin_listener":
            try adminListenerLine(value, location)

        case "watch_interval":
            config.watchIntervalMilliseconds = try milliseconds(directive, value, location, maximum: 3600)

        // Quotas (Midge only)
        case "max_connections_total":
            config.maxConnectionsTotal = try int(directive, value, location, -1...Int(Int32.max), "-1 (unlimited) or more")

        case "max_connections_per_user":
            config.maxConnectionsPerUser = try int(directive, value, location, -1...Int(Int32.max),
                                                   "-1 (unlimited) or more")

        case "max_connection_rate":
            try connectionRateLine(value, location)

        case "max_publish_rate":
            config.maxPublishRate = try int(directive, value, location, 0...Int(Int32.max), "0 (no limit) or more")

        case "max_publish_bytes_rate":
            config.maxPublishBytesRate = try int(directive, value, location, 0...Int(Int32.max), "0 (no limit) or more")

        case "max_queued_bytes_total":
            config.maxQueuedBytesTotal = try int(directive, value, location, 0...Int.max, "0 (no limit) or more")

        case "sys_interval":
            config.sysInterval = try int(directive, value, location, 0...65535)

        // Process
        case "user":
            let name = try restOfLine(directive, value, location)
            try setOnceCheck("global", directive, location)
            config.user = name

        case "pid_file":
            let file = path(try restOfLine(directive, value, location), location)
            try setOnceCheck("global", directive, location)
            config.pidFile = file

        // Persistence
        case "persistence", "retained_persistence":
            if try bool(directive, value, location) {
                throw error(location, "'\(directive) true' is not supported yet: Midge keeps sessions and "
                    + "retained messages in memory only, so they would be lost on restart")
            }

        case "persistence_file", "persistence_location":
            _ = try restOfLine(directive, value, location)
            notImplemented(directive, location, "persistence is not supported yet")

        case "autosave_interval":
            _ = try int(directive, value, location, Int(Int32.min)...Int(Int32.max))
            notImplemented(directive, location, "persistence is not supported yet")

        case "autosave_on_changes":
            _ = try bool(directive, value, location)
            notImplemented(directive, location, "persistence is not supported yet")

        // Harmless, not implemented
        case "allow_duplicate_messages":
            _ = try bool(directive, value, location)
            notImplemented(directive, location, "deprecated in mosquitto; duplicates are always allowed")

        case "memory_limit":
            _ = try int(directive, value, location, 0...Int.max, "0 (no limit) or more")
            notImplemented(directive, location, "there is no heap limit")

        case "http_dir":
            _ = try restOfLine(directive, value, location)
            notImplemented(directive, location, "websockets listeners do not serve HTTP files")

        case "websockets_log_level", "websockets_headers_size":
            _ = try int(directive, value, location, Int(Int32.min)...Int(Int32.max))
            notImplemented(directive, location, "libwebsockets-specific")

        case "log_facility":
            _ = try int(directive, value, location, 0...7)
            notImplemented(directive, location, "syslog messages use the default facility")

        case "retry_interval":
            notImplemented(directive, location, "removed in mosquitto 2.0")

        // Bridges
        case "connection":
            throw error(location, "bridges are not supported yet ('connection \(value)')")

        case _ where configBridgeDirectives.contains(directive) || directive.hasPrefix("bridge_"):
            throw error(location, "'\(directive)' is a bridge option, and bridges are not supported yet")

        case _ where configMosquitto21Directives.contains(directive):
            let instead = directive == "global_max_connections" ? "; Midge's max_connections_total limits connections across all listeners" : ""
            throw error(location, "unknown directive '\(directive)' (a Mosquitto 2.1 option; Midge follows Mosquitto 2.0\(instead))")

        default:
            throw error(location, "unknown directive '\(directive)'")
        }
    }

    mutating func declareDefaultListener(_ location: ConfigLocation) {
        if defaultListenerDeclared == nil {
            defaultListenerDeclared = location
            defaultListener.file = location.file
            defaultListener.line = location.line
        }
    }

    mutating func listenerLine(_ value: String, _ location: ConfigLocation, _ state: inout ConfigFileState) throws {
        let words = ConfigFileParser.words(value)
        guard let portWord = words.first, !portWord.hasPrefix("#") else {
            throw error(location, "missing value for 'listener' (expected: listener PORT [BIND_ADDRESS])")
        }
        guard let port = Int(portWord) else {
            throw error(location, "invalid port '\(portWord)' for 'listener': expected an integer")
        }
        var address: String?
        if words.count > 1 && !words[1].hasPrefix("#") {
            address = words[1]
            if words.count > 2 && !words[2].hasPrefix("#") {
                throw error(location, "unexpected '\(words[2])' after 'listener \(port) \(words[1])' "
                    + "(expected: listener PORT [BIND_ADDRESS])")
            }
        }
        if port == 0 {
            throw error(location, address == nil
                ? "listener port 0 means a Unix socket and needs a path; Unix socket listeners are not supported yet"
                : "Unix socket listeners ('listener 0 \(address!)') are not supported yet")
        }
        guard (1...65535).contains(port) else {
            throw error(location, "invalid port \(port) for 'listener': must be between 1 and 65535")
        }
        explicitListeners.append(ListenerConfig(
            port: port, bindAddress: address,
            security: config.perListenerSettings ? SecurityConfig() : nil,
            file: location.file, line: location.line))
        state.currentListener = .explicit(explicitListeners.count - 1)
    }

    /// `max_connection_rate N [SECONDS]` (Midge only): N CONNECTs per source address in SECONDS (default 1).
    mutating func connectionRateLine(_ value: String, _ location: ConfigLocation) throws {
        let words = ConfigFileParser.words(value).prefix { !$0.hasPrefix("#") }
        guard words.count <= 2 else {
            throw error(location, "unexpected '\(words[words.startIndex + 2])' after 'max_connection_rate' "
                + "(expected: max_connection_rate COUNT [SECONDS])")
        }
        config.maxConnectionRate = try int("max_connection_rate", words.first ?? "", location, 0...Int(Int32.max),
                                           "0 (no limit) or more")
        if words.count == 2 {
            config.connectionRateWindow = try int("max_connection_rate", words[words.startIndex + 1], location,
                                                  1...86_400, "a window between 1 and 86400 seconds")
        }
    }

    /// `admin_listener PORT [BIND_ADDRESS]` (Midge only): global, at most once; port 0 = ephemeral.
    mutating func adminListenerLine(_ value: String, _ location: ConfigLocation) throws {
        let usage = "(expected: admin_listener PORT [BIND_ADDRESS])"
        let words = ConfigFileParser.words(value)
        guard let portWord = words.first, !portWord.hasPrefix("#") else {
            throw error(location, "missing value for 'admin_listener' \(usage)")
        }
        guard let port = Int(portWord) else {
            throw error(location, "invalid port '\(portWord)' for 'admin_listener': expected an integer")
        }
        guard (0...65535).contains(port) else {
            throw error(location, "invalid port \(port) for 'admin_listener': must be between 0 (any free port) and 65535")
        }
        var address: String?
        if words.count > 1 && !words[1].hasPrefix("#") {
            address = words[1]
            if words.count > 2 && !words[2].hasPrefix("#") {
                throw error(location, "unexpected '\(words[2])' after 'admin_listener \(port) \(words[1])' \(usage)")
            }
        }
        try setOnceCheck("global", "admin_listener", location)
        config.adminListener = AdminListenerConfig(port: port, bindAddress: address,
                                                   file: location.file, line: location.line)
    }

    mutating func pluginOption(key: String, directive: String, value: String, _ location: ConfigLocation,
                               _ state: ConfigFileState) throws {
        guard !key.isEmpty else {
            throw error(location, "invalid plugin option '\(directive)': the option name is missing")
        }
        if state.pluginDiscarded { return }
        guard let plugin = state.currentPlugin else {
            throw error(location, "'\(directive)' without a preceding 'plugin' line in this file")
        }
        // Kept as written: the plugin declares which options are paths (`PluginDescriptor.pathOptions`), and
        // those are resolved against this file's directory when it is made.
        let option = try restOfLine(directive, value, location)
        withSecurity(plugin.security) { $0.plugins[plugin.index].options.append((key: key, value: option)) }
    }

    mutating func logDestination(_ value: String, _ location: ConfigLocation) throws {
        let words = ConfigFileParser.words(value)
        guard let kind = words.first, !kind.hasPrefix("#") else {
            throw error(location, "missing value for 'log_dest'")
        }
        if kind != "file" && words.count > 1 && !words[1].hasPrefix("#") {
            throw error(location, "unexpected '\(words[1])' after 'log_dest \(kind)' (one destination per line)")
        }
        if kind == "dlt" {
            notImplemented("log_dest dlt", location, "no DLT support")
            return
        }
        if !logDestSet { config.logDest = []; logDestSet = true }
        switch kind {
        case "none":
            config.logDest = []
            config.logFile = nil
        case "stdout", "stderr", "syslog", "topic":
            if !config.logDest.contains(kind) { config.logDest.append(kind) }
        case "file":
            let rest = ConfigFileParser.trimmed(value.dropFirst(kind.count))
            guard !rest.isEmpty, !rest.hasPrefix("#") else {
                throw error(location, "missing file path for 'log_dest file'")
            }
            try setOnceCheck("global", "log_dest file", location)
            let file = path(try restOfLine("log_dest file", rest, location), location)
            config.logFile = file
            if !config.logDest.contains("file") { config.logDest.append("file") }
        default:
            throw error(location, "invalid value '\(kind)' for 'log_dest': expected stdout, stderr, syslog, "
                + "topic, file PATH or none")
        }
    }

    /// `<n><h|d|w|m|y>`: hours, days, weeks, months (30 days), years (365 days).
    func expiration(_ directive: String, _ value: String, _ location: ConfigLocation) throws -> Int {
        let word = try singleWord(directive, value, location)
        let multipliers: [Character: Int] = ["h": 3600, "d": 86400, "w": 86400 * 7, "m": 86400 * 30, "y": 86400 * 365]
        guard let unit = word.last, let multiplier = multipliers[unit],
              let count = Int(word.dropLast()), count > 0 else {
            throw error(location, "invalid value '\(word)' for '\(directive)': expected a positive whole number "
                + "followed by h, d, w, m or y (e.g. 14d)")
        }
        let (seconds, overflow) = count.multipliedReportingOverflow(by: multiplier)
        guard !overflow else {
            throw error(location, "invalid value '\(word)' for '\(directive)': too large")
        }
        return seconds
    }

    mutating func includeDirectory(_ directory: String, _ location: ConfigLocation) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue,
              let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw error(location, "unable to open include_dir '\(directory)'")
        }
        let confFiles = names.filter { $0.utf8.count > 5 && $0.hasSuffix(".conf") }
            .sorted(by: ConfigPathResolver.mosquittoOrder)
        for name in confFiles {
            let file = directory + "/" + name
            if file == mainFile {
                errors.append(error(location, "include_dir '\(directory)' contains the main configuration file"))
                continue
            }
            do {
                let text = try ConfigParser.readConfigFile(displayName: file, absolutePath: file)
                parseFile(text: text, file: file, baseDirectory: directory, level: 1)
            } catch {
                errors.append(ConfigParser.configError(error, file: file))
            }
        }
    }

    // MARK: Finish

    /// The config, once the checks that need the whole file have added their errors.
    mutating func finish() -> BrokerConfig {
        if let use = defaultListenerFirstUse, defaultListenerDeclared == nil {
            let scope = config.perListenerSettings && configSecurityDirectives.contains(use.directive)
                ? " (with per_listener_settings true it is a listener option)" : ""
            errors.append(error(use.location, "'\(use.directive)' must come after a 'listener' line in this file\(scope): "
                + "above the first listener it belongs to mosquitto's implicit default listener (port 1883 on "
                + "all interfaces), which only 'port' or 'bind_address' should create. Move it below a "
                + "'listener' line, or declare the default listener with 'port'"))
        }
        var listeners = explicitListeners
        if defaultListenerDeclared != nil { listeners.append(defaultListener) }

        for (index, listener) in listeners.enumerated() {
            if let earlier = listeners[..<index].first(where: { $0.sharesPort(with: listener) }) {
                let bind = listener.bindAddress.map { " on \($0)" } ?? ""
                // The default listener is always last; report at the `listener` line then.
                let (here, there) = listener.isDefaultListener ? (earlier, listener) : (listener, earlier)
                let what = there.isDefaultListener ? "the default listener ('port'/'bind_address')" : "a listener"
                errors.append(ConfigError(file: here.file, line: here.line,
                                          message: "duplicate listener for port \(listener.port)\(bind): "
                                              + "\(what) at \(there.file):\(there.line) already uses it"))
            }
        }

        if let admin = config.adminListener, let clash = listeners.first(where: admin.collides) {
            let what = clash.isDefaultListener ? "the default listener ('port'/'bind_address')" : "the listener"
            errors.append(ConfigError(file: admin.file, line: admin.line,
                                      message: "admin_listener port \(admin.port) is also used by \(what) at \(clash.file):\(clash.line)"))
        }

        if config.perListenerSettings {
            for index in listeners.indices where listeners[index].security == nil {
                listeners[index].security = SecurityConfig()
            }
        } else {
            for index in listeners.indices { listeners[index].security = nil }
        }
        config.listeners = listeners

        config.allowAnonymous = global.allowAnonymous
        config.allowZeroLengthClientID = global.allowZeroLengthClientID
        config.autoIDPrefix = global.autoIDPrefix
        config.passwordFile = global.passwordFile
        config.aclFile = global.aclFile
        config.plugins = global.plugins
        return config
    }
}
