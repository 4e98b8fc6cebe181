import Foundation
import Logging
import NIOCore
import NIOPosix
import PluginAPI

/// What `midge check-config` finds: the configuration parsed with every error collected, then every plugin and
/// TLS listener created as `Broker.init` creates them, one at a time so that each failure is reported, then
/// `Broker.init` itself. Nothing is bound or written: a TLS listener whose certificates `generate_certificates`
/// would create is reported as such and not loaded.
struct ConfigCheck {
    /// The human-readable report (what would run, warnings, the verdict), for stdout.
    var text: String
    /// Every error, as `FILE:LINE: message` where there is a line, in the order found.
    var errors: [String]

    /// Checks the config file at `path` (nil: local only mode) with the `-p` `ports` and the `MIDGE_*`
    /// variables of `environment`. `pluginWarnings` returns what plugins logged as warnings so far.
    static func run(path: String?, ports: [Int], registry: PluginRegistry,
                    environment: [String: String] = ProcessInfo.processInfo.environment,
                    pluginWarnings: () -> [String] = { [] }) -> ConfigCheck {
        var report = ReportBuilder()
        report.line("Configuration: \(path ?? "none (local only mode)")")
        var config = BrokerConfig()
        if let path {
            let parsed = ConfigParser.loadCollectingErrors(path: path)
            config = parsed.config
            report.errors += parsed.errors.map(\.description)
        }
        do {
            for note in try EnvironmentOverrides(environment: environment).apply(to: &config) {
                report.line("Environment: \(note)")
            }
        } catch {
            report.errors.append("\(error)")
        }
        for port in ports {
            do { try config.addCommandLinePort(port) } catch { report.errors.append("\(error)") }
        }
        if config.loadedFiles.count > 1 {
            report.line("Files read: \(config.loadedFiles.joined(separator: ", "))")
        }
        report.warnings += config.warnings.map(\.description) + MidgeCommand.notYetHonoured(config)
        if report.errors.isEmpty {
            var walk = PluginWalk(config: config, registry: registry)
            walk.run(into: &report)
        }
        report.warnings += pluginWarnings()
        return report.finish()
    }
}

/// The lines and errors of a check as it goes.
private struct ReportBuilder {
    var lines: [String] = []
    var warnings: [String] = []
    var errors: [String] = []

    mutating func line(_ text: String) { lines.append(text) }

    /// Records `error`, described as `FILE:LINE: message` when it knows its place.
    mutating func error(_ error: any Error) { errors.append("\(error)") }

    func finish() -> ConfigCheck {
        var text = lines
        var seen = Set<String>()
        let unique = warnings.filter { seen.insert($0).inserted }
        if !unique.isEmpty {
            text.append("")
            text.append("Warnings:")
            text += unique.map { "  \($0)" }
        }
        text.append("")
        text.append(errors.isEmpty ? "Configuration is valid."
                                   : "Configuration is not valid: \(errors.count) error(s), listed on stderr.")
        return ConfigCheck(text: text.joined(separator: "\n") + "\n", errors: errors)
    }
}

/// Creates what `Broker.init` creates, collecting every failure, and describes it.
private struct PluginWalk {
    let config: BrokerConfig
    let registry: PluginRegistry
    /// Each plugin made and its config line, for the admin listener's endpoints.
    var made: [(plugin: any Plugin, config: PluginConfig)] = []

    init(config: BrokerConfig, registry: PluginRegistry) {
        self.config = config
        self.registry = registry
    }

    /// What each plugin gets here: start-up's context, with `checkOnly` set (nothing written).
    func checkContext(_ name: String) -> PluginContext {
        Broker.pluginContext(name, config: config, checkOnly: true)
    }

