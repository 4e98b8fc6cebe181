import Foundation
@testable import Host
@testable import midge
import Logging
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PluginAPI
import Testing

// MARK: Test hooks

/// Records every event it is given.
final class RecordingHook: HookPlugin, @unchecked Sendable {
    let events: HookEvents
    let tickInterval: TimeAmount = .milliseconds(50)
    private let log = NIOLockedValueBox<[String]>([])
    private(set) var broker: (any BrokerServices)?

    init(events: HookEvents = .all) { self.events = events }

    var recorded: [String] { log.withLockedValue { $0 } }
    private func record(_ line: String) { log.withLockedValue { $0.append(line) } }

    func attach(_ broker: any BrokerServices) { self.broker = broker }
    func connected(_ event: ConnectEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        record("connect \(event.client.clientID) \(event.client.protocolVersion) \(event.properties.items.count)")
        return .now(())
    }
    func disconnected(_ event: DisconnectEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        record("disconnect \(event.client.clientID) \(event.reason)")
        return .now(())
    }
    func subscribed(_ event: SubscribeEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        for item in event.subscriptions { record("subscribe \(event.client.clientID) \(item.filter) \(item.reasonCode.rawValue)") }
        return .now(())
    }
    func unsubscribed(_ event: UnsubscribeEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        for item in event.filters { record("unsubscribe \(event.client.clientID) \(item.filter)") }
        return .now(())
    }
    func publish(_ message: HookMessage, from client: ClientInfo, on eventLoop: any EventLoop) throws
        -> PluginAnswer<PublishVerdict> {
        record("publish \(client.clientID) \(message.topic)")
        return .now(.accept)
    }
    func delivered(_ event: DeliverEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        record("deliver \(event.client.clientID) \(event.message.topic)")
        return .now(())
    }
    func willPublished(_ event: WillEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        record("will \(event.client.clientID) \(event.message.topic)")
        return .now(())
    }
    func tick(on eventLoop: any EventLoop) throws -> HookAnswer {
        if !recorded.contains("tick") { record("tick") }
        return .now(())
    }
    func reloaded(on eventLoop: any EventLoop) throws -> HookAnswer {
        record("reload")
        return .now(())
    }
    func shuttingDown(on eventLoop: any EventLoop) throws -> HookAnswer {
        record("shutdown")
        return .now(())
    }
}

/// Misbehaves on `publish` to topics under `bad/`: throws for `bad/throw`, never answers for `bad/silent`.
final class FaultyHook: HookPlugin, @unchecked Sendable {
    struct Failure: Error {}
    let events: HookEvents = [.publish]
    let abandoned = NIOLockedValueBox<[EventLoopPromise<PublishVerdict>]>([])

    func publish(_ message: HookMessage, from client: ClientInfo, on eventLoop: any EventLoop) throws
        -> PluginAnswer<PublishVerdict> {
        switch message.topic {
        case "bad/throw":
            throw Failure()
        case "bad/silent":
            let promise = eventLoop.makePromise(of: PublishVerdict.self)
            abandoned.withLockedValue { $0.append(promise) }
            return .later(promise.futureResult)
        default:
            return .now(.accept)
        }
    }

    func shutdown() async {
        for promise in abandoned.withLockedValue({ $0 }) { promise.fail(Failure()) }
    }
}

/// Rewrites `in/...` messages: topic `in/X` to `<prefix>X`, payload upper-cased, a user property added.
/// Answers later (off the event loop's current turn) for topics ending in `/slow`.
final class RewritingHook: HookPlugin, @unchecked Sendable {
    let events: HookEvents = [.publish]
    let prefix: String
    init(prefix: String) { self.prefix = prefix }

    func publish(_ message: HookMessage, from client: ClientInfo, on eventLoop: any EventLoop) throws
        -> PluginAnswer<PublishVerdict> {
        guard message.topic.hasPrefix("in/") else { return .now(.accept) }
        var rewritten = message
        rewritten.topic = prefix + message.topic.dropFirst(3)
        rewritten.payload = ByteBuffer(string: (message.payloadString ?? "").uppercased())
        rewritten.userProperties += [(name: "rewritten-by", value: "test")]
        if message.topic.hasSuffix("/slow") {
            let verdict = PublishVerdict.rewrite(rewritten)
            return .later(eventLoop.scheduleTask(in: .milliseconds(30)) { verdict }.futureResult)
        }
        if message.payloadString == "reject" { return .now(.reject(.quotaExceeded)) }
        return .now(.rewrite(rewritten))
    }
}

