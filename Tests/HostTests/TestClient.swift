import Foundation
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A minimal MQTT client over a real loopback socket, for in-process broker tests: sends packets, and hands
/// back the packets the broker sends, each awaited with a bound.
final class TestClient: @unchecked Sendable {
    private let channel: any Channel
    private let inbox: Inbox
    let version: ProtocolVersion

    private final class Inbox: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        private let lock = NIOLock()
        private var decoder: MQTTDecoder
        private var buffer = ByteBuffer()
        private var packets: [Packet] = []
        private var waiter: CheckedContinuation<Packet?, Never>?
        /// Counts waits, so that a wait's timer never ends a later wait (its own wait may have been answered).
        private var waits = 0
        private(set) var closed = false

        init(version: ProtocolVersion) { decoder = MQTTDecoder(version: version) }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            lock.withLock {
                buffer.writeBuffer(&bytes)
                while let packet = try? decoder.decode(buffer: &buffer) { deliver(packet) }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            lock.withLock {
                closed = true
                if let waiter { self.waiter = nil; waiter.resume(returning: nil) }
            }
        }

        /// Call under `lock`.
        private func deliver(_ packet: Packet) {
            if let waiter {
                self.waiter = nil
                waiter.resume(returning: packet)
            } else {
                packets.append(packet)
            }
        }

        func next(timeout: TimeAmount, on loop: any EventLoop) async -> Packet? {
            await withCheckedContinuation { continuation in
                lock.withLock {
                    if !packets.isEmpty {
                        continuation.resume(returning: packets.removeFirst())
                    } else if closed {
                        continuation.resume(returning: nil)
                    } else {
                        waiter = continuation
                        waits += 1
                        let wait = waits
                        loop.scheduleTask(in: timeout) {
                            self.lock.withLock {
                                if self.waits == wait, let waiter = self.waiter {
                                    self.waiter = nil
                                    waiter.resume(returning: nil)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private init(channel: any Channel, inbox: Inbox, version: ProtocolVersion) {
        self.channel = channel
        self.inbox = inbox
        self.version = version
    }

    /// Opens a connection and sends nothing (the test sends its own CONNECT).
    static func open(port: Int, version: ProtocolVersion = .v5) async throws -> TestClient {
        let inbox = Inbox(version: version)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(inbox) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return TestClient(channel: channel, inbox: inbox, version: version)
    }

    /// Writes bytes as they are (for packets the codec would not encode for this version).
    func sendRaw(_ bytes: [UInt8]) {
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
    }

    /// Connects and completes the MQTT handshake; expects CONNACK success.
    static func connect(port: Int, clientID: String, version: ProtocolVersion = .v5, username: String? = nil,
                        password: String? = nil, will: Will? = nil) async throws -> TestClient {
        let inbox = Inbox(version: version)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(inbox) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let client = TestClient(channel: channel, inbox: inbox, version: version)
        client.send(.connect(ConnectPacket(protocolVersion: version, cleanStart: true, keepAlive: 60,
                                           clientID: clientID, will: will, username: username,
                                           password: password.map { ByteBuffer(string: $0) })))
        let answer = await client.next()
        guard case .connack(let connack)? = answer, connack.code == 0 else {
            throw TestClientError.unexpected("CONNACK", answer)
        }
        return client
    }

    func send(_ packet: Packet) {
        var buffer = channel.allocator.buffer(capacity: 64)
        packet.write(version: version, to: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
    }

    /// The next packet from the broker, or nil when none came within `timeout` or the connection closed.
    func next(timeout: TimeAmount = .seconds(5)) async -> Packet? {
        await inbox.next(timeout: timeout, on: channel.eventLoop)
    }

    func subscribe(_ filter: String, qos: QoS = .atLeastOnce, id: UInt16 = 1) async throws {
        send(.subscribe(SubscribePacket(packetID: id, subscriptions: [
            TopicSubscription(filter: filter, options: SubscriptionOptions(qos: qos)),
        ])))
        let answer = await next()
        guard case .suback? = answer else { throw TestClientError.unexpected("SUBACK", answer) }
    }

    func publish(_ topic: String, _ payload: String, qos: QoS = .atMostOnce, id: UInt16? = nil,
                 properties: Properties = []) {
        send(.publish(PublishPacket(topic: topic, payload: ByteBuffer(string: payload), qos: qos,
                                    packetID: qos == .atMostOnce ? nil : (id ?? 1), properties: properties)))
    }

    /// The next PUBLISH (acknowledging it at QoS 1), skipping nothing: any other packet is an error.
    func nextPublish(timeout: TimeAmount = .seconds(5)) async throws -> PublishPacket {
        let answer = await next(timeout: timeout)
        guard case .publish(let publish)? = answer else { throw TestClientError.unexpected("PUBLISH", answer) }
        if publish.qos == .atLeastOnce, let id = publish.packetID {
            send(.ack(AckPacket(type: .puback, packetID: id)))
        }
        return publish
    }

    var isClosed: Bool { inbox.closed }

    func close() async {
        try? await channel.close()
    }
}

enum TestClientError: Error, CustomStringConvertible {
    case unexpected(String, Packet?)

    var description: String {
        switch self {
        case .unexpected(let wanted, let got): return "expected \(wanted), got \(got.map { "\($0)" } ?? "nothing")"
        }
    }
}
