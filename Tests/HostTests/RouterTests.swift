@testable import Host
import Foundation
import Logging
import MQTT
import NIOCore
import NIOPosix
import Testing

private func message(_ topic: String, _ payload: String = "x", qos: QoS = .atMostOnce, retain: Bool = false) -> Message {
    Message(topic: topic, payload: ByteBuffer(string: payload), qos: qos, retain: retain)
}

private func subscription(_ filter: String, qos: QoS = .atLeastOnce, group: String? = nil) -> Subscription {
    Subscription(key: group.map { "$share/\($0)/\(filter)" } ?? filter, filter: filter, group: group,
                 options: SubscriptionOptions(qos: qos), identifier: nil)
}

@Suite("Subscription index")
struct SubscriptionIndexTests {
    @Test("wildcards match whole levels, `#` matches its parent, `$` topics hide from leading wildcards")
    func matching() {
        let index = SubscriptionIndex()
        let filters = ["a/b", "a/+", "a/#", "#", "+/b", "$SYS/#", "+/+/c", "a/b/#"]
        var sessions: [String: Session] = [:]
        for filter in filters {
            let session = Session(clientID: filter, protocolVersion: .v3_1_1, limits: SessionLimits())
            sessions[filter] = session
            index.add(session, subscription(filter))
        }
        func matched(_ topic: String) -> Set<String> {
            Set(index.match(topic).subscribers.map { $0.session.clientID })
        }
        #expect(matched("a/b") == ["a/b", "a/+", "a/#", "#", "+/b", "a/b/#"])
        #expect(index.match("a/b").subscribers.count == 6)
        #expect(matched("a") == ["a/#", "#"])
        #expect(matched("a/x/c") == ["a/#", "#", "+/+/c"])
        #expect(matched("$SYS/uptime") == ["$SYS/#"])
        #expect(matched("$SYS/b") == ["$SYS/#"])
        #expect(matched("b/c") == ["#"])
        #expect(index.subscriptionCount == filters.count)
    }

    @Test("one session with overlapping subscriptions is one target at the highest QoS, with every identifier")
    func overlapping() throws {
        let index = SubscriptionIndex()
        let session = Session(clientID: "s", protocolVersion: .v5, limits: SessionLimits())
        var low = subscription("a/#", qos: .atMostOnce)
        low.identifier = 1
        var high = subscription("a/+", qos: .exactlyOnce)
        high.identifier = 2
        index.add(session, low)
        index.add(session, high)
        let targets = index.match("a/b").subscribers
        #expect(targets.count == 1)
        let target = try #require(targets.first)
        #expect(target.options.qos == .exactlyOnce)
        #expect(Set(target.identifiers) == [1, 2])
    }

    @Test("the match cache is bounded in bytes, not only in topics: many subscribers per topic, many topics")
    func cacheIsBoundedInBytes() {
        let index = SubscriptionIndex()
        for id in 0..<300 {
            index.add(Session(clientID: "s\(id)", protocolVersion: .v5, limits: SessionLimits()), subscription("#"))
        }
        for topic in 0..<1000 { #expect(index.match("t/\(topic)").subscribers.count == 300) }
        let use = index.cacheUse
        #expect(use.bytes <= SubscriptionIndex.cacheByteLimit, "\(use)")
        #expect(use.topics < 1000, "\(use)")  // 1,000 results of 300 targets do not all fit
        #expect(use.topics > 0)
    }

    @Test("removing a subscription stops matches and the cache does not serve stale results")
    func removal() {
        let index = SubscriptionIndex()
        let session = Session(clientID: "s", protocolVersion: .v3_1_1, limits: SessionLimits())
        index.add(session, subscription("a/+"))
        #expect(index.match("a/b").subscribers.count == 1)
        #expect(index.remove(session, subscription("a/+")))
        #expect(index.match("a/b").isEmpty)
        #expect(!index.remove(session, subscription("a/+")))
        #expect(index.subscriptionCount == 0)
    }

    @Test("a share group gives each message to one member, round robin")
    func sharedGroups() throws {
        let index = SubscriptionIndex()
        let one = Session(clientID: "one", protocolVersion: .v3_1_1, limits: SessionLimits())
        let two = Session(clientID: "two", protocolVersion: .v3_1_1, limits: SessionLimits())
        index.add(one, subscription("t/#", group: "g"))
        index.add(two, subscription("t/#", group: "g"))
        let result = index.match("t/x")
        #expect(result.subscribers.isEmpty)
        #expect(result.groups.count == 1)
        let group = try #require(result.groups.first)
        let picks = (0..<4).compactMap { _ in group.pick()?.session.clientID }
        #expect(picks.filter { $0 == "one" }.count == 2)
        #expect(picks.filter { $0 == "two" }.count == 2)
    }
}

@Suite("Retained store")
struct RetainedStoreTests {
    @Test("set, replace, delete on empty payload, match by filter")
    func lifecycle() {
        let store = RetainedStore()
        store.set(message("a/b", "1", retain: true))
        store.set(message("a/c", "2", retain: true))
        store.set(message("a/b", "3", retain: true))
        store.set(message("$SYS/x", "s", retain: true))
        #expect(store.messageCount == 3)
        #expect(Set(store.matching("a/+").map { String(buffer: $0.payload) }) == ["3", "2"])
        #expect(Set(store.matching("#").map(\.topic)) == ["a/b", "a/c"])
        #expect(store.matching("$SYS/#").map(\.topic) == ["$SYS/x"])
        #expect(store.matching("+/x").isEmpty)
        store.set(message("a/b", "", retain: true))
        #expect(store.messageCount == 2)
        #expect(store.matching("a/b").isEmpty)
        #expect(Set(store.matching("a/#").map(\.topic)) == ["a/c"])
    }

