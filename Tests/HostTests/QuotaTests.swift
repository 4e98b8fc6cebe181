import Foundation
import NIOCore
import Testing
@testable import Host

private func parse(_ text: String) throws -> BrokerConfig {
    try ConfigParser.parse(text: text, file: "test.conf", baseDirectory: "/etc/midge")
}

@Suite("Quotas")
struct QuotaTests {
    @Test("quota directives are stored; none is on by default")
    func directives() throws {
        let defaults = try parse("listener 1883")
        #expect(QuotaSettings(defaults) == QuotaSettings())
        let config = try parse("""
            max_connections_total 100
            max_connections_per_user 3
            max_connection_rate 5 10
            max_publish_rate 20
            max_publish_bytes_rate 4096
            max_queued_bytes_total 1000000
            """)
        #expect(config.maxConnectionsTotal == 100)
        #expect(config.maxConnectionsPerUser == 3)
        #expect(config.maxConnectionRate == 5)
        #expect(config.connectionRateWindow == 10)
        #expect(config.maxPublishRate == 20)
        #expect(config.maxPublishBytesRate == 4096)
        #expect(config.maxQueuedBytesTotal == 1_000_000)
        #expect(try parse("max_connection_rate 7 # per second").connectionRateWindow == 1)
    }

    @Test("bad quota values name the file and line", arguments: [
        ("max_connections_total -2", "-1 (unlimited) or more"),
        ("max_connections_per_user ten", "expected an integer"),
        ("max_connection_rate -1", "0 (no limit) or more"),
        ("max_connection_rate 5 0", "a window between 1 and 86400 seconds"),
        ("max_connection_rate 5 1 2", "expected: max_connection_rate COUNT [SECONDS]"),
        ("max_publish_rate 1.5", "expected an integer"),
        ("max_publish_bytes_rate -1", "0 (no limit) or more"),
        ("max_queued_bytes_total -1", "0 (no limit) or more"),
        ("listener 1883\nglobal_max_connections 5", "max_connections_total"),
    ])
    func badValues(line: String, expected: String) throws {
        do {
            _ = try parse(line)
            Issue.record("\(line) parsed")
        } catch let error as ConfigError {
            #expect(error.message.contains(expected), "\(error)")
            #expect(error.file == "test.conf")
            #expect(error.line == line.split(separator: "\n").count)
        }
    }

    @Test("a user's slots are counted by client id: a takeover shares the old connection's slot")
    func userConnections() {
        let users = UserConnections(maximum: 2)
        #expect(users.acquire(user: "u", clientID: "a"))
        #expect(users.acquire(user: "u", clientID: "b"))
        #expect(!users.acquire(user: "u", clientID: "c"))
        #expect(users.acquire(user: "other", clientID: "c"))
        // "a" reconnects (a takeover) before its old connection has gone.
        #expect(users.acquire(user: "u", clientID: "a"))
        users.release(user: "u", clientID: "a")  // the old connection closes
        #expect(users.connected(user: "u") == 2)
        users.release(user: "u", clientID: "a")
        #expect(users.connected(user: "u") == 1)
        #expect(users.acquire(user: "u", clientID: "c"))
        users.release(user: "u", clientID: "nobody")  // harmless
        #expect(users.connected(user: "u") == 2)
    }

    @Test("connection rate: N per window per address, refused attempts take nothing, idle addresses are forgotten")
    func connectionRate() {
        let rate = ConnectionRate(count: 2, window: .seconds(1))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        #expect(rate.admit("10.0.0.1", now: start) == .allowed)
        #expect(rate.admit("10.0.0.1", now: start) == .allowed)
        #expect(rate.admit("10.0.0.1", now: start) == .refused(firstTime: true))
        #expect(rate.admit("10.0.0.1", now: start) == .refused(firstTime: false))
        #expect(rate.admit("10.0.0.2", now: start) == .allowed)  // another address is not affected
        #expect(rate.admit("10.0.0.1", now: start + .milliseconds(500)) == .allowed)  // one token back
        #expect(rate.admit("10.0.0.1", now: start + .milliseconds(500)) == .refused(firstTime: false))
        rate.sweep(now: start + .milliseconds(600))
        #expect(rate.addressCount == 1)  // 10.0.0.2 is full again (2 per second), 10.0.0.1 not yet
        rate.sweep(now: start + .seconds(2))
        #expect(rate.addressCount == 0)
    }

    @Test("publish allowance: a second's worth of burst, then debt to pay back in time")
    func publishAllowance() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var allowance = PublishAllowance(messagesPerSecond: 10, bytesPerSecond: 0, now: start)
        var debts: [Bool] = []
        for _ in 0..<12 { debts.append(allowance.take(size: 1000, now: start)) }
        #expect(debts == Array(repeating: false, count: 10) + [true, true])
        var wait = allowance.debt(now: start)
        #expect(wait == .milliseconds(200))
        wait = allowance.debt(now: start + .milliseconds(200))
        #expect(wait == .zero)
        var bytes = PublishAllowance(messagesPerSecond: 0, bytesPerSecond: 100, now: start)
        let first = bytes.take(size: 100, now: start)
        let second = bytes.take(size: 150, now: start)
        #expect(!first && second)
        wait = bytes.debt(now: start)
        #expect(wait == .milliseconds(1500))
    }

    @Test("queued bytes total: sessions add what waits, take what leaves, and refuse past the limit")
    func queuedBytesTotal() {
        let total = QueuedBytesTotal(limit: 100)
        var limits = SessionLimits()
        limits.total = total
        limits.maxQueuedMessages = 0
        var session: Session? = Session(clientID: "offline", protocolVersion: .v3_1_1, limits: limits)
        let message = Message(topic: "t", payload: ByteBuffer(repeating: 0, count: 39), qos: .atLeastOnce, retain: false)
        let delivery = Delivery(message: message, qos: .atLeastOnce, retain: false, subscriptionIDs: [])
        for _ in 0..<2 {
            guard case .queued = session!.enqueue(delivery) else { Issue.record("not queued"); return }
        }
        #expect(total.current == 80)
        guard case .overQuota(firstTime: true) = session!.enqueue(delivery) else { Issue.record("queued"); return }
        guard case .overQuota(firstTime: false) = session!.enqueue(delivery) else { Issue.record("queued"); return }
        session = nil
        #expect(total.current == 0)
    }
}