/// Fails every authentication, later (as a database that broke would).
final class FailingAuthenticator: AuthenticationPlugin {
    struct Broken: Error {}

    func authenticate(client: ClientInfo, credentials: Credentials, on eventLoop: any EventLoop) -> PluginAnswer<Decision> {
        .later(eventLoop.makeFailedFuture(Broken()))
    }
}

// MARK: Harness

/// A broker on an ephemeral loopback port with extra hook plugins in its registry.
struct TestBroker {
    let broker: Broker
    let port: Int
    let directory: String

    static func start(_ config: String, hooks: [String: any Plugin], files: [String: String] = [:],
                      hookDeadline: TimeAmount = .seconds(5),
                      registry base: PluginRegistry = BuiltInPlugins.registry,
                      logger: Logger = Logger(label: "test")) async throws -> TestBroker {
        let directory = NSTemporaryDirectory() + "midge-hooks-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8) }
        var registry = base
        for (name, plugin) in hooks {
            registry.register(PluginDescriptor(name: name, summary: "test") { _, _ in plugin })
        }
        var parsed = try ConfigParser.parse(text: "listener 1883 127.0.0.1\nsys_interval 0\n" + config,
                                            file: directory + "/test.conf", baseDirectory: directory)
        // Port 0 (the config file cannot say it): the kernel picks a free port as the listener binds. A port
        // probed first and bound later could be taken in between by another test's socket.
        parsed.listeners[0].port = 0
        let broker = try Broker(config: parsed, logger: logger, registry: registry, hookDeadline: hookDeadline)
        try await broker.start()
        return TestBroker(broker: broker, port: broker.boundPorts[0], directory: directory)
    }

    func stop() async {
        await broker.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Waits (bounded) until `condition` holds.
func eventually(_ what: String, within seconds: Double = 5, _ condition: () -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { Issue.record("timed out waiting for \(what)"); return }
        try await Task.sleep(for: .milliseconds(10))
    }
}

// MARK: Tests

@Suite("Hooks") struct HookTests {
    @Test func everyEventReachesAHookThatAsksForIt() async throws {
        let recorder = RecordingHook()
        let broker = try await TestBroker.start("allow_anonymous true\nplugin recorder\n", hooks: ["recorder": recorder])
        let subscriber = try await TestClient.connect(port: broker.port, clientID: "sub")
        try await subscriber.subscribe("t/#")
        let publisher = try await TestClient.connect(
            port: broker.port, clientID: "pub", version: .v3_1_1,
            will: Will(topic: "t/will", payload: ByteBuffer(string: "gone")))
        publisher.publish("t/1", "hello")
        let received = try await subscriber.nextPublish()
        #expect(received.topic == "t/1")
        await publisher.close()  // no DISCONNECT: the will goes
        #expect(try await subscriber.nextPublish().topic == "t/will")
        subscriber.send(.unsubscribe(UnsubscribePacket(packetID: 2, filters: ["t/#"])))
        _ = await subscriber.next()
        subscriber.send(.disconnect(DisconnectPacket()))
        try await eventually("the subscriber's disconnect") {
            recorder.recorded.contains { $0.hasPrefix("disconnect sub") }
        }
        try await eventually("a tick") { recorder.recorded.contains("tick") }
        await broker.broker.reload()
        await broker.stop()
        let log = recorder.recorded
        for line in ["connect sub 5.0 0", "subscribe sub t/# 1", "connect pub 3.1.1 0", "publish pub t/1",
                     "deliver sub t/1", "disconnect pub connectionLost", "publish pub t/will", "will pub t/will",
                     "deliver sub t/will",
                     "unsubscribe sub t/#", "disconnect sub clientDisconnected(0x0)",
                     "tick", "reload", "shutdown"] {
            #expect(log.contains(line), "missing \(line) in \(log)")
        }
        // Config order and event order: the subscription was recorded before the message it received.
        #expect(log.firstIndex(of: "subscribe sub t/# 1")! < log.firstIndex(of: "deliver sub t/1")!)
    }

