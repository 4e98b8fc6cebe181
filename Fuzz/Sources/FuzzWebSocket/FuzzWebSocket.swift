import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
import PluginAPI
import Synchronization
import WebSocketPlugin

/// Input: byte 0 chooses whether a valid upgrade request comes first (bit 0: then the rest are frames) and
/// the largest frame accepted; byte 1 seeds the sizes the rest arrives in; the rest is what the client sends.
/// The `websockets` decorator runs on an `EmbeddedChannel` around a recorder standing in for MQTT, which
/// answers every read with bytes of its own; then the handshake timeout passes and the connection closes.
/// Checks: after a valid upgrade, what the MQTT side received is a prefix of the binary payloads the client
/// sent, up to the first frame a server must refuse; after a `101` the server writes only whole, unmasked
/// frames.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebSocket(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count >= 2 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: start, count: count))
    let upgradeFirst = input[0] & 1 != 0
    let maxFrameSize = 16 + Int(input[0] >> 1) * 8
    var stream = upgradeFirst ? Array(upgradeRequest.utf8) : []
    stream += input[2...]

    let channel = EmbeddedChannel()
    let received = ReceivedBytes()
    let initializer = WebSocketMQTT.wrap({ channel, _ in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(Recorder(received: received))
        }
    }, maxFrameSize: maxFrameSize, handshakeTimeout: .seconds(10), logger: logger)
    try! initializer(channel, ConnectionFacts(listener: "9001")).wait()
    try! channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()

    var offset = 0
    var cuts = FuzzCuts(seed: input[1], largest: 97)
    while offset < stream.count, channel.isActive {
        let size = min(stream.count - offset, cuts.next())
        do {
            try channel.writeInbound(channel.allocator.buffer(bytes: stream[offset..<offset + size]))
        } catch {
            break
        }
        channel.embeddedEventLoop.run()
        offset += size
    }
    channel.embeddedEventLoop.advanceTime(by: .seconds(11))  // past the handshake timeout
    _ = try? channel.close().wait()  // what the MQTT side closing sends (a close frame) is checked too
    if upgradeFirst {
        let seen = received.bytes.withLock { $0 }
        let sent = dataPayloads(Array(input[2...]), maxFrameSize: maxFrameSize)
        precondition(seen.count <= sent.count && Array(sent.prefix(seen.count)) == seen,
                     "MQTT received \(seen.count) bytes that are not what the client sent (\(sent.count) bytes)")
    }

    var written: [UInt8] = []
    while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
        written += buffer.readableBytesView
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)  // plain finish() throws before it drains the loop
    let head = Array("HTTP/1.1 101".utf8)
    if written.starts(with: head), let end = headerEnd(written) {
        precondition(wholeServerFrames(written[end...]), "the server wrote a broken or masked frame")
    }
    return 0
}

private let logger = Logger(label: "fuzz.websocket", factory: { _ in SwiftLogNoOpLogHandler() })
private let upgradeRequest = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"

/// Stands in for the MQTT handler: keeps what it reads and answers each read with four bytes.
private final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let received: ReceivedBytes

    init(received: ReceivedBytes) { self.received = received }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received.bytes.withLock { $0 += buffer.readableBytesView }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: [0xD0, 0x00, 0x40, 0x02])),
                              promise: nil)
    }
}

private final class ReceivedBytes: Sendable {
    let bytes = Mutex<[UInt8]>([])
}

/// A frame's first bytes: flags, opcode, mask bit, payload length and where the mask key (when masked)
/// or the payload starts; nil when they have not arrived whole.
private struct FrameHeader {
    var fin: Bool, reserved: UInt8, opcode: UInt8, masked: Bool, length: Int, end: Int

    init?(_ bytes: ArraySlice<UInt8>, at index: Int) {
        guard index + 2 <= bytes.endIndex else { return nil }
        fin = bytes[index] & 0x80 != 0
        reserved = bytes[index] & 0x70
        opcode = bytes[index] & 0x0F
        masked = bytes[index + 1] & 0x80 != 0
        length = Int(bytes[index + 1] & 0x7F)
        let extra = length == 126 ? 2 : length == 127 ? 8 : 0
        guard index + 2 + extra <= bytes.endIndex else { return nil }
        if extra > 0 {
            guard extra == 2 || bytes[index + 2] & 0x80 == 0 else { return nil }  // a 64-bit length's top bit is 0
            length = bytes[index + 2..<index + 2 + extra].reduce(0) { $0 << 8 | Int($1) }
        }
        end = index + 2 + extra
    }
}

/// The payloads of the binary and continuation frames in `bytes`, in order, up to the first frame a server
/// refuses or that has not arrived whole.
private func dataPayloads(_ bytes: [UInt8], maxFrameSize: Int) -> [UInt8] {
    var out: [UInt8] = []
    var index = 0
    var inMessage = false
    while let header = FrameHeader(bytes[...], at: index), header.reserved == 0, header.masked,
          header.length <= maxFrameSize, header.end + 4 + header.length <= bytes.count {
        let mask = Array(bytes[header.end..<header.end + 4])
        let start = header.end + 4
        let payload = bytes[start..<start + header.length].enumerated().map { $0.element ^ mask[$0.offset % 4] }
        let control = header.fin && header.length <= 125
        switch header.opcode {
        case 2 where !inMessage, 0 where inMessage:
            inMessage = !header.fin
            out += payload
        case 9 where control, 10 where control:
            break  // ping, pong
        default:
            return out  // text, close, a misplaced continuation, an unknown opcode, a bad control frame
        }
        index = start + header.length
    }
    return out
}

private func headerEnd(_ bytes: [UInt8]) -> Int? {
    let marker: [UInt8] = [13, 10, 13, 10]
    guard bytes.count >= 4 else { return nil }
    for index in 0...(bytes.count - 4) where Array(bytes[index..<index + 4]) == marker { return index + 4 }
    return nil
}

/// Whether `bytes` is a sequence of whole server frames, none masked.
private func wholeServerFrames(_ bytes: ArraySlice<UInt8>) -> Bool {
    var index = bytes.startIndex
    while index < bytes.endIndex {
        guard let header = FrameHeader(bytes, at: index), !header.masked,
              header.end + header.length <= bytes.endIndex else { return false }
        index = header.end + header.length
    }
    return true
}
