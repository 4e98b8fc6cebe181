import Atomics
import NIOConcurrencyHelpers
import NIOCore

/// The quota directives as the config gave them. Every quota is off by default.
struct QuotaSettings: Sendable, Equatable {
    /// `max_connections_total`: open connections across all listeners; -1 = no limit.
    var maxConnectionsTotal = -1
    /// `max_connections_per_user`: connected clients per user name; -1 = no limit.
    var maxConnectionsPerUser = -1
    /// `max_connection_rate N [SECONDS]`: CONNECTs per source address per `connectionRateWindow` seconds;
    /// 0 = no limit.
    var maxConnectionRate = 0
    var connectionRateWindow = 1
    /// `max_publish_rate`: PUBLISH packets per second per connection; 0 = no limit.
    var maxPublishRate = 0
    /// `max_publish_bytes_rate`: PUBLISH bytes (topic and payload) per second per connection; 0 = no limit.
    var maxPublishBytesRate = 0
    /// `max_queued_bytes_total`: bytes waiting in all sessions' queues together; 0 = no limit.
    var maxQueuedBytesTotal = 0
}

/// The quotas, by the directive that sets them (the names used in logs and metrics).
enum Quota: String, CaseIterable, Sendable {
    case maxConnections = "max_connections"
    case maxConnectionsTotal = "max_connections_total"
    case maxConnectionsPerUser = "max_connections_per_user"
    case maxConnectionRate = "max_connection_rate"
    case maxPublishRate = "max_publish_rate"
    case maxQueuedBytesTotal = "max_queued_bytes_total"
}

/// The broker-wide state of the quotas, shared by every connection, and the count of quota events.
///
/// Nothing here is touched on the per-message path unless its quota is configured: connections hold the
/// publish rate allowance themselves (`PublishAllowance`), sessions the queued bytes account
/// (`QueuedBytesTotal`); the rest runs once per connection.
final class Quotas: Sendable {
    let settings: QuotaSettings
    /// `max_connections_total`, checked at accept with each listener's `max_connections`.
    let connectionsTotal: ConnectionLimit?
    let userConnections: UserConnections?
    let connectionRate: ConnectionRate?
    let queuedBytes: QueuedBytesTotal?
    /// Events by quota (the queued bytes refusals are counted by `queuedBytes`).
    private let events = NIOLockedValueBox([Quota: Int]())
    private let rateDisconnects = ManagedAtomic(0)

    init(_ settings: QuotaSettings = QuotaSettings()) {
        self.settings = settings
        connectionsTotal = ConnectionLimit(settings.maxConnectionsTotal)
        userConnections = settings.maxConnectionsPerUser >= 0 ? UserConnections(maximum: settings.maxConnectionsPerUser) : nil
        connectionRate = settings.maxConnectionRate > 0
            ? ConnectionRate(count: settings.maxConnectionRate, window: .seconds(Int64(settings.connectionRateWindow)))
            : nil
        queuedBytes = settings.maxQueuedBytesTotal > 0 ? QueuedBytesTotal(limit: settings.maxQueuedBytesTotal) : nil
    }

    /// Whether connections need a publish allowance.
    var limitsPublishRate: Bool { settings.maxPublishRate > 0 || settings.maxPublishBytesRate > 0 }

    /// A fresh allowance for one connection, or nil when no publish rate is configured.
    func makePublishAllowance(now: NIODeadline = .now()) -> PublishAllowance? {
        guard limitsPublishRate else { return nil }
        return PublishAllowance(messagesPerSecond: settings.maxPublishRate,
                                bytesPerSecond: settings.maxPublishBytesRate, now: now)
    }

    /// Counts one quota event (a refused connection, a client slowed down).
    func count(_ quota: Quota) {
        events.withLockedValue { $0[quota, default: 0] += 1 }
    }

    /// Counts a 5.0 client disconnected with 0x96 for publishing far over its rate.
    func countRateDisconnect() {
        rateDisconnects.wrappingIncrement(ordering: .relaxed)
    }

    /// Events so far, by directive name. The broker-wide quotas configured appear with 0 before their first
    /// event; `max_connections` (a listener's) once it refused a connection.
    func eventCounts() -> [String: Int] {
        var counts = events.withLockedValue { $0 }
        if connectionsTotal != nil { counts[.maxConnectionsTotal, default: 0] += 0 }
        if userConnections != nil { counts[.maxConnectionsPerUser, default: 0] += 0 }
        if connectionRate != nil { counts[.maxConnectionRate, default: 0] += 0 }
        if limitsPublishRate { counts[.maxPublishRate, default: 0] += 0 }
        if let queuedBytes { counts[.maxQueuedBytesTotal, default: 0] += queuedBytes.refusals }
        var result: [String: Int] = [:]
        for (quota, count) in counts { result[quota.rawValue] = count }
        return result
    }

    /// 5.0 clients disconnected for publishing far over `max_publish_rate` / `max_publish_bytes_rate`.
    var rateDisconnectCount: Int { rateDisconnects.load(ordering: .relaxed) }

    /// Housekeeping, once a second: forgets source addresses idle for a whole window.
    func sweep(now: NIODeadline = .now()) {
        connectionRate?.sweep(now: now)
    }
}

extension QuotaSettings {
    /// The quota directives of `config`.
    init(_ config: BrokerConfig) {
        self.init(maxConnectionsTotal: config.maxConnectionsTotal, maxConnectionsPerUser: config.maxConnectionsPerUser,
                  maxConnectionRate: config.maxConnectionRate, connectionRateWindow: config.connectionRateWindow,
                  maxPublishRate: config.maxPublishRate, maxPublishBytesRate: config.maxPublishBytesRate,
                  maxQueuedBytesTotal: config.maxQueuedBytesTotal)
    }
}
