/// The broker's counters (since start) and gauges (now), as `BrokerServices.statistics()` collects them.
///
/// What each figure is called and where it is published (`$SYS/broker/...` by the `sys` hook, `/metrics` by
/// the `prometheus` hook) is declared once, in `BrokerStatistics.all`: a figure added here gets there, and into
/// `midge check-config`'s list, with one entry in that list.
public struct BrokerStatistics: Sendable, Hashable {
    /// Seconds since start.
    public var uptime: Int = 0
    /// Clients connected now.
    public var clientsConnected = 0
    /// Persistent sessions whose client is not connected.
    public var clientsDisconnected = 0
    /// The most clients connected at once since start.
    public var clientsMaximum = 0
    /// Sessions ended by their expiry since start.
    public var clientsExpired = 0
    /// Network connections accepted since start (before CONNECT).
    public var connectionsAccepted = 0
    /// Open network connections now, by listener name.
    public var connectionsByListener: [String: Int] = [:]
    /// MQTT packets received since start.
    public var messagesReceived = 0
    /// MQTT packets sent since start.
    public var messagesSent = 0
    /// PUBLISH packets received since start.
    public var publishReceived = 0
    /// PUBLISH packets sent since start.
    public var publishSent = 0
    /// Messages dropped since start (queues full, expired, too large for the receiver).
    public var publishDropped = 0
    /// Bytes received on the network since start.
    public var bytesReceived = 0
    /// Bytes sent on the network since start.
    public var bytesSent = 0
    /// Subscriptions now (shared subscriptions count once per member).
    public var subscriptions = 0
    /// Retained messages now.
    public var retainedMessages = 0
    /// Reloads since start.
    public var reloads = 0
    /// Reloads since start that failed (the last good state stayed).
    public var reloadsFailed = 0
    /// Hook calls that failed (an error or a missed deadline) since start.
    public var hookFailures = 0
    /// Quota events since start, by the directive that set the quota (README, Quotas), for the quotas
    /// configured: connections closed at accept (`max_connections`, `max_connections_total`), CONNECTs refused
    /// (`max_connections_per_user`, `max_connection_rate`), connections slowed down, once each
    /// (`max_publish_rate`, which also stands for `max_publish_bytes_rate`), messages not queued, once per
    /// session refusing them (`max_queued_bytes_total`; also counted in `publishDropped`).
    public var quotaEvents: [String: Int] = [:]
    /// MQTT 5.0 clients disconnected with 0x96 (message rate too high) since start, for publishing far over
    /// `max_publish_rate` / `max_publish_bytes_rate`.
    public var publishRateDisconnects = 0
    /// Bytes waiting in all sessions' queues now; only counted under `max_queued_bytes_total` (else 0).
    public var queuedBytes = 0
    /// Authentication and authorization plugin calls that failed (an error or a missed deadline) since start;
    /// each denied the client concerned.
    public var authFailures = 0
    /// Log lines dropped since start because the log destination did not keep up (`log_buffer_size`).
    public var logLinesDropped = 0

    /// All figures at 0.
    public init() {}

    /// Clients known: connected plus disconnected persistent sessions.
    public var clientsTotal: Int { clientsConnected + clientsDisconnected }
}

// MARK: - The list of statistics

