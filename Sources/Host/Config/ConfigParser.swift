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
/// ## Directives
/// Every directive is declared once, in `ConfigDirectives` (ConfigDirectives.swift), with what Midge does
/// with it (the "Directive decisions" table is there). This file reads files and lines, looks each directive
/// up there and collects the errors; ConfigDirective.swift says what a directive is and the ways of declaring
/// one, ConfigValues.swift reads values, ConfigTargets.swift says where they
/// land, ConfigLines.swift has the directives that are more than a value, ConfigChecks.swift the checks that
/// need the whole configuration.
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
        let text: String?
        do {
            text = try FileIO.text(path: absolutePath)
        } catch {
            throw ConfigError(file: displayName, line: 0, message: "unable to read config file: \(error)")
        }
        guard let text else {
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

struct ConfigLocation: Sendable {
    var file: String
    var line: Int
    var baseDirectory: String
}

/// Reads the lines of a main file and its includes into one `BrokerConfig`, collecting every error.
struct ConfigFileParser {
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
        switch ConfigDirectives.named(directive)?.recovery ?? .none {
        case .discardListener:
            discardedListener = ListenerConfig(port: 0, security: config.perListenerSettings ? SecurityConfig() : nil)
            state.currentListener = .discarded(ConfigFileParser.describe(location))
            // A plugin of the listener discarded before went with it: its options are dropped too (its index
            // pointed into the old discarded listener; found by the config fuzz target, where
            // `plugin_opt_` after a second bad `listener` line crashed the parser).
            if case .listener(.discarded) = state.currentPlugin?.security {
                state.currentPlugin = nil
                state.pluginDiscarded = true
            }
        case .discardPlugin:
            state.currentPlugin = nil
            state.pluginDiscarded = true
        case .none:
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

    // MARK: Directives

    /// One line: its directive looked up in `ConfigDirectives`, then applied.
    mutating func handle(directive name: String, value: String, at location: ConfigLocation,
                         state: inout ConfigFileState) throws {
        let directive = ConfigDirectives.named(name)
        if value.isEmpty {
            throw error(location, directive?.scope == .bridge
                        ? "missing value for '\(name)' (and bridges are not supported yet)"
                        : "missing value for '\(name)'")
        }
        guard let directive else { throw error(location, "unknown directive '\(name)'") }
        try directive.apply(&self, ConfigLine(directive: name, value: value, location: location), &state)
    }
}
