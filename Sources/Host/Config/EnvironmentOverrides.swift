import Foundation

/// The environment variables an installer sets instead of editing the config (a container's `env:`), and what
/// they change. Precedence, highest first: command-line flags (`-v`, `-p`), these variables, the config file,
/// built-in defaults. `describe` says which variable set what, never a secret.
public struct EnvironmentOverrides: Sendable {
    /// Every variable Midge reads, with what it does (for `--help`, README and the start-up lines).
    public static let documented: [(name: String, meaning: String)] = [
        ("MIDGE_CONFIG_DIR", "the directory of plugins.conf, passwd and certs/ (when -c is not given)"),
        ("MIDGE_STATE_DIR", "where generated certificates go when the config directory is read-only"),
        ("MIDGE_TLS_SANS", "extra names (comma-separated) for a generated server certificate"),
        ("MIDGE_ADMIN_USERNAME", "the installer's user (default admin); needs MIDGE_ADMIN_PASSWORD"),
        ("MIDGE_ADMIN_PASSWORD", "that user's password; the default admin / admin is then refused"),
        ("MIDGE_PORT", "the port of the first listener without TLS"),
        ("MIDGE_TLS_PORT", "the port of the first TLS listener"),
        ("MIDGE_ADMIN_PORT", "the port of admin_listener (added on all interfaces when the config has none)"),
        ("MIDGE_LOG_LEVEL", "error, warning, notice, information, debug or all: that level and those above"),
        ("MIDGE_LOG_FORMAT", "text or json (log_format)"),
        ("MIDGE_EVENT_LOOPS", "the number of event loop threads (default: one per core)"),
    ]

    /// The user `MIDGE_ADMIN_USERNAME` / `MIDGE_ADMIN_PASSWORD` define.
    public var installerUser: InstallerUser?
    public var port: Int?
    public var tlsPort: Int?
    public var adminPort: Int?
    /// `MIDGE_LOG_FORMAT`.
    public var logFormat: LogFormat?
    /// `log_type` words for `MIDGE_LOG_LEVEL`.
    public var logLevel: (name: String, types: [String])?

