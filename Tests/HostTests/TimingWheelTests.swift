import Foundation
import MQTT
import NIOCore
import NIOPosix
import Testing
@testable import Host

@Suite("Timing wheel")
struct TimingWheelTests {
    private final class Key {}
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    private func at(_ milliseconds: Int64) -> NIODeadline { start + .milliseconds(milliseconds) }

    @Test("a deadline comes out once it passed, not before, and only once")
    func dueOnce() {
        var wheel = TimingWheel<Int>(resolution: .milliseconds(250), slots: 8, now: start)
        let key = Key()
        wheel.schedule(ObjectIdentifier(key), 1, at: at(600))
        #expect(wheel.advance(to: at(250)).isEmpty)
        #expect(wheel.advance(to: at(599)).isEmpty)
        // The deadline's tick is rounded up: it comes out at the first tick at or after it.
        #expect(wheel.advance(to: at(750)) == [1])
        #expect(wheel.advance(to: at(5_000)).isEmpty)
        #expect(wheel.count == 0)
    }

    @Test("a deadline further than one turn waits its turns; moving or removing one takes effect")
    func farMovedRemoved() {
        var wheel = TimingWheel<String>(resolution: .milliseconds(100), slots: 4, now: start)  // a 400 ms turn
        let (far, moved, removed) = (Key(), Key(), Key())
        wheel.schedule(ObjectIdentifier(far), "far", at: at(1_050))
        wheel.schedule(ObjectIdentifier(moved), "moved", at: at(200))
        wheel.schedule(ObjectIdentifier(removed), "removed", at: at(200))
        wheel.schedule(ObjectIdentifier(moved), "moved", at: at(700))
        #expect(wheel.remove(ObjectIdentifier(removed)) == "removed")
        var out: [(Int64, String)] = []
        for ms in stride(from: Int64(100), through: 2_000, by: 100) {
            for value in wheel.advance(to: at(ms)) { out.append((ms, value)) }
        }
        #expect(out.map(\.0) == [700, 1_100])
        #expect(out.map(\.1) == ["moved", "far"])
    }

    @Test("after a long pause every passed deadline comes out in one call, each slot looked at once")
    func longPause() {
        var wheel = TimingWheel<Int>(resolution: .milliseconds(10), slots: 16, now: start)
        let keys = (0..<100).map { _ in Key() }
        for (i, key) in keys.enumerated() { wheel.schedule(ObjectIdentifier(key), i, at: at(Int64(i) * 7)) }
        let due = wheel.advance(to: at(10_000))
        #expect(Set(due) == Set(0..<100))
        #expect(wheel.visited == 100)
    }

    @Test("a deadline already passed comes out at the next tick")
    func pastDeadline() {
        var wheel = TimingWheel<Int>(resolution: .milliseconds(250), slots: 8, now: at(1_000))
        let key = Key()
        wheel.schedule(ObjectIdentifier(key), 7, at: at(0))
        #expect(wheel.advance(to: at(1_100)).isEmpty)  // the same tick: nothing to look at yet
        #expect(wheel.advance(to: at(1_250)) == [7])
    }
}

@Suite("Keep alive on the wheel")
struct KeepAliveWheelTests {
    /// What the broker's keep-alive ticks have looked at so far, summed over its event loops.
    private func visited(_ broker: TestBroker) async throws -> Int {
        var total = 0
        for context in broker.broker.contexts[0].loops.all {
            total += try await context.eventLoop.submit { context.value.keepAlive.visited }.get()
        }
        return total
    }

    @Test("idle connections cost the keep-alive tick nothing until their deadline comes (the old tick looked at every connection four times a second)")
    func idleConnectionsAreNotLookedAt() async throws {
        let broker = try await TestBroker.start("allow_anonymous true\n", hooks: [:])
        var clients: [TestClient] = []
        for i in 0..<100 { clients.append(try await TestClient.connect(port: broker.port, clientID: "idle-\(i)")) }
        let before = try await visited(broker)
        // Six ticks: keep alive 60 puts every deadline 90 s away.
        try await Task.sleep(for: .milliseconds(1_500))
        let after = try await visited(broker)
        #expect(after - before == 0)
        for client in clients { await client.close() }
        await broker.stop()
    }

    @Test("a client silent past 1.5 times its keep alive is closed; the wheel entry moved from the 90 s grace period to the client's window")
    func silentClientIsClosed() async throws {
        let broker = try await TestBroker.start("allow_anonymous true\n", hooks: [:])
        let client = try await TestClient.open(port: broker.port, version: .v3_1_1)
        client.send(.connect(ConnectPacket(protocolVersion: .v3_1_1, cleanStart: true, keepAlive: 1,
                                           clientID: "silent")))
        guard case .connack? = await client.next() else {
            Issue.record("no CONNACK")
            return
        }
        let started = ContinuousClock.now
        // Closed after 1.5 s of silence (and a tick): far sooner than the grace period's 90 s, which the
        // connection was on the wheel for until CONNACK. (No lower bound: the CONNACK may reach this test late.)
        let closed = await client.next(timeout: .seconds(60))
        #expect(closed == nil)
        let waited = ContinuousClock.now - started
        #expect(waited < .seconds(30), "closed after \(waited)")
        await client.close()
        await broker.stop()
    }
}

@Suite("Failure log")
struct FailureLogTests {
    @Test("the first failure of a key is logged, then one line per interval with how many were not")
    func floodsAreSummarised() {
        let log = CapturedLog()
        let failures = FailureLog(interval: .seconds(60))
        let start = NIODeadline.now()
        for i in 0..<1_000 {
            failures.record("hook publish", logger: log.logger, now: start + .milliseconds(Int64(i)), "hook failed")
        }
        failures.record("other connect", logger: log.logger, now: start, "other failed")
        #expect(log.lines.count == 2)
        failures.record("hook publish", logger: log.logger, now: start + .seconds(61), "hook failed")
        #expect(failures.count == 1_002)
        #expect(log.lines.count == 3)
        #expect(log.lines.last?.hasSuffix("hook failed (999 more like it since the last such line, not logged one by one)") == true)
    }
}
