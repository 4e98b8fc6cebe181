import FuzzSupport
import MQTT
import NIOCore

/// Input layout: byte 0 picks the decoder's starting version (none, as a broker starts; 3.1; 3.1.1; 5.0) and
/// whether a maximum packet size applies; byte 1 seeds the sizes the rest is cut into; the rest is the stream.
/// The same stream is also decoded in one piece: both must give the same packets and the same outcome.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count >= 2 else { return 0 }
    let bytes = UnsafeBufferPointer(start: start, count: count)
    let versions: [ProtocolVersion?] = [nil, .v3_1, .v3_1_1, .v5]
    let version = versions[Int(bytes[0] & 3)]
    let limit = bytes[0] & 4 != 0 ? 64 + Int(bytes[0] >> 3) * 16 : 0
    let stream = Array(bytes[2...])

    let whole = decodeAll(stream, version: version, limit: limit, cuts: nil)
    let pieces = decodeAll(stream, version: version, limit: limit, cuts: bytes[1])
    precondition(whole.packets == pieces.packets, "cut stream decoded to other packets")
    precondition(whole.failed == pieces.failed, "cut stream: other outcome")

    for (packet, packetVersion) in zip(whole.packets, whole.versions) {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        packet.write(version: packetVersion, to: &buffer)
        var decoder = MQTTDecoder(version: packetVersion)
        let again: Packet?
        do {
            again = try decoder.decode(buffer: &buffer)
        } catch {
            preconditionFailure("re-encoded \(packet) does not decode: \(error)")
        }
        precondition(again == packet, "round trip: \(packet) came back as \(String(describing: again))")
        precondition(buffer.readableBytes == 0, "round trip left \(buffer.readableBytes) bytes")
    }
    return 0
}

struct Decoded {
    var packets: [Packet] = []
    var versions: [ProtocolVersion] = []
    var failed = false
}

/// Decodes `stream` as a connection's reads do: bytes arrive, every whole packet is taken, an error ends it.
func decodeAll(_ stream: [UInt8], version: ProtocolVersion?, limit: Int, cuts: UInt8?) -> Decoded {
    var decoder = MQTTDecoder(version: version, maximumPacketSize: limit)
    var buffer = ByteBufferAllocator().buffer(capacity: stream.count)
    var result = Decoded()
    var offset = 0
    var pieces = cuts.map { FuzzCuts(seed: $0, largest: 23) }
    while offset < stream.count {
        let size = min(stream.count - offset, pieces?.next() ?? stream.count)
        buffer.writeBytes(stream[offset..<offset + size])
        offset += size
        do {
            while true {
                // What the read gate looks ahead with: the length it reads must be the length decoded.
                let header = MQTTDecoder.fixedHeader(in: buffer, at: buffer.readerIndex)
                let before = buffer.readerIndex
                guard let packet = try decoder.decode(buffer: &buffer) else { break }
                precondition(header?.totalLength == buffer.readerIndex - before,
                             "fixedHeader says \(String(describing: header?.totalLength)), decoded \(buffer.readerIndex - before)")
                result.packets.append(packet)
                // The version it was read with: a CONNECT sets it when none was set.
                result.versions.append(decoder.version ?? .v3_1_1)
            }
        } catch {
            result.failed = true
            return result
        }
        buffer.discardReadBytes()
    }
    return result
}
