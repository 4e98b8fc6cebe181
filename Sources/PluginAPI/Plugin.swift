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
/// `.abstain` wins; if all abstain the client is refused (except that `allow_anonymous true` admits clients
/// that send no user name without asking any plugin).
public protocol AuthenticationPlugin: Plugin {
    /// Checks a client's credentials. Answer `.now` for work that takes microseconds (a hash of a few
    /// iterations); do anything slower (a database) off the event loop and answer `.later` with a future on
    /// `eventLoop`. The host bounds the wait by a deadline; an error or a missed deadline counts as deny.
    func authenticate(client: ClientInfo, credentials: Credentials, on eventLoop: any EventLoop) -> PluginAnswer<Decision>
}

/// Decides whether a client may publish, subscribe or receive. Asked in config order; the first answer that is
/// not `.abstain` wins; if all abstain the access is denied. With no authorization plugin at all, everything is
/// allowed, as in Mosquitto.
///
/// `authorize` runs on every PUBLISH and every delivery, so it must answer from memory: a plugin that keeps
/// its rules elsewhere loads what it needs for a client in `prepare`, which the host awaits (with a deadline)
/// after authentication and before CONNACK.
public protocol AuthorizationPlugin: Plugin {
    /// Loads what `authorize` needs for this client. The default does nothing.
    func prepare(client: ClientInfo, on eventLoop: any EventLoop) -> PluginAnswer<Void>
    /// Checks one access to `topic`: a topic name for `.write` and `.read`, a topic filter for `.subscribe`.
    func authorize(client: ClientInfo, access: Access, topic: String, qos: QoS, retain: Bool) -> Decision
    /// The client's connection ended: drop what `prepare` loaded. The default does nothing.
    func forget(client: ClientInfo)
}

extension AuthorizationPlugin {
    public func prepare(client: ClientInfo, on eventLoop: any EventLoop) -> PluginAnswer<Void> { .now(()) }
    public func forget(client: ClientInfo) {}
}

/// A plugin whose state comes from files or a database that can change while the broker runs.
///
/// A reload is all or nothing across the whole broker: on SIGHUP, or when one of the `watchedFiles` of any
/// plugin changes, the host calls `prepareReload()` on every reloadable plugin; only when every one of them
/// succeeded does it commit them all, one after the other, without waiting on anything else. When one fails,
/// no plugin commits: the last good state stays in force everywhere. Afterwards the host checks connected
/// clients again and disconnects those whose credentials are no longer accepted.
public protocol ReloadablePlugin: Plugin {
    /// The files (absolute paths, or relative to the working directory) the plugin's state comes from. The
    /// host polls them (`watch_interval`) and reloads when one changes, including when a Kubernetes mount
    /// swaps its `..data` symlink. The default is none (reload on SIGHUP only).
    var watchedFiles: [String] { get }
    /// Reads the new state completely and validates it, without putting it in force. Throws (naming file,
    /// line and reason) when anything is wrong; otherwise returns the step that puts the new state in force.
    func prepareReload() async throws -> PreparedReload
}

extension ReloadablePlugin {
    public var watchedFiles: [String] { [] }

    /// Reloads this plugin alone: prepares, then commits.
    public func reload() async throws {
        try await prepareReload().commit()
    }
}

/// A validated new state of one plugin, not yet in force: `commit()` puts it in force at once. Committing
/// must not fail (all the checks belong in `prepareReload()`).
public struct PreparedReload: Sendable {
    private let apply: @Sendable () async -> Void

    /// `apply` replaces the plugin's state by the prepared one (and may log what was loaded).
    public init(commit apply: @escaping @Sendable () async -> Void) {
        self.apply = apply
    }

    /// Puts the prepared state in force.
    public func commit() async {
        await apply()
    }
}

/// A listener (registry kind `.listener`): binds a port and hands each accepted connection's channel to the
/// host, which puts MQTT on it. The host makes one per `listener` line from the registry's `tcp` entry, with
/// no options: what it binds is in `PluginContext.listener` (port, address, `set_tcp_nodelay`, name).
public protocol TransportPlugin: Plugin {
    /// Binds and starts accepting. `initializer` must be run on every accepted child channel; the decorators
    /// of the listener (TLS, WebSocket) are already part of it. Returns the bound local port.
    func listen(on group: any EventLoopGroup, initializer: @escaping ConnectionInitializer) async throws -> Int
    /// Stops accepting new connections.
    func close() async
}