    mutating func run(into report: inout ReportBuilder) {
        let group = MultiThreadedEventLoopGroup.singleton
        report.line("")
        report.line("Listeners:")
        var securityLines: [String] = []
        var sections = Set<String>()
        for listener in config.effectiveListeners {
            listenerLines(listener, into: &report)
            let key = config.perListenerSettings ? "\(listener.file):\(listener.line):\(listener.port)" : "global"
            if sections.insert(key).inserted {
                securityLines += securitySection(listener, into: &report)
            }
        }
        report.line(adminListenerLine())
        report.line("")
        report.lines += securityLines
        report.line("")
        implicitHookLines(into: &report)
        report.line("")
        report.lines += Self.limitLines(config)
        if config.adminListener != nil {
            let sources = made.compactMap { plugin, origin -> AdminServer.EndpointSource? in
                guard let provider = plugin as? any HTTPEndpointProvider else { return nil }
                return AdminServer.EndpointSource(name: "plugin '\(origin.name)'", file: origin.file,
                                                  line: origin.line, endpoints: provider.httpEndpoints)
            }
            do {
                _ = try AdminServer(group: group, sources: sources, logger: Logger(label: "midge.check-config"))
            } catch {
                report.error(error)
            }
        } else {
            let paths = made.flatMap { ($0.plugin as? any HTTPEndpointProvider)?.httpEndpoints.map(\.path) ?? [] }
            if !paths.isEmpty {
                report.warnings.append("Plugins publish HTTP endpoints (\(paths.joined(separator: ", "))) but no admin_listener is configured: they are not served.")
            }
        }
        let authenticators = made.compactMap { $0.plugin as? any AuthenticationPlugin }
        if config.installerUser == nil, !authenticators.isEmpty,
           (try? DefaultCredentials.accepted(by: authenticators, on: group.next()).wait()) == true {
            report.warnings.append(DefaultCredentials.warning)
        }
        report.lines += ConfigCheck.statisticsLines(config: config, registry: registry, plugins: made.map(\.plugin))
        // Last, start-up's own code path, for whatever the steps above do not cover (only when they found
        // nothing: it stops at the first error, which would repeat one of theirs).
        guard report.errors.isEmpty else { return }
        do {
            _ = try Broker(config: config, logger: Logger(label: "midge.check-config"), registry: registry,
                           group: group, checkOnly: true)
        } catch {
            report.error(error)
        }
    }

    // MARK: Listeners

    func listenerLines(_ listener: ListenerConfig, into report: inout ReportBuilder) {
        var facts = [listener.protocolName, listener.tls == nil ? "plain TCP" : "TLS",
                     "max_connections \(listener.maxConnections < 0 ? "unlimited" : String(listener.maxConnections))"]
        if listener.maxQoS != 2 { facts.append("max_qos \(listener.maxQoS)") }
        if listener.maxTopicAlias != 10 { facts.append("max_topic_alias \(listener.maxTopicAlias)") }
        if listener.maxTopicAliasBroker != 0 { facts.append("max_topic_alias_broker \(listener.maxTopicAliasBroker)") }
        if listener.useUsernameAsClientID { facts.append("use_username_as_clientid") }
        if let domain = listener.socketDomain { facts.append("socket_domain \(domain)") }
        report.line("  port \(listener.port) on \(listener.bindAddress ?? "all interfaces") "
            + "(\(Self.place(listener.file, listener.line))): \(facts.joined(separator: ", "))")
        do {
            try Broker.checkSupported(listener)
        } catch {
            report.error(error)
        }
        let tls = listener.tls ?? ListenerTLSConfig()
        let files = [("certfile", tls.certfile), ("keyfile", tls.keyfile), ("cafile", tls.cafile),
                     ("capath", tls.capath), ("crlfile", tls.crlfile)].compactMap { key, path in path.map { "\(key) \($0)" } }
        if !files.isEmpty { report.line("    \(files.joined(separator: ", "))") }
        if tls.requireCertificate { report.line("    require_certificate true") }
        do {
            let stack = try ListenerStack.make(listener, config: config, registry: registry, context: checkContext)
            report.line("    plugins: \(stack.names.joined(separator: " -> "))")
            for plugin in stack.plugins {
                for line in (plugin as? any ConfigCheckDescribing)?.checkReport ?? [] { report.line("    \(line)") }
            }
        } catch {
            report.error(error)
        }
    }