    /// A hook keeps the broker services it is given; those held the hooks (for their failure count), so the
    /// two kept each other, and with them the router and the event loops, alive after shutdown (found under
    /// `scripts/test-sanitizers address`). This failed before the services held only the count.
    @Test func aBrokerThatWasShutDownIsFreedWithItsHooks() async throws {
        weak var services: BrokerServicesProvider?
        do {
            let test = try await TestBroker.start("plugin recorder\n", hooks: ["recorder": RecordingHook()])
            services = test.broker.services
            await test.stop()
        }
        #expect(services == nil)
    }

    @Test func aHookOnlyHearsTheEventsItDeclares() async throws {
        let recorder = RecordingHook(events: [.connect])
        let broker = try await TestBroker.start("allow_anonymous true\nplugin recorder\n", hooks: ["recorder": recorder])
        let client = try await TestClient.connect(port: broker.port, clientID: "only")
        try await client.subscribe("x")
        client.publish("x", "1")
        _ = try await client.nextPublish()
        await client.close()
        await broker.stop()
        #expect(recorder.recorded == ["connect only 5.0 0"])
    }

    @Test func aThrowingHookRejectsByDefaultAndOthersGoOn() async throws {
        let broker = try await TestBroker.start("allow_anonymous true\nplugin faulty\n", hooks: ["faulty": FaultyHook()])
        let subscriber = try await TestClient.connect(port: broker.port, clientID: "sub")
        try await subscriber.subscribe("#")
        let client = try await TestClient.connect(port: broker.port, clientID: "c")
        client.publish("bad/throw", "x", qos: .atLeastOnce, id: 7)
        guard case .ack(let ack)? = await client.next() else { Issue.record("no PUBACK"); return }
        #expect(ack.packetID == 7 && ack.reasonCode == .implementationSpecificError)
        client.publish("good", "y", qos: .atLeastOnce, id: 8)
        guard case .ack(let second)? = await client.next() else { Issue.record("no PUBACK"); return }
        #expect(second.packetID == 8 && second.reasonCode == .success)
        #expect(try await subscriber.nextPublish().topic == "good")
        #expect(broker.broker.hooks.failures == 1)
        await broker.stop()
    }

    @Test("a hook failing on every PUBLISH is counted each time and logged once, not once a message")
    func aHookFailingOnEveryMessageIsLoggedOnce() async throws {
        let log = CapturedLog()
        let broker = try await TestBroker.start("allow_anonymous true\nplugin faulty\n", hooks: ["faulty": FaultyHook()],
                                                logger: log.logger)
        let client = try await TestClient.connect(port: broker.port, clientID: "c")
        for id in UInt16(1)...20 {
            client.publish("bad/throw", "x", qos: .atLeastOnce, id: id)
            guard case .ack(let ack)? = await client.next() else { Issue.record("no PUBACK"); return }
            #expect(ack.packetID == id && ack.reasonCode == .implementationSpecificError)
        }
        #expect(broker.broker.hooks.failures == 20)
        let statistics = try await broker.broker.services.statistics().get()
        #expect(statistics.hookFailures == 20)
        #expect(log.lines.filter { $0.contains("Hook faulty failed on publish") }.count == 1)
        await broker.stop()
    }

    @Test("an authentication plugin that fails denies each client it is asked about (0x88), counted each time, logged once")
    func aFailingAuthenticatorIsCountedAndLoggedOnce() async throws {
        let log = CapturedLog()
        let broker = try await TestBroker.start("plugin failing-auth\n", hooks: ["failing-auth": FailingAuthenticator()],
                                                logger: log.logger)
        for i in 0..<10 {
            do {
                _ = try await TestClient.connect(port: broker.port, clientID: "c\(i)", username: "u", password: "p")
                Issue.record("a client was admitted by a failing plugin")
            } catch TestClientError.unexpected(_, let answer) {
                guard case .connack(let connack)? = answer else { Issue.record("no CONNACK: \(String(describing: answer))"); continue }
                #expect(connack.code == ReasonCode.serverUnavailable.rawValue)
            }
        }
        let statistics = try await broker.broker.services.statistics().get()
        #expect(statistics.authFailures == 10)
        #expect(log.lines.filter { $0.contains("failed to authenticate") }.count == 1)
        await broker.stop()
    }