extension BrokerStatistics {
    /// Every statistic the broker publishes, each declared once: its name, kind and help, its `$SYS` topics
    /// (Mosquitto's names), its Prometheus metric, and how its value is read. The `sys` hook publishes the
    /// entries with `sys` in this order, the `prometheus` hook the entries with a `metric`, and
    /// `midge check-config` lists them.
    ///
    /// Not in the list: `$SYS/broker/version` (the broker's version string, not a statistic; published once
    /// by the `sys` hook). The per-minute load averages are not entries of their own: the `sys` hook derives
    /// them from the counters whose `SysTopics` has a `load` name.
    public static let all: [StatisticDefinition] = [
        // In the order the `sys` hook publishes them (Mosquitto's), then those only `/metrics` shows.
        .gauge("uptime", "Seconds since the broker started.", \.uptime,
               sys: SysTopics("$SYS/broker/uptime", unit: "seconds", everyInterval: true),
               metric: "midge_uptime_seconds"),
        .gauge("clients.total", "Clients known: connected plus disconnected persistent sessions.", \.clientsTotal,
               sys: ["$SYS/broker/clients/total"]),
        .gauge("clients.disconnected", "Persistent sessions whose client is not connected.", \.clientsDisconnected,
               sys: ["$SYS/broker/clients/inactive", "$SYS/broker/clients/disconnected"],
               metric: "midge_clients_disconnected"),
        .gauge("clients.connected", "Clients connected now.", \.clientsConnected,
               sys: ["$SYS/broker/clients/active", "$SYS/broker/clients/connected"],
               metric: "midge_clients_connected"),
        .counter("clients.expired", "Sessions ended by their expiry.", \.clientsExpired,
                 sys: ["$SYS/broker/clients/expired"], metric: "midge_clients_expired_total"),
        .gauge("clients.maximum", "The most clients connected at once since start.", \.clientsMaximum,
               sys: ["$SYS/broker/clients/maximum"], metric: "midge_clients_maximum"),
        .counter("messages.received", "MQTT packets received.", \.messagesReceived,
                 sys: SysTopics("$SYS/broker/messages/received", load: "messages/received"),
                 metric: "midge_messages_received_total"),
        .counter("messages.sent", "MQTT packets sent.", \.messagesSent,
                 sys: SysTopics("$SYS/broker/messages/sent", load: "messages/sent"),
                 metric: "midge_messages_sent_total"),
        .counter("publish.received", "PUBLISH packets received.", \.publishReceived,
                 sys: SysTopics("$SYS/broker/publish/messages/received", load: "publish/received"),
                 metric: "midge_publish_received_total"),
        .counter("publish.sent", "PUBLISH packets sent.", \.publishSent,
                 sys: SysTopics("$SYS/broker/publish/messages/sent", load: "publish/sent"),
                 metric: "midge_publish_sent_total"),
        .counter("publish.dropped", "Messages dropped: queues full, expired, too large for the receiver.",
                 \.publishDropped,
                 sys: SysTopics("$SYS/broker/publish/messages/dropped", load: "publish/dropped"),
                 metric: "midge_publish_dropped_total"),
        .counter("bytes.received", "Bytes received on the network.", \.bytesReceived,
                 sys: SysTopics("$SYS/broker/bytes/received", load: "bytes/received"),
                 metric: "midge_bytes_received_total"),
        .counter("bytes.sent", "Bytes sent on the network.", \.bytesSent,
                 sys: SysTopics("$SYS/broker/bytes/sent", load: "bytes/sent"),
                 metric: "midge_bytes_sent_total"),
        .gauge("subscriptions", "Subscriptions now (shared subscriptions count once per member).",
               \.subscriptions, sys: ["$SYS/broker/subscriptions/count"], metric: "midge_subscriptions"),
        .gauge("retained_messages", "Retained messages now.", \.retainedMessages,
               sys: ["$SYS/broker/retained messages/count"], metric: "midge_retained_messages"),
        .counter("quota.exceeded", "Quota events, by the directive that set the quota.", label: "quota",
                 \.quotaEvents, sys: ["$SYS/broker/quotas"], metric: "midge_quota_exceeded_total"),
        .counter("connections.accepted", "Network connections accepted (before CONNECT).", \.connectionsAccepted,
                 sys: SysTopics(load: "connections"), metric: "midge_connections_accepted_total"),
        .gauge("connections.open", "Open network connections now, by listener.", label: "listener",
               \.connectionsByListener, metric: "midge_listener_connections"),
        .counter("reloads", "Reloads (SIGHUP, or changed files).", \.reloads, metric: "midge_reloads_total"),
        .counter("reloads.failed", "Reloads that failed (the last good state stayed).", \.reloadsFailed,
                 metric: "midge_reloads_failed_total"),
        .counter("hook.failures", "Hook calls that failed (an error or a missed deadline).", \.hookFailures,
                 metric: "midge_hook_failures_total"),
        .counter("publish.rate_disconnects", "MQTT 5.0 clients disconnected for publishing far over the rate quota.",
                 \.publishRateDisconnects, metric: "midge_publish_rate_disconnects_total"),
        .gauge("queued_bytes", "Bytes waiting in all sessions' queues (under max_queued_bytes_total only).",
               \.queuedBytes, metric: "midge_queued_bytes"),
        .counter("auth.failures", "Authentication and authorization plugin calls that failed (an error or a missed deadline).",
                 \.authFailures, metric: "midge_auth_failures_total"),
        .counter("log.dropped", "Log lines dropped: the log destination did not keep up (log_buffer_size).",
                 \.logLinesDropped, metric: "midge_log_lines_dropped_total"),
    ]
}

