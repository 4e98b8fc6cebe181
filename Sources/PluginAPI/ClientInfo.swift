public import MQTT
public import NIOCore

/// What a plugin knows about a client: value types only, never the connection itself.
public struct ClientInfo: Hashable, Sendable {
    /// The client identifier (after assignment, for clients that sent an empty one).
    public var clientID: String
    /// The user name the client sent, if any.
    public var username: String?
    /// The protocol level the client speaks.
    public var protocolVersion: ProtocolVersion
    /// The name of the listener the client came through (for example `1883` or `tls:8883`).
    public var listener: String
    /// The peer's address, as `IP:PORT`, when known.
    public var remoteAddress: String?
    /// The subject of the client's TLS certificate, when it presented one.
    public var certificateSubject: String?

    public init(clientID: String, username: String?, protocolVersion: ProtocolVersion, listener: String,
                remoteAddress: String? = nil, certificateSubject: String? = nil) {
        self.clientID = clientID
        self.username = username
        self.protocolVersion = protocolVersion
        self.listener = listener
        self.remoteAddress = remoteAddress
        self.certificateSubject = certificateSubject
    }
}

/// The credentials of a CONNECT. `password` is secret: plugins must never log it.
public struct Credentials: Sendable {
    /// The user name, if the client sent one.
    public var username: String?
    /// The password bytes, if the client sent any.
    public var password: ByteBuffer?
    /// The full CONNECT properties (MQTT 5.0), for plugins that need them.
    public var properties: Properties

    public init(username: String?, password: ByteBuffer?, properties: Properties = []) {
        self.username = username
        self.password = password
        self.properties = properties
    }
}

/// What a client wants to do with a topic: `.write`, `.read` or `.subscribe`.
///
/// A struct rather than an enum: MQTT has more operations on topics than these three (Mosquitto's plugins,
/// for one, are also asked about UNSUBSCRIBE), and a later minor version of the API may ask about them
/// without breaking plugins (see `PluginAPIVersion`). Compare with `==`, or `switch` over the accesses a
/// plugin knows and end with `default:`; an authorization plugin answers `.abstain` (or `.deny`) to an
/// access it does not know.
public struct Access: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Code: UInt8, Hashable, Sendable {
        case write, read, subscribe
    }

    @usableFromInline let code: Code

    @inlinable
    init(_ code: Code) { self.code = code }

    /// Publish to a topic name.
    @inlinable public static var write: Access { Access(.write) }
    /// Receive a message on a topic name (checked at every delivery).
    @inlinable public static var read: Access { Access(.read) }
    /// Subscribe to a topic filter.
    @inlinable public static var subscribe: Access { Access(.subscribe) }

    /// `write`, `read` or `subscribe`.
    public var description: String {
        switch code {
        case .write: return "write"
        case .read: return "read"
        case .subscribe: return "subscribe"
        }
    }
}

extension SocketAddress {
    /// The peer as logs and `ClientInfo.remoteAddress` show it: `IP:PORT`.
    public var peerDescription: String { "\(ipAddress ?? "?"):\(port ?? 0)" }
}
