/// MQTT 5.0 reason codes (also used for MQTT 3.1.1 SUBACK's 0x80 and, in the 0x00-0x05 range, 3.x CONNACK
/// return codes, which have their own type `ConnectReturnCode`).
public struct ReasonCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    /// Success, normal disconnection, or granted QoS 0.
    public static let success = ReasonCode(0x00)
    /// Normal disconnection (DISCONNECT).
    public static let normalDisconnection = ReasonCode(0x00)
    /// Granted QoS 1 (SUBACK).
    public static let grantedQoS1 = ReasonCode(0x01)
    /// Granted QoS 2 (SUBACK).
    public static let grantedQoS2 = ReasonCode(0x02)
    /// Disconnect with will message: the client wants its will published.
    public static let disconnectWithWillMessage = ReasonCode(0x04)
    /// No matching subscribers: accepted, but nobody subscribes to the topic.
    public static let noMatchingSubscribers = ReasonCode(0x10)
    /// No subscription existed (UNSUBACK).
    public static let noSubscriptionExisted = ReasonCode(0x11)
    /// Continue authentication (AUTH).
    public static let continueAuthentication = ReasonCode(0x18)
    /// Re-authenticate (AUTH).
    public static let reAuthenticate = ReasonCode(0x19)
    /// Unspecified error.
    public static let unspecifiedError = ReasonCode(0x80)
    /// Malformed packet.
    public static let malformedPacket = ReasonCode(0x81)
    /// Protocol error.
    public static let protocolError = ReasonCode(0x82)
    /// Implementation specific error.
    public static let implementationSpecificError = ReasonCode(0x83)
    /// Unsupported protocol version (CONNACK).
    public static let unsupportedProtocolVersion = ReasonCode(0x84)
    /// Client identifier not valid (CONNACK).
    public static let clientIdentifierNotValid = ReasonCode(0x85)
    /// Bad user name or password (CONNACK).
    public static let badUserNameOrPassword = ReasonCode(0x86)
    /// Not authorized.
    public static let notAuthorized = ReasonCode(0x87)
    /// Server unavailable (CONNACK).
    public static let serverUnavailable = ReasonCode(0x88)
    /// Server busy.
    public static let serverBusy = ReasonCode(0x89)
    /// Banned (CONNACK).
    public static let banned = ReasonCode(0x8A)
    /// Server shutting down (DISCONNECT).
    public static let serverShuttingDown = ReasonCode(0x8B)
    /// Bad authentication method.
    public static let badAuthenticationMethod = ReasonCode(0x8C)
    /// Keep alive timeout (DISCONNECT).
    public static let keepAliveTimeout = ReasonCode(0x8D)
    /// Session taken over (DISCONNECT).
    public static let sessionTakenOver = ReasonCode(0x8E)
    /// Topic filter invalid.
    public static let topicFilterInvalid = ReasonCode(0x8F)
    /// Topic name invalid.
    public static let topicNameInvalid = ReasonCode(0x90)
    /// Packet identifier in use.
    public static let packetIdentifierInUse = ReasonCode(0x91)
    /// Packet identifier not found.
    public static let packetIdentifierNotFound = ReasonCode(0x92)
    /// Receive maximum exceeded (DISCONNECT).
    public static let receiveMaximumExceeded = ReasonCode(0x93)
    /// Topic alias invalid (DISCONNECT).
    public static let topicAliasInvalid = ReasonCode(0x94)
    /// Packet too large.
    public static let packetTooLarge = ReasonCode(0x95)
    /// Message rate too high (DISCONNECT).
    public static let messageRateTooHigh = ReasonCode(0x96)
    /// Quota exceeded.
    public static let quotaExceeded = ReasonCode(0x97)
    /// Administrative action (DISCONNECT).
    public static let administrativeAction = ReasonCode(0x98)
    /// Payload format invalid.
    public static let payloadFormatInvalid = ReasonCode(0x99)
    /// Retain not supported.
    public static let retainNotSupported = ReasonCode(0x9A)
    /// QoS not supported.
    public static let qosNotSupported = ReasonCode(0x9B)
    /// Use another server.
    public static let useAnotherServer = ReasonCode(0x9C)
    /// Server moved.
    public static let serverMoved = ReasonCode(0x9D)
    /// Shared subscriptions not supported.
    public static let sharedSubscriptionsNotSupported = ReasonCode(0x9E)
    /// Connection rate exceeded.
    public static let connectionRateExceeded = ReasonCode(0x9F)
    /// Maximum connect time (DISCONNECT).
    public static let maximumConnectTime = ReasonCode(0xA0)
    /// Subscription identifiers not supported.
    public static let subscriptionIdentifiersNotSupported = ReasonCode(0xA1)
    /// Wildcard subscriptions not supported.
    public static let wildcardSubscriptionsNotSupported = ReasonCode(0xA2)

    /// True for codes of 0x80 and above.
    public var isFailure: Bool { rawValue >= 0x80 }

    public var description: String { "0x" + String(rawValue, radix: 16, uppercase: true) }
}

/// MQTT 3.1 / 3.1.1 CONNACK return codes.
public enum ConnectReturnCode: UInt8, Sendable, Hashable {
    /// Connection accepted.
    case accepted = 0
    /// The server does not support the protocol level the client asked for.
    case unacceptableProtocolVersion = 1
    /// The client identifier is not allowed.
    case identifierRejected = 2
    /// The MQTT service is unavailable.
    case serverUnavailable = 3
    /// The user name or password is malformed or wrong.
    case badUserNameOrPassword = 4
    /// The client is not authorized to connect.
    case notAuthorized = 5

    /// The 3.x code that best expresses a 5.0 reason code, as Mosquitto maps them.
    public init(_ reason: ReasonCode) {
        switch reason {
        case .success: self = .accepted
        case .unsupportedProtocolVersion: self = .unacceptableProtocolVersion
        case .clientIdentifierNotValid: self = .identifierRejected
        // Mosquitto 2.0 answers a 3.x client with a wrong password 5 (not authorized), not 4.
        case .badUserNameOrPassword, .notAuthorized, .banned, .badAuthenticationMethod, .packetTooLarge:
            self = .notAuthorized
        default: self = .serverUnavailable
        }
    }
}
