import Foundation
import Logging
import NIOConcurrencyHelpers
import MQTT
import NIOCore
import NIOPosix
import PluginAPI

/// A running broker: listeners, the router, and the plugins the config chose.
// @unchecked: the listeners, plugins and contexts are set in `init`; the admin server, timers, file watcher and
// bound ports by `start()` and `shutdown()`, which the service runs one after the other (issue "The house,
// part 2" moves these into values made once).
public final class Broker: @unchecked Sendable {
    public let config: BrokerConfig
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let router: Router
    /// `max_connections_total`, `max_connections_per_user` and the other quotas (README, Quotas).
    let quotas: Quotas
    private let ownsGroup: Bool
    /// One per listener, in listener order.
    private var listeners: [ListenerStack] = []
    private var contexts: [BrokerContext] = []
    private var plugins: [any Plugin] = []
    /// The config line of each of `plugins`, in the same order.
    private var pluginConfigs: [PluginConfig] = []
    private var adminServer: AdminServer?
    /// The port the admin HTTP listener (`admin_listener`) is bound to once started (useful with port 0).
    public private(set) var adminPort: Int?
    private var sweepTask: RepeatedTask?
    private var fileWatcher: FileWatcher?
    /// The fingerprints of each reloadable's files when it last loaded them (at start, or its latest
    /// committed reload), by plugin.
    private let loadedFiles = NIOLockedValueBox<[ObjectIdentifier: FileWatcher.Snapshot]>([:])
    /// The latest reload; the next one waits for it.
    private let reloadQueue = NIOLockedValueBox<Task<Bool, Never>?>(nil)
    private var tickTasks: [RepeatedTask] = []
    /// The hooks, by event (implicit `log` and `sys` first, then `plugin` lines in config order).
    let hooks: Hooks
    /// What hooks may ask of the broker.
    let services: BrokerServicesProvider
    /// Ports the listeners are bound to, in listener order (useful with port 0).
    public private(set) var boundPorts: [Int] = []

    /// Builds the broker from a parsed config with the plugins of `registry`; throws on options or plugins
    /// that cannot be honoured. `hookDeadline` bounds every future a hook returns. `checkOnly` (`midge
    /// check-config`) tells plugins to check without writing anything.
    public init(config: BrokerConfig, logger: Logger, registry: PluginRegistry,
                group: MultiThreadedEventLoopGroup? = nil, hookDeadline: TimeAmount = .seconds(5),
                checkOnly: Bool = false) throws {
        self.config = config
        self.logger = logger
        self.ownsGroup = group == nil
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: Self.eventLoopCount())
        quotas = Quotas(QuotaSettings(config))
        var settings = RouterSettings()
        settings.session.total = quotas.queuedBytes
        settings.session.maxInflightMessages = config.maxInflightMessages
        settings.session.maxQueuedMessages = config.maxQueuedMessages
        settings.session.maxQueuedBytes = config.maxQueuedBytes
        settings.session.queueQoS0Offline = config.queueQoS0Messages
        settings.retainAvailable = config.retainAvailable
        settings.upgradeOutgoingQoS = config.upgradeOutgoingQoS
        settings.persistentClientExpiration = config.persistentClientExpiration
        settings.maximumQoS = QoS(rawValue: UInt8(clamping: config.maxQoS)) ?? .exactlyOnce
        self.router = Router(settings: settings, logger: logger)
        let loops = LoopContexts(group: self.group)
        services = BrokerServicesProvider(version: "midge version \(MidgeCommand.version)", group: self.group,
                                          router: router, loops: loops)
        services.quotas = quotas
        let context = { (name: String) in Self.pluginContext(name, config: config, checkOnly: checkOnly) }
        var hookEntries = try Self.implicitHooks(config: config, registry: registry, context: context)
        var listenerSettings: [(AccessControl, ConnectSettings)] = []

