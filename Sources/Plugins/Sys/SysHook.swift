import Foundation
import NIOConcurrencyHelpers
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
public final class SysHook: HookPlugin, Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "sys", summary: "the $SYS/broker topic tree") { options, _ in
        try SysHook(options: &options)
    }

    public let events: HookEvents = [.tick]
    public let tickInterval: TimeAmount
    private let interval: Int
    /// Set once, by `attach`.
    private let broker = NIOLockedValueBox<(any BrokerServices)?>(nil)
    /// What was published last, and the figures the load averages are computed from.
    private struct State {
        var published: [String: String] = [:]
        var versionSent = false
        var last: (time: Date, statistics: BrokerStatistics)?
        var loads = LoadAverages()
    }
    private let state = NIOLockedValueBox(State())

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
        self.broker.withLockedValue { $0 = broker }
    }

    public func start() async throws {
        // The first values at once, as Mosquitto does, rather than after one interval.
        guard let broker = broker.withLockedValue({ $0 }) else { return }
        let statistics = try await broker.statistics().get()
        update(statistics, now: Date())
    }

    public func tick(on eventLoop: any EventLoop) throws -> HookAnswer {
        guard let broker = broker.withLockedValue({ $0 }) else { return .now(()) }
        return .later(broker.statistics().hop(to: eventLoop).map { statistics in
            self.update(statistics, now: Date())
        })
    }

    /// Publishes what changed (and what is published every interval), retained; the messages are worked out
    /// under the state's lock and published after it.
    private func update(_ statistics: BrokerStatistics, now: Date) {
        guard let broker = broker.withLockedValue({ $0 }) else { return }
        let messages = state.withLockedValue { state in
            var messages: [(topic: String, payload: String)] = []
            func publish(_ topic: String, _ value: String, always: Bool = false) {
                guard always || state.published[topic] != value else { return }
                state.published[topic] = value
                messages.append((topic, value))
            }
            if !state.versionSent {
                state.versionSent = true
                messages.append(("$SYS/broker/version", broker.version))
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
            if let last = state.last, now.timeIntervalSince(last.time) > 0 {
                let elapsed = now.timeIntervalSince(last.time)
                let perMinute = 60 / elapsed
                for statistic in BrokerStatistics.all {
                    guard let name = statistic.sys?.load, let current = statistic.value.number(in: statistics),
                          let before = statistic.value.number(in: last.statistics) else { continue }
                    let rate = Double(max(0, current - before)) * perMinute
                    state.loads.update(name, rate, elapsed: elapsed)
                }
                for (name, values) in state.loads.values {
                    for (window, value) in zip(["1min", "5min", "15min"], values) {
                        publish("$SYS/broker/load/\(name)/\(window)", String(format: "%.2f", value))
                    }
                }
            }
            state.last = (now, statistics)
            return messages
        }
        for message in messages {
            broker.publish(HookMessage(topic: message.topic, payload: ByteBuffer(string: message.payload), retain: true))
        }
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
