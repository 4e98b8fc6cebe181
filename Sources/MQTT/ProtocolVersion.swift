/// The protocol level a client announces in CONNECT.
public enum ProtocolVersion: UInt8, Sendable, Hashable, Comparable, CustomStringConvertible {
    /// MQTT 3.1, protocol name `MQIsdp`.
    case v3_1 = 3
    /// MQTT 3.1.1, protocol name `MQTT`.
    case v3_1_1 = 4
    /// MQTT 5.0, protocol name `MQTT`.
    case v5 = 5

    public static func < (lhs: ProtocolVersion, rhs: ProtocolVersion) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The protocol name this level is spoken under.
    public var protocolName: String { self == .v3_1 ? "MQIsdp" : "MQTT" }

    public var description: String {
        switch self {
        case .v3_1: return "3.1"
        case .v3_1_1: return "3.1.1"
        case .v5: return "5.0"
        }
    }
}

/// Quality of service of a message or a subscription.
public enum QoS: UInt8, Sendable, Hashable, Comparable {
    /// At most once.
    case atMostOnce = 0
    /// At least once.
    case atLeastOnce = 1
    /// Exactly once.
    case exactlyOnce = 2

    public static func < (lhs: QoS, rhs: QoS) -> Bool { lhs.rawValue < rhs.rawValue }
}
