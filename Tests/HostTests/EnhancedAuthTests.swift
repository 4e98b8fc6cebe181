import Foundation
@testable import Host
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PluginAPI
import Testing

// MARK: Test method plugin

/// Methods for the tests:
/// - `TEST`: the first data is `USER:ROUNDS`; the server then challenges `challenge-1` ... `challenge-ROUNDS`,
///   each to be answered `answer-I` (anything else: failure 0x87); then success with data `welcome USER` and
///   the user name USER, except for `mallory`, who fails with 0x86 (bad user name or password).
/// - `SLOW`: as `TEST`, but every step answers later (after 20 ms).
/// - `SILENT`: never answers (its promises are failed at shutdown).
/// - `THROW`: `begin` throws.
final class TestMethod: EnhancedAuthenticationPlugin, @unchecked Sendable {
    struct Failure: Error {}
    let methods = ["TEST", "SLOW", "SILENT", "THROW"]
    let abandoned = NIOLockedValueBox<[EventLoopPromise<AuthenticationStep>]>([])
    let begun = NIOLockedValueBox<[String]>([])
    let ended = NIOLockedValueBox(0)

    func begin(method: String, client: ClientInfo, on eventLoop: any EventLoop) throws -> any AuthenticationConversation {
        if method == "THROW" { throw Failure() }
        begun.withLockedValue { $0.append("\(method) \(client.clientID) \(client.username ?? "-")") }
        return Conversation(method: method, plugin: self)
    }

    func shutdown() async {
        for promise in abandoned.withLockedValue({ $0 }) { promise.fail(Failure()) }
    }

    final class Conversation: AuthenticationConversation {
        let method: String
        let plugin: TestMethod
        var user = ""
        var rounds = 0
        var round = 0

        init(method: String, plugin: TestMethod) {
            self.method = method
            self.plugin = plugin
        }

        func end() { plugin.ended.withLockedValue { $0 += 1 } }

        func step(data: ByteBuffer?, on eventLoop: any EventLoop) -> PluginAnswer<AuthenticationStep> {
            if method == "SILENT" {
                let promise = eventLoop.makePromise(of: AuthenticationStep.self)
                plugin.abandoned.withLockedValue { $0.append(promise) }
                return .later(promise.futureResult)
            }
            let answer = next(data.map { String(buffer: $0) } ?? "")
            if method == "SLOW" {
                return .later(eventLoop.scheduleTask(in: .milliseconds(20)) { answer }.futureResult)
            }
            return .now(answer)
        }

        private func next(_ text: String) -> AuthenticationStep {
            if round == 0 && user.isEmpty {
                let parts = text.split(separator: ":")
                guard parts.count == 2, let count = Int(parts[1]) else { return .failure(.notAuthorized) }
                user = String(parts[0])
                rounds = count
            } else if text != "answer-\(round)" {
                return .failure(.notAuthorized)
            }
            if round < rounds {
                round += 1
                return .challenge(ByteBuffer(string: "challenge-\(round)"))
            }
            if user == "mallory" { return .failure(.badUserNameOrPassword) }
            return .success(data: ByteBuffer(string: "welcome \(user)"), username: user)
        }
    }
}

// MARK: Helpers

private func authProperties(_ method: String, _ data: String?) -> Properties {
    var properties: Properties = [.authenticationMethod(method)]
    if let data { properties.append(.authenticationData(ByteBuffer(string: data))) }
    return properties
}

private func auth(_ code: ReasonCode, _ method: String, _ data: String?) -> Packet {
    .auth(AuthPacket(reasonCode: code, properties: authProperties(method, data)))
}

private func connect(_ client: TestClient, id: String, method: String?, data: String?, username: String? = nil,
                     keepAlive: UInt16 = 60, extra: Properties = []) {
    var properties = extra
    if let method { properties.items += authProperties(method, data).items }
    client.send(.connect(ConnectPacket(protocolVersion: client.version, cleanStart: true, keepAlive: keepAlive,
                                       clientID: id, username: username, properties: properties)))
}

