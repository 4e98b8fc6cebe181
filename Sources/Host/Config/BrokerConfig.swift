import Foundation
import PluginAPI

// The values a mosquitto.conf file turns into. `ConfigParser` (ConfigParser.swift)
// fills them in; the defaults here are Mosquitto 2.0's.

/// A configuration problem that stops the broker from starting.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The config file the problem is in (or "<command line>").
    public var file: String
    /// 1-based line number; 0 when the problem is not tied to a line.
    public var line: Int
    public var message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// `FILE:LINE: MESSAGE`, or `FILE: MESSAGE` when there is no line.
    public var description: String {
        line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)"
    }
}

/// Something in the configuration that was accepted but deserves attention:
/// a directive Midge does not implement yet, a deprecated spelling, a value
/// that probably does not mean what was intended.
public struct ConfigWarning: CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)"
    }
}

/// One `plugin NAME` line and the `plugin_opt_KEY VALUE` lines that follow it.
public struct PluginConfig: Sendable, Equatable {
    /// A built-in plugin's registry name (e.g. `passwd`): whatever followed `plugin`.
    public var name: String
    /// `plugin_opt_KEY VALUE` (or `auth_opt_KEY VALUE`) lines, in file order, as written. The options a
    /// plugin declares as file paths (`PluginDescriptor.pathOptions`) are resolved against `baseDirectory`
    /// when the plugin is made (`resolvedOptions(paths:)`).
    public var options: [(key: String, value: String)]
    /// The directory of the file that holds the `plugin` line (and so its `plugin_opt_*` lines); empty for a
    /// plugin a directive stands for (`password_file`), whose path is already absolute.
    public var baseDirectory: String
    /// `auth_plugin_deny_special_chars` (mosquitto default true): refuse ACL checks
    /// for usernames / client ids containing `+` or `#` before asking the plugin.
    public var denySpecialChars: Bool
    public var file: String
    public var line: Int

    public init(name: String, options: [(key: String, value: String)] = [], denySpecialChars: Bool = true,
                file: String = "", line: Int = 0, baseDirectory: String = "") {
        self.name = name
        self.options = options
        self.baseDirectory = baseDirectory
        self.denySpecialChars = denySpecialChars
        self.file = file
        self.line = line
    }

    /// `options` with the values of the keys in `paths` made absolute against `baseDirectory` (a relative
    /// path in an included file means relative to that file's directory, as for Mosquitto's own paths).
    public func resolvedOptions(paths: Set<String>) -> [(key: String, value: String)] {
        guard !paths.isEmpty, !baseDirectory.isEmpty else { return options }
        return options.map { option in
            guard paths.contains(option.key), !option.value.isEmpty else { return option }
            return (option.key, ConfigPathResolver.absolute(option.value, relativeTo: baseDirectory))
        }
    }

    /// The value of the last `plugin_opt_KEY` line for `key`, if any.
    public func option(_ key: String) -> String? {
        options.last(where: { $0.key == key })?.value
    }

    public static func == (lhs: PluginConfig, rhs: PluginConfig) -> Bool {
        lhs.name == rhs.name
            && lhs.options.count == rhs.options.count
            && zip(lhs.options, rhs.options).allSatisfy { $0.key == $1.key && $0.value == $1.value }
            && lhs.denySpecialChars == rhs.denySpecialChars
            && lhs.file == rhs.file && lhs.line == rhs.line && lhs.baseDirectory == rhs.baseDirectory
    }
}

/// The authentication / access settings mosquitto keeps per listener when
/// `per_listener_settings true` (and globally otherwise).
public struct SecurityConfig: Sendable, Equatable {
    /// nil = not set in the file: mosquitto 2.0 then means false, except in
    /// local-only mode where it means true. The Host decides.
    public var allowAnonymous: Bool?
    public var allowZeroLengthClientID: Bool
    public var autoIDPrefix: String
    /// Absolute path (relative paths are resolved against the config file's directory).
    public var passwordFile: String?
    /// Absolute path (relative paths are resolved against the config file's directory).
    public var aclFile: String?
    public var plugins: [PluginConfig]

    public init(allowAnonymous: Bool? = nil, allowZeroLengthClientID: Bool = true, autoIDPrefix: String = "auto-",
                passwordFile: String? = nil, aclFile: String? = nil, plugins: [PluginConfig] = []) {
        self.allowAnonymous = allowAnonymous
        self.allowZeroLengthClientID = allowZeroLengthClientID
        self.autoIDPrefix = autoIDPrefix
        self.passwordFile = passwordFile
        self.aclFile = aclFile
        self.plugins = plugins
    }
}

