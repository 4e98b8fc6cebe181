public import Logging
public import MQTT
public import NIOCore

/// What every plugin is: created from its options at start-up, stopped at shutdown.
///
/// A plugin never blocks the event loop it is called on, and the API gives it no reason to trap: errors are
/// thrown, and a plugin's error affects only the decision it was asked for.
public protocol Plugin: AnyObject, Sendable {
    /// Called once, after every plugin was created and before listeners accept clients.
    func start() async throws
    /// Called once at graceful shutdown.
    func shutdown() async
}

extension Plugin {
    public func start() async throws {}
    public func shutdown() async {}
}

/// Decides whether a client may connect. Plugins are asked in config order; the first answer that is not
/// `.abstain` wins; if all abstain the client is refused.
public protocol AuthenticationPlugin: Plugin {
    /// Checks a client's credentials.
    func authenticate(client: ClientInfo, credentials: Credentials) -> PluginAnswer<Decision>
}

/// Decides whether a client may publish, subscribe or receive. Asked in config order; the first answer that is
/// not `.abstain` wins; if all abstain the access is denied. With no authorization plugin at all, everything is
/// allowed, as in Mosquitto.
public protocol AuthorizationPlugin: Plugin {
    /// Checks one access to `topic` (a topic name for read and write, a filter for subscribe).
    func authorize(client: ClientInfo, access: Access, topic: String, qos: QoS, retain: Bool) -> Decision
}

/// A listener: accepts connections and hands each one's channel to the host, which puts MQTT on it.
public protocol TransportPlugin: Plugin {
    /// Binds and starts accepting. `initializer` must be run on every accepted child channel after the
    /// transport's own handlers (TLS, WebSocket) are in place. Returns the bound local port.
    func listen(on group: any EventLoopGroup, initializer: @escaping ConnectionInitializer) async throws -> Int
    /// Stops accepting new connections.
    func close() async
}

/// How the host puts MQTT on a channel a transport accepted.
public typealias ConnectionInitializer = @Sendable (any Channel, ConnectionFacts) -> EventLoopFuture<Void>

/// Facts about a connection, as the transport knows them.
public struct ConnectionFacts: Sendable {
    /// The listener's name, as it appears in logs and `ClientInfo.listener`.
    public var listener: String
    /// The TLS peer certificate's subject, when there is one.
    public var certificateSubject: String?

    public init(listener: String, certificateSubject: String? = nil) {
        self.listener = listener
        self.certificateSubject = certificateSubject
    }
}

/// What a plugin gets at creation besides its options.
public struct PluginContext: Sendable {
    /// A logger labelled with the plugin's name.
    public var logger: Logger
    /// The directory relative paths in the config resolve against.
    public var configDirectory: String

    public init(logger: Logger, configDirectory: String) {
        self.logger = logger
        self.configDirectory = configDirectory
    }
}