    @Test("`a/#` matches a message retained on `a` itself")
    func hashMatchesParent() {
        let store = RetainedStore()
        store.set(message("a", "p", retain: true))
        store.set(message("a/b/c", "d", retain: true))
        #expect(Set(store.matching("a/#").map(\.topic)) == ["a", "a/b/c"])
    }
}

@Suite("Session queue and in-flight window")
struct SessionTests {
    @Test("offline QoS 0 is dropped unless queue_qos0_messages; the queue is bounded")
    func offlineQueue() {
        var limits = SessionLimits()
        limits.maxQueuedMessages = 3
        let session = Session(clientID: "s", protocolVersion: .v3_1_1, limits: limits)
        let qos0 = Delivery(message: message("t"), qos: .atMostOnce, retain: false, subscriptionIDs: [])
        if case .skipped = session.enqueue(qos0) {} else { Issue.record("QoS 0 for an offline client was queued") }
        var queued = 0
        for index in 0..<10 {
            let delivery = Delivery(message: message("t", "\(index)", qos: .atLeastOnce), qos: .atLeastOnce,
                                    retain: false, subscriptionIDs: [])
            if case .queued = session.enqueue(delivery) { queued += 1 }
        }
        #expect(queued == 3)
        #expect(session.dropped == 7)
    }

