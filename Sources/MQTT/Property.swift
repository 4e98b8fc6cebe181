import NIOCore

/// One MQTT 5.0 property.
public enum Property: Hashable, Sendable {
    /// 0x01: the payload is unspecified bytes (0) or UTF-8 (1).
    case payloadFormatIndicator(UInt8)
    /// 0x02: lifetime of the message in seconds.
    case messageExpiryInterval(UInt32)
    /// 0x03: MIME type of the payload.
    case contentType(String)
    /// 0x08: topic for a response.
    case responseTopic(String)
    /// 0x09: data to correlate a response with its request.
    case correlationData(ByteBuffer)
    /// 0x0B: identifier of the subscription (1 ... 268,435,455).
    case subscriptionIdentifier(Int)
    /// 0x11: seconds a session outlives its connection.
    case sessionExpiryInterval(UInt32)
    /// 0x12: client identifier the server assigned.
    case assignedClientIdentifier(String)
    /// 0x13: keep alive the server imposes.
    case serverKeepAlive(UInt16)
    /// 0x15: name of the enhanced authentication method.
    case authenticationMethod(String)
    /// 0x16: data of the enhanced authentication exchange.
    case authenticationData(ByteBuffer)
    /// 0x17: whether reason strings and user properties may be sent on failures.
    case requestProblemInformation(UInt8)
    /// 0x18: seconds to wait before publishing the will.
    case willDelayInterval(UInt32)
    /// 0x19: whether the client asks for response information.
    case requestResponseInformation(UInt8)
    /// 0x1A: basis for response topics.
    case responseInformation(String)
    /// 0x1C: another server to use.
    case serverReference(String)
    /// 0x1F: human-readable reason.
    case reasonString(String)
    /// 0x21: how many QoS 1 and 2 messages the sender accepts at once.
    case receiveMaximum(UInt16)
    /// 0x22: highest topic alias the sender accepts.
    case topicAliasMaximum(UInt16)
    /// 0x23: topic alias.
    case topicAlias(UInt16)
    /// 0x24: highest QoS the server supports.
    case maximumQoS(UInt8)
    /// 0x25: whether the server supports retained messages.
    case retainAvailable(UInt8)
    /// 0x26: a name/value pair; may repeat, order kept.
    case userProperty(String, String)
    /// 0x27: largest packet the sender accepts.
    case maximumPacketSize(UInt32)
    /// 0x28: whether the server supports wildcard subscriptions.
    case wildcardSubscriptionAvailable(UInt8)
    /// 0x29: whether the server supports subscription identifiers.
    case subscriptionIdentifierAvailable(UInt8)
    /// 0x2A: whether the server supports shared subscriptions.
    case sharedSubscriptionAvailable(UInt8)

    /// The property's identifier byte.
    public var identifier: UInt8 {
        switch self {
        case .payloadFormatIndicator: return 0x01
        case .messageExpiryInterval: return 0x02
        case .contentType: return 0x03
        case .responseTopic: return 0x08
        case .correlationData: return 0x09
        case .subscriptionIdentifier: return 0x0B
        case .sessionExpiryInterval: return 0x11
        case .assignedClientIdentifier: return 0x12
        case .serverKeepAlive: return 0x13
        case .authenticationMethod: return 0x15
        case .authenticationData: return 0x16
        case .requestProblemInformation: return 0x17
        case .willDelayInterval: return 0x18
        case .requestResponseInformation: return 0x19
        case .responseInformation: return 0x1A
        case .serverReference: return 0x1C
        case .reasonString: return 0x1F
        case .receiveMaximum: return 0x21
        case .topicAliasMaximum: return 0x22
        case .topicAlias: return 0x23
        case .maximumQoS: return 0x24
        case .retainAvailable: return 0x25
        case .userProperty: return 0x26
        case .maximumPacketSize: return 0x27
        case .wildcardSubscriptionAvailable: return 0x28
        case .subscriptionIdentifierAvailable: return 0x29
        case .sharedSubscriptionAvailable: return 0x2A
        }
    }

