import NIOCore

extension Packet {
    /// Appends this packet's bytes for a peer speaking `version`.
    public func write(version: ProtocolVersion, to buffer: inout ByteBuffer) {
        let v5 = version == .v5
        switch self {
        case .connect(let p): p.write(to: &buffer)
        case .connack(let p):
            let props = v5 ? p.properties.encodedSize : 0
            Self.writeFixedHeader(0x20, remaining: 2 + props, to: &buffer)
            buffer.writeInteger(UInt8(p.sessionPresent ? 1 : 0))
            buffer.writeInteger(p.code)
            if v5 { p.properties.write(to: &buffer) }
        case .publish(let p): p.write(version: version, to: &buffer)
        case .ack(let p):
            let first: UInt8 = p.type.rawValue << 4 | p.type.requiredFlags
            if v5 && (p.reasonCode != .success || !p.properties.isEmpty) {
                let withProps = !p.properties.isEmpty
                Self.writeFixedHeader(first, remaining: 3 + (withProps ? p.properties.encodedSize : 0), to: &buffer)
                buffer.writeInteger(p.packetID)
                buffer.writeInteger(p.reasonCode.rawValue)
                if withProps { p.properties.write(to: &buffer) }
            } else {
                // One write rather than three (each write reaches the buffer's storage through a class
                // property, at the cost of a dynamic exclusivity check).
                let id = p.packetID
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 4) { out in
                    out[0] = first
                    out[1] = 2
                    out[2] = UInt8(truncatingIfNeeded: id >> 8)
                    out[3] = UInt8(truncatingIfNeeded: id)
                    return 4
                }
            }
        case .subscribe(let p):
            var remaining = 2 + (v5 ? p.properties.encodedSize : 0)
            for s in p.subscriptions { remaining += 3 + s.filter.utf8.count }
            Self.writeFixedHeader(0x82, remaining: remaining, to: &buffer)
            buffer.writeInteger(p.packetID)
            if v5 { p.properties.write(to: &buffer) }
            for s in p.subscriptions {
                buffer.writeMQTTString(s.filter)
                var options = s.options.qos.rawValue
                if v5 {
                    if s.options.noLocal { options |= 0x04 }
                    if s.options.retainAsPublished { options |= 0x08 }
                    options |= (s.options.retainHandling & 0x03) << 4
                }
                buffer.writeInteger(options)
            }
        case .suback(let p):
            let remaining = 2 + (v5 ? p.properties.encodedSize : 0) + p.reasonCodes.count
            Self.writeFixedHeader(0x90, remaining: remaining, to: &buffer)
            buffer.writeInteger(p.packetID)
            if v5 { p.properties.write(to: &buffer) }
            for code in p.reasonCodes { buffer.writeInteger(code.rawValue) }
        case .unsubscribe(let p):
            var remaining = 2 + (v5 ? p.properties.encodedSize : 0)
            for f in p.filters { remaining += 2 + f.utf8.count }
            Self.writeFixedHeader(0xA2, remaining: remaining, to: &buffer)
            buffer.writeInteger(p.packetID)
            if v5 { p.properties.write(to: &buffer) }
            for f in p.filters { buffer.writeMQTTString(f) }
        case .unsuback(let p):
            let remaining = 2 + (v5 ? p.properties.encodedSize + p.reasonCodes.count : 0)
            Self.writeFixedHeader(0xB0, remaining: remaining, to: &buffer)
            buffer.writeInteger(p.packetID)
            if v5 {
                p.properties.write(to: &buffer)
                for code in p.reasonCodes { buffer.writeInteger(code.rawValue) }
            }
        case .pingreq:
            buffer.writeInteger(UInt16(0xC000))
        case .pingresp:
            buffer.writeInteger(UInt16(0xD000))
        case .disconnect(let p):
            if v5 && (p.reasonCode != .success || !p.properties.isEmpty) {
                let withProps = !p.properties.isEmpty
                Self.writeFixedHeader(0xE0, remaining: 1 + (withProps ? p.properties.encodedSize : 0), to: &buffer)
                buffer.writeInteger(p.reasonCode.rawValue)
                if withProps { p.properties.write(to: &buffer) }
            } else {
                buffer.writeInteger(UInt16(0xE000))
            }
        case .auth(let p):
            if p.reasonCode == .success && p.properties.isEmpty {
                buffer.writeInteger(UInt16(0xF000))
            } else {
                Self.writeFixedHeader(0xF0, remaining: 1 + p.properties.encodedSize, to: &buffer)
                buffer.writeInteger(p.reasonCode.rawValue)
                p.properties.write(to: &buffer)
            }
        }
    }

    @inlinable
    static func writeFixedHeader(_ first: UInt8, remaining: Int, to buffer: inout ByteBuffer) {
        buffer.writeInteger(first)
        buffer.writeMQTTVariableInteger(remaining)
    }
}