/// Connects with `TEST` (`user`, `rounds` challenges answered correctly) and expects CONNACK success.
private func connectWithTest(port: Int, id: String, user: String, rounds: Int = 0) async throws -> TestClient {
    let client = try await TestClient.open(port: port)
    connect(client, id: id, method: "TEST", data: "\(user):\(rounds)")
    for round in 0..<rounds {
        #expect(await client.next() == auth(.continueAuthentication, "TEST", "challenge-\(round + 1)"))
        client.send(auth(.continueAuthentication, "TEST", "answer-\(round + 1)"))
    }
    let answer = await client.next()
    guard case .connack(let connack)? = answer, connack.code == 0 else { throw TestClientError.unexpected("CONNACK", answer) }
    #expect(connack.properties.authenticationMethod == "TEST")
    #expect(connack.properties.items.contains(.authenticationData(ByteBuffer(string: "welcome \(user)"))))
    return client
}

private func startBroker(_ method: TestMethod, acl: Bool = false) async throws -> TestBroker {
    let aclText = "user alice\ntopic readwrite alice/#\n"
    return try await TestBroker.start("allow_anonymous true\nplugin method\n" + (acl ? "acl_file acl\n" : ""),
                                      hooks: ["method": method], files: acl ? ["acl": aclText] : [:])
}

// MARK: Tests

@Suite("Enhanced authentication") struct EnhancedAuthTests {
    @Test func oneRoundTripSucceedsAndTheMethodNamesTheUserForAuthorization() async throws {
        let method = TestMethod()
        let broker = try await startBroker(method, acl: true)
        // The CONNECT's user name (bob) is replaced by the one the method established (alice).
        let client = try await TestClient.open(port: broker.port)
        connect(client, id: "c1", method: "TEST", data: "alice:0", username: "bob")
        guard case .connack(let connack)? = await client.next() else { Issue.record("no CONNACK"); return }
        #expect(connack.code == 0)
        // Method, then data, after Midge's usual properties.
        let auth = connack.properties.items.suffix(2)
        #expect(Array(auth) == [.authenticationMethod("TEST"), .authenticationData(ByteBuffer(string: "welcome alice"))])
        client.send(.subscribe(SubscribePacket(packetID: 1, subscriptions: [
            TopicSubscription(filter: "alice/#", options: SubscriptionOptions(qos: .atLeastOnce)),
            TopicSubscription(filter: "bob/#", options: SubscriptionOptions(qos: .atLeastOnce)),
        ])))
        #expect(await client.next() == .suback(SubAckPacket(packetID: 1, reasonCodes: [.grantedQoS1, .notAuthorized])))
        #expect(method.begun.withLockedValue { $0 } == ["TEST c1 bob"])
        await client.close()
        await broker.stop()
    }

    @Test func severalRoundTripsKeepOtherPacketsInOrder() async throws {
        for name in ["TEST", "SLOW"] {
            let method = TestMethod()
            let broker = try await startBroker(method)
            let client = try await TestClient.open(port: broker.port)
            // Request Problem Information 0: AUTH packets carry only method and data anyway.
            connect(client, id: "c2", method: name, data: "alice:3", extra: [.requestProblemInformation(0)])
            for round in 1...3 {
                #expect(await client.next() == auth(.continueAuthentication, name, "challenge-\(round)"))
                if round == 3 {
                    // Sent before the exchange ends: handled after CONNACK, in order.
                    client.send(auth(.continueAuthentication, name, "answer-3"))
                    client.send(.subscribe(SubscribePacket(packetID: 7, subscriptions: [
                        TopicSubscription(filter: "a/b", options: SubscriptionOptions(qos: .atMostOnce)),
                    ])))
                    client.send(.pingreq)
                } else {
                    client.send(auth(.continueAuthentication, name, "answer-\(round)"))
                }
            }
            guard case .connack(let connack)? = await client.next() else { Issue.record("no CONNACK"); return }
            #expect(connack.code == 0)
            #expect(await client.next() == .suback(SubAckPacket(packetID: 7, reasonCodes: [.success])))
            #expect(await client.next() == .pingresp)
            await client.close()
            await broker.stop()
        }
    }