    func adminListenerLine() -> String {
        guard let admin = config.adminListener else { return "Admin listener: none" }
        let paths = ["/healthz", "/readyz"]
            + made.flatMap { ($0.plugin as? any HTTPEndpointProvider)?.httpEndpoints.map(\.path) ?? [] }
        return "Admin listener: port \(admin.port == 0 ? "any free one (0)" : String(admin.port)) on "
            + "\(admin.bindAddress ?? "all interfaces") (\(Self.place(admin.file, admin.line))): \(paths.joined(separator: ", "))"
    }

    // MARK: Plugins

    /// One security section: its settings, then each plugin of its chain, created on its own.
    mutating func securitySection(_ listener: ListenerConfig, into report: inout ReportBuilder) -> [String] {
        let security = config.security(for: listener)
        var lines = [config.perListenerSettings
            ? "Security for the listener on port \(listener.port) (\(Self.place(listener.file, listener.line))):"
            : "Security (all listeners):"]
        let anonymous = security.allowAnonymous ?? config.localOnlyMode
        lines.append("  allow_anonymous \(anonymous)\(security.allowAnonymous == nil ? " (not set)" : ""), "
            + "allow_zero_length_clientid \(security.allowZeroLengthClientID), auto_id_prefix '\(security.autoIDPrefix)'")
        let chain = Broker.chainConfigs(security)
        if chain.isEmpty { lines.append("  no plugins") }
        for (number, pluginConfig) in chain.enumerated() {
            let what: String
            do {
                let result = try Broker.makeChain(SecurityConfig(plugins: [pluginConfig]), registry: registry,
                                                  context: checkContext)
                what = result.plugins.first.map(Self.kinds) ?? "?"
                made += zip(result.plugins, result.configs).map { (plugin: $0, config: $1) }
            } catch {
                report.error(error)
                what = "NOT CREATED (see the errors)"
            }
            lines.append("  \(number + 1). \(Self.describe(pluginConfig)): \(what)")
            if pluginConfig.line > 0 {
                let paths = registry.descriptor(named: pluginConfig.name)?.pathOptions ?? []
                lines += pluginConfig.resolvedOptions(paths: paths).map { "       plugin_opt_\($0.key) \(ConfigCheck.shown(key: $0.key, value: $0.value))" }
                if !pluginConfig.denySpecialChars { lines.append("       auth_plugin_deny_special_chars false") }
            }
        }
        return lines
    }

    func implicitHookLines(into report: inout ReportBuilder) {
        report.line("Implicit hooks:")
        do {
            let entries = try Broker.implicitHooks(config: config, registry: registry, context: checkContext)
            if entries.isEmpty { report.line("  none") }
            for entry in entries { report.line("  \(entry.name): \(Self.kinds(entry.hook))") }
        } catch {
            report.error(error)
        }
    }

    /// `passwd (password_file /etc/midge/passwd)` or `sqlite (plugins.conf:12)`.
    static func describe(_ plugin: PluginConfig) -> String {
        if plugin.line == 0, let option = plugin.options.first {
            return "\(plugin.name) (\(option.key) \(option.value))"
        }
        return "\(plugin.name) (\(place(plugin.file, plugin.line)))"
    }

    /// What a plugin is, in chain terms: `authentication, authorization`, `hook (connect, publish)`, ...
    static func kinds(_ plugin: any Plugin) -> String {
        var kinds: [String] = []
        if plugin is any AuthenticationPlugin { kinds.append("authentication") }
        if plugin is any EnhancedAuthenticationPlugin { kinds.append("enhanced authentication") }
        if plugin is any AuthorizationPlugin { kinds.append("authorization") }
        if let hook = plugin as? any HookPlugin {
            let names: [(HookEvents, String)] = [
                (.connect, "connect"), (.disconnect, "disconnect"), (.subscribe, "subscribe"),
                (.unsubscribe, "unsubscribe"), (.publish, "publish"), (.deliver, "deliver"), (.will, "will"),
                (.tick, "tick"), (.reload, "reload"), (.shutdown, "shutdown"),
            ]
            let events = names.filter { hook.events.contains($0.0) }.map(\.1)
            if !events.isEmpty { kinds.append("hook (\(events.joined(separator: ", ")))") }
        }
        if let provider = plugin as? any HTTPEndpointProvider {
            kinds.append("HTTP endpoints (\(provider.httpEndpoints.map(\.path).joined(separator: ", ")))")
        }
        if kinds.isEmpty && plugin is any HookPlugin { kinds.append("hook (no events)") }
        return kinds.isEmpty ? "?" : kinds.joined(separator: ", ")
    }

