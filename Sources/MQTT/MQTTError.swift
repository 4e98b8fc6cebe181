/// Why a packet could not be accepted. Each case maps to the MQTT 5.0 reason code a server sends before it
/// closes the connection.
public enum MQTTError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bytes do not follow the packet's encoding rules.
    case malformedPacket(String)
    /// The packet is well formed but not allowed at this point or with these values.
    case protocolError(String)
    /// The packet is larger than the receiver's maximum packet size.
    case packetTooLarge(size: Int, limit: Int)
    /// CONNECT names a protocol or level this server does not speak.
    case unsupportedProtocolVersion(name: String, level: UInt8)
    /// A topic name is not valid (it holds a wildcard, or is empty without a topic alias). Sent as 0x82
    /// protocol error, as Mosquitto does: the name breaks a rule of the protocol, it is not merely refused.
    case topicNameInvalid(String)

    /// The MQTT 5.0 reason code for this error.
    public var reasonCode: ReasonCode {
        switch self {
        case .malformedPacket: return .malformedPacket
        case .protocolError: return .protocolError
        case .packetTooLarge: return .packetTooLarge
        case .unsupportedProtocolVersion: return .unsupportedProtocolVersion
        case .topicNameInvalid: return .protocolError
        }
    }

    public var description: String {
        switch self {
        case .malformedPacket(let why): return "malformed packet: \(why)"
        case .protocolError(let why): return "protocol error: \(why)"
        case .packetTooLarge(let size, let limit): return "packet of \(size) bytes exceeds the limit of \(limit)"
        case .unsupportedProtocolVersion(let name, let level): return "unsupported protocol \(name) level \(level)"
        case .topicNameInvalid(let why): return "invalid topic name: \(why)"
        }
    }
}
