import Foundation
import Logging
import NIOCore
import NIOEmbedded
import PluginAPI
@testable import WebSocketPlugin

let webSocketTestLogger = Logger(label: "midge.websocket.tests")

/// The example key of RFC 6455 section 1.3 and the accept value it must produce.
let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="
let sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/// An upgrade request as a browser or paho sends it, with `extraHeaders` (full lines without CRLF).
func upgradeRequest(path: String = "/mqtt", method: String = "GET", protocols: String? = "mqtt",
                    key: String? = sampleKey, version: String? = "13", extraHeaders: [String] = []) -> String {
    var lines = ["\(method) \(path) HTTP/1.1", "Host: 127.0.0.1:9001", "Upgrade: websocket", "Connection: Upgrade"]
    if let key { lines.append("Sec-WebSocket-Key: \(key)") }
    if let version { lines.append("Sec-WebSocket-Version: \(version)") }
    if let protocols { lines.append("Sec-WebSocket-Protocol: \(protocols)") }
    lines += extraHeaders
    return lines.joined(separator: "\r\n") + "\r\n\r\n"
}

/// A client frame: masked unless `masked` is false, with `rsv` ORed into the first byte.
func clientFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true, rsv: UInt8 = 0) -> [UInt8] {
    var bytes: [UInt8] = [(fin ? 0x80 : 0) | rsv | opcode]
    let maskBit: UInt8 = masked ? 0x80 : 0
    switch payload.count {
    case ..<126:
        bytes.append(maskBit | UInt8(payload.count))
    case ..<65536:
        bytes.append(maskBit | 126)
        bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    default:
        bytes.append(maskBit | 127)
        bytes += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
    }
    guard masked else { return bytes + payload }
    let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
    bytes += mask
    bytes += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    return bytes
}

/// A frame the server sent (never masked).
struct ServerFrame: Equatable, CustomStringConvertible {
    var fin: Bool
    var opcode: UInt8
    var payload: [UInt8]

    var description: String { "frame(fin: \(fin), opcode: \(opcode), payload: \(payload))" }

    /// The status code of a close frame.
    var closeCode: Int? {
        guard opcode == 8, payload.count >= 2 else { return nil }
        return Int(payload[0]) << 8 | Int(payload[1])
    }
}

/// Splits `bytes` into server frames; nil when they do not end on a frame boundary or a frame is masked.
func parseServerFrames(_ bytes: [UInt8]) -> [ServerFrame]? {
    var frames: [ServerFrame] = []
    var index = 0
    while index < bytes.count {
        guard index + 2 <= bytes.count, bytes[index + 1] & 0x80 == 0 else { return nil }
        let fin = bytes[index] & 0x80 != 0
        let opcode = bytes[index] & 0x0F
        var length = Int(bytes[index + 1] & 0x7F)
        index += 2
        let extra = length == 126 ? 2 : length == 127 ? 8 : 0
        if extra > 0 {
            guard index + extra <= bytes.count else { return nil }
            length = bytes[index..<index + extra].reduce(0) { $0 << 8 | Int($1) }
            index += extra
        }
        guard index + length <= bytes.count else { return nil }
        frames.append(ServerFrame(fin: fin, opcode: opcode, payload: Array(bytes[index..<index + length])))
        index += length
    }
    return frames
}

/// What the wrapped initializer's handler saw.
final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var events: [String] = []
    var bytes: [UInt8] = []
    var reads = 0
    var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }  // else the two keep each other

    func channelActive(context: ChannelHandlerContext) {
        events.append("active")
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !events.contains("active") { events.append("read-before-active") }
        reads += 1
        bytes += unwrapInboundIn(data).readableBytesView
    }

    func channelInactive(context: ChannelHandlerContext) {
        events.append("inactive")
        context.fireChannelInactive()
    }

    func send(_ bytes: [UInt8]) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }
}

/// An `EmbeddedChannel` with the WebSocket initializer installed around a `Recorder`, connected from
/// 127.0.0.1:40000.
final class WebSocketHarness {
    let channel = EmbeddedChannel()

    // An EmbeddedChannel left open keeps its pipeline (and the handlers in it) alive: LeakSanitizer counted
    // every harness as a leak.
    deinit { _ = try? channel.finish(acceptAlreadyClosed: true) }

    init(maxFrameSize: Int = 1 << 20, handshakeTimeout: TimeAmount = WebSocketMQTT.defaultHandshakeTimeout) throws {
        let box = RecorderBox()
        let initializer = WebSocketMQTT.wrap({ channel, facts in
            channel.eventLoop.makeCompletedFuture {
                box.facts.append(facts)
                let recorder = Recorder()
                box.recorder = recorder
                try channel.pipeline.syncOperations.addHandler(recorder)
            }
        }, maxFrameSize: maxFrameSize, handshakeTimeout: handshakeTimeout, logger: webSocketTestLogger)
        try initializer(channel, ConnectionFacts(listener: "9001")).wait()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        self.box = box
    }

    private let box: RecorderBox
    var initialized: Recorder? { box.recorder }
    var seenFacts: [ConnectionFacts] { box.facts }

    /// Sends `bytes` as if read from the socket.
    func receive(_ bytes: [UInt8]) throws {
        defer { channel.embeddedEventLoop.run() }  // the upgrade completes in tasks on the loop
        try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    func receive(_ text: String) throws { try receive(Array(text.utf8)) }

    /// Everything the server wrote since the last call.
    func sent() throws -> [UInt8] {
        var out: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            out += buffer.readableBytesView
        }
        return out
    }

    /// The HTTP answer, as text.
    func sentText() throws -> String { String(decoding: try sent(), as: UTF8.self) }

    /// Upgrades with `mqtt` and returns the 101 answer.
    @discardableResult
    func upgrade(_ request: String = upgradeRequest()) throws -> String {
        try receive(request)
        return try sentText()
    }

    /// Frames the server sent since the last call (fails the test on a malformed stream via nil).
    func sentFrames() throws -> [ServerFrame]? { parseServerFrames(try sent()) }

    var isOpen: Bool { channel.isActive }
}

/// Shares what the initializer made with the test (the initializer closure must be Sendable).
final class RecorderBox: @unchecked Sendable {
    var recorder: Recorder?
    var facts: [ConnectionFacts] = []
}

/// The lines of an HTTP head, lower-cased names, for header checks.
func headerValues(_ response: String, _ name: String) -> [String] {
    response.split(separator: "\r\n").compactMap { line -> String? in
        guard let colon = line.firstIndex(of: ":"),
              line[..<colon].lowercased() == name.lowercased() else { return nil }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
}