/// Whether a statistic counts since start or is a level now. A struct with static members rather than an
/// enum, so that a new kind is an addition (README, The plugin API's version): compare with `==`, and end a
/// `switch` over one with `default:`.
public struct StatisticKind: Hashable, Sendable, CustomStringConvertible {
    private let name: String

    private init(_ name: String) { self.name = name }

    /// Counted since start: it never goes down.
    public static let counter = StatisticKind("counter")
    /// A level now: it goes up and down.
    public static let gauge = StatisticKind("gauge")

    /// `counter` or `gauge` (Prometheus' names).
    public var description: String { name }
}

/// How a statistic's value is read from `BrokerStatistics`: one number (`.single`), or one number for each
/// value of a label (`.labelled`: each listener, each quota). A struct with static members rather than an
/// enum, so that a new shape is an addition; read it with `number(in:)` and `samples(in:)`.
public struct StatisticValue: Sendable {
    /// The label's name of a labelled value (`quota`, `listener`); nil for one number.
    public let label: String?
    private let one: (@Sendable (BrokerStatistics) -> Int)?
    private let each: (@Sendable (BrokerStatistics) -> [String: Int])?

    private init(label: String?, one: (@Sendable (BrokerStatistics) -> Int)?,
                 each: (@Sendable (BrokerStatistics) -> [String: Int])?) {
        self.label = label
        self.one = one
        self.each = each
    }

    /// One number, read by `read` (a key path such as `\.clientsConnected` will do).
    public static func single(_ read: @escaping @Sendable (BrokerStatistics) -> Int) -> StatisticValue {
        StatisticValue(label: nil, one: read, each: nil)
    }

    /// One number per value of the label `label`, read by `read` (`\.connectionsByListener`).
    public static func labelled(label: String, _ read: @escaping @Sendable (BrokerStatistics) -> [String: Int])
        -> StatisticValue {
        StatisticValue(label: label, one: nil, each: read)
    }

    /// The number in `statistics`; nil for a labelled value.
    public func number(in statistics: BrokerStatistics) -> Int? {
        one?(statistics)
    }

    /// The value in `statistics`: one sample with no label value, or one per label value (sorted by it).
    public func samples(in statistics: BrokerStatistics) -> [(labelValue: String?, value: Int)] {
        if let one { return [(nil, one(statistics))] }
        return (each?(statistics) ?? [:]).sorted { $0.key < $1.key }.map { (labelValue: $0.key, value: $0.value) }
    }
}

/// Where a statistic appears under `$SYS/broker/...` (the `sys` hook), with Mosquitto's names.
public struct SysTopics: Sendable, Hashable, ExpressibleByArrayLiteral {
    /// The topics, each published with the same value (Mosquitto has two names for some figures). For a
    /// labelled statistic, each label value gets its own topic below each of these: `TOPIC/VALUE`.
    public var topics: [String]
    /// Written after the number and a space (`seconds`: `120 seconds`); nil for the number alone.
    public var unit: String?
    /// Published on every interval; otherwise only when the value changed (as Mosquitto does).
    public var everyInterval: Bool
    /// For a counter: the name of its per-minute load averages,
    /// `$SYS/broker/load/NAME/{1min,5min,15min}`; nil for none.
    public var load: String?

    /// A statistic published under `topics`, with the unit, interval and load averages given.
    public init(_ topics: String..., unit: String? = nil, everyInterval: Bool = false, load: String? = nil) {
        self.topics = topics
        self.unit = unit
        self.everyInterval = everyInterval
        self.load = load
    }

    /// A statistic published under these topics, as a plain number, when it changed.
    public init(arrayLiteral topics: String...) {
        self.topics = topics
        self.unit = nil
        self.everyInterval = false
        self.load = nil
    }

    /// The topic (or, for a labelled statistic, the topic pattern, `TOPIC/<LABEL>`) of each of `topics`,
    /// then the load averages' topics, for people to read.
    public func described(label: String?) -> [String] {
        topics.map { topic in label.map { "\(topic)/<\($0)>" } ?? topic }
            + (load.map { ["$SYS/broker/load/\($0)/{1min,5min,15min}"] } ?? [])
    }
}