    /// Bytes this property takes on the wire, identifier included.
    var encodedSize: Int {
        switch self {
        case .payloadFormatIndicator, .requestProblemInformation, .requestResponseInformation, .maximumQoS,
             .retainAvailable, .wildcardSubscriptionAvailable, .subscriptionIdentifierAvailable,
             .sharedSubscriptionAvailable:
            return 2
        case .serverKeepAlive, .receiveMaximum, .topicAliasMaximum, .topicAlias:
            return 3
        case .messageExpiryInterval, .sessionExpiryInterval, .willDelayInterval, .maximumPacketSize:
            return 5
        case .contentType(let s), .responseTopic(let s), .assignedClientIdentifier(let s),
             .authenticationMethod(let s), .responseInformation(let s), .serverReference(let s),
             .reasonString(let s):
            return 3 + s.utf8.count
        case .correlationData(let b), .authenticationData(let b):
            return 3 + b.readableBytes
        case .subscriptionIdentifier(let v):
            return 1 + variableIntegerSize(v)
        case .userProperty(let k, let v):
            return 5 + k.utf8.count + v.utf8.count
        }
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(identifier)
        switch self {
        case .payloadFormatIndicator(let v), .requestProblemInformation(let v), .requestResponseInformation(let v),
             .maximumQoS(let v), .retainAvailable(let v), .wildcardSubscriptionAvailable(let v),
             .subscriptionIdentifierAvailable(let v), .sharedSubscriptionAvailable(let v):
            buffer.writeInteger(v)
        case .serverKeepAlive(let v), .receiveMaximum(let v), .topicAliasMaximum(let v), .topicAlias(let v):
            buffer.writeInteger(v)
        case .messageExpiryInterval(let v), .sessionExpiryInterval(let v), .willDelayInterval(let v),
             .maximumPacketSize(let v):
            buffer.writeInteger(v)
        case .contentType(let s), .responseTopic(let s), .assignedClientIdentifier(let s),
             .authenticationMethod(let s), .responseInformation(let s), .serverReference(let s),
             .reasonString(let s):
            buffer.writeMQTTString(s)
        case .correlationData(let b), .authenticationData(let b):
            buffer.writeMQTTBinary(b)
        case .subscriptionIdentifier(let v):
            buffer.writeMQTTVariableInteger(v)
        case .userProperty(let k, let v):
            buffer.writeMQTTString(k)
            buffer.writeMQTTString(v)
        }
    }

