import Foundation
@testable import Host
@testable import midge
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import PluginAPI
import Testing

/// What the probes saw: for each SUBSCRIBE, whether its filters were in the subscription index when the read
/// that brought it had gone through the connection's pipeline (still inside that read event).
final class AfterReadRecorder: Sendable {
    private let router = NIOLockedValueBox<Router?>(nil)
    private let lines = NIOLockedValueBox<[String]>([])

    func watch(_ router: Router) { self.router.withLockedValue { $0 = router } }
    var seen: [String] { lines.withLockedValue { $0 } }

    /// Called on the connection's event loop right after MQTT's `channelRead` returned.
    func afterRead(_ packets: [Packet]) {
        guard let router = router.withLockedValue({ $0 }) else { return }
        for case .subscribe(let subscribe) in packets {
            for request in subscribe.subscriptions {
                let subscribers = router.index.match(request.filter).subscribers.count
                lines.withLockedValue { $0.append("\(request.filter) \(subscribers)") }
            }
        }
    }
}

/// Put in front of MQTT on every accepted connection: passes each read on, and once MQTT has handled it (the
/// call returns within the same read event, before any later event-loop tick) tells the recorder which
/// packets that read held.
private final class AfterReadProbe: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let recorder: AfterReadRecorder
    private var decoder = MQTTDecoder()
    /// What the last reads left of a packet.
    private var pending = ByteBuffer()

    init(recorder: AfterReadRecorder) { self.recorder = recorder }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        context.fireChannelRead(data)
        pending.writeBuffer(&bytes)
        var packets: [Packet] = []
        while let packet = try? decoder.decode(buffer: &pending) { packets.append(packet) }
        recorder.afterRead(packets)
    }
}

/// The `tcp` listener with an `AfterReadProbe` added to each connection before the broker's handlers.
private final class ProbedTransport: TransportPlugin {
    let inner: any TransportPlugin
    let recorder: AfterReadRecorder

    init(inner: any TransportPlugin, recorder: AfterReadRecorder) {
        self.inner = inner
        self.recorder = recorder
    }

    func listen(on group: any EventLoopGroup, initializer: @escaping ConnectionInitializer) async throws -> Int {
        let recorder = self.recorder
        return try await inner.listen(on: group) { channel, facts in
            do {
                try channel.pipeline.syncOperations.addHandler(AfterReadProbe(recorder: recorder))
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
            return initializer(channel, facts)
        }
    }

    func close() async { await inner.close() }
}

@Suite("A subscription takes effect within its SUBSCRIBE's read")
struct SubscriptionTimingTests {
    private static func registry(_ recorder: AfterReadRecorder) throws -> PluginRegistry {
        var registry = BuiltInPlugins.registry
        let tcp = try #require(registry.descriptor(named: "tcp"))
        registry.register(PluginDescriptor(name: "tcp", summary: tcp.summary, kind: .listener) { options, context in
            guard let inner = try tcp.make(&options, context) as? any TransportPlugin else {
                throw PluginError(pluginName: "tcp", message: "not a transport")
            }
            return ProbedTransport(inner: inner, recorder: recorder)
        })
        return registry
    }

    /// With an ACL file (user section, anonymous section and a pattern, so that rules are compiled per client)
    /// and without, for 3.1.1 and 5.0: every SUBSCRIBE's filters are in the index when its read returns.
    @Test(arguments: [true, false])
    func theIndexHoldsTheSubscriptionWhenTheReadReturns(acl: Bool) async throws {
        let recorder = AfterReadRecorder()
        let rules = "topic deny secret/#\ntopic readwrite order/#\npattern readwrite own/%c/#\n"
            + "user someone\ntopic readwrite order/#\n"
        let broker = try await TestBroker.start("allow_anonymous true\n" + (acl ? "acl_file acl\n" : ""), hooks: [:],
                                                files: ["acl": rules], registry: Self.registry(recorder))
        recorder.watch(broker.broker.router)
        var expected: [String] = []
        for (n, version) in [ProtocolVersion.v3_1_1, .v5].enumerated() {
            let client = try await TestClient.connect(port: broker.port, clientID: "timed-\(n)", version: version)
            for i in 0..<20 {
                let filter = i % 2 == 0 ? "order/\(n)/\(i)" : "own/timed-\(n)/\(i)"
                try await client.subscribe(filter, qos: .atMostOnce, id: UInt16(i + 1))
                expected.append("\(filter) 1")
            }
            await client.close()
        }
        #expect(recorder.seen == expected)
        await broker.stop()
    }
}