    @Test func failuresAreRefusedWithTheirReasonCode() async throws {
        let method = TestMethod()
        let broker = try await startBroker(method)
        let cases: [(String, String, UInt8)] = [
            ("TEST", "mallory:1", 0x86),  // the plugin's own code
            ("TEST", "alice:1/wrong", 0x87),  // a wrong answer
            ("NOPE", "x", 0x8C),  // no plugin offers the method
            ("THROW", "x", 0x88),  // begin threw
        ]
        for (name, data, expected) in cases {
            let client = try await TestClient.open(port: broker.port)
            let parts = data.split(separator: "/")
            connect(client, id: "f", method: name, data: String(parts[0]))
            if name == "TEST" {
                #expect(await client.next() == auth(.continueAuthentication, "TEST", "challenge-1"))
                client.send(auth(.continueAuthentication, "TEST", parts.count > 1 ? "nonsense" : "answer-1"))
            }
            #expect(await client.next() == .connack(ConnAckPacket(code: expected)), "\(name) \(data)")
            #expect(await client.next() == nil)
        }
        #expect(method.ended.withLockedValue { $0 } == 2)
        await broker.stop()
    }

    @Test func protocolErrorsDuringAndAfterTheExchange() async throws {
        let method = TestMethod()
        let broker = try await startBroker(method)
        // Another method in the answer, before CONNACK: CONNACK 0x82.
        let first = try await TestClient.open(port: broker.port)
        connect(first, id: "p1", method: "TEST", data: "alice:1")
        #expect(await first.next() == auth(.continueAuthentication, "TEST", "challenge-1"))
        first.send(auth(.continueAuthentication, "SLOW", "answer-1"))
        #expect(await first.next() == .connack(ConnAckPacket(code: 0x82)))
        #expect(await first.next() == nil)
        // Authentication data without a method.
        let second = try await TestClient.open(port: broker.port)
        connect(second, id: "p2", method: nil, data: nil, extra: [.authenticationData(ByteBuffer(string: "x"))])
        #expect(await second.next() == .connack(ConnAckPacket(code: 0x82)))
        // AUTH when the CONNECT had no method: DISCONNECT 0x82.
        let plain = try await TestClient.connect(port: broker.port, clientID: "p3")
        plain.send(auth(.reAuthenticate, "TEST", "alice:0"))
        #expect(await plain.next() == .disconnect(DisconnectPacket(reasonCode: .protocolError)))
        #expect(await plain.next() == nil)
        // Re-authentication with another method, and AUTH 0x18 nobody asked for.
        for packet in [auth(.reAuthenticate, "SLOW", "alice:0"), auth(.continueAuthentication, "TEST", "answer-1")] {
            let client = try await connectWithTest(port: broker.port, id: "p4", user: "alice")
            client.send(packet)
            #expect(await client.next() == .disconnect(DisconnectPacket(reasonCode: .protocolError)))
            #expect(await client.next() == nil)
        }
        // AUTH from a 3.1.1 client: not a 3.1.1 packet, the connection closes.
        let old = try await TestClient.connect(port: broker.port, clientID: "p5", version: .v3_1_1)
        old.sendRaw([0xF0, 0x00])
        #expect(await old.next() == nil)
        await broker.stop()
    }