    @Test func onErrorAcceptLetsTheMessageThrough() async throws {
        let broker = try await TestBroker.start("allow_anonymous true\nplugin faulty\nplugin_opt_on_error accept\n",
                                                hooks: ["faulty": FaultyHook()])
        let subscriber = try await TestClient.connect(port: broker.port, clientID: "sub")
        try await subscriber.subscribe("#")
        let client = try await TestClient.connect(port: broker.port, clientID: "c")
        client.publish("bad/throw", "x", qos: .atLeastOnce, id: 3)
        guard case .ack(let ack)? = await client.next() else { Issue.record("no PUBACK"); return }
        #expect(ack.reasonCode == .success)
        #expect(try await subscriber.nextPublish().topic == "bad/throw")
        await broker.stop()
    }

    @Test func aHookThatNeverAnswersMissesItsDeadlineWhileOthersAreServed() async throws {
        let broker = try await TestBroker.start("allow_anonymous true\nplugin faulty\n", hooks: ["faulty": FaultyHook()],
                                                hookDeadline: .seconds(1))
        let subscriber = try await TestClient.connect(port: broker.port, clientID: "sub")
        try await subscriber.subscribe("#")
        let stuck = try await TestClient.connect(port: broker.port, clientID: "stuck")
        let other = try await TestClient.connect(port: broker.port, clientID: "other")
        let started = Date()
        stuck.publish("bad/silent", "x", qos: .atLeastOnce, id: 1)
        stuck.publish("after", "in order", qos: .atLeastOnce, id: 2)
        // Another client is served while the hook keeps `stuck` waiting: its message arrives before the
        // deadline. `other` and `stuck` are different connections, so the two messages are compared as a set
        // with the time each arrived, not as a sequence.
        other.publish("other", "z")
        var arrived: [String: TimeInterval] = [:]
        for _ in 0..<2 {
            arrived[try await subscriber.nextPublish().topic] = Date().timeIntervalSince(started)
        }
        #expect(Set(arrived.keys) == ["other", "after"])
        #expect((arrived["other"] ?? .infinity) < 0.95, "\(arrived)")
        #expect((arrived["after"] ?? 0) >= 0.95, "\(arrived)")
        guard case .ack(let first)? = await stuck.next() else { Issue.record("no PUBACK"); return }
        #expect(first.packetID == 1 && first.reasonCode == .implementationSpecificError)
        // The client's next packet waited for the answer and was handled after it.
        guard case .ack(let second)? = await stuck.next() else { Issue.record("no second PUBACK"); return }
        #expect(second.packetID == 2 && second.reasonCode == .success)
        await broker.stop()
    }

    @Test func aRewrittenTopicIsAuthorizedAgain() async throws {
        let acl = "topic readwrite in/#\ntopic readwrite plain\ntopic read #\n"
        let broker = try await TestBroker.start("allow_anonymous true\nacl_file acl\nplugin rewrite\n",
                                                hooks: ["rewrite": RewritingHook(prefix: "out/")],
                                                files: ["acl": acl])
        let subscriber = try await TestClient.connect(port: broker.port, clientID: "sub")
        try await subscriber.subscribe("#")
        let client = try await TestClient.connect(port: broker.port, clientID: "c")
        client.publish("in/x", "hello", qos: .atLeastOnce, id: 4)
        guard case .ack(let ack)? = await client.next() else { Issue.record("no PUBACK"); return }
        #expect(ack.reasonCode == .notAuthorized)
        client.publish("plain", "through", qos: .atMostOnce)
        // Nothing reached the subscriber from the rewritten message; the next message is the plain one.
        let publish = try await subscriber.nextPublish()
        #expect(publish.topic == "plain")
        await broker.stop()
    }

