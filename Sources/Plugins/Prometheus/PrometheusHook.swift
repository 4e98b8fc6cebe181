import CoreMetrics
import Metrics
import Foundation
public import NIOCore
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
public final class PrometheusHook: HookPlugin, HTTPEndpointProvider, @unchecked Sendable {
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
    private var broker: (any BrokerServices)?
    private let metrics = NIOLockedValueBox(BrokerMetrics())

    public init(options: inout PluginOptions) throws {
        path = options.string("path") ?? "/metrics"
        try options.finish()
        guard path.hasPrefix("/") else {
            throw PluginError(pluginName: "prometheus", message: "option 'path' must start with /")
        }
    }

    public func attach(_ broker: any BrokerServices) {
        self.broker = broker
    }

    public func start() async throws {
        _ = Self.bootstrapOnce
    }

    public var httpEndpoints: [HTTPEndpoint] {
        [HTTPEndpoint(path: path) { [self] _, eventLoop in
            guard let broker else {
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

/// The broker's figures as swift-metrics metrics. Counters only go up, so each scrape adds what changed since
/// the last one.
struct BrokerMetrics {
    private var counters: [String: (CoreMetrics.Counter, Int)] = [:]
    private var gauges: [String: CoreMetrics.Gauge] = [:]
    private var listenerGauges: [String: CoreMetrics.Gauge] = [:]
    private var quotaCounters: [String: (CoreMetrics.Counter, Int)] = [:]

    mutating func update(_ s: BrokerStatistics) {
        gauge("midge_uptime_seconds", s.uptime)
        gauge("midge_clients_connected", s.clientsConnected)
        gauge("midge_clients_disconnected", s.clientsDisconnected)
        gauge("midge_clients_maximum", s.clientsMaximum)
        gauge("midge_subscriptions", s.subscriptions)
        gauge("midge_retained_messages", s.retainedMessages)
        counter("midge_clients_expired_total", s.clientsExpired)
        counter("midge_connections_accepted_total", s.connectionsAccepted)
        counter("midge_messages_received_total", s.messagesReceived)
        counter("midge_messages_sent_total", s.messagesSent)
        counter("midge_publish_received_total", s.publishReceived)
        counter("midge_publish_sent_total", s.publishSent)
        counter("midge_publish_dropped_total", s.publishDropped)
        counter("midge_bytes_received_total", s.bytesReceived)
        counter("midge_bytes_sent_total", s.bytesSent)
        counter("midge_reloads_total", s.reloads)
        counter("midge_reloads_failed_total", s.reloadsFailed)
        counter("midge_hook_failures_total", s.hookFailures)
        counter("midge_publish_rate_disconnects_total", s.publishRateDisconnects)
        gauge("midge_queued_bytes", s.queuedBytes)
        for (quota, events) in s.quotaEvents {
            let (counter, last) = quotaCounters[quota] ?? (CoreMetrics.Counter(
                label: "midge_quota_exceeded_total", dimensions: [("quota", quota)],
                factory: PrometheusHook.factory), 0)
            if events > last { counter.increment(by: Int64(events - last)) }
            quotaCounters[quota] = (counter, max(events, last))
        }
        for (listener, connections) in s.connectionsByListener {
            let gauge = listenerGauges[listener] ?? CoreMetrics.Gauge(
                label: "midge_listener_connections", dimensions: [("listener", listener)],
                factory: PrometheusHook.factory)
            listenerGauges[listener] = gauge
            gauge.record(connections)
        }
    }

    private mutating func gauge(_ name: String, _ value: Int) {
        let gauge = gauges[name] ?? CoreMetrics.Gauge(label: name, factory: PrometheusHook.factory)
        gauges[name] = gauge
        gauge.record(value)
    }

    private mutating func counter(_ name: String, _ value: Int) {
        let (counter, last) = counters[name] ?? (CoreMetrics.Counter(label: name, factory: PrometheusHook.factory), 0)
        if value > last { counter.increment(by: Int64(value - last)) }
        counters[name] = (counter, max(value, last))
    }
}
