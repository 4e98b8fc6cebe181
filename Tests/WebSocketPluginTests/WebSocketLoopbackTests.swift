import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PluginAPI
import TCPPlugin
import Testing
@testable import WebSocketPlugin

/// The decorator on a real `tcp` transport over loopback, with a raw client.
@Suite(.timeLimit(.minutes(1)))
struct WebSocketLoopbackTests {
    @Test func anUpgradedConnectionEchoesFramesOverTCP() async throws {
        let server = try await EchoWebSocketServer()
        let request = Array(upgradeRequest().utf8)
        // The request and two frames in one write; the echo comes back as one binary frame per read.
        let reply = try await exchange(port: server.port,
                                       send: request + clientFrame(opcode: 2, [1, 2, 3]) + clientFrame(opcode: 9, [9])) {
            guard let end = headEnd($0), let frames = parseServerFrames(Array($0[end...])) else { return false }
            return frames.reduce(0) { $0 + $1.payload.count } >= 4
        }
        let end = try #require(headEnd(reply))
        let head = String(decoding: reply[..<end], as: UTF8.self)
        #expect(head.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(headerValues(head, "Sec-WebSocket-Accept") == [sampleAccept])
        let frames = try #require(parseServerFrames(Array(reply[end...])))
        #expect(frames.filter { $0.opcode == 2 }.flatMap(\.payload) == [1, 2, 3])
        #expect(frames.contains(ServerFrame(fin: true, opcode: 10, payload: [9])))
        #expect(server.facts == ["9001"])
        await server.stop()
    }

    @Test func aClientThatNeverUpgradesIsDisconnected() async throws {
        let server = try await EchoWebSocketServer(handshakeTimeout: .milliseconds(200))
        let started = NIODeadline.now()
        let reply = try await exchange(port: server.port, send: Array("GET /mqtt HTTP/1.1\r\n".utf8)) { _ in false }
        #expect(reply.isEmpty)
        #expect(NIODeadline.now() - started < .seconds(5))  // closed by the server, not by the client's bound
        #expect(server.facts.isEmpty)
        await server.stop()
    }
}

/// The end of the HTTP head (after the blank line) in `bytes`.
func headEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for index in 0...(bytes.count - 4) where bytes[index..<index + 4].elementsEqual([13, 10, 13, 10]) {
        return index + 4
    }
    return nil
}

/// A `tcp` transport on 127.0.0.1 with the WebSocket decorator around an echo handler.
final class EchoWebSocketServer: Sendable {
    let transport: TCPTransport
    let port: Int
    private let recorded = NIOLockedValueBox<[String]>([])

    init(handshakeTimeout: TimeAmount = WebSocketMQTT.defaultHandshakeTimeout) async throws {
        transport = TCPTransport(listener: ListenerSettings(name: "9001", port: 0, bindAddress: "127.0.0.1"))
        let recorded = self.recorded
        let echo: ConnectionInitializer = { channel, facts in
            recorded.withLockedValue { $0.append(facts.listener) }
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteEcho())
            }
        }
        port = try await transport.listen(
            on: MultiThreadedEventLoopGroup.singleton,
            initializer: WebSocketMQTT.wrap(echo, maxFrameSize: 1 << 16, handshakeTimeout: handshakeTimeout,
                                            logger: webSocketTestLogger))
    }

    var facts: [String] { recorded.withLockedValue { $0 } }

    func stop() async { await transport.close() }
}

private final class ByteEcho: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

/// Connects to 127.0.0.1:`port`, sends `bytes`, and collects what comes back until `done` says so, the server
/// closes, or 10 s pass.
func exchange(port: Int, send bytes: [UInt8], until done: @escaping @Sendable ([UInt8]) -> Bool) async throws -> [UInt8] {
    let group = MultiThreadedEventLoopGroup.singleton
    let promise = group.next().makePromise(of: [UInt8].self)
    let channel = try await ClientBootstrap(group: group)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(Collector(promise: promise, done: done))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    let bound = channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
    do {
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
    } catch where !channel.isActive {
        // The server closed first: on a loaded machine the client can write after a short handshake timeout
        // ran out (this failed a test once, under AddressSanitizer). What the server sent is still the reply.
    }
    let reply = try await promise.futureResult.get()
    bound.cancel()
    try? await channel.close()
    return reply
}

private final class Collector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let promise: EventLoopPromise<[UInt8]>
    let done: @Sendable ([UInt8]) -> Bool
    var bytes: [UInt8] = []

    init(promise: EventLoopPromise<[UInt8]>, done: @escaping @Sendable ([UInt8]) -> Bool) {
        self.promise = promise
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytes += unwrapInboundIn(data).readableBytesView
        if done(bytes) { promise.succeed(bytes) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(bytes)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