    /// Reads the variables; a malformed value is an error naming the variable.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        func portNumber(_ name: String) throws -> Int? {
            guard let text = value(name) else { return nil }
            guard let number = Int(text), (1...65535).contains(number) else {
                throw ConfigError(file: "environment", line: 0,
                                  message: "\(name)='\(text)': expected a port between 1 and 65535")
            }
            return number
        }
        port = try portNumber("MIDGE_PORT")
        tlsPort = try portNumber("MIDGE_TLS_PORT")
        adminPort = try portNumber("MIDGE_ADMIN_PORT")
        if let password = environment["MIDGE_ADMIN_PASSWORD"], !password.isEmpty {
            let username = value("MIDGE_ADMIN_USERNAME") ?? "admin"
            installerUser = InstallerUser(username: username, password: password)
        } else if value("MIDGE_ADMIN_USERNAME") != nil {
            throw ConfigError(file: "environment", line: 0,
                              message: "MIDGE_ADMIN_USERNAME is set but MIDGE_ADMIN_PASSWORD is not: set both")
        }
        if let format = value("MIDGE_LOG_FORMAT") {
            guard let known = LogFormat(rawValue: format.lowercased()) else {
                throw ConfigError(file: "environment", line: 0, message: "MIDGE_LOG_FORMAT='\(format)': expected text or json")
            }
            logFormat = known
        }
        if let level = value("MIDGE_LOG_LEVEL") {
            let order = ["error", "warning", "notice", "information", "debug"]
            let word = level.lowercased() == "info" ? "information" : level.lowercased()
            if word == "all" {
                logLevel = ("all", ["all"])
            } else if let index = order.firstIndex(of: word) {
                logLevel = (word, Array(order[...index]))
            } else {
                throw ConfigError(file: "environment", line: 0,
                                  message: "MIDGE_LOG_LEVEL='\(level)': expected error, warning, notice, information, debug or all")
            }
        }
    }

    /// Applies the variables to a loaded config; returns one line per value they set, saying what it replaced.
    public func apply(to config: inout BrokerConfig) throws -> [String] {
        var notes: [String] = []
        if let port {
            if config.localOnlyMode {
                try config.addCommandLinePort(port)
                notes.append("port \(port) (local only mode) from MIDGE_PORT")
            } else if let index = config.listeners.firstIndex(where: { $0.tls == nil }) {
                notes.append("listener \(config.listeners[index].port) -> port \(port) from MIDGE_PORT")
                config.listeners[index].port = port
            } else {
                throw ConfigError(file: "environment", line: 0,
                                  message: "MIDGE_PORT is set but the configuration has no listener without TLS")
            }
        }
        if let tlsPort {
            guard let index = config.listeners.firstIndex(where: { $0.tls != nil }) else {
                throw ConfigError(file: "environment", line: 0,
                                  message: "MIDGE_TLS_PORT is set but the configuration has no TLS listener")
            }
            notes.append("TLS listener \(config.listeners[index].port) -> port \(tlsPort) from MIDGE_TLS_PORT")
            config.listeners[index].port = tlsPort
        }
        if let adminPort {
            if config.adminListener == nil {
                config.adminListener = AdminListenerConfig(port: adminPort, bindAddress: nil, file: "environment", line: 0)
                notes.append("admin_listener \(adminPort) (all interfaces) from MIDGE_ADMIN_PORT")
            } else {
                notes.append("admin_listener \(config.adminListener!.port) -> port \(adminPort) from MIDGE_ADMIN_PORT")
                config.adminListener!.port = adminPort
            }
        }
        if let logLevel {
            config.logTypes = logLevel.types
            notes.append("log level \(logLevel.name) (log_type \(logLevel.types.joined(separator: " "))) from MIDGE_LOG_LEVEL")
        }
        if port != nil || tlsPort != nil || adminPort != nil { try checkPorts(config) }
        if let logFormat {
            config.logFormat = logFormat
            notes.append("log_format \(logFormat.rawValue) from MIDGE_LOG_FORMAT")
        }
        if let installerUser {
            config.installerUser = installerUser
            notes.append("user \(installerUser.username) with its password from MIDGE_ADMIN_USERNAME / MIDGE_ADMIN_PASSWORD (not shown); admin / admin is refused")
        }
        return notes
    }
}

extension EnvironmentOverrides {
    /// A port a variable set must not be one another listener (or the admin listener) uses: the parser's rules.
    private func checkPorts(_ config: BrokerConfig) throws {
        let listeners = config.listeners
        for (index, listener) in listeners.enumerated() {
            if let other = listeners[..<index].first(where: { $0.sharesPort(with: listener) }) {
                throw ConfigError(file: "environment", line: 0,
                                  message: "port \(listener.port) (MIDGE_PORT / MIDGE_TLS_PORT) would be used by the listeners at \(other.file):\(other.line) and \(listener.file):\(listener.line)")
            }
        }
        if let admin = config.adminListener, let other = listeners.first(where: admin.collides) {
            throw ConfigError(file: "environment", line: 0,
                              message: "port \(admin.port) would be used by admin_listener and by the listener at \(other.file):\(other.line) (MIDGE_PORT / MIDGE_TLS_PORT / MIDGE_ADMIN_PORT)")
        }
    }
}

/// The installer's user from `MIDGE_ADMIN_USERNAME` / `MIDGE_ADMIN_PASSWORD`: checked before every
/// authentication plugin. Its description never shows the password.
public struct InstallerUser: Sendable, Equatable, CustomStringConvertible {
    public var username: String
    public var password: String

    public var description: String { "InstallerUser(\(username), password not shown)" }
}
