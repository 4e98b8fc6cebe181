public import MQTT
public import NIOCore

/// An MQTT 5.0 enhanced authentication method (MQTT 5.0 section 4.12): a challenge/response exchange carried
/// by the Authentication Method (0x15) and Authentication Data (0x16) properties of CONNECT, AUTH and CONNACK.
///
/// A client names a method in its CONNECT. The host looks, in the listener's plugin chain and in config order,
/// for the first plugin whose `methods` contains that name exactly (case-sensitive); when there is none the
/// client gets CONNACK 0x8C (bad authentication method), as in Mosquitto. Otherwise the host calls `begin` for
/// a new `AuthenticationConversation` and feeds it the client's data, one `step` at a time:
///
/// 1. `step(data:)` with the CONNECT's Authentication Data (nil when it carried none);
/// 2. `.challenge(data)`: the host sends AUTH 0x18 (continue authentication) with the method and `data`, waits
///    for the client's AUTH 0x18 and calls `step(data:)` with its Authentication Data; repeat;
/// 3. `.success(data:username:)`: the host runs the authorization plugins' `prepare` for the client and sends
///    CONNACK 0x00 with the method and `data`; `.failure(code)`: CONNACK with `code`, then it closes.
///
/// Re-authentication (a connected client sends AUTH 0x19 with the method it connected with) runs a new
/// conversation the same way; `.success` answers AUTH 0x00, `.failure` DISCONNECT with the code, then closes.
/// Meanwhile the client's other packets are handled as usual.
///
/// A plugin that implements this protocol takes no part in user name and password checks (that is
/// `AuthenticationPlugin`, which a plugin may implement as well).
public protocol EnhancedAuthenticationPlugin: Plugin {
    /// The Authentication Method names this plugin handles, e.g. `["SCRAM-SHA-256"]`. Read once, when the
    /// host builds the listener's chain.
    var methods: [String] { get }

    /// Starts one exchange of `method` (one of `methods`) with `client`, at CONNECT or at re-authentication.
    ///
    /// `client.username` is the CONNECT's user name at connect time (not verified by anyone), or the user name
    /// established by the last successful exchange at re-authentication. Called on the connection's event
    /// loop `eventLoop`. Throwing refuses the client as a failed step does (see `AuthenticationConversation`).
    func begin(method: String, client: ClientInfo, on eventLoop: any EventLoop) throws -> any AuthenticationConversation
}

/// The server side of one enhanced authentication exchange with one client.
///
/// The host calls it on the connection's event loop only, never concurrently, and never again after a step
/// answered `.success` or `.failure`. Like every plugin call, `step` must not block: answer `.now` for work
/// of microseconds, and do anything slower (a database) off the loop and answer `.later` with a future. The
/// host bounds each step by the same deadline as other plugin calls (5 s); an error, or a missed deadline,
/// ends the exchange as a failure: CONNACK 0x88 (server unavailable) at connect time, DISCONNECT 0x87 (not
/// authorized) at re-authentication.
public protocol AuthenticationConversation: AnyObject {
    /// Takes the client's next Authentication Data (nil when its packet carried none) and says what comes
    /// next. The first call gets the data of the CONNECT (or of the AUTH 0x19 that started a
    /// re-authentication).
    func step(data: ByteBuffer?, on eventLoop: any EventLoop) -> PluginAnswer<AuthenticationStep>

    /// The exchange is over, for any reason: it succeeded, failed, or the connection closed while it ran.
    /// Called once; release what the conversation holds. The default does nothing.
    func end()
}

extension AuthenticationConversation {
    /// Does nothing.
    public func end() {}
}

/// What a conversation answers to one step of the client: `.challenge(data)`, `.success(data:username:)` or
/// `.failure(code)`.
///
/// A struct rather than an enum: the three outcomes are those of MQTT 5.0 section 4.12, but what each carries
/// may grow (AUTH and CONNACK can also carry a reason string and user properties), and a later minor version
/// of the API can add that without breaking plugins (see `PluginAPIVersion`). Make one with the static
/// functions; inspect one with the accessors (`isChallenge`, `data`, `failureReason`, ...) or `==`.
public struct AuthenticationStep: Hashable, Sendable {
    private enum Code: UInt8, Hashable, Sendable {
        case challenge, success, failure
    }

    private let code: Code
    /// The Authentication Data of a challenge or a success; nil when it carries none, and for a failure.
    public let data: ByteBuffer?
    /// The user name a success established; nil when it keeps the CONNECT's, and for the other steps.
    public let username: String?
    private let reason: ReasonCode?

    private init(_ code: Code, data: ByteBuffer? = nil, username: String? = nil, reason: ReasonCode? = nil) {
        self.code = code
        self.data = data
        self.username = username
        self.reason = reason
    }

    /// The client must answer: the host sends AUTH 0x18 (continue authentication) carrying this data (none
    /// when nil) and waits for the client's next AUTH.
    public static func challenge(_ data: ByteBuffer?) -> AuthenticationStep {
        AuthenticationStep(.challenge, data: data)
    }

    /// The client is authenticated. `data`, if any, goes to the client in the CONNACK (or, at
    /// re-authentication, the AUTH 0x00) that ends the exchange, e.g. a server signature the client checks.
    /// `username` is the user name the method established: authorization plugins see it in
    /// `ClientInfo.username`; nil keeps the CONNECT's user name (as Mosquitto does when a plugin sets none).
    /// At re-authentication a user name different from the established one fails the exchange with 0x87: a
    /// client may prove its identity again, not change it.
    public static func success(data: ByteBuffer?, username: String?) -> AuthenticationStep {
        AuthenticationStep(.success, data: data, username: username)
    }

    /// The client is refused with this reason code: CONNACK at connect time, DISCONNECT at
    /// re-authentication. A code that packet cannot carry (for example 0x86 in a DISCONNECT, or any code
    /// below 0x80) is sent as 0x87 (not authorized).
    public static func failure(_ code: ReasonCode) -> AuthenticationStep {
        AuthenticationStep(.failure, reason: code)
    }

    /// Whether this is a `.challenge`.
    public var isChallenge: Bool { code == .challenge }
    /// Whether this is a `.success`.
    public var isSuccess: Bool { code == .success }
    /// Whether this is a `.failure`.
    public var isFailure: Bool { code == .failure }
    /// The reason code of a `.failure(code)`; nil for the other steps.
    public var failureReason: ReasonCode? { code == .failure ? reason : nil }
}
