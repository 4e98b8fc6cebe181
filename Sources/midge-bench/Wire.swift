import MQTT
import NIOCore

/// The hot-path frame scanner: reads the packets a load generator sees by the million (PUBLISH and the QoS
/// acknowledgements) straight from the bytes, without building `Packet` values, and hands every other packet
/// (CONNACK, SUBACK, DISCONNECT, ...) to the repo's own `MQTTDecoder`.
enum ScanStop {
    /// The buffer ends inside a packet.
    case needMore
    /// A packet that is not on the hot path starts at the reader index; its whole length.
    case control(Int)
}

struct WireError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What the scanner calls for each hot packet.
protocol HotPacketSink: AnyObject {
    /// A PUBLISH; `payload` points into the read buffer and is valid only during the call.
    func onPublish(qos: UInt8, packetID: UInt16, payload: UnsafeRawBufferPointer)
    /// PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7).
    func onAck(type: UInt8, packetID: UInt16)
    /// PINGREQ (12) or PINGRESP (13).
    func onPing(type: UInt8)
}

/// Reads a variable byte integer at `offset`; nil when the buffer ends first.
@inline(__always)
func readVarInt(_ raw: UnsafeRawBufferPointer, at offset: Int) throws -> (value: Int, length: Int)? {
    var value = 0
    var multiplier = 1
    for index in 0..<4 {
        let position = offset + index
        guard position < raw.count else { return nil }
        let byte = raw[position]
        value += Int(byte & 0x7F) * multiplier
        if byte & 0x80 == 0 { return (value, index + 1) }
        multiplier &*= 128
    }
    throw WireError("variable byte integer longer than four bytes")
}

/// Scans whole hot packets from `raw`, calling `sink` for each. Returns the bytes consumed and why it stopped.
@inline(__always)
func scanHotPackets(_ raw: UnsafeRawBufferPointer, v5: Bool, sink: some HotPacketSink) throws -> (Int, ScanStop) {
    var index = 0
    let count = raw.count
    while true {
        guard count - index >= 2 else { return (index, .needMore) }
        let first = raw[index]
        guard let (remaining, lengthBytes) = try readVarInt(raw, at: index + 1) else { return (index, .needMore) }
        let total = 1 + lengthBytes + remaining
        guard count - index >= total else { return (index, .needMore) }
        let body = index + 1 + lengthBytes
        let end = index + total
        switch first >> 4 {
        case 3:  // PUBLISH
            let qos = (first >> 1) & 0x03
            guard remaining >= 2 else { throw WireError("PUBLISH cut short") }
            var position = body + 2 + (Int(raw[body]) << 8 | Int(raw[body + 1]))
            var packetID: UInt16 = 0
            if qos > 0 {
                guard position + 2 <= end else { throw WireError("PUBLISH cut short") }
                packetID = UInt16(raw[position]) << 8 | UInt16(raw[position + 1])
                position += 2
            }
            if v5 {
                guard position < end, let (propertiesLength, n) = try readVarInt(raw, at: position) else {
                    throw WireError("PUBLISH properties cut short")
                }
                position += n + propertiesLength
            }
            guard position <= end else { throw WireError("PUBLISH cut short") }
            sink.onPublish(qos: qos, packetID: packetID,
                           payload: UnsafeRawBufferPointer(rebasing: raw[position..<end]))
        case 4, 5, 6, 7:  // PUBACK, PUBREC, PUBREL, PUBCOMP
            guard remaining >= 2 else { throw WireError("acknowledgement cut short") }
            sink.onAck(type: first >> 4, packetID: UInt16(raw[body]) << 8 | UInt16(raw[body + 1]))
        case 12, 13:
            sink.onPing(type: first >> 4)
        default:
            return (index, .control(total))
        }
        index = end
    }
}

/// Moves bytes from `buffer` into `partial` (which holds the start of a packet) until `partial` holds the whole
/// packet, and no more; true when it does. Only the missing bytes are copied, never the rest of the read.
func completePartialPacket(_ partial: inout ByteBuffer, from buffer: inout ByteBuffer) throws -> Bool {
    func missing(_ partial: ByteBuffer) throws -> Int {
        try partial.withUnsafeReadableBytes { raw in
            guard raw.count >= 2, let (remaining, n) = try readVarInt(raw, at: 1) else { return -1 }
            return 1 + n + remaining - raw.count
        }
    }
    while true {
        let need = try missing(partial)
        if need == 0 { return true }
        guard buffer.readableBytes > 0 else { return false }
        // Header incomplete (-1): one byte at a time, at most four times.
        var chunk = buffer.readSlice(length: need < 0 ? 1 : min(need, buffer.readableBytes))!
        partial.writeBuffer(&chunk)
    }
}

/// Keeps the unread tail of a read buffer in a buffer of its own (not the whole read buffer).
func savePartialPacket(_ buffer: inout ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
    var rest = allocator.buffer(capacity: max(buffer.readableBytes * 2, 256))
    rest.writeBuffer(&buffer)
    return rest
}

extension ByteBuffer {
    /// Appends a two-byte acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP): success, no properties.
    @inline(__always)
    mutating func writeAck(type: UInt8, packetID: UInt16) {
        let first: UInt8 = type << 4 | (type == 6 ? 0x02 : 0)
        writeInteger(UInt32(first) << 24 | UInt32(2) << 16 | UInt32(packetID))
    }
}

/// A pre-encoded PUBLISH: built once with the repo's encoder, copied per message with only the packet
/// identifier (and, for latency runs, the timestamp in the payload) patched.
struct PublishTemplate {
    let bytes: ByteBuffer
    /// Offset of the packet identifier from the start of the packet, when QoS > 0.
    let packetIDOffset: Int
    /// Offset of the payload from the start of the packet.
    let payloadOffset: Int

    init(topic: String, payloadSize: Int, qos: QoS, version: ProtocolVersion, allocator: ByteBufferAllocator) {
        var payload = allocator.buffer(capacity: payloadSize)
        payload.writeRepeatingByte(0x61, count: payloadSize)
        let packet = PublishPacket(topic: topic, payload: payload, qos: qos,
                                   packetID: qos == .atMostOnce ? nil : 1)
        var buffer = allocator.buffer(capacity: packet.encodedSize(version: version))
        packet.write(version: version, to: &buffer)
        bytes = buffer
        let payloadOffset = buffer.readableBytes - payloadSize
        self.payloadOffset = payloadOffset
        // Variable header: topic, packet id (QoS > 0), properties length 0 (5.0): the id sits just before it.
        packetIDOffset = payloadOffset - 2 - (version == .v5 ? 1 : 0)
    }

    /// A buffer of `count` copies (QoS 0: every copy is the same bytes, so it is written again and again).
    func batch(_ count: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: bytes.readableBytes * count)
        for _ in 0..<count { buffer.writeImmutableBuffer(bytes) }
        return buffer
    }

    /// Appends one copy with `packetID` (ignored at QoS 0) and, when `timestamp` is given, the timestamp
    /// in the payload's first eight bytes.
    @inline(__always)
    func append(to buffer: inout ByteBuffer, packetID: UInt16, timestamp: UInt64? = nil, qos: QoS) {
        let start = buffer.writerIndex
        buffer.writeImmutableBuffer(bytes)
        if qos != .atMostOnce { buffer.setInteger(packetID, at: start + packetIDOffset) }
        if let timestamp { buffer.setInteger(timestamp, at: start + payloadOffset) }
    }
}

/// Monotonic nanoseconds (CLOCK_MONOTONIC, the clock NIO's deadlines use).
@inline(__always)
func nowNanos() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
