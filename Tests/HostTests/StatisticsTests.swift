import Foundation
@testable import Host
@testable import midge
import MQTT
import NIOCore
import NIOPosix
import PluginAPI
import Testing

/// What the broker's statistics look like from outside: the `$SYS/broker/...` topics the `sys` hook publishes
/// (Mosquitto's names) and the metrics `/metrics` shows, each listed here by hand so that a change of the
/// list of statistics that renames or drops one fails here.
@Suite("Statistics") struct StatisticsTests {
    static let loads = ["messages/received", "messages/sent", "publish/received", "publish/sent", "publish/dropped",
                        "bytes/received", "bytes/sent", "connections"]

    static let sysTopics: Set<String> = Set([
        "version", "uptime",
        "clients/total", "clients/inactive", "clients/disconnected", "clients/active", "clients/connected",
        "clients/expired", "clients/maximum",
        "messages/received", "messages/sent",
        "publish/messages/received", "publish/messages/sent", "publish/messages/dropped",
        "bytes/received", "bytes/sent",
        "subscriptions/count", "retained messages/count",
        "quotas/max_connections_total",
    ].map { "$SYS/broker/" + $0 } + loads.flatMap { load in
        ["1min", "5min", "15min"].map { "$SYS/broker/load/\(load)/\($0)" }
    })

    static let metrics: [String: String] = [
        "midge_uptime_seconds": "gauge",
        "midge_clients_connected": "gauge",
        "midge_clients_disconnected": "gauge",
        "midge_clients_maximum": "gauge",
        "midge_subscriptions": "gauge",
        "midge_retained_messages": "gauge",
        "midge_clients_expired_total": "counter",
        "midge_connections_accepted_total": "counter",
        "midge_messages_received_total": "counter",
        "midge_messages_sent_total": "counter",
        "midge_publish_received_total": "counter",
        "midge_publish_sent_total": "counter",
        "midge_publish_dropped_total": "counter",
        "midge_bytes_received_total": "counter",
        "midge_bytes_sent_total": "counter",
        "midge_reloads_total": "counter",
        "midge_reloads_failed_total": "counter",
        "midge_hook_failures_total": "counter",
        "midge_publish_rate_disconnects_total": "counter",
        "midge_queued_bytes": "gauge",
        "midge_log_lines_dropped_total": "counter",
        "midge_auth_failures_total": "counter",
        "midge_quota_exceeded_total": "counter",
        "midge_listener_connections": "gauge",
    ]

    @Test("the sys hook publishes Mosquitto's $SYS topics, with their payloads' formats")
    func sysTopicsAndPayloads() async throws {
        let broker = try await TestBroker.start("allow_anonymous true\nsys_interval 1\nmax_connections_total 100\n",
                                                hooks: [:])
        let client = try await TestClient.connect(port: broker.port, clientID: "sys-reader")
        try await client.subscribe("$SYS/#", qos: .atMostOnce)
        var latest: [String: String] = [:]
        let deadline = Date().addingTimeInterval(10)
        // The load averages come with the second interval's values; the reader is counted from the first
        // interval after it connected (under load, the retained values may all be older).
        while !(Set(latest.keys).isSuperset(of: Self.sysTopics) && latest["$SYS/broker/clients/connected"] == "1"),
              Date() < deadline {
            guard let publish = try? await client.nextPublish(timeout: .seconds(3)) else { break }
            latest[publish.topic] = String(buffer: publish.payload)
        }
        await client.close()
        await broker.stop()
        #expect(Set(latest.keys) == Self.sysTopics)
        #expect(latest["$SYS/broker/version"]?.hasPrefix("midge version ") == true)
        #expect(latest["$SYS/broker/uptime"]?.wholeMatch(of: #/[0-9]+ seconds/#) != nil)
        #expect(latest["$SYS/broker/clients/connected"] == "1")
        #expect(latest["$SYS/broker/clients/active"] == "1")
        #expect(latest["$SYS/broker/quotas/max_connections_total"] == "0")
        for (topic, payload) in latest where topic.hasPrefix("$SYS/broker/load/") {
            #expect(payload.wholeMatch(of: #/[0-9]+\.[0-9]{2}/#) != nil, "\(topic): \(payload)")
        }
        for (topic, payload) in latest where !topic.hasPrefix("$SYS/broker/load/")
            && !["$SYS/broker/version", "$SYS/broker/uptime"].contains(topic) {
            #expect(Int(payload) != nil, "\(topic): \(payload)")
        }
    }

