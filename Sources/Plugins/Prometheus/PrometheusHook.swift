import CoreMetrics
import Metrics
import Foundation
import NIOCore
import NIOConcurrencyHelpers
public import PluginAPI
import Prometheus

/// The `prometheus` hook: `/metrics` on the admin HTTP listener (`admin_listener`), in Prometheus' text
/// format, with the broker's counters and gauges (the same figures as `$SYS`) and the connections of each
/// listener.
///
/// The figures are read from the broker when Prometheus scrapes, so the hook handles no broker event at all:
/// it costs nothing between scrapes. It also installs swift-metrics' backend (once per process): a hook that
/// records its own figures with swift-metrics (`Counter(label:)`, `Gauge(label:)`, ...) shows up on the same
/// page.
///
/// ```
/// admin_listener 9883
/// plugin prometheus
/// ```
///
/// Options: `path` (default `/metrics`).
public final class PrometheusHook: HookPlugin, HTTPEndpointProvider, Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "prometheus", summary: "/metrics for Prometheus on the admin listener") {
        options, _ in try PrometheusHook(options: &options)
    }

    /// The process' registry: swift-metrics' backend writes here.
    static let registry = PrometheusCollectorRegistry()
    static let factory = PrometheusMetricsFactory(registry: registry)
    private static let bootstrapOnce: Void = {
        MetricsSystem.bootstrap(factory)
    }()

    public let events: HookEvents = []
    let path: String
    /// Set once, by `attach`.
    private let broker = NIOLockedValueBox<(any BrokerServices)?>(nil)
    private let metrics = NIOLockedValueBox(BrokerMetrics())

    public init(options: inout PluginOptions) throws {
        path = options.string("path") ?? "/metrics"
        try options.finish()
        guard path.hasPrefix("/") else {
            throw PluginError(pluginName: "prometheus", message: "option 'path' must start with /")
        }
    }

    public func attach(_ broker: any BrokerServices) {
        self.broker.withLockedValue { $0 = broker }
    }

    public func start() async throws {
        _ = Self.bootstrapOnce
    }

    public var httpEndpoints: [HTTPEndpoint] {
        [HTTPEndpoint(path: path) { [self] _, eventLoop in
            guard let broker = self.broker.withLockedValue({ $0 }) else {
                return .now(HTTPEndpointResponse(status: 503, body: ByteBuffer(string: "broker not attached\n")))
            }
            return .later(broker.statistics().hop(to: eventLoop).map { statistics in
                self.metrics.withLockedValue { $0.update(statistics) }
                var bytes: [UInt8] = []
                Self.registry.emit(into: &bytes)
                return HTTPEndpointResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                            body: ByteBuffer(bytes: bytes))
            })
        }]
    }
}

extension PrometheusHook: StatisticsPublisher {
    /// The metrics of `BrokerStatistics.all`.
    public var statisticsForm: StatisticsForm { .metric }
    /// The page's path (`/metrics`, or the `path` option).
    public var statisticsPlace: String { path }
}

/// The broker's figures (`BrokerStatistics.all`, the entries with a `metric`) as swift-metrics metrics.
/// Counters only go up, so each scrape adds what changed since the last one.
struct BrokerMetrics {
    /// A metric of one statistic, and one label value for a labelled statistic.
    private struct Key: Hashable {
        var metric: String
        var labelValue: String?
    }

    private var counters: [Key: (CoreMetrics.Counter, Int)] = [:]
    private var gauges: [Key: CoreMetrics.Gauge] = [:]

    mutating func update(_ s: BrokerStatistics) {
        for statistic in BrokerStatistics.all {
            guard let metric = statistic.metric else { continue }
            for sample in statistic.samples(in: s) {
                let key = Key(metric: metric, labelValue: sample.labelValue)
                let dimensions = statistic.label.flatMap { label in sample.labelValue.map { [(label, $0)] } } ?? []
                switch statistic.kind {
                case .gauge: gauge(key, dimensions, sample.value)
                case .counter: counter(key, dimensions, sample.value)
                default: break  // a kind this hook does not map yet
                }
            }
        }
    }

    private mutating func gauge(_ key: Key, _ dimensions: [(String, String)], _ value: Int) {
        let gauge = gauges[key]
            ?? CoreMetrics.Gauge(label: key.metric, dimensions: dimensions, factory: PrometheusHook.factory)
        gauges[key] = gauge
        gauge.record(value)
    }

    private mutating func counter(_ key: Key, _ dimensions: [(String, String)], _ value: Int) {
        let (counter, last) = counters[key]
            ?? (CoreMetrics.Counter(label: key.metric, dimensions: dimensions, factory: PrometheusHook.factory), 0)
        if value > last { counter.increment(by: Int64(value - last)) }
        counters[key] = (counter, max(value, last))
    }
}