extension ConnectPacket {
    func write(to buffer: inout ByteBuffer) {
        let v5 = protocolVersion == .v5
        var remaining = 2 + protocolVersion.protocolName.utf8.count + 1 + 1 + 2
        if v5 { remaining += properties.encodedSize }
        remaining += 2 + clientID.utf8.count
        if let will {
            if v5 { remaining += will.properties.encodedSize }
            remaining += 2 + will.topic.utf8.count + 2 + will.payload.readableBytes
        }
        if let username { remaining += 2 + username.utf8.count }
        if let password { remaining += 2 + password.readableBytes }
        Packet.writeFixedHeader(0x10, remaining: remaining, to: &buffer)
        buffer.writeMQTTString(protocolVersion.protocolName)
        buffer.writeInteger(protocolVersion.rawValue)
        var flags: UInt8 = cleanStart ? 0x02 : 0
        if let will {
            flags |= 0x04 | will.qos.rawValue << 3
            if will.retain { flags |= 0x20 }
        }
        if password != nil { flags |= 0x40 }
        if username != nil { flags |= 0x80 }
        buffer.writeInteger(flags)
        buffer.writeInteger(keepAlive)
        if v5 { properties.write(to: &buffer) }
        buffer.writeMQTTString(clientID)
        if let will {
            if v5 { will.properties.write(to: &buffer) }
            buffer.writeMQTTString(will.topic)
            buffer.writeMQTTBinary(will.payload)
        }
        if let username { buffer.writeMQTTString(username) }
        if let password { buffer.writeMQTTBinary(password) }
    }
}

extension PublishPacket {
    /// The first byte of the fixed header: type, DUP, QoS, RETAIN.
    @inlinable
    public var firstByte: UInt8 {
        var first: UInt8 = 0x30 | qos.rawValue << 1
        if dup { first |= 0x08 }
        if retain { first |= 0x01 }
        return first
    }

    /// Appends this PUBLISH for a peer speaking `version` (properties are left out below 5.0).
    ///
    /// Fixed header, topic, packet identifier and (without properties to write) the payload go in with one
    /// write: each separate write of a `ByteBuffer` reaches its storage through a class property, at the cost
    /// of a dynamic exclusivity check, and a PUBLISH is written for every message delivered.
    public func write(version: ProtocolVersion, to buffer: inout ByteBuffer) {
        let v5 = version == .v5
        let topicLength = topic.utf8.count
        let withProperties = v5 && !properties.isEmpty
        let remaining = 2 + topicLength + (qos == .atMostOnce ? 0 : 2)
            + (v5 ? properties.encodedSize : 0) + payload.readableBytes
        // Up to the properties; then, when there are none to write, their zero length (5.0) and the payload.
        var lengthBytes = 1
        while remaining >> (7 * lengthBytes) > 0 { lengthBytes += 1 }
        let head = 1 + lengthBytes + 2 + topicLength + (qos == .atMostOnce ? 0 : 2)
        let inline = withProperties ? 0 : (v5 ? 1 : 0) + payload.readableBytes
        let first = firstByte
        let id = packetID ?? 0
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: head + inline) { out in
            var index = 0
            out[index] = first
            index += 1
            var value = remaining
            repeat {
                var byte = UInt8(value & 0x7F)
                value >>= 7
                if value > 0 { byte |= 0x80 }
                out[index] = byte
                index += 1
            } while value > 0
            out[index] = UInt8(truncatingIfNeeded: topicLength >> 8)
            out[index + 1] = UInt8(truncatingIfNeeded: topicLength)
            index += 2
            let target = UnsafeMutableRawBufferPointer(rebasing: out[index..<(index + topicLength)])
            if topic.utf8.withContiguousStorageIfAvailable({ target.copyMemory(from: UnsafeRawBufferPointer($0)) })
                == nil {
                target.copyBytes(from: topic.utf8)
            }
            index += topicLength
            if qos != .atMostOnce {
                out[index] = UInt8(truncatingIfNeeded: id >> 8)
                out[index + 1] = UInt8(truncatingIfNeeded: id)
                index += 2
            }
            if !withProperties {
                if v5 {
                    out[index] = 0
                    index += 1
                }
                payload.withUnsafeReadableBytes { bytes in
                    UnsafeMutableRawBufferPointer(rebasing: out[index..<(index + bytes.count)]).copyMemory(from: bytes)
                }
                index += payload.readableBytes
            }
            return index
        }
        if withProperties {
            properties.write(to: &buffer)
            buffer.writeImmutableBuffer(payload)
        }
    }

    /// The size of this PUBLISH on the wire for `version`.
    public func encodedSize(version: ProtocolVersion) -> Int {
        let remaining = 2 + topic.utf8.count + (qos == .atMostOnce ? 0 : 2)
            + (version == .v5 ? properties.encodedSize : 0) + payload.readableBytes
        return 1 + variableIntegerSize(remaining) + remaining
    }
}