/// One statistic of `BrokerStatistics.all`: what it is, where it is published, and how it is read.
public struct StatisticDefinition: Sendable {
    /// A stable name, unique in the list (`clients.connected`), for people and tools.
    public let name: String
    /// Counter or gauge.
    public let kind: StatisticKind
    /// What it counts or measures, in one line.
    public let help: String
    /// Its `$SYS` topics; nil if the `sys` hook does not publish it.
    public let sys: SysTopics?
    /// Its Prometheus metric name (a labelled statistic's samples carry its label); nil if `/metrics` does
    /// not show it.
    public let metric: String?
    /// How it is read from `BrokerStatistics`.
    public let value: StatisticValue

    /// A statistic with every property given.
    public init(name: String, kind: StatisticKind, help: String, sys: SysTopics?, metric: String?,
                value: StatisticValue) {
        self.name = name
        self.kind = kind
        self.help = help
        self.sys = sys
        self.metric = metric
        self.value = value
    }

    /// The label's name of a labelled statistic (`quota`, `listener`); nil for a single number.
    public var label: String? { value.label }

    /// Its value in `statistics`: one sample with no label value, or one per label value (sorted by it).
    public func samples(in statistics: BrokerStatistics) -> [(labelValue: String?, value: Int)] {
        value.samples(in: statistics)
    }

    /// Its metric as `/metrics` shows it, for people to read: `midge_listener_connections{listener}`.
    public var describedMetric: String? {
        metric.map { metric in label.map { "\(metric){\($0)}" } ?? metric }
    }

    /// A counter read as one number.
    public static func counter(_ name: String, _ help: String, _ read: @escaping @Sendable (BrokerStatistics) -> Int,
                               sys: SysTopics? = nil, metric: String? = nil) -> StatisticDefinition {
        StatisticDefinition(name: name, kind: .counter, help: help, sys: sys, metric: metric, value: .single(read))
    }

    /// A gauge read as one number.
    public static func gauge(_ name: String, _ help: String, _ read: @escaping @Sendable (BrokerStatistics) -> Int,
                             sys: SysTopics? = nil, metric: String? = nil) -> StatisticDefinition {
        StatisticDefinition(name: name, kind: .gauge, help: help, sys: sys, metric: metric, value: .single(read))
    }

    /// A counter read as one number per value of `label`.
    public static func counter(_ name: String, _ help: String, label: String,
                               _ read: @escaping @Sendable (BrokerStatistics) -> [String: Int],
                               sys: SysTopics? = nil, metric: String? = nil) -> StatisticDefinition {
        StatisticDefinition(name: name, kind: .counter, help: help, sys: sys, metric: metric,
                            value: .labelled(label: label, read))
    }

    /// A gauge read as one number per value of `label`.
    public static func gauge(_ name: String, _ help: String, label: String,
                             _ read: @escaping @Sendable (BrokerStatistics) -> [String: Int],
                             sys: SysTopics? = nil, metric: String? = nil) -> StatisticDefinition {
        StatisticDefinition(name: name, kind: .gauge, help: help, sys: sys, metric: metric,
                            value: .labelled(label: label, read))
    }
}

// MARK: - Plugins that publish them

/// Which part of each statistic of `BrokerStatistics.all` a plugin publishes. A struct with static members
/// rather than an enum, so that a new form is an addition: compare with `==`.
public struct StatisticsForm: Hashable, Sendable, CustomStringConvertible {
    private let name: String

    private init(_ name: String) { self.name = name }

    /// Its `$SYS` topics (`StatisticDefinition.sys`), as the `sys` hook does.
    public static let sys = StatisticsForm("sys")
    /// Its Prometheus metric (`StatisticDefinition.metric`), as the `prometheus` hook does.
    public static let metric = StatisticsForm("metric")

    /// `sys` or `metric`.
    public var description: String { name }
}

/// A plugin that publishes the statistics of `BrokerStatistics.all`: `midge check-config` lists them, and
/// where, when such a plugin would run.
public protocol StatisticsPublisher: Plugin {
    /// Which part of each statistic it publishes.
    var statisticsForm: StatisticsForm { get }
    /// Where they go, for people to read: `$SYS every 10 s`, `/metrics`.
    var statisticsPlace: String { get }
}