    @Test func rewritesChangeTopicPayloadAndUserPropertiesInOrder() async throws {
        let broker = try await TestBroker.start("allow_anonymous true\nplugin rewrite\n",
                                                hooks: ["rewrite": RewritingHook(prefix: "in/moved/")])
        let subscriber = try await TestClient.connect(port: broker.port, clientID: "sub")
        try await subscriber.subscribe("in/moved/#")
        let client = try await TestClient.connect(port: broker.port, clientID: "c")
        client.publish("in/a/slow", "first", properties: [.userProperty("k", "v")])
        client.publish("in/b", "second")
        client.publish("in/c", "reject", qos: .atLeastOnce, id: 9)
        let first = try await subscriber.nextPublish()
        #expect(first.topic == "in/moved/a/slow")
        #expect(first.payload == ByteBuffer(string: "FIRST"))
        #expect(first.properties.items == [.userProperty("k", "v"), .userProperty("rewritten-by", "test")])
        #expect(try await subscriber.nextPublish().topic == "in/moved/b")
        guard case .ack(let ack)? = await client.next() else { Issue.record("no PUBACK"); return }
        #expect(ack.reasonCode == .quotaExceeded)
        await broker.stop()
    }

    @Test func aWillPassesThePublishHooksWhichMayRewriteOrRejectIt() async throws {
        let recorder = RecordingHook(events: [.publish, .will])
        let broker = try await TestBroker.start("allow_anonymous true\nplugin recorder\nplugin rewrite\n",
                                                hooks: ["recorder": recorder,
                                                        "rewrite": RewritingHook(prefix: "out/")])
        let subscriber = try await TestClient.connect(port: broker.port, clientID: "sub")
        try await subscriber.subscribe("#")
        let rejected = try await TestClient.connect(port: broker.port, clientID: "p1",
                                                    will: Will(topic: "in/one", payload: ByteBuffer(string: "reject")))
        await rejected.close()  // no DISCONNECT: the will goes to the hooks, and the rewrite hook rejects it
        try await eventually("the hooks to see p1's will") { recorder.recorded.contains("publish p1 in/one") }
        let rewritten = try await TestClient.connect(port: broker.port, clientID: "p2",
                                                     will: Will(topic: "in/two", payload: ByteBuffer(string: "bye")))
        await rewritten.close()
        let publish = try await subscriber.nextPublish()
        #expect(publish.topic == "out/two")
        #expect(publish.payload == ByteBuffer(string: "BYE"))
        try await eventually("the will hook") { recorder.recorded.contains("will p2 out/two") }
        #expect(!recorder.recorded.contains { $0.hasPrefix("will p1") }, "\(recorder.recorded)")
        await broker.stop()
    }

    @Test func statisticsCountTraffic() async throws {
        let recorder = RecordingHook(events: [])
        let broker = try await TestBroker.start("allow_anonymous true\nplugin recorder\n", hooks: ["recorder": recorder])
        let client = try await TestClient.connect(port: broker.port, clientID: "c")
        try await client.subscribe("s/#")
        client.publish("s/1", "abc")
        _ = try await client.nextPublish()
        let services = try #require(recorder.broker)
        let statistics = try await services.statistics().get()
        #expect(statistics.clientsConnected == 1)
        #expect(statistics.clientsMaximum == 1)
        #expect(statistics.subscriptions == 1)
        #expect(statistics.publishReceived == 1)
        #expect(statistics.publishSent == 1)
        #expect(statistics.messagesReceived == 3)  // CONNECT, SUBSCRIBE, PUBLISH
        #expect(statistics.messagesSent == 3)  // CONNACK, SUBACK, PUBLISH
        #expect(statistics.bytesReceived > 0 && statistics.bytesSent > 0)
        #expect(statistics.connectionsByListener.values.reduce(0, +) == 1)
        await client.close()
        try await eventually("the client's disconnect") {
            (try? services.statistics().wait().clientsConnected) == 0
        }
        await broker.stop()
    }
}