        // One chain for all listeners, or one per listener under `per_listener_settings true`.
        var chains: [SecurityKey: (authenticators: [any AuthenticationPlugin], authorizers: [any AuthorizationPlugin],
                                   denySpecialChars: [Bool], enhanced: [any EnhancedAuthenticationPlugin])] = [:]
        // MIDGE_ADMIN_USERNAME / MIDGE_ADMIN_PASSWORD: asked first wherever passwords are checked.
        let installer = try config.installerUser.map { user in
            do { return try InstallerUserAuthenticator(user) } catch {
                throw ConfigError(file: "environment", line: 0, message: "MIDGE_ADMIN_PASSWORD: cannot hash it: \(error)")
            }
        }
        for listener in config.effectiveListeners {
            let security = config.security(for: listener)
            let key = config.perListenerSettings ? SecurityKey.listener(listener.file, listener.line, listener.port)
                                                  : .global
            if chains[key] == nil {
                let made = try Self.makeChain(security, registry: registry, context: context)
                plugins += made.plugins
                hookEntries += made.hooks
                pluginConfigs += made.configs
                chains[key] = (made.authenticators, made.authorizers, made.authorizersDenySpecialChars,
                               made.plugins.compactMap { $0 as? any EnhancedAuthenticationPlugin })
            }
            var (authenticators, authorizers, denySpecialChars, enhanced) = chains[key]!
            if let installer, !authenticators.isEmpty { authenticators.insert(installer, at: 0) }
            let allowAnonymous = security.allowAnonymous ?? config.localOnlyMode
            let access = AccessControl(authenticators: authenticators, authorizers: authorizers,
                                       authorizersDenySpecialChars: denySpecialChars,
                                       enhancedAuthenticators: enhanced, allowAnonymous: allowAnonymous,
                                       logger: logger)
            var connect = ConnectSettings()
            connect.allowZeroLengthClientID = security.allowZeroLengthClientID
            connect.autoIDPrefix = security.autoIDPrefix
            connect.maxKeepalive = config.maxKeepalive
            connect.maxPacketSize = config.maxPacketSize
            connect.messageSizeLimit = config.messageSizeLimit
            connect.maxTopicAlias = listener.maxTopicAlias
            connect.maxTopicAliasBroker = listener.maxTopicAliasBroker
            connect.maxInflightMessages = config.maxInflightMessages
            connect.connectionMessages = config.connectionMessages

            try Self.checkSupported(listener)
            connect.useUsernameAsClientID = listener.useUsernameAsClientID
            listenerSettings.append((access, connect))
            listeners.append(try ListenerStack.make(listener, config: config, registry: registry, context: context))
        }
        if installer != nil && chains.values.allSatisfy({ $0.authenticators.isEmpty }) {
            logger.warning("MIDGE_ADMIN_PASSWORD has no effect: no listener checks passwords (no password_file or authentication plugin).")
        }
        hooks = Hooks(hookEntries, deadline: hookDeadline, logger: logger)
        services.hooks = hooks
        for entry in hookEntries where !plugins.contains(where: { $0 === entry.hook }) {
            plugins.append(entry.hook)
        }
        contexts = listenerSettings.map { access, connect in
            BrokerContext(router: router, access: access, connect: connect, logger: logger, loops: loops,
                          hooks: hooks, quotas: quotas)
        }
        loadedFiles.withLockedValue { loaded in
            for reloadable in reloadables {
                loaded[ObjectIdentifier(reloadable)] = FileWatcher.snapshot(of: reloadable.watchedFiles)
            }
        }
        let watched = reloadables.flatMap(\.watchedFiles)
        if config.watchIntervalMilliseconds > 0 && !watched.isEmpty {
            fileWatcher = FileWatcher(paths: watched, interval: .milliseconds(Int64(config.watchIntervalMilliseconds)))
        }
    }

    /// Throws for listener options the parser accepts but the broker cannot honour yet.
    static func checkSupported(_ listener: ListenerConfig) throws {
        if let mount = listener.mountPoint {
            throw ConfigError(file: listener.file, line: listener.line,
                              message: "listener \(listener.port): mount_point \(mount) is not supported yet")
        }
        if let device = listener.bindInterface {
            throw ConfigError(file: listener.file, line: listener.line,
                              message: "listener \(listener.port): bind_interface \(device) is not supported yet")
        }
    }

    /// The hooks Mosquitto's own directives ask for: `log` (from `log_type` and `connection_messages`) and
    /// `sys` (the `$SYS` tree every `sys_interval` seconds, unless it is 0).
    static func implicitHooks(config: BrokerConfig, registry: PluginRegistry,
                              context: (String) -> PluginContext) throws -> [Hooks.Entry] {
        var entries: [Hooks.Entry] = []
        var made: [(String, [(String, String)])] = [
            ("log", [("log_type", config.logTypes.joined(separator: ",")),
                     ("connection_messages", config.connectionMessages ? "true" : "false")]),
        ]
        if config.sysInterval > 0 { made.append(("sys", [("sys_interval", String(config.sysInterval))])) }
        for (name, values) in made {
            guard let descriptor = registry.descriptor(named: name) else { continue }
            var options = PluginOptions(pluginName: name, entries: values.map { ($0.0, $0.1, nil) })
            let plugin = try descriptor.make(&options, context(name))
            guard let hook = plugin as? any HookPlugin else { continue }
            if !hook.events.isEmpty { entries.append(Hooks.Entry(hook: hook, name: name, rejectOnError: true)) }
        }
        return entries
    }

    private enum SecurityKey: Hashable {
        case global
        case listener(String, Int, Int)
    }

    /// The plugins of one security section in chain order: `password_file` (the `passwd` plugin), then
    /// `plugin` lines in config order, then `acl_file` (the `acl-file` plugin).
    static func chainConfigs(_ security: SecurityConfig) -> [PluginConfig] {
        var pluginConfigs: [PluginConfig] = []
        if let path = security.passwordFile {
            pluginConfigs.append(PluginConfig(name: "passwd", options: [(key: "password_file", value: path)],
                                              file: "password_file", line: 0))
        }
        pluginConfigs += security.plugins
        if let path = security.aclFile {
            pluginConfigs.append(PluginConfig(name: "acl-file", options: [(key: "acl_file", value: path)],
                                              file: "acl_file", line: 0))
        }
        return pluginConfigs
    }

    /// Creates the plugins of one security section, in `chainConfigs` order.
    static func makeChain(_ security: SecurityConfig, registry: PluginRegistry, context: (String) -> PluginContext) throws
        -> (plugins: [any Plugin], configs: [PluginConfig], authenticators: [any AuthenticationPlugin],
            authorizers: [any AuthorizationPlugin], authorizersDenySpecialChars: [Bool], hooks: [Hooks.Entry]) {
        let pluginConfigs = chainConfigs(security)
        var plugins: [any Plugin] = []
        var configs: [PluginConfig] = []
        var authenticators: [any AuthenticationPlugin] = []
        var authorizers: [any AuthorizationPlugin] = []
        var denySpecialChars: [Bool] = []
        var hooks: [Hooks.Entry] = []
        for pluginConfig in pluginConfigs {
            guard let descriptor = registry.descriptor(named: pluginConfig.name) else {
                throw ConfigError(file: pluginConfig.file, line: pluginConfig.line,
                                  message: "unknown plugin '\(pluginConfig.name)'; built-in plugins: \(registry.names(of: .plugin).joined(separator: ", "))")
            }
            guard descriptor.kind == .plugin else {
                throw ConfigError(file: pluginConfig.file, line: pluginConfig.line,
                                  message: "plugin '\(pluginConfig.name)' is a \(descriptor.kind), which `listener` lines make (tls: certfile and keyfile; websockets: protocol websockets), not a `plugin` line")
            }
            let origin = pluginConfig.line > 0 ? PluginOptions.Origin(file: pluginConfig.file, line: pluginConfig.line) : nil
            var options = PluginOptions(pluginName: pluginConfig.name,
                                        entries: pluginConfig.resolvedOptions(paths: descriptor.pathOptions)
                                            .map { ($0.key, $0.value, origin) })
            // Every hook's own option: what a failure of its publish answer means.
            let onError = options.string("on_error")
            let plugin: any Plugin
            do {
                plugin = try descriptor.make(&options, context(pluginConfig.name))
            } catch var error as PluginError where error.origin == nil {
                // A missing option has no line of its own: name the `plugin` line.
                error.origin = origin
                throw error
            }
            let authentication = plugin as? any AuthenticationPlugin
            let authorization = plugin as? any AuthorizationPlugin
            let hook = plugin as? any HookPlugin
            if authentication == nil && authorization == nil && hook == nil && !(plugin is any HTTPEndpointProvider)
                && !(plugin is any EnhancedAuthenticationPlugin) {
                throw ConfigError(file: pluginConfig.file, line: pluginConfig.line,
                                  message: "plugin '\(pluginConfig.name)' is not an authentication, authorization, enhanced authentication, hook or HTTP endpoint plugin")
            }
            if let onError {
                guard hook != nil, onError == "reject" || onError == "accept" else {
                    throw ConfigError(file: pluginConfig.file, line: pluginConfig.line, message: hook == nil
                        ? "plugin '\(pluginConfig.name)': plugin_opt_on_error applies to hook plugins only"
                        : "plugin '\(pluginConfig.name)': plugin_opt_on_error must be reject or accept, not '\(onError)'")
                }
            }
            if let hook {
                hooks.append(Hooks.Entry(hook: hook, name: pluginConfig.name, rejectOnError: onError != "accept"))
            }
            if let authentication { authenticators.append(authentication) }
            if let authorization {
                authorizers.append(authorization)
                // `auth_plugin_deny_special_chars` belongs to `plugin` lines (acl_file applies its own rule).
                denySpecialChars.append(pluginConfig.line > 0 && pluginConfig.denySpecialChars)
            }
            plugins.append(plugin)
            configs.append(pluginConfig)
        }
        return (plugins, configs, authenticators, authorizers, denySpecialChars, hooks)
    }

    /// What a plugin gets at creation: a logger labelled with its name, the config file's directory.
    static func pluginContext(_ name: String, config: BrokerConfig, checkOnly: Bool) -> PluginContext {
        PluginContext(logger: Logger(label: "midge.plugin.\(name)"),
                      configDirectory: config.loadedFiles.first.map(directoryOf) ?? ".", checkOnly: checkOnly)
    }

    /// Reloads everything, all or nothing (SIGHUP, or a watched file changed): every reloadable plugin
    /// (password file, ACL file, SQLite, TLS certificates, key, CA and CRL, ...) reads and validates its new
    /// state first; only when all succeeded are they all put in force, at once. Any failure keeps the last
    /// good state everywhere, is logged with file and reason, and counts as a failed reload. After a
    /// successful reload connected clients are checked again and those no longer accepted are disconnected.
    /// Reloads run one at a time, in the order asked. `onlyChanged` (the file watcher) reloads only the
    /// plugins whose files differ from what they loaded last, so a plugin that cannot read an unchanged file
    /// (a key readable only before `user` dropped privileges, say) does not block the others' changes;
    /// SIGHUP reloads everything. Returns whether the new state is in force.
    @discardableResult
    public func reload(reason: String = "SIGHUP", onlyChanged: Bool = false) async -> Bool {
        let next = reloadQueue.withLockedValue { latest in
            let previous = latest
            latest = Task { [self] () async -> Bool in
                _ = await previous?.value
                return await reloadNow(reason: reason, onlyChanged: onlyChanged)
            }
            return latest!
        }
        return await next.value
    }

    private func reloadNow(reason: String, onlyChanged: Bool) async -> Bool {
        var chosen: [(plugin: any ReloadablePlugin, files: FileWatcher.Snapshot)] = []
        for reloadable in reloadables {
            let files = FileWatcher.snapshot(of: reloadable.watchedFiles)
            if onlyChanged && !files.isEmpty
                && loadedFiles.withLockedValue({ $0[ObjectIdentifier(reloadable)] }) == files { continue }
            chosen.append((reloadable, files))
        }
        var prepared: [PreparedReload] = []
        var failures = 0
        for (reloadable, _) in chosen {
            do {
                prepared.append(try await reloadable.prepareReload())
            } catch {
                failures += 1
                logger.error("Reload (\(reason)) failed: \(error)")
            }
        }
        if failures == 0 {
            for step in prepared { await step.commit() }
            loadedFiles.withLockedValue { loaded in
                for (reloadable, files) in chosen { loaded[ObjectIdentifier(reloadable)] = files }
            }
            logger.notice("Reloaded (\(reason)).")
        } else {
            logger.error("Reload (\(reason)) failed with \(failures) error(s), see above: nothing was changed, the last good state stays in force.")
        }
        services.countReload(failed: failures > 0)
        // Clients are checked again when their credentials or rules may have changed (not for certificates).
        if failures == 0 && chosen.contains(where: { !($0.plugin is any TransportPlugin || $0.plugin is any ConnectionDecoratorPlugin) }) {
            for handle in router.connectedHandles() { handle.revalidate() }
        }
        if !hooks.reload.isEmpty {
            let loop = group.next()
            try? await hooks.notifyAll(hooks.reload, event: "reload", on: loop) { try $0.reloaded(on: loop) }.get()
        }
        return failures == 0
    }

    /// The plugins, listeners and decorators whose state can be reloaded.
    private var reloadables: [any ReloadablePlugin] {
        (plugins + listeners.flatMap(\.plugins)).compactMap { $0 as? any ReloadablePlugin }
    }

    /// `watch_interval`: polls the reloadables' files (as they were when `init` loaded them) and reloads when
    /// one changed.
    private func startWatchingFiles() {
        guard let watcher = fileWatcher else { return }
        let loop = group.next()
        watcher.start(on: loop) { [weak self] changed in
            guard let self else { return loop.makeSucceededFuture(true) }
            self.logger.notice("Changed: \(changed.joined(separator: ", ")); reloading.")
            return loop.makeFutureWithTask { await self.reload(reason: "files changed", onlyChanged: true) }
        }
        logger.notice("Watching \(watcher.paths.count) file(s) for changes every \(Double(config.watchIntervalMilliseconds) / 1000) s: \(watcher.paths.joined(separator: ", ")).")
    }

    /// One event loop per core, or `MIDGE_EVENT_LOOPS` (for measurements, or to leave cores to others).
    static func eventLoopCount() -> Int {
        if let text = ProcessInfo.processInfo.environment["MIDGE_EVENT_LOOPS"], let count = Int(text), count > 0 {
            return count
        }
        return System.coreCount
    }

    /// Starts plugins, binds every listener, and starts housekeeping.
    public func start() async throws {
        for entry in hooks.all { entry.hook.attach(services) }
        for plugin in plugins + listeners.flatMap(\.plugins) { try await plugin.start() }
        // Bound first, so that a busy port or a duplicate endpoint stops start-up before any MQTT port opens;
        // `/readyz` answers 503 until the end of `start()`.
        try await startAdminListener()
        if config.localOnlyMode {
            logger.notice("Starting in local only mode. Connections will only be possible from clients running on this machine.")
            logger.notice("Create a configuration file which defines a listener to allow remote access.")
        }
        var ports: [Int] = []
        for (index, stack) in listeners.enumerated() {
            let listener = stack.config
            let initializer = Self.initializer(context: contexts[index], limit: ConnectionLimit(listener.maxConnections),
                                               stack: stack, logger: logger)
            do {
                let port = try await stack.listener.listen(on: group, initializer: initializer)
                ports.append(port)
                logger.notice("Opening \(listener.protocolName == "websockets" ? "websockets" : listener.bindAddress ?? "all interfaces") listen socket on port \(port).")
            } catch {
                throw ConfigError(file: listener.file, line: listener.line,
                                  message: "cannot listen on port \(listener.port)\(listener.bindAddress.map { " at \($0)" } ?? ""): \(error)")
            }
        }
        boundPorts = ports
        await warnAboutDefaultCredentials()
        sweepTask = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [router, quotas] _ in
            router.sweepExpiredSessions()
            quotas.sweep()
        }
        for entry in hooks.tick {
            let loop = group.next()
            let interval = max(entry.hook.tickInterval, .milliseconds(10))
            tickTasks.append(loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [hooks] _ in
                hooks.notify([entry], event: "tick", on: loop) { try $0.tick(on: loop) }
            })
        }
        startWatchingFiles()
        adminServer?.markReady()
    }

    /// `admin_listener`: serves `/healthz`, `/readyz` and the plugins' endpoints; `/readyz` says ready once
    /// `start()` has finished. Without it, plugins' endpoints are not served: one warning says so.
    private func startAdminListener() async throws {
        let sources = zip(plugins, pluginConfigs).compactMap { plugin, origin -> AdminServer.EndpointSource? in
            guard let provider = plugin as? any HTTPEndpointProvider else { return nil }
            return AdminServer.EndpointSource(name: "plugin '\(origin.name)'", file: origin.file, line: origin.line,
                                              endpoints: provider.httpEndpoints)
        }
        guard let admin = config.adminListener else {
            let paths = sources.flatMap { $0.endpoints.map(\.path) }
            if !paths.isEmpty {
                logger.warning("Plugins publish HTTP endpoints (\(paths.joined(separator: ", "))) but no admin_listener is configured: they are not served.")
            }
            return
        }
        let server = try AdminServer(group: group, sources: sources, logger: logger)
        let port: Int
        do {
            port = try await server.bind(host: admin.bindAddress, port: admin.port)
        } catch {
            throw ConfigError(file: admin.file, line: admin.line,
                              message: "cannot listen on admin_listener port \(admin.port)\(admin.bindAddress.map { " at \($0)" } ?? ""): \(error)")
        }
        adminServer = server
        adminPort = port
        logger.notice("Admin HTTP listener on port \(port).")
    }

    /// The default deployment ships the user admin with the password admin: say so loudly while it works.
    private func warnAboutDefaultCredentials() async {
        let loop = group.next()
        var seen = Set<ObjectIdentifier>()
        for context in contexts where !context.access.authenticators.isEmpty {
            guard let first = context.access.authenticators.first, seen.insert(ObjectIdentifier(first)).inserted else { continue }
            if (try? await DefaultCredentials.accepted(by: context.access.authenticators, on: loop).get()) == true {
                logger.warning("\(DefaultCredentials.warning)")
                return
            }
        }
    }

    /// What a listener runs on each accepted channel: its decorators around MQTT, with the listener's
    /// `max_connections` and the broker's `max_connections_total` checked after the TLS handshake and before
    /// a WebSocket upgrade (`ListenerStack.initializer`). A connection over either is closed at once, as
    /// Mosquitto does for `max_connections`: no CONNACK.
    private static func initializer(context: BrokerContext, limit: ConnectionLimit?, stack: ListenerStack,
                                    logger: Logger) -> ConnectionInitializer {
        let mqtt: ConnectionInitializer = { channel, facts in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(MQTTConnectionHandler(broker: context, facts: facts,
                                                                                      eventLoop: channel.eventLoop))
            }
        }
        return stack.initializer(admission: { next in admission(context: context, limit: limit, logger: logger, next) },
                                 around: mqtt)
    }

    /// Closes a connection over the listener's or the broker's connection limit; runs `next` on the others.
    private static func admission(context: BrokerContext, limit: ConnectionLimit?, logger: Logger,
                                  _ next: @escaping ConnectionInitializer) -> ConnectionInitializer {
        { channel, facts in
            if let limit {
                guard limit.acquire() else {
                    context.quotas.count(.maxConnections)
                    logger.notice("Client connection from \(channel.remoteAddress?.description ?? "?") denied: max_connections (\(limit.maximum)) reached on \(facts.listener).")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in limit.release() }
            }
            if let total = context.quotas.connectionsTotal {
                guard total.acquire() else {
                    context.quotas.count(.maxConnectionsTotal)
                    logger.notice("Client connection from \(channel.remoteAddress?.description ?? "?") denied: max_connections_total (\(total.maximum)) reached.")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in total.release() }
            }
            return next(channel, facts)
        }
    }

    /// Stops listening, closes clients, stops plugins.
    public func shutdown() async {
        fileWatcher?.stop()
        // A reload under way finishes before the plugins stop.
        _ = await reloadQueue.withLockedValue { $0 }?.value
        await adminServer?.close()
        if !hooks.shutdown.isEmpty {
            let loop = group.next()
            try? await hooks.notifyAll(hooks.shutdown, event: "shutdown", on: loop) { try $0.shuttingDown(on: loop) }.get()
        }
        for task in tickTasks { task.cancel() }
        tickTasks = []
        sweepTask?.cancel()
        for stack in listeners { await stack.listener.close() }
        for plugin in plugins + listeners.flatMap(\.plugins) { await plugin.shutdown() }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}

