import Foundation
import Logging
import NIOConcurrencyHelpers
import MQTT
import NIOCore
import NIOPosix
import PluginAPI

/// A running broker: listeners, the router, and the plugins the config chose.
///
/// Start-up and shutdown live here; building the plugin chains in Broker+Plugins.swift, reloading in
/// Broker+Reload.swift, what runs on an accepted connection in Broker+Admission.swift, the admin listener in
/// Broker+Admin.swift.
public final class Broker: Sendable {
    public let config: BrokerConfig
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let router: Router
    /// `max_connections_total`, `max_connections_per_user` and the other quotas (README, Quotas).
    let quotas: Quotas
    private let ownsGroup: Bool
    /// One per listener, in listener order.
    let listeners: [ListenerStack]
    let contexts: [BrokerContext]
    let plugins: [any Plugin]
    /// The config line of each of `plugins`, in the same order.
    let pluginConfigs: [PluginConfig]
    let fileWatcher: FileWatcher?
    /// The fingerprints of each reloadable's files when it last loaded them (at start, or its latest
    /// committed reload), by plugin.
    let loadedFiles = NIOLockedValueBox<[ObjectIdentifier: FileWatcher.Snapshot]>([:])
    /// The latest reload; the next one waits for it.
    let reloadQueue = NIOLockedValueBox<Task<Bool, Never>?>(nil)
    /// The hooks, by event (implicit `log` and `sys` first, then `plugin` lines in config order).
    let hooks: Hooks
    /// What hooks may ask of the broker.
    let services: BrokerServicesProvider

    /// What `start()` made and `shutdown()` stops.
    struct Running: Sendable {
        var adminServer: AdminServer?
        var adminPort: Int?
        var sweepTask: RepeatedTask?
        var tickTasks: [RepeatedTask] = []
        var boundPorts: [Int] = []
    }

    let running = NIOLockedValueBox(Running())

    /// The port the admin HTTP listener (`admin_listener`) is bound to once started (useful with port 0).
    public var adminPort: Int? { running.withLockedValue { $0.adminPort } }
    /// Ports the listeners are bound to, in listener order (useful with port 0).
    public var boundPorts: [Int] { running.withLockedValue { $0.boundPorts } }

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
        let context = { (name: String) in Self.pluginContext(name, config: config, checkOnly: checkOnly) }
        var hookEntries = try Self.implicitHooks(config: config, registry: registry, context: context)
        var listenerSettings: [(AccessControl, ConnectSettings)] = []
        var listeners: [ListenerStack] = []
        var plugins: [any Plugin] = []
        var pluginConfigs: [PluginConfig] = []
        let authFailures = FailureLog()

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
                                       logger: logger, failures: authFailures)
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
        let hooks = Hooks(hookEntries, deadline: hookDeadline, logger: logger)
        self.hooks = hooks
        services = BrokerServicesProvider(version: "midge version \(MidgeCommand.version)", group: self.group,
                                          router: router, loops: loops, hooks: hooks, quotas: quotas,
                                          authFailures: authFailures)
        for entry in hookEntries where !plugins.contains(where: { $0 === entry.hook }) {
            plugins.append(entry.hook)
        }
        contexts = listenerSettings.map { [router, quotas] access, connect in
            BrokerContext(router: router, access: access, connect: connect, logger: logger, loops: loops,
                          hooks: hooks, quotas: quotas)
        }
        self.listeners = listeners
        self.plugins = plugins
        self.pluginConfigs = pluginConfigs
        let reloadables = Self.reloadables(plugins: plugins, listeners: listeners)
        loadedFiles.withLockedValue { loaded in
            for reloadable in reloadables {
                loaded[ObjectIdentifier(reloadable)] = FileWatcher.snapshot(of: reloadable.watchedFiles)
            }
        }
        let watched = reloadables.flatMap(\.watchedFiles)
        fileWatcher = config.watchIntervalMilliseconds > 0 && !watched.isEmpty
            ? FileWatcher(paths: watched, interval: .milliseconds(Int64(config.watchIntervalMilliseconds))) : nil
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
        await warnAboutDefaultCredentials()
        let sweepTask = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [router, quotas] _ in
            router.sweepExpiredSessions()
            quotas.sweep()
        }
        let tickTasks = hooks.tick.map { entry in
            let loop = group.next()
            let interval = max(entry.hook.tickInterval, .milliseconds(10))
            return loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [hooks] _ in
                hooks.notify([entry], event: "tick", on: loop) { try $0.tick(on: loop) }
            }
        }
        let adminServer = running.withLockedValue { running in
            running.boundPorts = ports
            running.sweepTask = sweepTask
            running.tickTasks = tickTasks
            return running.adminServer
        }
        startWatchingFiles()
        adminServer?.markReady()
    }

    /// Stops listening, closes clients, stops plugins.
    public func shutdown() async {
        logWhatIsLost()
        fileWatcher?.stop()
        // A reload under way finishes before the plugins stop.
        _ = await reloadQueue.withLockedValue { $0 }?.value
        await running.withLockedValue { $0.adminServer }?.close()
        if !hooks.shutdown.isEmpty {
            let loop = group.next()
            try? await hooks.notifyAll(hooks.shutdown, event: "shutdown", on: loop) { try $0.shuttingDown(on: loop) }.get()
        }
        let (tickTasks, sweepTask) = running.withLockedValue { running in
            defer { running.tickTasks = [] }
            return (running.tickTasks, running.sweepTask)
        }
        for task in tickTasks { task.cancel() }
        sweepTask?.cancel()
        for stack in listeners { await stack.listener.close() }
        for plugin in plugins + listeners.flatMap(\.plugins) { await plugin.shutdown() }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}

extension Broker {
    /// Says, before the connections close, what is held only in memory and ends with the process: Midge keeps
    /// nothing across a restart yet (`persistence true` is refused), so an operator learns what a restart cost.
    func logWhatIsLost() {
        let held = router.heldInMemory()
        let messages = held.messages
        let total = messages.queuedQoS0 + messages.queuedQoS12 + messages.inflight + messages.incomingQoS2
        guard held.sessions > 0 || held.retained > 0 else { return }
        let line = "Shutting down without persistence: \(held.sessions) session(s) (\(held.connected) connected) "
            + "with \(total) message(s) (\(messages.queuedQoS12) queued at QoS 1/2, \(messages.queuedQoS0) at QoS 0, "
            + "\(messages.inflight) in flight, \(messages.incomingQoS2) incoming QoS 2 not released) and "
            + "\(held.retained) retained message(s) are not kept."
        logger.notice("\(line)")
    }
}

func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