    @Test func reauthenticationSucceedsOrDisconnects() async throws {
        let method = TestMethod()
        let broker = try await startBroker(method)
        let client = try await connectWithTest(port: broker.port, id: "r1", user: "alice", rounds: 1)
        // Success, with a challenge; other packets flow meanwhile.
        client.send(auth(.reAuthenticate, "TEST", "alice:1"))
        #expect(await client.next() == auth(.continueAuthentication, "TEST", "challenge-1"))
        client.send(.pingreq)
        #expect(await client.next() == .pingresp)
        client.send(auth(.continueAuthentication, "TEST", "answer-1"))
        #expect(await client.next() == auth(.success, "TEST", "welcome alice"))
        #expect(method.begun.withLockedValue { $0 }.last == "TEST r1 alice")
        // Failure: DISCONNECT with the plugin's code when a DISCONNECT may carry it (0x86 may not: 0x87).
        client.send(auth(.reAuthenticate, "TEST", "mallory:0"))
        #expect(await client.next() == .disconnect(DisconnectPacket(reasonCode: .notAuthorized)))
        #expect(await client.next() == nil)
        // Re-authenticating as someone else fails too.
        let other = try await connectWithTest(port: broker.port, id: "r2", user: "alice")
        other.send(auth(.reAuthenticate, "TEST", "bob:0"))
        #expect(await other.next() == .disconnect(DisconnectPacket(reasonCode: .notAuthorized)))
        #expect(await other.next() == nil)
        await broker.stop()
    }

    @Test func aSilentPluginIsRefusedAfterTheDeadlineWhileOthersAreServed() async throws {
        let method = TestMethod()
        let broker = try await startBroker(method)
        let started = Date()
        let silent = try await TestClient.open(port: broker.port)
        connect(silent, id: "s1", method: "SILENT", data: "x")
        let other = try await connectWithTest(port: broker.port, id: "s2", user: "alice", rounds: 2)
        other.send(.pingreq)
        #expect(await other.next() == .pingresp)
        // The other client was served while the silent one still waits for its plugin (no answer yet): the
        // order of events, not a wall-clock bound, which a loaded 2-core machine running the suites in
        // parallel overran once (7.8 s from `started`, the process itself held up).
        #expect(await silent.next(timeout: .milliseconds(1)) == nil)
        #expect(await silent.next(timeout: .seconds(10)) == .connack(ConnAckPacket(code: 0x88)))
        #expect(Date().timeIntervalSince(started) >= 4.9)
        #expect(await silent.next() == nil)
        await other.close()
        await broker.stop()
    }

    @Test func anExchangeThatNeverEndsIsDroppedWithinItsKeepAliveWindow() async throws {
        // The client answers every challenge well within its keep alive (1 s), but the method asks for
        // 1,000 rounds: the whole exchange gets 1.5 s, and its reads do not extend that.
        let method = TestMethod()
        let broker = try await startBroker(method)
        let client = try await TestClient.open(port: broker.port)
        connect(client, id: "k2", method: "TEST", data: "alice:1000", keepAlive: 1)
        var rounds = 0
        while rounds < 12, let packet = await client.next(timeout: .seconds(2)) {
            guard case .auth = packet else { Issue.record("unexpected \(packet)"); break }
            rounds += 1
            try await Task.sleep(for: .milliseconds(300))
            client.send(auth(.continueAuthentication, "TEST", "answer-\(rounds)"))
        }
        // Closed after about 1.5 s (5 or 6 rounds of 300 ms), long before the 12 rounds (3.6 s) are through.
        #expect(rounds < 12)
        try await eventually("the connection closed") { client.isClosed }
        await broker.stop()
    }

    @Test func aClientThatNeverAnswersIsDroppedByItsKeepAlive() async throws {
        let method = TestMethod()
        let broker = try await startBroker(method)
        let client = try await TestClient.open(port: broker.port)
        connect(client, id: "k1", method: "TEST", data: "alice:1", keepAlive: 1)
        #expect(await client.next() == auth(.continueAuthentication, "TEST", "challenge-1"))
        // 1.5 s of silence (checked every 250 ms): closed without CONNACK.
        #expect(await client.next(timeout: .seconds(5)) == nil)
        #expect(client.isClosed)
        try await eventually("the conversation ended") { method.ended.withLockedValue { $0 } == 1 }
        await broker.stop()
    }
}