/// admin / admin, as the default deployment ships them: start-up and `check-config` warn while they work.
enum DefaultCredentials {
    static let warning = "The user admin still has the default password admin. Change it: midge passwd <password_file> admin (taken up within seconds), set MIDGE_ADMIN_PASSWORD, or mount your own password file."

    /// Whether the chain `authenticators` accepts admin / admin (asked without logging).
    static func accepted(by authenticators: [any AuthenticationPlugin], on loop: any EventLoop) -> EventLoopFuture<Bool> {
        let probe = ClientInfo(clientID: "midge-default-credentials-check", username: "admin",
                               protocolVersion: .v3_1_1, listener: "self-check")
        let credentials = Credentials(username: "admin", password: ByteBuffer(string: "admin"))
        let quiet = AccessControl(authenticators: authenticators, authorizers: [], allowAnonymous: false,
                                  logger: Logger(label: "midge.self-check", factory: { _ in SwiftLogNoOpLogHandler() }))
        return quiet.authenticate(client: probe, credentials: credentials, on: loop).map { $0 == .allow }
    }
}

/// A listener's `max_connections`: a counter shared by its event loops.
final class ConnectionLimit: Sendable {
    let maximum: Int
    private let count = NIOLockedValueBox(0)

    init?(_ maximum: Int) {
        guard maximum >= 0 else { return nil }
        self.maximum = maximum
    }

    func acquire() -> Bool {
        count.withLockedValue { value in
            guard value < maximum else { return false }
            value += 1
            return true
        }
    }

    func release() { count.withLockedValue { $0 -= 1 } }
}

func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