/// One network listener.
public struct ListenerConfig: Sendable, Equatable {
    public var port: Int
    /// nil = all interfaces.
    public var bindAddress: String?
    /// "mqtt" (default) or "websockets", from `protocol`.
    public var protocolName: String
    /// -1 = unlimited.
    public var maxConnections: Int
    public var mountPoint: String?
    /// nil = both; "ipv4" or "ipv6" from `socket_domain`.
    public var socketDomain: String?
    /// `bind_interface DEVICE` (Linux SO_BINDTODEVICE).
    public var bindInterface: String?
    /// `max_qos` (per listener in mosquitto 2.0), 0...2.
    public var maxQoS: Int
    /// `max_topic_alias`, 0...65535, default 10.
    public var maxTopicAlias: Int
    /// `max_topic_alias_broker` (Mosquitto 2.1's name): the most topic aliases the broker uses towards a 5.0
    /// client that accepts them, 0...65535; default 0, none, as Mosquitto 2.0 (which never sends them).
    public var maxTopicAliasBroker = 0
    /// `use_username_as_clientid`.
    public var useUsernameAsClientID: Bool
    /// The listener's TLS directives (certfile, keyfile, cafile, capath, crlfile, dhparamfile,
    /// require_certificate, use_identity_as_username, use_subject_as_username, tls_version, ciphers,
    /// ciphers_tls1.3, tls_engine, tls_engine_kpass_sha1, tls_keyform), for the `tls` decorator; file paths
    /// are absolute. Nil when none was given: a listener with `tls` set must not be served as plain TCP.
    public var tls: ListenerTLSConfig?
    /// Only set when `per_listener_settings true`; otherwise the global settings apply.
    public var security: SecurityConfig?
    /// True for mosquitto's "default listener", configured by the deprecated
    /// `port` / `bind_address` directives rather than by a `listener` line.
    public var isDefaultListener: Bool
    /// Where it was declared (the `listener`, `port` or `bind_address` line).
    public var file: String
    public var line: Int

    public init(port: Int, bindAddress: String? = nil, protocolName: String = "mqtt", maxConnections: Int = -1,
                mountPoint: String? = nil, socketDomain: String? = nil, bindInterface: String? = nil,
                maxQoS: Int = 2, maxTopicAlias: Int = 10, useUsernameAsClientID: Bool = false,
                tls: ListenerTLSConfig? = nil, security: SecurityConfig? = nil, isDefaultListener: Bool = false,
                file: String = "", line: Int = 0) {
        self.port = port
        self.bindAddress = bindAddress
        self.protocolName = protocolName
        self.maxConnections = maxConnections
        self.mountPoint = mountPoint
        self.socketDomain = socketDomain
        self.bindInterface = bindInterface
        self.maxQoS = maxQoS
        self.maxTopicAlias = maxTopicAlias
        self.useUsernameAsClientID = useUsernameAsClientID
        self.tls = tls
        self.security = security
        self.isDefaultListener = isDefaultListener
        self.file = file
        self.line = line
    }
}

extension ListenerConfig {
    /// Whether this listener and `other` would bind the same port and address (a duplicate listener).
    func sharesPort(with other: ListenerConfig) -> Bool {
        port == other.port && bindAddress == other.bindAddress
    }
}

extension AdminListenerConfig {
    /// Whether an MQTT listener would take this port: the same port, on the same address or all addresses.
    func collides(with listener: ListenerConfig) -> Bool {
        port != 0 && listener.port == port
            && (listener.bindAddress == nil || bindAddress == nil || listener.bindAddress == bindAddress)
    }
}

/// Midge only: `admin_listener PORT [BIND_ADDRESS]`, the HTTP listener for health probes and plugin endpoints
/// (such as `/metrics`).
public struct AdminListenerConfig: Sendable, Equatable {
    /// 0 means an ephemeral port (for tests); the bound port is logged and in `Broker.adminPort`.
    public var port: Int
    /// nil = all interfaces, as for a listener.
    public var bindAddress: String?
    /// Where it was declared.
    public var file: String
    public var line: Int

    public init(port: Int, bindAddress: String? = nil, file: String = "", line: Int = 0) {
        self.port = port
        self.bindAddress = bindAddress
        self.file = file
        self.line = line
    }
}