    static func read(from buffer: inout ByteBuffer) throws -> Property {
        let identifier = try buffer.readMQTTVariableInteger()
        func byte() throws -> UInt8 {
            guard let v = buffer.readInteger(as: UInt8.self) else { throw MQTTError.malformedPacket("property cut short") }
            return v
        }
        func flag(_ name: StaticString) throws -> UInt8 {
            let v = try byte()
            guard v <= 1 else { throw MQTTError.protocolError("\(name) must be 0 or 1") }
            return v
        }
        func u16() throws -> UInt16 {
            guard let v = buffer.readInteger(as: UInt16.self) else { throw MQTTError.malformedPacket("property cut short") }
            return v
        }
        func u32() throws -> UInt32 {
            guard let v = buffer.readInteger(as: UInt32.self) else { throw MQTTError.malformedPacket("property cut short") }
            return v
        }
        switch identifier {
        // Any value is forwarded as it came (Mosquitto 2.0 does not check it either).
        case 0x01: return .payloadFormatIndicator(try byte())
        case 0x02: return .messageExpiryInterval(try u32())
        case 0x03: return .contentType(try buffer.readMQTTString("content type"))
        case 0x08: return .responseTopic(try buffer.readMQTTString("response topic"))
        case 0x09: return .correlationData(try buffer.readMQTTBinary("correlation data"))
        case 0x0B:
            let v = try buffer.readMQTTVariableInteger()
            guard v > 0 else { throw MQTTError.protocolError("subscription identifier 0") }
            return .subscriptionIdentifier(v)
        case 0x11: return .sessionExpiryInterval(try u32())
        case 0x12: return .assignedClientIdentifier(try buffer.readMQTTString("assigned client identifier"))
        case 0x13: return .serverKeepAlive(try u16())
        case 0x15: return .authenticationMethod(try buffer.readMQTTString("authentication method"))
        case 0x16: return .authenticationData(try buffer.readMQTTBinary("authentication data"))
        case 0x17: return .requestProblemInformation(try flag("request problem information"))
        case 0x18: return .willDelayInterval(try u32())
        case 0x19: return .requestResponseInformation(try flag("request response information"))
        case 0x1A: return .responseInformation(try buffer.readMQTTString("response information"))
        case 0x1C: return .serverReference(try buffer.readMQTTString("server reference"))
        case 0x1F: return .reasonString(try buffer.readMQTTString("reason string"))
        case 0x21:
            let v = try u16()
            guard v > 0 else { throw MQTTError.protocolError("receive maximum 0") }
            return .receiveMaximum(v)
        case 0x22: return .topicAliasMaximum(try u16())
        case 0x23:
            let v = try u16()
            guard v > 0 else { throw MQTTError.malformedPacket("topic alias 0") }
            return .topicAlias(v)
        case 0x24: return .maximumQoS(try flag("maximum QoS"))
        case 0x25: return .retainAvailable(try flag("retain available"))
        case 0x26:
            let key = try buffer.readMQTTString("user property name")
            let value = try buffer.readMQTTString("user property value")
            return .userProperty(key, value)
        case 0x27:
            let v = try u32()
            guard v > 0 else { throw MQTTError.protocolError("maximum packet size 0") }
            return .maximumPacketSize(v)
        case 0x28: return .wildcardSubscriptionAvailable(try flag("wildcard subscription available"))
        case 0x29: return .subscriptionIdentifierAvailable(try flag("subscription identifier available"))
        case 0x2A: return .sharedSubscriptionAvailable(try flag("shared subscription available"))
        default: throw MQTTError.malformedPacket("unknown property identifier \(identifier)")
        }
    }
}

/// Where a property list appears; decides which properties are allowed.
public enum PropertyContext: Sendable {
    case connect, connack, publish, will, puback, pubrec, pubrel, pubcomp, subscribe, suback, unsubscribe,
         unsuback, disconnect, auth

    func allows(_ identifier: UInt8) -> Bool {
        if identifier == 0x26 { return true }
        switch self {
        case .connect: return [0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x27].contains(identifier)
        case .connack:
            return [0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x27, 0x28, 0x29, 0x2A]
                .contains(identifier)
        case .publish: return [0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23].contains(identifier)
        case .will: return [0x01, 0x02, 0x03, 0x08, 0x09, 0x18].contains(identifier)
        case .puback, .pubrec, .pubrel, .pubcomp, .suback, .unsuback: return identifier == 0x1F
        case .subscribe: return identifier == 0x0B
        case .unsubscribe: return false
        case .disconnect: return [0x11, 0x1C, 0x1F].contains(identifier)
        case .auth: return [0x15, 0x16, 0x1F].contains(identifier)
        }
    }
}

/// An ordered list of MQTT 5.0 properties.
public struct Properties: Hashable, Sendable, ExpressibleByArrayLiteral, Sequence {
    public var items: [Property]

    public init(_ items: [Property] = []) { self.items = items }
    public init(arrayLiteral elements: Property...) { self.items = elements }

    public var isEmpty: Bool { items.isEmpty }
    public func makeIterator() -> IndexingIterator<[Property]> { items.makeIterator() }
    public mutating func append(_ property: Property) { items.append(property) }