    @Test("the in-flight window holds back QoS 1 until acknowledged; resend marks DUP")
    func inflightWindow() {
        var limits = SessionLimits()
        limits.maxInflightMessages = 2
        let session = Session(clientID: "s", protocolVersion: .v3_1_1, limits: limits)
        for index in 0..<5 {
            _ = session.enqueue(Delivery(message: message("t", "\(index)", qos: .atLeastOnce), qos: .atLeastOnce,
                                         retain: false, subscriptionIDs: []))
        }
        var out: [Session.Outgoing] = []
        session.takeReady(limit: 100, into: &out)
        #expect(out.count == 2)
        var ids: [UInt16] = []
        for item in out { if case .publish(_, let id?, let dup) = item { ids.append(id); #expect(!dup) } }
        #expect(ids == [1, 2])
        out.removeAll()
        session.takeReady(limit: 100, into: &out)
        #expect(out.isEmpty)
        #expect(session.complete(1))
        #expect(!session.complete(1))
        session.takeReady(limit: 100, into: &out)
        #expect(out.count == 1)
        out.removeAll()
        session.resendInflight(into: &out)
        let resent = out.compactMap { item -> UInt16? in
            if case .publish(_, let id?, true) = item { return id }
            return nil
        }
        #expect(resent == [2, 3])
    }

    @Test("a PUBREC'd QoS 2 message is resent as PUBREL")
    func pubrelResend() {
        let session = Session(clientID: "s", protocolVersion: .v3_1_1, limits: SessionLimits())
        _ = session.enqueue(Delivery(message: message("t", qos: .exactlyOnce), qos: .exactlyOnce, retain: false,
                                     subscriptionIDs: []))
        var out: [Session.Outgoing] = []
        session.takeReady(limit: 10, into: &out)
        #expect(session.acknowledge(1, .pubrec) == .released)
        out.removeAll()
        session.resendInflight(into: &out)
        guard case .pubrel(1)? = out.first else {
            Issue.record("expected PUBREL 1, got \(out)")
            return
        }
    }
}

@Suite("Acknowledgements")
struct AcknowledgementTests {
    private func session(sending qos: QoS) -> Session {
        let session = Session(clientID: "s", protocolVersion: .v5, limits: SessionLimits())
        _ = session.enqueue(Delivery(message: message("t", qos: qos), qos: qos, retain: false, subscriptionIDs: []))
        var out: [Session.Outgoing] = []
        session.takeReady(limit: 10, into: &out)
        return session
    }

    @Test("an acknowledgement that does not fit the message's QoS or state is a mismatch, as Mosquitto sees it")
    func mismatches() {
        #expect(session(sending: .atLeastOnce).acknowledge(1, .pubrec) == .mismatch)
        #expect(session(sending: .atLeastOnce).acknowledge(1, .pubcomp) == .mismatch)
        #expect(session(sending: .exactlyOnce).acknowledge(1, .puback) == .mismatch)
        #expect(session(sending: .exactlyOnce).acknowledge(1, .pubcomp) == .mismatch)  // before PUBREC
        let released = session(sending: .exactlyOnce)
        #expect(released.acknowledge(1, .pubrec) == .released)
        #expect(released.acknowledge(1, .pubrecFailure) == .mismatch)
        #expect(released.acknowledge(1, .pubcomp) == .completed)
        #expect(released.acknowledge(1, .pubcomp) == .unknown)
        #expect(session(sending: .atLeastOnce).acknowledge(1, .puback) == .completed)
        #expect(session(sending: .atLeastOnce).acknowledge(7, .puback) == .unknown)
    }

    @Test("a queued message keeps the packet id it got when queued, even when one before it expires")
    func idsAtQueueTime() {
        let session = Session(clientID: "s", protocolVersion: .v5, limits: SessionLimits())
        _ = session.enqueue(Delivery(message: Message(topic: "t", payload: ByteBuffer(string: "old"), qos: .atLeastOnce,
                                                      retain: false, properties: [.messageExpiryInterval(0)]),
                                     qos: .atLeastOnce, retain: false, subscriptionIDs: []))
        _ = session.enqueue(Delivery(message: message("t", qos: .atLeastOnce), qos: .atLeastOnce, retain: false,
                                     subscriptionIDs: []))
        // The first message's expiry second passes; Message.isExpired compares whole seconds.
        let start = Message.wallClockSecond()
        while Message.wallClockSecond() <= start { usleep(10_000) }
        var out: [Session.Outgoing] = []
        session.takeReady(limit: 10, into: &out)
        let ids = out.compactMap { item -> UInt16? in
            if case .publish(_, let id?, _) = item { return id }
            return nil
        }
        #expect(ids == [2])
    }
}

@Suite("Will timers")
struct WillTimerTests {
    /// Whether `timer` was cancelled (its future fails with `EventLoopError.cancelled`), within a bound.
    private func cancelled(_ timer: Scheduled<Void>) async -> Bool {
        do {
            try await timer.futureResult.get()
            return false
        } catch {
            return (error as? EventLoopError) == .cancelled
        }
    }

    @Test("the session owns a delayed will's timer: a reconnect or a new session cancels it, and the will")
    func reconnectCancels() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var settings = RouterSettings()
        settings.persistentClientExpiration = nil
        let router = Router(settings: settings, logger: Logger(label: "test"))
        for cleanStart in [false, true] {
            let first = ConnectionHandle.unattached(on: loop)
            let session = router.connect(clientID: "w", cleanStart: true, version: .v5, expiry: 3600, handle: first,
                                         receiveMaximum: 65535, maximumPacketSize: 0).session
            router.disconnect(session, handle: first, expiry: 3600)
            let timer = loop.scheduleTask(in: .hours(1)) {}
            session.holdWill(timer)
            #expect(session.holdsWill)
            _ = router.connect(clientID: "w", cleanStart: cleanStart, version: .v5, expiry: 3600,
                               handle: ConnectionHandle.unattached(on: loop), receiveMaximum: 65535,
                               maximumPacketSize: 0)
            #expect(await cancelled(timer), "clean start \(cleanStart)")
            #expect(!session.holdsWill)
        }
    }
}

@Suite("Router sessions")
struct RouterSessionTests {
    @Test("the expiry sweep looks only at offline sessions whose time came, not at every session each second")
    func sweepLooksOnlyAtDueSessions() {
        var settings = RouterSettings()
        settings.persistentClientExpiration = 3_600
        let router = Router(settings: settings, logger: Logger(label: "test"))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        func connect(_ id: String, expiry: UInt32?) -> (Session, ConnectionHandle) {
            let handle = ConnectionHandle.unattached(on: loop)
            let result = router.connect(clientID: id, cleanStart: false, version: expiry == nil ? .v3_1_1 : .v5,
                                        expiry: expiry, handle: handle, receiveMaximum: 65535, maximumPacketSize: 0)
            return (result.session, handle)
        }
        for i in 0..<500 { _ = connect("online-\(i)", expiry: nil) }
        for i in 0..<500 {
            let (session, handle) = connect("offline-\(i)", expiry: nil)  // 3.x: persistent_client_expiration
            router.disconnect(session, handle: handle, expiry: nil)
        }
        let (short, handle) = connect("short", expiry: 5)
        router.disconnect(short, handle: handle, expiry: 5)
        let (back, backHandle) = connect("back", expiry: 5)
        router.disconnect(back, handle: backHandle, expiry: 5)
        _ = connect("back", expiry: 5)  // resumed: no longer expiring
        let now = NIODeadline.now()
        for second in 1...4 { #expect(router.sweepExpiredSessions(now: now + .seconds(Int64(second))) == 0) }
        #expect(router.sessionsLookedAtBySweep == 0)
        #expect(router.sweepExpiredSessions(now: now + .seconds(7)) == 1)
        #expect(router.sessionsLookedAtBySweep == 1)
        #expect(router.sessionCount == 1_001)
        // An hour later the 500 offline 3.x sessions go, each looked at once.
        #expect(router.sweepExpiredSessions(now: now + .seconds(3_602)) == 500)
        #expect(router.sessionsLookedAtBySweep == 501)
        #expect(router.sessionCount == 501)
    }

    @Test("persistent sessions resume with session present; clean ones start over; expiry ends offline sessions")
    func sessions() async throws {
        var settings = RouterSettings()
        settings.persistentClientExpiration = 0
        let router = Router(settings: settings, logger: Logger(label: "test"))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let first = ConnectionHandle.unattached(on: loop)
        let a = router.connect(clientID: "c", cleanStart: false, version: .v3_1_1, expiry: nil, handle: first,
                               receiveMaximum: 65535, maximumPacketSize: 0)
        #expect(!a.sessionPresent)
        let second = ConnectionHandle.unattached(on: loop)
        let b = router.connect(clientID: "c", cleanStart: false, version: .v3_1_1, expiry: nil, handle: second,
                               receiveMaximum: 65535, maximumPacketSize: 0)
        #expect(b.sessionPresent)
        #expect(b.replaced === first)
        #expect(a.session === b.session)
        // The replaced connection's late disconnect must not detach the new one.
        router.disconnect(b.session, handle: first, expiry: nil)
        #expect(b.session.isConnected)
        router.disconnect(b.session, handle: second, expiry: nil)
        #expect(!b.session.isConnected)
        #expect(router.sessionCount == 1)
        // The sweep's resolution is a second: an expiry of 0 has passed by the next one.
        #expect(router.sweepExpiredSessions(now: .now() + .seconds(2)) == 1)
        #expect(router.sessionCount == 0)
        let third = ConnectionHandle.unattached(on: loop)
        let c = router.connect(clientID: "c", cleanStart: false, version: .v3_1_1, expiry: nil, handle: third,
                               receiveMaximum: 65535, maximumPacketSize: 0)
        #expect(!c.sessionPresent)
        router.disconnect(c.session, handle: third, expiry: 0)
        #expect(router.sessionCount == 0)
    }
}