/// The whole broker configuration, with Mosquitto 2.0's defaults.
public struct BrokerConfig: Sendable, Equatable {
    /// Listeners from the configuration files, in file order; mosquitto's default
    /// listener (from `port` / `bind_address`) comes last, as in mosquitto.
    /// Empty = local-only mode; see `effectiveListeners` for what to actually open.
    public var listeners: [ListenerConfig] = []
    /// Ports given with `-p` (see `addCommandLinePort`).
    public private(set) var commandLinePorts: [Int] = []

    // MARK: Security (global; per listener when perListenerSettings)
    public var perListenerSettings = false
    /// nil = not set: mosquitto 2.0 means false, but true in local-only mode. The Host decides.
    public var allowAnonymous: Bool?
    public var allowZeroLengthClientID = true
    public var autoIDPrefix = "auto-"
    public var passwordFile: String?
    public var aclFile: String?
    public var plugins: [PluginConfig] = []

    // MARK: Limits and MQTT behaviour
    /// 10...65535.
    public var maxKeepalive = 65535
    /// 0 = no limit; otherwise >= 20.
    public var maxPacketSize = 0
    /// 0 = no limit.
    public var messageSizeLimit = 0
    /// 0 = no limit (mosquitto also treats 65535 as no limit; stored as 0).
    public var maxInflightMessages = 20
    public var maxInflightBytes = 0
    /// 0 = no limit.
    public var maxQueuedMessages = 1000
    public var maxQueuedBytes = 0
    public var queueQoS0Messages = false
    /// Seconds; nil = never expire persistent sessions.
    public var persistentClientExpiration: Int?
    public var retainAvailable = true
    public var upgradeOutgoingQoS = false
    public var setTCPNoDelay = false
    /// Midge only (`generate_certificates`): create missing TLS certificates at start-up.
    public var generateCertificates = false
    /// Midge only (`admin_listener PORT [BIND_ADDRESS]`): the admin HTTP listener; nil = none.
    public var adminListener: AdminListenerConfig?
    /// Midge only (`watch_interval SECONDS`): how often the files plugins load (password file, ACL file,
    /// SQLite database, certificates, keys, CA, CRL) are checked for changes; a change reloads the plugins
    /// whose files changed, all or nothing. Milliseconds; 0 = not watched (SIGHUP only).
    public var watchIntervalMilliseconds = 2000
    /// Seconds between $SYS updates; 0 = no $SYS.
    public var sysInterval = 10
    // MARK: Quotas (Midge only; see README, Quotas)
    /// `max_connections_total`: open connections across all listeners; -1 = no limit.
    public var maxConnectionsTotal = -1
    /// `max_connections_per_user`: clients connected with one user name; -1 = no limit.
    public var maxConnectionsPerUser = -1
    /// `max_connection_rate N [SECONDS]`: CONNECTs per source address per `connectionRateWindow` seconds;
    /// 0 = no limit.
    public var maxConnectionRate = 0
    public var connectionRateWindow = 1
    /// `max_publish_rate`: PUBLISH packets per second per client; 0 = no limit.
    public var maxPublishRate = 0
    /// `max_publish_bytes_rate`: PUBLISH bytes (topic and payload) per second per client; 0 = no limit.
    public var maxPublishBytesRate = 0
    /// `max_queued_bytes_total`: bytes waiting in all sessions' queues together; 0 = no limit.
    public var maxQueuedBytesTotal = 0

    /// Connection limit given to the loopback listeners of local-only mode and of `-p`.
    /// The parser never changes it: in mosquitto 2.0 `max_connections` is a listener
    /// option (see `ListenerConfig.maxConnections`), there is no global one.
    public var maxConnections = -1

    // MARK: Process
    /// nil = not set (mosquitto then drops to "mosquitto" when started as root).
    public var user: String?
    public var pidFile: String?
    /// The installer's user from `MIDGE_ADMIN_USERNAME` / `MIDGE_ADMIN_PASSWORD` (never from a file).
    public var installerUser: InstallerUser?

