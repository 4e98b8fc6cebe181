import Logging
import PluginAPI

/// One `listener` line, made from the registry: a listener plugin (`tcp`) and the connection decorators its
/// directives ask for, in the order they run on an accepted connection: `tls` (for `certfile` / `keyfile`),
/// then `websockets` (for `protocol websockets`). Mosquitto's listener directives choose them; the registry
/// says what each name is, so a package that composes its own broker may register its own `tcp` or `tls`.
/// Each gets the listener's settings typed, as `PluginContext.listener` (the TLS directives in its `tls`).
struct ListenerStack {
    /// The registry names the host asks for.
    static let listenerName = "tcp"
    static let tlsName = "tls"
    static let webSocketName = "websockets"

    let config: ListenerConfig
    let listener: any TransportPlugin
    /// The transport's security (`tls`): runs first on an accepted channel.
    let security: (any ConnectionDecoratorPlugin)?
    /// What speaks between the transport and MQTT (`websockets`), outermost first.
    let framing: [any ConnectionDecoratorPlugin]

    /// The registry names of `plugins`, in the order they run (`tcp`, `tls`, `websockets`).
    let names: [String]

    /// The listener and its decorators.
    var plugins: [any Plugin] { [listener] + (security.map { [$0] } ?? []) + framing }

    /// What the listener runs on each accepted channel: the security decorator (the TLS handshake), then
    /// `admission` (the connection limits: so a TLS connection counts once its handshake is done, and a
    /// WebSocket one before its HTTP upgrade, as before listeners came from the registry), then the framing
    /// decorators, then `inner` (MQTT).
    func initializer(admission: (@escaping ConnectionInitializer) -> ConnectionInitializer,
                     around inner: @escaping ConnectionInitializer) -> ConnectionInitializer {
        let framed = framing.reversed().reduce(inner) { next, decorator in decorator.decorate(next) }
        let admitted = admission(framed)
        return security.map { $0.decorate(admitted) } ?? admitted
    }

    /// Makes the plugins for `listener`. Errors name the listener's line.
    static func make(_ listener: ListenerConfig, config: BrokerConfig, registry: PluginRegistry,
                     context: (String) -> PluginContext) throws -> ListenerStack {
        let origin = PluginOptions.Origin(file: listener.file, line: listener.line)
        var tls = listener.tls
        tls?.generateCertificates = config.generateCertificates
        // No address: every interface (the listener falls back to IPv4 where there is no IPv6);
        // `socket_domain` picks one family's any-address.
        let settings = ListenerSettings(
            name: String(listener.port), port: listener.port,
            bindAddress: listener.bindAddress
                ?? (listener.socketDomain == "ipv4" ? "0.0.0.0" : listener.socketDomain == "ipv6" ? "::" : nil),
            setTCPNoDelay: config.setTCPNoDelay, maxPacketSize: config.maxPacketSize, tls: tls, origin: origin)
        func make(_ name: String, _ kind: PluginKind, because reason: String) throws -> any Plugin {
            guard let descriptor = registry.descriptor(named: name) else {
                throw ConfigError(file: listener.file, line: listener.line,
                                  message: "listener \(listener.port): \(reason) needs the '\(name)' plugin, which this broker does not have (its plugins: \(registry.names.joined(separator: ", ")))")
            }
            guard descriptor.kind == kind else {
                throw ConfigError(file: listener.file, line: listener.line,
                                  message: "listener \(listener.port): the '\(name)' plugin is a \(descriptor.kind), not a \(kind)")
            }
            var options = PluginOptions(pluginName: name)
            var pluginContext = context(name)
            pluginContext.listener = settings
            do {
                return try descriptor.make(&options, pluginContext)
            } catch var error as PluginError where error.origin == nil {
                error.origin = origin
                throw error
            }
        }
        guard let transport = try make(listenerName, .listener, because: "a listener") as? any TransportPlugin else {
            throw ConfigError(file: listener.file, line: listener.line,
                              message: "listener \(listener.port): the '\(listenerName)' plugin is not a TransportPlugin")
        }
        func decorator(_ name: String, because reason: String) throws -> any ConnectionDecoratorPlugin {
            guard let decorator = try make(name, .connectionDecorator, because: reason) as? any ConnectionDecoratorPlugin else {
                throw ConfigError(file: listener.file, line: listener.line,
                                  message: "listener \(listener.port): the '\(name)' plugin is not a ConnectionDecoratorPlugin")
            }
            return decorator
        }
        var names = [listenerName]
        var security: (any ConnectionDecoratorPlugin)?
        if tls != nil {
            security = try decorator(tlsName, because: "certfile / keyfile")
            names.append(tlsName)
        }
        var framing: [any ConnectionDecoratorPlugin] = []
        if listener.protocolName == "websockets" {
            framing.append(try decorator(webSocketName, because: "protocol websockets"))
            names.append(webSocketName)
        }
        return ListenerStack(config: listener, listener: transport, security: security, framing: framing, names: names)
    }
}