    @Test("the prometheus hook shows each metric with its type, labels and sample format")
    func prometheusMetrics() async throws {
        let broker = try await TestBroker.start(
            "allow_anonymous true\nadmin_listener 0 127.0.0.1\nplugin prometheus\nmax_connections_total 100\n",
            hooks: [:])
        let client = try await TestClient.connect(port: broker.port, clientID: "scraped")
        let http = try await WireHTTPClient.connect(port: try #require(broker.broker.adminPort),
                                                    group: MultiThreadedEventLoopGroup.singleton)
        let response = try #require(try await http.request("GET", "/metrics").response)
        await http.close()
        await client.close()
        await broker.stop()
        let lines = response.body.split(separator: "\n").map(String.init)
        var types: [String: String] = [:]
        for line in lines where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            types[String(parts[2])] = String(parts[3])
        }
        // The registry is the process' own: other tests' brokers only add label values.
        #expect(types == Self.metrics)
        #expect(lines.contains("midge_clients_connected 1.0"))
        // The listener's name is its configured port.
        #expect(lines.contains { $0.hasPrefix("midge_listener_connections{listener=\"") && $0.hasSuffix("\"} 1.0") })
        #expect(lines.contains { $0.hasPrefix("midge_quota_exceeded_total{quota=\"max_connections_total\"} ") })
        #expect(lines.contains { $0.wholeMatch(of: #/midge_messages_received_total [0-9]+/#) != nil })
        #expect(!lines.contains { $0.hasPrefix("# HELP") })
    }

    @Test("each statistic of the list has its own name, $SYS topics, load name and metric")
    func listHasNoDuplicates() {
        let all = BrokerStatistics.all
        func duplicates(_ values: [String]) -> [String] {
            Dictionary(grouping: values, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        }
        #expect(duplicates(all.map(\.name)) == [])
        #expect(duplicates(all.flatMap { $0.sys?.topics ?? [] }) == [])
        #expect(duplicates(all.compactMap { $0.sys?.load }) == [])
        #expect(duplicates(all.compactMap(\.metric)) == [])
        for statistic in all {
            #expect(statistic.sys != nil || statistic.metric != nil, "\(statistic.name) is published nowhere")
            #expect(!statistic.help.isEmpty && !statistic.help.contains("\n"), "\(statistic.name)")
            #expect(statistic.name.wholeMatch(of: #/[a-z_]+(\.[a-z_]+)*/#) != nil, "\(statistic.name)")
            for topic in statistic.sys?.topics ?? [] {
                #expect(topic.hasPrefix("$SYS/broker/") && !topic.hasSuffix("/"), "\(topic)")
            }
            if statistic.sys?.load != nil {
                #expect(statistic.kind == .counter && statistic.label == nil, "\(statistic.name): load of a counter")
            }
            if let metric = statistic.metric {
                #expect(metric.wholeMatch(of: #/midge_[a-z_]+/#) != nil, "\(metric)")
                #expect(metric.hasSuffix("_total") == (statistic.kind == .counter), "\(metric)")
            }
        }
        // The hand lists above are the list's.
        #expect(Set(all.compactMap(\.metric)) == Set(Self.metrics.keys))
        #expect(Dictionary(uniqueKeysWithValues: all.compactMap { s in s.metric.map { ($0, "\(s.kind)") } })
            == Self.metrics)
        #expect(all.compactMap { $0.sys?.load } == Self.loads)
        let single = all.filter { $0.label == nil }.flatMap { $0.sys?.topics ?? [] }
        let labelled = all.filter { $0.label == "quota" }.flatMap { $0.sys?.topics ?? [] }
            .map { $0 + "/max_connections_total" }
        let loads = Self.loads.flatMap { load in ["1min", "5min", "15min"].map { "$SYS/broker/load/\(load)/\($0)" } }
        #expect(Set(["$SYS/broker/version"] + single + labelled + loads) == Self.sysTopics)
    }

    @Test("a statistic's samples: one for a single number, one per label value (sorted) for a labelled one")
    func samples() throws {
        var statistics = BrokerStatistics()
        statistics.clientsConnected = 3
        statistics.clientsDisconnected = 2
        statistics.connectionsByListener = ["8883": 1, "1883": 4]
        func samples(_ name: String) throws -> [String] {
            try #require(BrokerStatistics.all.first { $0.name == name }).samples(in: statistics)
                .map { "\($0.labelValue ?? "-")=\($0.value)" }
        }
        #expect(try samples("clients.total") == ["-=5"])
        #expect(try samples("connections.open") == ["1883=4", "8883=1"])
        #expect(try samples("quota.exceeded") == [])
    }

    /// `midge check-config` on `config` (a file's text), its report's lines.
    private func checkConfig(_ config: String) throws -> [String] {
        let path = NSTemporaryDirectory() + "midge-statistics-\(UUID().uuidString).conf"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let check = ConfigCheck.run(path: path, ports: [], registry: BuiltInPlugins.registry, environment: [:])
        #expect(check.errors == [])
        return check.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    @Test("check-config lists the statistics the sys and prometheus hooks would publish, and where")
    func checkConfigSection() throws {
        let none = try checkConfig("listener 1883 127.0.0.1\nsys_interval 0\n")
        #expect(!none.contains { $0.hasPrefix("Statistics") })

        let sys = try checkConfig("listener 1883 127.0.0.1\n")
        let sysStart = try #require(sys.firstIndex(of: "Statistics ($SYS every 10 s):"))
        let sysSection = Array(sys[(sysStart + 1)...].prefix { $0.hasPrefix("  ") })
        #expect(sysSection.contains(
            "  clients.connected (gauge): $SYS/broker/clients/active, $SYS/broker/clients/connected"))
        #expect(sysSection.contains("  retained_messages (gauge): $SYS/broker/retained messages/count"))
        #expect(sysSection.contains("  quota.exceeded (counter): $SYS/broker/quotas/<quota>"))
        #expect(sysSection.contains("  connections.accepted (counter): $SYS/broker/load/connections/{1min,5min,15min}"))
        #expect(sysSection.count == BrokerStatistics.all.filter { $0.sys != nil }.count)
        #expect(!sysSection.contains { $0.contains("midge_") })

        let both = try checkConfig("listener 1883 127.0.0.1\nadmin_listener 9883 127.0.0.1\nplugin prometheus\n"
            + "sys_interval 5\n")
        let bothStart = try #require(both.firstIndex(of: "Statistics ($SYS every 5 s, /metrics):"))
        let bothSection = Array(both[(bothStart + 1)...].prefix { $0.hasPrefix("  ") })
        #expect(bothSection.count == BrokerStatistics.all.count)
        #expect(bothSection.contains("  clients.disconnected (gauge): $SYS/broker/clients/inactive, "
            + "$SYS/broker/clients/disconnected, midge_clients_disconnected"))
        #expect(bothSection.contains("  connections.open (gauge): midge_listener_connections{listener}"))
        #expect(both.last { !$0.isEmpty } == "Configuration is valid.")

        let metrics = try checkConfig("listener 1883 127.0.0.1\nadmin_listener 9883 127.0.0.1\nplugin prometheus\n"
            + "sys_interval 0\n")
        let metricsStart = try #require(metrics.firstIndex(of: "Statistics (/metrics):"))
        let metricsSection = Array(metrics[(metricsStart + 1)...].prefix { $0.hasPrefix("  ") })
        #expect(metricsSection.count == BrokerStatistics.all.filter { $0.metric != nil }.count)
        #expect(!metricsSection.contains { $0.contains("$SYS") })

        // The prometheus hook's own path.
        let path = try checkConfig("listener 1883 127.0.0.1\nadmin_listener 9883 127.0.0.1\nplugin prometheus\n"
            + "plugin_opt_path /stats\n")
        #expect(path.contains("Statistics ($SYS every 10 s, /stats):"))
    }
}