    // MARK: Logging
    /// Destinations in order: "stdout", "stderr", "syslog", "topic", "file".
    /// Empty after `log_dest none`.
    public var logDest: [String] = ["stderr"]
    /// The path for the "file" destination (absolute).
    public var logFile: String?
    /// Types: "error", "warning", "notice", "information", "debug", "subscribe",
    /// "unsubscribe", "websockets", "internal". `log_type all` expands to all of them.
    public var logTypes: [String] = ["error", "warning", "notice", "information"]
    public var logTimestamp = true
    /// strftime format from `log_timestamp_format`; nil = seconds since the epoch.
    public var logTimestampFormat: String?
    /// Midge only (`log_format`): Mosquitto's text lines or one JSON object per line.
    public var logFormat: LogFormat = .text
    /// `log_buffer_size` (Midge only): the most bytes of log lines waiting for a slow destination; lines that
    /// do not fit are dropped and counted. 0 = each line is written by the thread that logs it (Mosquitto's
    /// way: nothing dropped, and a destination that blocks stalls the broker).
    public var logBufferSize = 1 << 20
    public var connectionMessages = true

    /// Directives accepted but not (fully) honoured, deprecations, and other notes.
    public var warnings: [ConfigWarning] = []
    /// Every config file read, main file first.
    public var loadedFiles: [String] = []

    public init() {}

    /// Mosquitto's local-only mode: no `listener`, `port` or `bind_address` anywhere.
    /// The broker then listens on loopback only (see `effectiveListeners`) and
    /// anonymous access defaults to allowed.
    public var localOnlyMode: Bool { listeners.isEmpty }

    /// The highest `max_qos` of any listener (2 when there are none).
    /// In mosquitto 2.0 `max_qos` is per listener; use `ListenerConfig.maxQoS`.
    public var maxQoS: Int { listeners.map(\.maxQoS).max() ?? 2 }

    /// The global security settings as one value.
    public var globalSecurity: SecurityConfig {
        get {
            SecurityConfig(allowAnonymous: allowAnonymous, allowZeroLengthClientID: allowZeroLengthClientID,
                           autoIDPrefix: autoIDPrefix, passwordFile: passwordFile, aclFile: aclFile, plugins: plugins)
        }
        set {
            (allowAnonymous, allowZeroLengthClientID, autoIDPrefix) = (newValue.allowAnonymous,
                newValue.allowZeroLengthClientID, newValue.autoIDPrefix)
            (passwordFile, aclFile, plugins) = (newValue.passwordFile, newValue.aclFile, newValue.plugins)
        }
    }

    /// The security settings that govern `listener`: its own under
    /// `per_listener_settings true`, the global ones otherwise.
    public func security(for listener: ListenerConfig) -> SecurityConfig {
        if perListenerSettings { return listener.security ?? SecurityConfig() }
        return globalSecurity
    }

    /// Adds a port given on the command line (mosquitto's `-p PORT`).
    ///
    /// What Mosquitto 2.0 does with `-p` (checked against 2.0.11 and conf.c):
    /// - `-p` only matters in local-only mode (the config defines no `listener`,
    ///   `port` or `bind_address`). Then the broker listens on each `-p` port
    ///   *instead of* 1883, bound to loopback only: 127.0.0.1 and ::1. It does not
    ///   bind all interfaces.
    /// - When the configuration defines listeners, mosquitto silently ignores `-p`.
    ///   Midge ignores it too but records a warning.
    /// - Ports outside 1...65535 are an error. Mosquitto accepts up to 10 `-p`
    ///   (2.0.11 crashes on a second one); Midge keeps them all, once each.
    public mutating func addCommandLinePort(_ port: Int) throws {
        guard (1...65535).contains(port) else {
            throw ConfigError(file: "<command line>", line: 0,
                              message: "invalid port \(port) for -p: must be between 1 and 65535")
        }
        if !localOnlyMode {
            warnings.append(ConfigWarning(
                file: "<command line>", line: 0,
                message: "-p \(port) ignored: the configuration defines listeners (mosquitto 2.0 ignores -p then)"))
            return
        }
        if !commandLinePorts.contains(port) { commandLinePorts.append(port) }
    }

    /// What the broker should open. With configured listeners, exactly `listeners`.
    /// In local-only mode, 127.0.0.1 and ::1 on each `-p` port, or on 1883 without `-p`
    /// (as mosquitto 2.0 does).
    public var effectiveListeners: [ListenerConfig] {
        if !localOnlyMode { return listeners }
        let ports = commandLinePorts.isEmpty ? [1883] : commandLinePorts
        let origin = commandLinePorts.isEmpty ? "<local-only default>" : "<command line>"
        var result: [ListenerConfig] = []
        for port in ports {
            for address in ["127.0.0.1", "::1"] {
                result.append(ListenerConfig(
                    port: port, bindAddress: address, maxConnections: maxConnections,
                    security: perListenerSettings ? SecurityConfig() : nil, file: origin, line: 0))
            }
        }
        return result
    }
}