/// Something between a listener and MQTT (registry kind `.connectionDecorator`): TLS, WebSocket. It wraps
/// the initializer of the next layer, so it runs on each accepted channel first (adding its handlers, and
/// maybe waiting for a handshake), then calls `next` with the facts it learned. Decorators compose over any
/// listener: `tcp` + `tls` + `websockets` is `wss://`.
public protocol ConnectionDecoratorPlugin: Plugin {
    /// The initializer to run on an accepted channel instead of `next`: it must call `next` once its own
    /// set-up is done (or close the channel).
    func decorate(_ next: @escaping ConnectionInitializer) -> ConnectionInitializer
}

/// A plugin with more to say in `midge check-config` than its kind: what it loaded, or what start-up would
/// do that the check does not (such as generating certificates).
public protocol ConfigCheckDescribing: Plugin {
    /// Lines for the check's report, without indentation.
    var checkReport: [String] { get }
}

/// How the host puts MQTT on a channel a transport accepted.
public typealias ConnectionInitializer = @Sendable (any Channel, ConnectionFacts) -> EventLoopFuture<Void>

/// Facts about a connection, as the transport knows them.
public struct ConnectionFacts: Sendable {
    /// The listener's name, as it appears in logs and `ClientInfo.listener`.
    public var listener: String
    /// The TLS peer certificate's subject, when there is one, in RFC 2253 form as Mosquitto prints it for
    /// `use_subject_as_username` (most specific part first: `CN=alice,O=Example,C=GB`).
    public var certificateSubject: String?
    /// The TLS peer certificate's first common name (CN), when it has one without an embedded NUL.
    public var certificateCommonName: String?
    /// Set when the listener names clients by their certificate (`use_identity_as_username` or
    /// `use_subject_as_username`). Mosquitto then ignores the CONNECT's user name and password, uses
    /// `certificateUsername` instead, refuses a client without one (bad user name or password) and treats it
    /// as authenticated without asking the password check; ACLs still apply to that user name.
    public var usernameFromCertificate: CertificateUsername?

    public init(listener: String, certificateSubject: String? = nil, certificateCommonName: String? = nil,
                usernameFromCertificate: CertificateUsername? = nil) {
        self.listener = listener
        self.certificateSubject = certificateSubject
        self.certificateCommonName = certificateCommonName
        self.usernameFromCertificate = usernameFromCertificate
    }

    /// The user name the certificate gives under `usernameFromCertificate`, or nil (none configured, or the
    /// client presented no usable certificate).
    public var certificateUsername: String? {
        switch usernameFromCertificate {
        case .commonName?: return certificateCommonName
        case .subject?: return certificateSubject
        default: return nil
        }
    }
}

/// Which part of a client certificate a TLS listener uses as the user name: `.commonName` or `.subject`.
///
/// A struct rather than an enum: Mosquitto's `use_identity_as_username` also covers PSK identities, and other
/// parts of a certificate (a subject alternative name) are in use elsewhere; a later minor version of the API
/// can add them without breaking plugins (see `PluginAPIVersion`). Compare with `==`.
public struct CertificateUsername: Hashable, Sendable, CustomStringConvertible {
    private enum Code: UInt8, Hashable, Sendable {
        case commonName, subject
    }

    private let code: Code

    private init(_ code: Code) { self.code = code }

    /// `use_identity_as_username true`: the common name (CN).
    public static var commonName: CertificateUsername { CertificateUsername(.commonName) }
    /// `use_subject_as_username true`: the whole subject, RFC 2253.
    public static var subject: CertificateUsername { CertificateUsername(.subject) }

    /// `commonName` or `subject`.
    public var description: String {
        switch code {
        case .commonName: return "commonName"
        case .subject: return "subject"
        }
    }
}

/// What a plugin gets at creation besides its options.
public struct PluginContext: Sendable {
    /// A logger labelled with the plugin's name.
    public var logger: Logger
    /// The directory relative paths in the config resolve against.
    public var configDirectory: String
    /// Set by `midge check-config`: check everything, but write nothing, bind nothing and start nothing
    /// (report what would be done through `ConfigCheckDescribing`).
    public var checkOnly: Bool
    /// For the plugins of a `listener` line (a listener and its connection decorators): that listener's
    /// settings, typed. Nil for every other plugin.
    public var listener: ListenerSettings?

    public init(logger: Logger, configDirectory: String, checkOnly: Bool = false,
                listener: ListenerSettings? = nil) {
        self.logger = logger
        self.configDirectory = configDirectory
        self.checkOnly = checkOnly
        self.listener = listener
    }
}