    // MARK: Limits

    static func limitLines(_ config: BrokerConfig) -> [String] {
        func limit(_ value: Int, _ unit: String = "") -> String { value == 0 ? "unlimited" : "\(value)\(unit)" }
        var lines = [
            "Limits:",
            "  max_packet_size: \(limit(config.maxPacketSize, " bytes"))",
            "  message_size_limit: \(limit(config.messageSizeLimit, " bytes"))",
            "  max_inflight_messages: \(limit(config.maxInflightMessages))",
            "  max_inflight_bytes: \(limit(config.maxInflightBytes, " bytes"))",
            "  max_queued_messages: \(limit(config.maxQueuedMessages))",
            "  max_queued_bytes: \(limit(config.maxQueuedBytes, " bytes"))",
            "  queue_qos0_messages: \(config.queueQoS0Messages)",
            "  max_keepalive: \(config.maxKeepalive) s",
            "  persistent_client_expiration: \(config.persistentClientExpiration.map { "\($0) s" } ?? "never")",
            "  retain_available: \(config.retainAvailable)",
            "  upgrade_outgoing_qos: \(config.upgradeOutgoingQoS)",
            "  set_tcp_nodelay: \(config.setTCPNoDelay)",
            "  sys_interval: \(config.sysInterval == 0 ? "off" : "\(config.sysInterval) s")",
            "  max_connections_total: \(config.maxConnectionsTotal < 0 ? "unlimited" : "\(config.maxConnectionsTotal)")",
            "  max_connections_per_user: \(config.maxConnectionsPerUser < 0 ? "unlimited" : "\(config.maxConnectionsPerUser)")",
            "  max_connection_rate: \(config.maxConnectionRate == 0 ? "unlimited" : "\(config.maxConnectionRate) per \(config.connectionRateWindow) s per address")",
            "  max_publish_rate: \(config.maxPublishRate == 0 ? "unlimited" : "\(config.maxPublishRate) messages/s per client")",
            "  max_publish_bytes_rate: \(config.maxPublishBytesRate == 0 ? "unlimited" : "\(config.maxPublishBytesRate) bytes/s per client")",
            "  max_queued_bytes_total: \(config.maxQueuedBytesTotal == 0 ? "unlimited" : "\(config.maxQueuedBytesTotal)")",
            "  watch_interval: \(config.watchIntervalMilliseconds == 0 ? "off (SIGHUP only)" : "\(Double(config.watchIntervalMilliseconds) / 1000) s")",
            "",
            "Logging:",
            "  log_dest: \(config.logDest.isEmpty ? "none" : config.logDest.map { $0 == "file" ? "file \(config.logFile ?? "?")" : $0 }.joined(separator: ", "))",
            "  log_type: \(config.logTypes.isEmpty ? "none" : config.logTypes.joined(separator: ", "))",
            "  log_format: \(config.logFormat.rawValue)",
            "  log_timestamp: \(config.logTimestamp)",
            "  connection_messages: \(config.connectionMessages)",
        ]
        if config.user != nil || config.pidFile != nil {
            lines += ["", "Process:"]
            if let user = config.user { lines.append("  user: \(user)") }
            if let pidFile = config.pidFile { lines.append("  pid_file: \(pidFile)") }
        }
        return lines
    }

    static func place(_ file: String, _ line: Int) -> String { line > 0 ? "\(file):\(line)" : file }
}

extension ConfigCheck {
    /// A plugin option's value as the report shows it: `(set)` for keys that name a secret, and a URL's
    /// `user:password@` hidden.
    static func shown(key: String, value: String) -> String {
        let lower = key.lowercased()
        if ["pass", "secret", "key", "token", "credential", "auth"].contains(where: lower.contains) { return "(set)" }
        if let scheme = value.range(of: "://") {
            let authority = value[scheme.upperBound...].prefix { $0 != "/" }
            if let at = authority.lastIndex(of: "@") { return value[..<scheme.upperBound] + "(set)" + value[at...] }
        }
        return value
    }
}