    /// Only the properties a packet of kind `context` may carry, in order (for lists assembled by code
    /// rather than decoded, such as a hook's rewritten message).
    public func allowed(in context: PropertyContext) -> Properties {
        Properties(items.filter { context.allows($0.identifier) })
    }

    /// Bytes of the properties alone, without the length prefix.
    public var encodedLength: Int { items.reduce(0) { $0 + $1.encodedSize } }

    /// Bytes on the wire including the length prefix.
    public var encodedSize: Int {
        let length = encodedLength
        return variableIntegerSize(length) + length
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeMQTTVariableInteger(encodedLength)
        for item in items { item.write(to: &buffer) }
    }

    /// Reads a length-prefixed property list, checking each property is allowed in `context` and that only
    /// user properties (and, server to client, subscription identifiers) repeat.
    static func read(from buffer: inout ByteBuffer, context: PropertyContext) throws -> Properties {
        let length = try buffer.readMQTTVariableInteger()
        guard length > 0 else { return Properties() }
        guard var slice = buffer.readSlice(length: length) else {
            throw MQTTError.malformedPacket("property length \(length) beyond the packet")
        }
        var items: [Property] = []
        var seen: UInt64 = 0
        while slice.readableBytes > 0 {
            let property = try Property.read(from: &slice)
            let id = property.identifier
            guard context.allows(id) else {
                let problem = "property 0x\(String(id, radix: 16)) not allowed in \(context)"
                // MQTT 5.0 2.2.2.2: a property a packet may not carry makes it malformed. Mosquitto says so for
                // SUBSCRIBE and UNSUBSCRIBE, and Protocol Error for the other packets.
                if context == .subscribe || context == .unsubscribe { throw MQTTError.malformedPacket(problem) }
                throw MQTTError.protocolError(problem)
            }
            if id != 0x26 && !(id == 0x0B && context == .publish) {
                guard seen & (1 << UInt64(id)) == 0 else {
                    throw MQTTError.protocolError("property 0x\(String(id, radix: 16)) appears twice")
                }
                seen |= 1 << UInt64(id)
            }
            items.append(property)
        }
        return Properties(items)
    }
}

extension Properties {
    /// The user properties in order.
    public var userProperties: [(String, String)] {
        items.compactMap { if case .userProperty(let k, let v) = $0 { return (k, v) } else { return nil } }
    }
    public var sessionExpiryInterval: UInt32? {
        for p in items { if case .sessionExpiryInterval(let v) = p { return v } }
        return nil
    }
    public var messageExpiryInterval: UInt32? {
        for p in items { if case .messageExpiryInterval(let v) = p { return v } }
        return nil
    }
    public var receiveMaximum: UInt16? {
        for p in items { if case .receiveMaximum(let v) = p { return v } }
        return nil
    }
    public var maximumPacketSize: UInt32? {
        for p in items { if case .maximumPacketSize(let v) = p { return v } }
        return nil
    }
    public var topicAliasMaximum: UInt16? {
        for p in items { if case .topicAliasMaximum(let v) = p { return v } }
        return nil
    }
    public var topicAlias: UInt16? {
        for p in items { if case .topicAlias(let v) = p { return v } }
        return nil
    }
    public var willDelayInterval: UInt32? {
        for p in items { if case .willDelayInterval(let v) = p { return v } }
        return nil
    }
    public var subscriptionIdentifier: Int? {
        for p in items { if case .subscriptionIdentifier(let v) = p { return v } }
        return nil
    }
    public var authenticationMethod: String? {
        for p in items { if case .authenticationMethod(let v) = p { return v } }
        return nil
    }
    public var requestProblemInformation: UInt8? {
        for p in items { if case .requestProblemInformation(let v) = p { return v } }
        return nil
    }
    public var payloadFormatIndicator: UInt8? {
        for p in items { if case .payloadFormatIndicator(let v) = p { return v } }
        return nil
    }
}
