import NIOCore

/// Decodes MQTT control packets from a byte stream, one at a time. It checks the limits before it waits for
/// a packet's body: at most four remaining-length bytes, the remaining length against `maximumPacketSize`,
/// and the fixed-header flag bits of each type. The first packet decides the protocol version unless it is
/// set up front (as a client does).
public struct MQTTDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Packet

    /// The version packets after CONNECT are read with; set by a decoded CONNECT when nil.
    public var version: ProtocolVersion?
    /// Largest whole packet accepted, in bytes (fixed header included); 0 means the protocol's own limit.
    public var maximumPacketSize: Int

    public init(version: ProtocolVersion? = nil, maximumPacketSize: Int = 0) {
        self.version = version
        self.maximumPacketSize = maximumPacketSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Packet? {
        guard let (type, flags, bodyStart, remaining) = try peekFixedHeader(buffer) else { return nil }
        let total = bodyStart + remaining
        if maximumPacketSize > 0 && total > maximumPacketSize {
            throw MQTTError.packetTooLarge(size: total, limit: maximumPacketSize)
        }
        guard buffer.readableBytes >= total else { return nil }
        buffer.moveReaderIndex(forwardBy: bodyStart)
        var body = buffer.readSlice(length: remaining)!
        let packet = try decodeBody(type: type, flags: flags, body: &body)
        if body.readableBytes > 0 {
            throw MQTTError.malformedPacket("\(body.readableBytes) unexpected bytes after \(type)")
        }
        return packet
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Packet? {
        try decode(buffer: &buffer)
    }

    /// Reads type, flags and remaining length without consuming; nil if more bytes are needed.
    private func peekFixedHeader(_ buffer: ByteBuffer) throws -> (PacketType, UInt8, Int, Int)? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
        guard let type = PacketType(rawValue: first >> 4) else {
            throw MQTTError.protocolError("reserved packet type 0")
        }
        let flags = first & 0x0F
        if type != .publish && flags != type.requiredFlags {
            throw MQTTError.malformedPacket("invalid fixed-header flags \(flags) for \(type)")
        }
        guard let (value, bytes) = try Self.remainingLength(in: buffer, at: start + 1, limit: maximumPacketSize)
        else { return nil }
        return (type, flags, 1 + bytes, value)
    }

    /// The remaining length that starts at `index` (just after a packet's first byte): its value and how many
    /// bytes it takes; nil when more bytes are needed. Throws when it runs past four bytes, or (with `limit`
    /// above 0) as soon as the packet is known to be larger than `limit`.
    @inline(__always)
    static func remainingLength(in buffer: ByteBuffer, at index: Int, limit: Int) throws -> (Int, Int)? {
        var value = 0
        var multiplier = 1
        for offset in 0..<4 {
            guard let byte = buffer.getInteger(at: index + offset, as: UInt8.self) else { return nil }
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 {
                return (value, offset + 1)
            }
            multiplier *= 128
            if limit > 0 && value + 2 + offset > limit {
                throw MQTTError.packetTooLarge(size: value + 2 + offset, limit: limit)
            }
        }
        throw MQTTError.malformedPacket("remaining length longer than four bytes")
    }

    /// A packet's fixed header, read without decoding the packet.
    public struct FixedHeader: Sendable {
        /// The packet type (nil for the reserved type 0).
        public var type: PacketType?
        /// The whole packet's length: fixed header and remaining length.
        public var totalLength: Int
    }

    /// The fixed header of the packet at `index` of `buffer`, if it has arrived whole (the packet itself may
    /// not have); nil when it has not, or when its remaining length is malformed.
    public static func fixedHeader(in buffer: ByteBuffer, at index: Int) -> FixedHeader? {
        guard let first = buffer.getInteger(at: index, as: UInt8.self),
              let length = try? remainingLength(in: buffer, at: index + 1, limit: 0) else { return nil }
        return FixedHeader(type: PacketType(rawValue: first >> 4), totalLength: 1 + length.0 + length.1)
    }

    private mutating func decodeBody(type: PacketType, flags: UInt8, body: inout ByteBuffer) throws -> Packet {
        if type == .connect {
            let connect = try Self.decodeConnect(&body)
            if version == nil { version = connect.protocolVersion }
            return .connect(connect)
        }
        guard let version else { throw MQTTError.protocolError("first packet must be CONNECT, got \(type)") }
        let v5 = version == .v5
        switch type {
        case .connect:
            preconditionFailure("handled above")
        case .connack:
            guard let ackFlags = body.readInteger(as: UInt8.self), let code = body.readInteger(as: UInt8.self) else {
                throw MQTTError.malformedPacket("CONNACK cut short")
            }
            guard ackFlags & 0xFE == 0 else { throw MQTTError.malformedPacket("CONNACK reserved flags set") }
            let properties = v5 ? try Properties.read(from: &body, context: .connack) : Properties()
            return .connack(ConnAckPacket(sessionPresent: ackFlags & 1 == 1, code: code, properties: properties))
        case .publish:
            return .publish(try Self.decodePublish(flags: flags, body: &body, v5: v5))
        case .puback, .pubrec, .pubrel, .pubcomp:
            guard let id = body.readInteger(as: UInt16.self) else {
                throw MQTTError.malformedPacket("\(type) cut short")
            }
            guard id != 0 else { throw MQTTError.protocolError("packet identifier 0") }
            var reason = ReasonCode.success
            var properties = Properties()
            if v5 {
                if let raw = body.readInteger(as: UInt8.self) { reason = ReasonCode(raw) }
                if body.readableBytes > 0 {
                    let context: PropertyContext = type == .puback ? .puback : type == .pubrec ? .pubrec
                        : type == .pubrel ? .pubrel : .pubcomp
                    properties = try Properties.read(from: &body, context: context)
                }
            }
            return .ack(AckPacket(type: type, packetID: id, reasonCode: reason, properties: properties))
        case .subscribe:
            return .subscribe(try Self.decodeSubscribe(&body, v5: v5))
        case .suback:
            guard let id = body.readInteger(as: UInt16.self) else { throw MQTTError.malformedPacket("SUBACK cut short") }
            let properties = v5 ? try Properties.read(from: &body, context: .suback) : Properties()
            var codes: [ReasonCode] = []
            while let raw = body.readInteger(as: UInt8.self) { codes.append(ReasonCode(raw)) }
            return .suback(SubAckPacket(packetID: id, reasonCodes: codes, properties: properties))
        case .unsubscribe:
            guard let id = body.readInteger(as: UInt16.self) else {
                throw MQTTError.malformedPacket("UNSUBSCRIBE cut short")
            }
            guard id != 0 else { throw MQTTError.malformedPacket("packet identifier 0") }  // 0x81, as Mosquitto
            let properties = v5 ? try Properties.read(from: &body, context: .unsubscribe) : Properties()
            var filters: [String] = []
            while body.readableBytes > 0 {
                let filter = try body.readMQTTString("topic filter")
                guard Topic.isValidFilter(filter) else {
                    throw MQTTError.malformedPacket("invalid topic filter in UNSUBSCRIBE")
                }
                filters.append(filter)
            }
            guard !filters.isEmpty else { throw MQTTError.protocolError("UNSUBSCRIBE without a topic filter") }
            return .unsubscribe(UnsubscribePacket(packetID: id, filters: filters, properties: properties))
        case .unsuback:
            guard let id = body.readInteger(as: UInt16.self) else {
                throw MQTTError.malformedPacket("UNSUBACK cut short")
            }
            var codes: [ReasonCode] = []
            var properties = Properties()
            if v5 {
                properties = try Properties.read(from: &body, context: .unsuback)
                while let raw = body.readInteger(as: UInt8.self) { codes.append(ReasonCode(raw)) }
            }
            return .unsuback(UnsubAckPacket(packetID: id, reasonCodes: codes, properties: properties))
        case .pingreq:
            return .pingreq
        case .pingresp:
            return .pingresp
        case .disconnect:
            var reason = ReasonCode.normalDisconnection
            var properties = Properties()
            if v5 {
                if let raw = body.readInteger(as: UInt8.self) { reason = ReasonCode(raw) }
                if body.readableBytes > 0 { properties = try Properties.read(from: &body, context: .disconnect) }
            }
            return .disconnect(DisconnectPacket(reasonCode: reason, properties: properties))
        case .auth:
            guard v5 else { throw MQTTError.malformedPacket("AUTH is an MQTT 5.0 packet") }
            var reason = ReasonCode.success
            var properties = Properties()
            if let raw = body.readInteger(as: UInt8.self) { reason = ReasonCode(raw) }
            if body.readableBytes > 0 { properties = try Properties.read(from: &body, context: .auth) }
            return .auth(AuthPacket(reasonCode: reason, properties: properties))
        }
    }

    static func decodeConnect(_ body: inout ByteBuffer) throws -> ConnectPacket {
        guard let nameLength = body.readInteger(as: UInt16.self),
              let nameBytes = body.readBytes(length: Int(nameLength)),
              let rawLevel = body.readInteger(as: UInt8.self) else {
            throw MQTTError.malformedPacket("CONNECT cut short")
        }
        let name = String(decoding: nameBytes, as: UTF8.self)
        let level = rawLevel & 0x7F  // the high bit marks a bridge in Mosquitto's dialect
        let version: ProtocolVersion
        switch (name, level) {
        case ("MQIsdp", 3): version = .v3_1
        case ("MQTT", 4): version = .v3_1_1
        case ("MQTT", 5): version = .v5
        case ("MQIsdp", _), ("MQTT", _): throw MQTTError.unsupportedProtocolVersion(name: name, level: level)
        default: throw MQTTError.protocolError("unknown protocol name \"\(name)\"")
        }
        guard let flags = body.readInteger(as: UInt8.self), let keepAlive = body.readInteger(as: UInt16.self) else {
            throw MQTTError.malformedPacket("CONNECT cut short")
        }
        guard flags & 0x01 == 0 else { throw MQTTError.malformedPacket("CONNECT reserved flag set") }
        let cleanStart = flags & 0x02 != 0
        let willFlag = flags & 0x04 != 0
        let willQoSRaw = (flags >> 3) & 0x03
        let willRetain = flags & 0x20 != 0
        let hasPassword = flags & 0x40 != 0
        let hasUsername = flags & 0x80 != 0
        guard let willQoS = QoS(rawValue: willQoSRaw) else { throw MQTTError.malformedPacket("will QoS 3") }
        if !willFlag && (willQoSRaw != 0 || willRetain) {
            throw MQTTError.malformedPacket("will QoS or retain set without a will")
        }
        if version != .v5 && hasPassword && !hasUsername {
            throw MQTTError.protocolError("password without user name")
        }
        let properties = version == .v5 ? try Properties.read(from: &body, context: .connect) : Properties()
        let clientID = try body.readMQTTString("client identifier")
        var will: Will?
        if willFlag {
            let willProperties = version == .v5 ? try Properties.read(from: &body, context: .will) : Properties()
            let topic = try body.readMQTTString("will topic")
            guard Topic.isValidName(topic) else { throw MQTTError.malformedPacket("invalid will topic") }
            let payload = try body.readMQTTBinary("will payload")
            will = Will(topic: topic, payload: payload, qos: willQoS, retain: willRetain, properties: willProperties)
        }
        let username = hasUsername ? try body.readMQTTString("user name") : nil
        let password = hasPassword ? try body.readMQTTBinary("password") : nil
        return ConnectPacket(protocolVersion: version, cleanStart: cleanStart, keepAlive: keepAlive,
                             clientID: clientID, will: will, username: username, password: password,
                             properties: properties)
    }

    static func decodePublish(flags: UInt8, body: inout ByteBuffer, v5: Bool) throws -> PublishPacket {
        let dup = flags & 0x08 != 0
        guard let qos = QoS(rawValue: (flags >> 1) & 0x03) else { throw MQTTError.malformedPacket("PUBLISH QoS 3") }
        if qos == .atMostOnce && dup { throw MQTTError.malformedPacket("PUBLISH with QoS 0 and DUP") }
        let retain = flags & 0x01 != 0
        let topic = try body.readMQTTString("topic name")
        var packetID: UInt16?
        if qos != .atMostOnce {
            guard let id = body.readInteger(as: UInt16.self) else { throw MQTTError.malformedPacket("PUBLISH cut short") }
            guard id != 0 else { throw MQTTError.protocolError("packet identifier 0") }
            packetID = id
        }
        let properties = v5 ? try Properties.read(from: &body, context: .publish) : Properties()
        if topic.isEmpty {
            if !(v5 && properties.topicAlias != nil) { throw MQTTError.topicNameInvalid("empty topic name") }
        } else if !Topic.isValidName(topic) {
            throw MQTTError.topicNameInvalid("wildcard in topic name")
        } else if Topic.hasTooManyLevels(topic) {
            throw MQTTError.protocolError("topic name with more than \(Topic.maximumSeparators + 1) levels")
        }
        let payload = body.readSlice(length: body.readableBytes)!
        return PublishPacket(topic: topic, payload: payload, qos: qos, retain: retain, dup: dup, packetID: packetID,
                             properties: properties)
    }

    static func decodeSubscribe(_ body: inout ByteBuffer, v5: Bool) throws -> SubscribePacket {
        guard let id = body.readInteger(as: UInt16.self) else { throw MQTTError.malformedPacket("SUBSCRIBE cut short") }
        guard id != 0 else { throw MQTTError.malformedPacket("packet identifier 0") }  // 0x81, as Mosquitto
        let properties = v5 ? try Properties.read(from: &body, context: .subscribe) : Properties()
        var subscriptions: [TopicSubscription] = []
        while body.readableBytes > 0 {
            let filter = try body.readMQTTString("topic filter")
            guard let raw = body.readInteger(as: UInt8.self) else {
                throw MQTTError.malformedPacket("SUBSCRIBE options missing")
            }
            guard let qos = QoS(rawValue: raw & 0x03) else { throw MQTTError.malformedPacket("subscription QoS 3") }
            var options = SubscriptionOptions(qos: qos)
            if v5 {
                guard raw & 0xC0 == 0 else { throw MQTTError.malformedPacket("reserved subscription option bits") }
                options.noLocal = raw & 0x04 != 0
                options.retainAsPublished = raw & 0x08 != 0
                options.retainHandling = (raw >> 4) & 0x03
                guard options.retainHandling != 3 else { throw MQTTError.protocolError("retain handling 3") }
            } else {
                guard raw & 0xFC == 0 else { throw MQTTError.malformedPacket("reserved subscription option bits") }
            }
            guard Topic.isValidFilter(filter) else { throw MQTTError.malformedPacket("invalid topic filter") }
            guard !Topic.hasTooManyLevels(filter) else {
                throw MQTTError.malformedPacket("topic filter with more than \(Topic.maximumSeparators + 1) levels")
            }
            subscriptions.append(TopicSubscription(filter: filter, options: options))
        }
        guard !subscriptions.isEmpty else { throw MQTTError.protocolError("SUBSCRIBE without a topic filter") }
        return SubscribePacket(packetID: id, subscriptions: subscriptions, properties: properties)
    }
}
