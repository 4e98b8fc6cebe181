import Foundation
public import NIOCore
public import PluginAPI
import MQTT

/// The `sys` hook: publishes the `$SYS/broker/...` tree Mosquitto publishes, every `sys_interval` seconds,
/// as retained QoS 0 messages. Like Mosquitto, `$SYS/broker/version` is published once at start, uptime on
/// every interval, and every other topic only when its value changed. The broker loads it by itself when
/// `sys_interval` is above 0 (Mosquitto's default is 10); it handles only the `tick` event. The topics are those
/// of `BrokerStatistics.all`, in its order, then the load averages of the counters that have them.
///
/// Options: `sys_interval` (seconds, default 10).
public final class SysHook: HookPlugin, @unchecked Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "sys", summary: "the $SYS/broker topic tree") { options, _ in
        try SysHook(options: &options)
    }

    public let events: HookEvents = [.tick]
    public let tickInterval: TimeAmount
    private let interval: Int
    private var broker: (any BrokerServices)?
    /// Touched only from `tick`, which the host never runs twice at once for one hook (one repeated task).
    private var published: [String: String] = [:]
    private var versionSent = false
    private var last: (time: Date, statistics: BrokerStatistics)?
    private var loads = LoadAverages()

    public init(options: inout PluginOptions) throws {
        let seconds = try options.int("sys_interval") ?? 10
        guard seconds > 0 else {
            throw PluginError(pluginName: "sys", message: "option 'sys_interval' must be at least 1")
        }
        try options.finish()
        interval = seconds
        tickInterval = .seconds(Int64(seconds))
    }

    public func attach(_ broker: any BrokerServices) {
        self.broker = broker
    }

    public func start() async throws {
        // The first values at once, as Mosquitto does, rather than after one interval.
        guard let broker else { return }
        let statistics = try await broker.statistics().get()
        update(statistics, now: Date())
    }

    public func tick(on eventLoop: any EventLoop) throws -> HookAnswer {
        guard let broker else { return .now(()) }
        return .later(broker.statistics().hop(to: eventLoop).map { statistics in
            self.update(statistics, now: Date())
        })
    }

    private func update(_ statistics: BrokerStatistics, now: Date) {
        guard let broker else { return }
        if !versionSent {
            versionSent = true
            broker.publish(HookMessage(topic: "$SYS/broker/version", payload: ByteBuffer(string: broker.version),
                                       retain: true))
        }
        for statistic in BrokerStatistics.all {
            guard let sys = statistic.sys else { continue }
            for sample in statistic.samples(in: statistics) {
                let payload = sys.unit.map { "\(sample.value) \($0)" } ?? String(sample.value)
                for topic in sys.topics {
                    publish(sample.labelValue.map { "\(topic)/\($0)" } ?? topic, payload, always: sys.everyInterval)
                }
            }
        }
        if let last, now.timeIntervalSince(last.time) > 0 {
            let elapsed = now.timeIntervalSince(last.time)
            let perMinute = 60 / elapsed
            for statistic in BrokerStatistics.all {
                guard let name = statistic.sys?.load, let current = statistic.value.number(in: statistics),
                      let before = statistic.value.number(in: last.statistics) else { continue }
                let rate = Double(max(0, current - before)) * perMinute
                loads.update(name, rate, elapsed: elapsed)
            }
            for (name, values) in loads.values {
                for (window, value) in zip(["1min", "5min", "15min"], values) {
                    publish("$SYS/broker/load/\(name)/\(window)", String(format: "%.2f", value))
                }
            }
        }
        last = (now, statistics)
    }

    private func publish(_ topic: String, _ value: String, always: Bool = false) {
        guard always || published[topic] != value, let broker else { return }
        published[topic] = value
        broker.publish(HookMessage(topic: topic, payload: ByteBuffer(string: value), retain: true))
    }
}

extension SysHook: StatisticsPublisher {
    /// The `$SYS` topics of `BrokerStatistics.all`.
    public var statisticsForm: StatisticsForm { .sys }
    /// `$SYS every N s`, N being `sys_interval`.
    public var statisticsPlace: String { "$SYS every \(interval) s" }
}

/// Mosquitto's load figures: exponentially weighted averages of a per-minute rate over 1, 5 and 15 minutes.
struct LoadAverages {
    private(set) var values: [(String, [Double])] = []

    mutating func update(_ name: String, _ rate: Double, elapsed: Double) {
        let windows = [60.0, 300.0, 900.0]
        let index = values.firstIndex { $0.0 == name } ?? {
            values.append((name, [0, 0, 0]))
            return values.count - 1
        }()
        for (i, window) in windows.enumerated() {
            let decay = exp(-elapsed / window)
            values[index].1[i] = rate + decay * (values[index].1[i] - rate)
        }
    }
}
