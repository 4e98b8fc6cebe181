import NIOCore

/// A will message carried by CONNECT.
public struct Will: Hashable, Sendable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: QoS
    public var retain: Bool
    /// MQTT 5.0 will properties (delay interval, expiry, content type, ...).
    public var properties: Properties

    public init(topic: String, payload: ByteBuffer, qos: QoS = .atMostOnce, retain: Bool = false,
                properties: Properties = []) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}

/// CONNECT: the first packet a client sends.
public struct ConnectPacket: Hashable, Sendable {
    public var protocolVersion: ProtocolVersion
    /// Clean session (3.x) or clean start (5.0).
    public var cleanStart: Bool
    public var keepAlive: UInt16
    public var clientID: String
    public var will: Will?
    public var username: String?
    public var password: ByteBuffer?
    public var properties: Properties

    public init(protocolVersion: ProtocolVersion = .v3_1_1, cleanStart: Bool = true, keepAlive: UInt16 = 60,
                clientID: String, will: Will? = nil, username: String? = nil, password: ByteBuffer? = nil,
                properties: Properties = []) {
        self.protocolVersion = protocolVersion
        self.cleanStart = cleanStart
        self.keepAlive = keepAlive
        self.clientID = clientID
        self.will = will
        self.username = username
        self.password = password
        self.properties = properties
    }
}

/// CONNACK: the server's answer to CONNECT.
public struct ConnAckPacket: Hashable, Sendable {
    public var sessionPresent: Bool
    /// The 3.x return code or the 5.0 reason code, as sent.
    public var code: UInt8
    public var properties: Properties

    public init(sessionPresent: Bool = false, code: UInt8 = 0, properties: Properties = []) {
        self.sessionPresent = sessionPresent
        self.code = code
        self.properties = properties
    }
}

/// PUBLISH: an application message.
public struct PublishPacket: Hashable, Sendable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: QoS
    public var retain: Bool
    public var dup: Bool
    /// Present for QoS 1 and 2 only.
    public var packetID: UInt16?
    public var properties: Properties

    public init(topic: String, payload: ByteBuffer, qos: QoS = .atMostOnce, retain: Bool = false,
                dup: Bool = false, packetID: UInt16? = nil, properties: Properties = []) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
        self.properties = properties
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: the acknowledgements of QoS 1 and 2.
public struct AckPacket: Hashable, Sendable {
    /// One of `.puback`, `.pubrec`, `.pubrel`, `.pubcomp`.
    public var type: PacketType
    public var packetID: UInt16
    /// 5.0 only; 3.x acknowledgements carry none.
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(type: PacketType, packetID: UInt16, reasonCode: ReasonCode = .success, properties: Properties = []) {
        self.type = type
        self.packetID = packetID
        self.reasonCode = reasonCode
        self.properties = properties
    }
}

/// Subscription options of one topic filter in SUBSCRIBE.
public struct SubscriptionOptions: Hashable, Sendable {
    public var qos: QoS
    /// 5.0: do not deliver the client's own publications back to it.
    public var noLocal: Bool
    /// 5.0: keep the retain flag as published instead of clearing it on forwarding.
    public var retainAsPublished: Bool
    /// 5.0: 0 send retained messages on subscribe, 1 only for a new subscription, 2 never.
    public var retainHandling: UInt8

    public init(qos: QoS, noLocal: Bool = false, retainAsPublished: Bool = false, retainHandling: UInt8 = 0) {
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
    }
}

/// One topic filter with its options.
public struct TopicSubscription: Hashable, Sendable {
    public var filter: String
    public var options: SubscriptionOptions

    public init(filter: String, options: SubscriptionOptions) {
        self.filter = filter
        self.options = options
    }
}

/// SUBSCRIBE.
public struct SubscribePacket: Hashable, Sendable {
    public var packetID: UInt16
    public var subscriptions: [TopicSubscription]
    public var properties: Properties

    public init(packetID: UInt16, subscriptions: [TopicSubscription], properties: Properties = []) {
        self.packetID = packetID
        self.subscriptions = subscriptions
        self.properties = properties
    }
}

/// SUBACK: one return / reason code per requested filter.
public struct SubAckPacket: Hashable, Sendable {
    public var packetID: UInt16
    public var reasonCodes: [ReasonCode]
    public var properties: Properties

    public init(packetID: UInt16, reasonCodes: [ReasonCode], properties: Properties = []) {
        self.packetID = packetID
        self.reasonCodes = reasonCodes
        self.properties = properties
    }
}

/// UNSUBSCRIBE.
public struct UnsubscribePacket: Hashable, Sendable {
    public var packetID: UInt16
    public var filters: [String]
    public var properties: Properties

    public init(packetID: UInt16, filters: [String], properties: Properties = []) {
        self.packetID = packetID
        self.filters = filters
        self.properties = properties
    }
}

/// UNSUBACK: 5.0 carries one reason code per filter; 3.x none.
public struct UnsubAckPacket: Hashable, Sendable {
    public var packetID: UInt16
    public var reasonCodes: [ReasonCode]
    public var properties: Properties

    public init(packetID: UInt16, reasonCodes: [ReasonCode] = [], properties: Properties = []) {
        self.packetID = packetID
        self.reasonCodes = reasonCodes
        self.properties = properties
    }
}

/// DISCONNECT: 5.0 carries a reason code and properties; 3.x nothing.
public struct DisconnectPacket: Hashable, Sendable {
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(reasonCode: ReasonCode = .normalDisconnection, properties: Properties = []) {
        self.reasonCode = reasonCode
        self.properties = properties
    }
}

/// AUTH (5.0 only): a step of enhanced authentication.
public struct AuthPacket: Hashable, Sendable {
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(reasonCode: ReasonCode = .success, properties: Properties = []) {
        self.reasonCode = reasonCode
        self.properties = properties
    }
}

/// Any MQTT control packet.
public enum Packet: Hashable, Sendable {
    case connect(ConnectPacket)
    case connack(ConnAckPacket)
    case publish(PublishPacket)
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    case ack(AckPacket)
    case subscribe(SubscribePacket)
    case suback(SubAckPacket)
    case unsubscribe(UnsubscribePacket)
    case unsuback(UnsubAckPacket)
    case pingreq
    case pingresp
    case disconnect(DisconnectPacket)
    case auth(AuthPacket)

    /// The packet's type.
    public var type: PacketType {
        switch self {
        case .connect: return .connect
        case .connack: return .connack
        case .publish: return .publish
        case .ack(let a): return a.type
        case .subscribe: return .subscribe
        case .suback: return .suback
        case .unsubscribe: return .unsubscribe
        case .unsuback: return .unsuback
        case .pingreq: return .pingreq
        case .pingresp: return .pingresp
        case .disconnect: return .disconnect
        case .auth: return .auth
        }
    }
}
