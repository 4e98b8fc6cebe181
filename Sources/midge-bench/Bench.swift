import ArgumentParser
import Foundation
import Histogram
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

enum Scenario: String, ExpressibleByArgument, CaseIterable, Sendable {
    case fanIn = "fan-in"
    case fanOut = "fan-out"
    case pairs
    case latency
    case connectStorm = "connect-storm"
    case idle
    /// Internal: the bare NIO server process of `idle --floor`.
    case floorServer = "floor-server"
}

@main
struct MidgeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "midge-bench",
        abstract: "An MQTT load generator for Midge and other brokers.",
        discussion: """
            Scenarios:
              fan-in         N publishers (bench/<i>) -> 1 subscriber on bench/#
              fan-out        1 publisher (bench/fanout) -> N subscribers
              pairs          N publisher/subscriber pairs, one topic each
              latency        N pairs at a fixed total --rate; send time in the
                             payload; p50/p99/p99.9 in microseconds
              connect-storm  N workers: connect, CONNECT, CONNACK,
                             DISCONNECT, again; cycles per second
              idle           hold --connections idle connections; broker RSS
                             per connection (--broker-pid), or with --floor a
                             bare NIO server's RSS per channel

            Prints one JSON line and one human line. The headline figure is
            messages delivered per second to subscribers over the measured
            window (after --warmup). gen_cpu_pct is this process's CPU over
            that window (100 = one core): near 100 x --threads, the generator
            is the bottleneck. --sink measures the generator's own ceiling.
            """
    )

    @Argument(help: "fan-in | fan-out | pairs | latency | connect-storm | idle")
    var scenario: Scenario

    @Option(help: "Broker host.") var host = "127.0.0.1"
    @Option(help: "Broker port.") var port = 1883
    @Option(help: "Connections: publishers (fan-in), subscribers (fan-out), pairs (pairs, latency), workers (connect-storm), idle connections. Default 8; latency 1; idle 1000.")
    var connections: Int?
    @Option(help: "Payload bytes.") var size = 64
    @Option(help: "QoS of publications and subscriptions: 0, 1 or 2.") var qos = 0
    @Option(help: "Measured seconds (idle: how long the connections are held).") var duration = 5.0
    @Option(help: "Seconds of load before measuring.") var warmup = 1.0
    @Option(name: .customLong("mqtt-version"), help: "3.1.1 or 5.") var mqttVersion = "3.1.1"
    @Option(help: "Event loops (threads) of the generator.") var threads = 1
    @Option(help: "QoS 1/2: unacknowledged PUBLISH packets per publisher.") var inflight = 20
    @Option(help: "QoS 0: PUBLISH packets per write.") var batch = 128
    @Option(help: "latency: total offered messages per second.") var rate = 5000.0
    @Option(help: "User name in CONNECT.") var username: String?
    @Option(help: "Password in CONNECT.") var password: String?
    @Option(name: .customLong("broker-pid"), help: "The broker's PID: its RSS and CPU are read from /proc.")
    var brokerPID: Int32?
    @Flag(help: "idle: measure a bare NIO server (a child process) instead of a broker.") var floor = false
    @Flag(help: "Run against an in-process sink (CONNACK/SUBACK, acks, discards PUBLISH): the generator's ceiling.")
    var sink = false
    @Option(name: .customLong("sink-threads"), help: "Event loops of the sink.") var sinkThreads = 1
    @Flag(name: .customLong("sink-feed"), help: "The sink also streams QoS 0 PUBLISH to every subscriber.")
    var sinkFeed = false
    @Option(help: "Broker name for the report.") var label = ""
    @Option(help: "Keep alive in CONNECT (default: 0 for idle and connect-storm, else long enough for the run).")
    var keepalive: Int?
    @Option(help: "Seconds allowed for each connect and CONNACK/SUBACK.") var timeout = 10.0
    @Option(help: "Seconds at most to wait for in-flight deliveries after the publishers stop.") var drain = 2.0
    @Option(help: "Publishers' socket send buffer in KiB (0: the kernel's autotuning, up to megabytes). Small, so that QoS 0 backpressure reaches the publisher and a slow broker is not fed from a backlog.")
    var sndbuf = 64
    @Option(name: .customLong("connect-concurrency"), help: "Connections set up at once.")
    var connectConcurrency = 256
    @Option(help: "Publish this many messages in all, then end when they are delivered (or after --duration, then a time-out); no warm-up. For instruction counts (scripts/bench-callgrind).")
    var messages = 0
    @Option(name: .customLong("floor-threads"), help: "Event loops of the floor server (default: cores).")
    var floorThreads: Int?
    @Option(help: "idle: comma-separated connection counts below --connections at which the broker's RSS is also sampled (connections stay open from step to step).")
    var steps = ""
    @Option(help: "connect-storm: end after this many connect cycles in all (shared among the workers), not after --duration; no warm-up.")
    var total = 0
    @Flag(name: .customLong("until-stdin-closes"), help: "End the measured window early when standard input closes (a driver script's canary).")
    var untilStdinCloses = false

    mutating func validate() throws {
        guard (0...2).contains(qos) else { throw ValidationError("--qos must be 0, 1 or 2") }
        guard ["3.1.1", "5", "5.0", "3.1"].contains(mqttVersion) else {
            throw ValidationError("--mqtt-version must be 3.1.1 or 5")
        }
        guard threads >= 1, sinkThreads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard duration > 0, warmup >= 0 else { throw ValidationError("--duration must be > 0, --warmup >= 0") }
        if let connections, connections < 1 { throw ValidationError("--connections must be at least 1") }
        guard batch >= 1, inflight >= 1, rate > 0, size >= 0 else {
            throw ValidationError("--batch, --inflight and --rate must be positive")
        }
    }

    func run() throws {
        if scenario == .floorServer {
            try runFloorServer(threads: floorThreads ?? System.coreCount)
            return
        }
        let fileLimit = raiseFileLimit()
        // Whatever happens, the run ends: a watchdog well past the longest legitimate run.
        let budget = 3 * timeout + warmup + duration + drain + 15
            + (scenario == .idle ? Double(connections ?? 1000) / 500.0 * timeout : 0) + Double(total) / 200
        let watchdogScenario = scenario.rawValue
        let watchdogLabel = label
        Thread.detachNewThread {
            sleepSeconds(budget)
            let line = JSON.object([
                ("tool", .string("midge-bench")), ("scenario", .string(watchdogScenario)),
                ("label", .string(watchdogLabel)), ("ok", .bool(false)),
                ("error", .string("watchdog: the run did not end within \(Int(budget)) s")),
            ])
            print(line.rendered)
            print("\(watchdogScenario) [\(watchdogLabel)]: ERROR the run did not end within \(Int(budget)) s")
            fflush(nil)  // every output stream (stdout is a C global Swift 6 will not touch)
            Foundation.exit(2)
        }
        if untilStdinCloses {
            Thread.detachNewThread {
                _ = FileHandle.standardInput.readDataToEndOfFile()
                stopRequested.withLockedValue { $0 = true }
            }
        }
        let runner = Runner(options: self, fileLimit: fileLimit)
        let ok = runner.run()
        if !ok { throw ExitCode(1) }
    }
}

/// Set when standard input closed under `--until-stdin-closes`: the measured window ends.
let stopRequested = NIOLockedValueBox(false)

/// One client to open: its role, identity and topic.
struct ClientSpec: Sendable {
    var role: ClientRole
    var clientID: String
    var topic: String
    var filter: String?
    var quota = 0
}

/// Carries out one run and prints its report.
final class Runner {
    let o: MidgeBench
    let fileLimit: Int
    let version: ProtocolVersion
    let qos: QoS
    let group: MultiThreadedEventLoopGroup
    let registry: StatsRegistry
    let problems = Problems()
    var sinkGroup: MultiThreadedEventLoopGroup?
    var sinkRegistry: StatsRegistry?
    var host: String
    var port: Int
    var brokerPID: Int32?
    var fields: [(String, JSON)] = []
    var human: [String] = []
    let connections: Int
    let runID = String(UInt32(truncatingIfNeeded: getpid()), radix: 36)
    var payloadSize: Int

    init(options: MidgeBench, fileLimit: Int) {
        o = options
        self.fileLimit = fileLimit
        version = options.mqttVersion.hasPrefix("5") ? .v5 : options.mqttVersion == "3.1" ? .v3_1 : .v3_1_1
        qos = QoS(rawValue: UInt8(options.qos))!
        group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
        registry = StatsRegistry(group: group)
        host = options.host
        port = options.port
        brokerPID = options.brokerPID
        switch options.scenario {
        case .latency: connections = options.connections ?? 1
        case .idle: connections = options.connections ?? 1000
        default: connections = options.connections ?? 8
        }
        payloadSize = options.size
    }

    var keepAlive: UInt16 {
        if let k = o.keepalive { return UInt16(clamping: k) }
        if o.scenario == .idle || o.scenario == .connectStorm { return 0 }
        return UInt16(clamping: max(60, Int(o.warmup + o.duration + o.drain + 30)))
    }

    func settings(rate: Double = 0) -> ClientSettings {
        ClientSettings(version: version, keepAlive: keepAlive, username: o.username, password: o.password,
                       qos: qos, payloadSize: payloadSize, batch: o.batch, inflight: o.inflight, rate: rate,
                       timestamps: o.scenario == .latency, setupTimeout: o.timeout)
    }

    /// This publisher's share of --messages (0: no limit).
    func quota(publisher index: Int, of count: Int) -> Int {
        guard o.messages > 0, count > 0 else { return 0 }
        return o.messages / count + (index < o.messages % count ? 1 : 0)
    }

    // MARK: Run

    func run() -> Bool {
        defer {
            try? group.syncShutdownGracefully()
            try? sinkGroup?.syncShutdownGracefully()
        }
        fields = [("tool", .string("midge-bench")), ("scenario", .string(o.scenario.rawValue)),
                  ("label", .string(o.label.isEmpty ? (o.sink ? "sink" : "") : o.label))]
        if o.sink {
            let sinkGroup = MultiThreadedEventLoopGroup(numberOfThreads: o.sinkThreads)
            let sinkRegistry = StatsRegistry(group: sinkGroup)
            self.sinkGroup = sinkGroup
            self.sinkRegistry = sinkRegistry
            do {
                let channel = try startSink(group: sinkGroup, registry: sinkRegistry,
                                            settings: .init(feed: o.sinkFeed, feedSize: o.size, batch: o.batch))
                host = "127.0.0.1"
                port = channel.localAddress?.port ?? 0
            } catch {
                return finish(error: "cannot start the sink: \(error)")
            }
        }
        fields += [("host", .string(host)), ("port", .int(port)), ("mqtt_version", .string(version.description)),
                   ("threads", .int(o.threads))]
        switch o.scenario {
        case .fanIn, .fanOut, .pairs, .latency: return runMessages()
        case .connectStorm: return runConnectStorm()
        case .idle: return runIdle()
        case .floorServer: return true
        }
    }

    /// Opens one client and returns its channel once it is set up (CONNACK, SUBACK).
    func open(_ spec: ClientSpec, settings: ClientSettings, address: SocketAddress) -> EventLoopFuture<any Channel> {
        let loop = group.next()
        let ready = loop.makePromise(of: Void.self)
        let stats = registry.on(loop)
        let problems = self.problems
        var bootstrap = ClientBootstrap(group: loop)
        if o.sndbuf > 0 && (spec.role == .publisher || spec.role == .ratePublisher) {
            bootstrap = bootstrap.channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(o.sndbuf * 1024))
        }
        let connected = bootstrap
            .connectTimeout(.nanoseconds(Int64(o.timeout * 1e9)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 64 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    var settings = settings
                    settings.quota = spec.quota
                    try channel.pipeline.syncOperations.addHandler(ClientHandler(
                        role: spec.role, settings: settings, clientID: spec.clientID, topic: spec.topic,
                        filter: spec.filter, stats: stats, problems: problems, ready: ready))
                }
            }
            .connect(to: address)
        connected.whenFailure { ready.fail($0) }
        return connected.flatMap { channel in ready.futureResult.map { channel } }
    }

    /// Opens clients in waves of `--connect-concurrency`; returns the channels and the failures.
    func openAll(_ specs: [ClientSpec], settings: ClientSettings, address: SocketAddress)
        -> ([any Channel], [String]) {
        var channels: [any Channel] = []
        var failures: [String] = []
        var index = 0
        while index < specs.count {
            let wave = specs[index..<min(index + max(1, o.connectConcurrency), specs.count)]
            index += wave.count
            let futures = wave.map { open($0, settings: settings, address: address) }
            for future in futures {
                do { channels.append(try future.wait()) } catch { failures.append(describe(error)) }
            }
        }
        return (channels, failures)
    }

    func describe(_ error: any Error) -> String {
        var error = error
        if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first {
            error = first.error
        }
        if let io = error as? IOError {
            return "connect to \(host):\(port) failed: \(String(cString: strerror(io.errnoCode)))"
        }
        if case ChannelError.connectTimeout = error {
            return "connect to \(host):\(port) timed out after \(fixed(o.timeout)) s"
        }
        if error is ChannelError { return "connect to \(host):\(port) failed: \(error)" }
        return "\(error)"
    }

    func resolve() -> SocketAddress? {
        try? SocketAddress.makeAddressResolvingHost(host, port: port)
    }

    func closeAll(_ channels: [any Channel]) {
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(BenchEvent.disconnect) }
        let deadline = monotonicSeconds() + 3
        for channel in channels {
            let left = deadline - monotonicSeconds()
            if left <= 0 { channel.close(promise: nil); continue }
            let timer = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(left * 1000))) {
                channel.close(promise: nil)
            }
            _ = try? channel.closeFuture.wait()
            timer.cancel()
        }
    }

    /// Broker RSS (KiB) and CPU seconds, when its PID is known.
    func brokerSample() -> (rss: Int?, cpu: Double?) {
        guard let pid = brokerPID else { return (nil, nil) }
        return (residentKiB(pid: pid), processCPUSeconds(pid: pid))
    }

    // MARK: fan-in, fan-out, pairs, latency

    func runMessages() -> Bool {
        let n = connections
        var subscribers: [ClientSpec] = []
        var publishers: [ClientSpec] = []
        var expectedPerSent = 1
        var role = ClientRole.publisher
        switch o.scenario {
        case .fanIn:
            subscribers = [ClientSpec(role: .subscriber, clientID: "mb\(runID)-s0", topic: "bench/#", filter: "bench/#")]
            publishers = (0..<n).map { ClientSpec(role: .publisher, clientID: "mb\(runID)-p\($0)", topic: "bench/\($0)") }
        case .fanOut:
            subscribers = (0..<n).map {
                ClientSpec(role: .subscriber, clientID: "mb\(runID)-s\($0)", topic: "bench/fanout", filter: "bench/fanout")
            }
            publishers = [ClientSpec(role: .publisher, clientID: "mb\(runID)-p0", topic: "bench/fanout")]
            expectedPerSent = n
        case .pairs, .latency:
            let base = o.scenario == .latency ? "bench/lat" : "bench/pair"
            subscribers = (0..<n).map {
                ClientSpec(role: .subscriber, clientID: "mb\(runID)-s\($0)", topic: "\(base)/\($0)", filter: "\(base)/\($0)")
            }
            publishers = (0..<n).map { ClientSpec(role: .publisher, clientID: "mb\(runID)-p\($0)", topic: "\(base)/\($0)") }
            if o.scenario == .latency {
                role = .ratePublisher
                if payloadSize < 8 { payloadSize = 8 }
            }
        default:
            break
        }
        if role == .ratePublisher { publishers = publishers.map { var p = $0; p.role = .ratePublisher; return p } }
        if o.sink && !o.sinkFeed { subscribers = [] }  // the sink delivers nothing: measure publishing only
        if o.sink && o.sinkFeed { publishers = [] }
        if o.messages > 0 {
            let count = publishers.count
            publishers = publishers.enumerated().map { i, p in
                var p = p
                p.quota = quota(publisher: i, of: count)
                return p
            }
            fields.append(("messages", .int(o.messages)))
        }
        fields += [("connections", .int(n)), ("publishers", .int(publishers.count)),
                   ("subscribers", .int(subscribers.count)), ("size", .int(payloadSize)), ("qos", .int(o.qos))]
        if o.scenario == .latency { fields.append(("offered_rate", .number(o.rate, 0))) }
        if qos != .atMostOnce { fields.append(("inflight", .int(o.inflight))) } else { fields.append(("batch", .int(o.batch))) }

        guard let address = resolve() else { return finish(error: "cannot resolve \(host)") }
        let brokerStart = brokerSample()
        let baseSettings = settings(rate: o.rate / Double(max(1, publishers.count)))
        let (subChannels, subFailures) = openAll(subscribers, settings: baseSettings, address: address)
        if !subFailures.isEmpty {
            closeAll(subChannels)
            return finish(error: "\(subFailures.count) of \(subscribers.count) subscribers failed: \(subFailures[0])")
        }
        let (pubChannels, pubFailures) = openAll(publishers, settings: baseSettings, address: address)
        if !pubFailures.isEmpty {
            closeAll(subChannels + pubChannels)
            return finish(error: "\(pubFailures.count) of \(publishers.count) publishers failed: \(pubFailures[0])")
        }
        // Let the broker settle the subscriptions before the load starts.
        sleepSeconds(0.05)

        let warmup = o.messages > 0 ? 0 : o.warmup
        let cpuAtStart = processCPUSeconds()
        let brokerAtStart = brokerSample()
        let machineAtStart = machineCPU()
        let t0 = nowNanos()
        let from = t0 + UInt64(warmup * 1e9)
        let to = from + UInt64(o.duration * 1e9)
        registry.forEach { stats in
            stats.measureFrom = from
            stats.measureTo = to
        }
        for channel in pubChannels { channel.pipeline.fireUserInboundEventTriggered(BenchEvent.start) }
        let expectedPerSentCopy = expectedPerSent
        let counted = o.messages > 0
        let target = o.messages
        let hasSubscribers = !subscribers.isEmpty

        // Sample every 250 ms, to see stalls and the rate's spread.
        var samples: [(t: Double, s: LoopStats.Snapshot)] = []
        let start = Double(t0) / 1e9
        var lastDelivered = -1
        var lastProgress = monotonicSeconds()
        func sampleUntil(_ end: Double) {
            while true {
                let now = monotonicSeconds()
                if now >= end || stopRequested.withLockedValue({ $0 }) { return }
                sleepSeconds(min(counted ? 0.02 : 0.25, end - now))
                let snapshot = registry.snapshot() + (sinkRegistry?.snapshot() ?? .init())
                samples.append((monotonicSeconds(), snapshot))
                // --messages: done when every message is sent and (with subscribers) delivered.
                if counted && snapshot.sent >= target {
                    if !hasSubscribers || snapshot.delivered >= target * expectedPerSentCopy { return }
                    // Some were lost: end once deliveries stop for a second.
                    if snapshot.delivered != lastDelivered {
                        lastDelivered = snapshot.delivered
                        lastProgress = monotonicSeconds()
                    } else if monotonicSeconds() - lastProgress >= 1 {
                        return
                    }
                }
            }
        }
        sampleUntil(start + warmup)
        // --messages: the window starts with the first message.
        let t1 = counted ? start : monotonicSeconds()
        let s1 = counted ? LoopStats.Snapshot() : registry.snapshot() + (sinkRegistry?.snapshot() ?? .init())
        let cpu1 = counted ? cpuAtStart : processCPUSeconds()
        let broker1 = counted ? brokerAtStart : brokerSample()
        let machine1 = counted ? machineAtStart : machineCPU()
        let firstMeasured = samples.count
        samples.append((t1, s1))
        sampleUntil(t1 + o.duration)
        let t2 = monotonicSeconds()
        let s2 = registry.snapshot() + (sinkRegistry?.snapshot() ?? .init())
        let cpu2 = processCPUSeconds()
        let broker2 = brokerSample()
        let machine2 = machineCPU()
        samples.append((t2, s2))

        // Stop publishing; wait for what is in flight.
        registry.forEach { $0.running = false }
        var last = registry.snapshot()
        var lastChange = monotonicSeconds()
        let drainEnd = lastChange + o.drain
        var drained = subscribers.isEmpty
        while monotonicSeconds() < drainEnd && !drained {
            sleepSeconds(0.05)
            let now = registry.snapshot()
            if now.delivered >= now.sent * expectedPerSent {
                drained = true
            } else if now.delivered != last.delivered || now.acked != last.acked {
                last = now
                lastChange = monotonicSeconds()
            } else if monotonicSeconds() - lastChange >= 0.3 {
                drained = true
            }
        }
        let final = registry.snapshot() + (sinkRegistry?.snapshot() ?? .init())
        let brokerEnd = brokerSample()
        let histogram = registry.mergedHistogram()
        closeAll(subChannels + pubChannels)

        let wall = t2 - t1
        let sentRate = Double(s2.sent - s1.sent) / wall
        let deliveredRate = Double(s2.delivered - s1.delivered) / wall
        let genCPU = (cpu2 - cpu1) / wall * 100
        fields += [("duration_s", .number(wall, 3)), ("sent_per_s", .number(sentRate, 0)),
                   ("delivered_per_s", .number(deliveredRate, 0))]
        if qos != .atMostOnce { fields.append(("acked_per_s", .number(Double(s2.acked - s1.acked) / wall, 0))) }
        if o.sink { fields.append(("sink_received_per_s", .number(Double(s2.sinkReceived - s1.sinkReceived) / wall, 0))) }

        // Intervals of the measured window: slowest quarter-second and quarter-seconds with no delivery.
        var minRate = Double.infinity
        var stalls = 0
        if !subscribers.isEmpty && samples.count > firstMeasured + 1 {
            for i in (firstMeasured + 1)..<samples.count {
                let dt = samples[i].t - samples[i - 1].t
                guard dt > 0.05 else { continue }
                let delivered = samples[i].s.delivered - samples[i - 1].s.delivered
                minRate = min(minRate, Double(delivered) / dt)
                if delivered == 0 { stalls += 1 }
            }
        }
        let expected = final.sent * expectedPerSent
        let lost = expected - final.delivered
        if !subscribers.isEmpty && !publishers.isEmpty {
            fields += [("sent_total", .int(final.sent)), ("delivered_total", .int(final.delivered)),
                       ("expected_total", .int(expected)), ("lost", .int(lost)),
                       ("loss_pct", .number(expected > 0 ? Double(lost) / Double(expected) * 100 : 0, 3)),
                       ("drain_complete", .bool(drained)),
                       ("min_interval_delivered_per_s", .number(minRate.isFinite ? minRate : nil, 0)),
                       ("stall_intervals", .int(stalls))]
        }
        var latencyText = ""
        if o.scenario == .latency {
            if histogram.totalCount > 0 {
                let p = { (q: Double) in Double(histogram.valueAtPercentile(q)) / 1000 }
                fields.append(("latency_us", .object([
                    ("count", .int(Int(histogram.totalCount))), ("p50", .number(p(50), 1)), ("p99", .number(p(99), 1)),
                    ("p999", .number(p(99.9), 1)), ("max", .number(Double(histogram.max) / 1000, 1)),
                    ("mean", .number(histogram.mean / 1000, 1)),
                ])))
                latencyText = " latency p50 \(fixed(p(50))) p99 \(fixed(p(99))) p99.9 \(fixed(p(99.9))) max "
                    + "\(fixed(Double(histogram.max) / 1000)) us"
            } else {
                fields.append(("latency_us", .null))
                latencyText = " latency: no message measured"
            }
        }
        fields.append(("gen_cpu_pct", .number(genCPU, 0)))
        addBroker(start: brokerStart, from: broker1, to: broker2, end: brokerEnd, wall: wall)
        let machineText = addMachine(machine1, machine2, wall: wall, genCPU: genCPU, broker1: broker1, broker2: broker2)

        var line = "\(o.scenario.rawValue) [\(labelText)] \(publishers.count) pub/\(subscribers.count) sub "
            + "\(payloadSize) B QoS \(o.qos): sent \(grouped(sentRate))/s delivered \(grouped(deliveredRate))/s"
        if !subscribers.isEmpty && !publishers.isEmpty {
            line += " lost " + (drained ? "" : ">=")
                + String(format: "%.3f%%", expected > 0 ? Double(lost) / Double(expected) * 100 : 0)
            if !drained { line += " (still delivering after --drain \(fixed(o.drain)) s)" }
            if stalls > 0 { line += " stalls \(stalls)x250ms" }
        }
        if o.sink { line += " sink received \(grouped(Double(s2.sinkReceived - s1.sinkReceived) / wall))/s" }
        line += latencyText + " gen CPU \(fixed(genCPU, 0))%"
        if let b1 = broker1.cpu, let b2 = broker2.cpu { line += " broker CPU \(fixed((b2 - b1) / wall * 100, 0))%" }
        if let r0 = brokerStart.rss, let r = brokerEnd.rss { line += " broker RSS \(r0 / 1024)->\(r / 1024) MiB" }
        human.append(line + machineText)
        return finish(error: nil)
    }

    var labelText: String { o.label.isEmpty ? (o.sink ? "sink" : "\(host):\(port)") : o.label }

    func addBroker(start: (rss: Int?, cpu: Double?), from: (rss: Int?, cpu: Double?),
                   to: (rss: Int?, cpu: Double?), end: (rss: Int?, cpu: Double?), wall: Double) {
        guard brokerPID != nil else { return }
        if let a = from.cpu, let b = to.cpu { fields.append(("broker_cpu_pct", .number((b - a) / wall * 100, 0))) }
        if let r = start.rss { fields.append(("broker_rss_kib_start", .int(r))) }
        if let r = end.rss { fields.append(("broker_rss_kib_end", .int(r))) }
        if start.rss == nil && end.rss == nil {
            problems.note("cannot read /proc/\(brokerPID!)/status: is --broker-pid right?")
        }
    }

    /// The machine's CPU over the window: busy (all processes), steal, and what neither the generator nor the
    /// broker used (other work on the machine: the measurement is shared with it).
    func addMachine(_ a: (busy: Double, steal: Double)?, _ b: (busy: Double, steal: Double)?, wall: Double,
                    genCPU: Double, broker1: (rss: Int?, cpu: Double?), broker2: (rss: Int?, cpu: Double?)) -> String {
        guard let a, let b else { return "" }
        let busy = (b.busy - a.busy) / wall * 100
        let steal = (b.steal - a.steal) / wall * 100
        fields += [("machine_busy_pct", .number(busy, 0)), ("machine_steal_pct", .number(steal, 0)),
                   ("cores", .int(System.coreCount))]
        var text = " | machine busy \(fixed(busy, 0))% of \(System.coreCount * 100)%"
        if let c1 = broker1.cpu, let c2 = broker2.cpu {
            let others = max(0, busy - genCPU - (c2 - c1) / wall * 100)
            fields.append(("others_cpu_pct", .number(others, 0)))
            text += ", others \(fixed(others, 0))%"
        }
        if steal >= 1 { text += ", steal \(fixed(steal, 0))%" }
        return text
    }

    // MARK: connect-storm

    func runConnectStorm() -> Bool {
        let workers = connections
        fields += [("connections", .int(workers))]
        guard let address = resolve() else { return finish(error: "cannot resolve \(host)") }
        let counted = o.total > 0
        if counted { fields.append(("total", .int(o.total))) }
        let brokerStart = brokerSample()
        let t0 = nowNanos()
        let from = counted ? t0 : t0 + UInt64(o.warmup * 1e9)
        let to = counted ? UInt64.max : from + UInt64(o.duration * 1e9)
        registry.forEach { stats in
            stats.measureFrom = from
            stats.measureTo = to
        }
        let base = settings()
        var done: [EventLoopFuture<Void>] = []
        // The window's start: now with --total, after the warm-up otherwise.
        var start = mark()
        for w in 0..<workers {
            let loop = group.next()
            // --total: this worker's share of the cycles.
            let cycles = counted ? o.total / workers + (w < o.total % workers ? 1 : 0) : Int.max
            let worker = StormWorker(loop: loop, address: address, settings: base, stats: registry.on(loop),
                                     problems: problems, prefix: "mb\(runID)-c\(w)-", timeout: o.timeout,
                                     cycles: cycles)
            done.append(loop.flatSubmit { worker.start() })
        }
        if counted {
            // Until every worker did its share: each cycle is bounded by --timeout, the run by the watchdog.
            for future in done { _ = try? future.wait() }
        } else {
            sleepSeconds(o.warmup)
            start = mark()
            sleepSeconds(o.duration)
        }
        let end = mark()
        let (t1, s1, cpu1, broker1, machine1) = (start.time, start.stats, start.cpu, start.broker, start.machine)
        let (t2, s2, cpu2, broker2, machine2) = (end.time, end.stats, end.cpu, end.broker, end.machine)
        registry.forEach { $0.running = false }
        let deadline = monotonicSeconds() + 2 * o.timeout
        for future in done {
            let left = deadline - monotonicSeconds()
            if left > 0 { _ = try? future.wait() }
        }
        let brokerEnd = brokerSample()
        let histogram = registry.mergedHistogram()
        let wall = t2 - t1
        let rate = Double(s2.sent - s1.sent) / wall
        let failures = s2.failures - s1.failures
        let genCPU = (cpu2 - cpu1) / wall * 100
        fields += [("duration_s", .number(wall, 3)), ("connects_per_s", .number(rate, 0)),
                   ("connects", .int(s2.sent - s1.sent)), ("failures", .int(failures))]
        var latencyText = ""
        if histogram.totalCount > 0 {
            let p = { (q: Double) in Double(histogram.valueAtPercentile(q)) / 1000 }
            fields.append(("connack_latency_us", .object([
                ("count", .int(Int(histogram.totalCount))), ("p50", .number(p(50), 1)), ("p99", .number(p(99), 1)),
                ("p999", .number(p(99.9), 1)), ("max", .number(Double(histogram.max) / 1000, 1)),
            ])))
            latencyText = " connect->CONNACK p50 \(fixed(p(50))) p99 \(fixed(p(99))) us"
        }
        fields.append(("gen_cpu_pct", .number(genCPU, 0)))
        addBroker(start: brokerStart, from: broker1, to: broker2, end: brokerEnd, wall: wall)
        let machineText = addMachine(machine1, machine2, wall: wall, genCPU: genCPU, broker1: broker1, broker2: broker2)
        var line = "connect-storm [\(labelText)] \(workers) workers: \(grouped(rate)) connects/s, \(failures) failures"
            + latencyText + " gen CPU \(fixed(genCPU, 0))%"
        if let b1 = broker1.cpu, let b2 = broker2.cpu { line += " broker CPU \(fixed((b2 - b1) / wall * 100, 0))%" }
        human.append(line + machineText)
        if rate == 0 && failures > 0 { return finish(error: "no connect succeeded") }
        return finish(error: nil)
    }

    /// The figures a measured window starts or ends with.
    struct Mark {
        var time: Double
        var stats: LoopStats.Snapshot
        var cpu: Double
        var broker: (rss: Int?, cpu: Double?)
        var machine: (busy: Double, steal: Double)?
    }

    func mark() -> Mark {
        Mark(time: monotonicSeconds(), stats: registry.snapshot(), cpu: processCPUSeconds(), broker: brokerSample(),
             machine: machineCPU())
    }

    // MARK: idle

    func runIdle() -> Bool {
        let n = connections
        fields += [("connections", .int(n)), ("file_limit", .int(fileLimit))]
        if n + 64 > fileLimit {
            problems.note("the generator may open at most \(fileLimit) files: raise ulimit -n")
        }
        var floorProcess: Process?
        var floorInput: Pipe?
        if o.floor {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments = ["floor-server"] + (o.floorThreads.map { ["--floor-threads", String($0)] } ?? [])
            let output = Pipe()
            let input = Pipe()
            process.standardOutput = output
            process.standardInput = input
            do { try process.run() } catch { return finish(error: "cannot start the floor server: \(error)") }
            floorProcess = process
            floorInput = input
            let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            guard let portText = line.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines),
                  let floorPort = Int(portText) else {
                process.terminate()
                return finish(error: "the floor server did not report its port")
            }
            host = "127.0.0.1"
            port = floorPort
            brokerPID = process.processIdentifier
            fields.append(("floor", .bool(true)))
        }
        defer {
            try? floorInput?.fileHandleForWriting.close()
            if let floorProcess, floorProcess.isRunning { floorProcess.terminate() }
        }
        guard let address = resolve() else { return finish(error: "cannot resolve \(host)") }
        sleepSeconds(0.3)
        let selfBefore = residentKiB(pid: getpid())
        let before = brokerSample()
        let t0 = monotonicSeconds()
        var channels: [any Channel] = []
        var failures: [String] = []
        if o.floor {
            // The floor server speaks no MQTT: plain TCP connections.
            var index = 0
            while index < n {
                let count = min(max(1, o.connectConcurrency), n - index)
                index += count
                let futures = (0..<count).map { _ in
                    ClientBootstrap(group: group).connectTimeout(.nanoseconds(Int64(o.timeout * 1e9)))
                        .connect(to: address)
                }
                for future in futures {
                    do { channels.append(try future.wait()) } catch { failures.append(describe(error)) }
                }
            }
        } else {
            // Opened step by step (each step's count in all), the broker's RSS sampled after each.
            let stepCounts = (o.steps.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 && $0 < n }
                + [n]).sorted()
            var stepResults: [JSON] = []
            var stepLines: [String] = []
            var reached = 0
            for count in stepCounts {
                let stepStart = monotonicSeconds()
                let specs = (reached..<count).map { ClientSpec(role: .idle, clientID: "mb\(runID)-i\($0)", topic: "") }
                let (more, failed) = openAll(specs, settings: settings(), address: address)
                let stepTime = monotonicSeconds() - stepStart
                channels += more
                failures += failed
                reached = count
                guard stepCounts.count > 1 else { break }
                sleepSeconds(1)  // the broker settles (its allocator's lazily touched pages) before the sample
                let sample = brokerSample()
                var step: [(String, JSON)] = [("connections", .int(count)), ("open", .int(channels.count)),
                                              ("connects_per_s", .number(Double(specs.count) / stepTime, 0))]
                var text = "  \(grouped(Double(count))) open: \(grouped(Double(specs.count) / stepTime)) connects/s"
                if let a = before.rss, let b = sample.rss {
                    let perConnection = Double(b - a) * 1024 / Double(max(1, channels.count))
                    step += [("broker_rss_kib", .int(b)), ("rss_per_conn_bytes", .number(perConnection, 0))]
                    text += ", broker RSS \(b / 1024) MiB, \(fixed(perConnection / 1024, 2)) KiB per connection"
                }
                stepResults.append(.object(step))
                stepLines.append(text)
            }
            if !stepResults.isEmpty {
                fields.append(("steps", .array(stepResults)))
                human += stepLines
            }
        }
        let setupTime = monotonicSeconds() - t0
        sleepSeconds(max(o.duration, 0.5))
        let after = brokerSample()
        let selfAfter = residentKiB(pid: getpid())
        let opened = channels.count
        fields += [("opened", .int(opened)), ("failed", .int(failures.count)),
                   ("setup_s", .number(setupTime, 2))]
        var line = "idle [\(o.floor ? "NIO floor" : labelText)] \(opened) of \(n) connections open in \(fixed(setupTime, 2)) s"
        if let a = before.rss, let b = after.rss, opened > 0 {
            let perConnection = Double(b - a) * 1024 / Double(opened)
            fields += [("broker_rss_kib_before", .int(a)), ("broker_rss_kib_after", .int(b)),
                       ("rss_per_conn_bytes", .number(perConnection, 0))]
            line += ": broker RSS \(a / 1024) -> \(b / 1024) MiB, \(fixed(perConnection / 1024, 2)) KiB per connection"
        } else if brokerPID == nil {
            line += " (pass --broker-pid for the broker's RSS)"
        } else {
            problems.note("cannot read /proc/\(brokerPID!)/status")
        }
        if let a = selfBefore, let b = selfAfter, opened > 0 {
            let perConnection = Double(b - a) * 1024 / Double(opened)
            fields.append(("gen_rss_per_conn_bytes", .number(perConnection, 0)))
            line += "; generator \(fixed(perConnection / 1024, 2)) KiB per connection"
        }
        human.append(line)
        if !failures.isEmpty { problems.note("\(failures.count) connections failed: \(failures[0])") }
        if o.floor {
            for channel in channels { channel.close(promise: nil) }
            for channel in channels { _ = try? channel.closeFuture.wait() }
        } else {
            closeAll(channels)
        }
        if opened == 0 { return finish(error: "no connection opened: \(failures.first ?? "?")") }
        return finish(error: nil)
    }

    // MARK: Report

    func finish(error: String?) -> Bool {
        let problemList = problems.summary
        var out = fields
        out.append(("ok", .bool(error == nil)))
        if let error { out.append(("error", .string(error))) }
        out.append(("problems", .array(problemList.map { .string($0) })))
        print(JSON.object(out).rendered)
        if let error {
            print("\(o.scenario.rawValue) [\(labelText)]: ERROR \(error)")
        }
        for line in human { print(line) }
        for problem in problemList { print("  problem: \(problem)") }
        fflush(nil)  // every output stream (stdout is a C global Swift 6 will not touch)
        return error == nil
    }
}

/// One connect-storm worker: connect, CONNECT, CONNACK, DISCONNECT, wait for the close, again, until the run
/// stops. Lives on one event loop.
final class StormWorker: @unchecked Sendable {
    let loop: any EventLoop
    let address: SocketAddress
    let settings: ClientSettings
    let stats: LoopStats
    let problems: Problems
    let prefix: String
    let timeout: Double
    var count = 0
    /// Cycles left (Int.max: until the run stops).
    var cycles: Int
    var done: EventLoopPromise<Void>?

    init(loop: any EventLoop, address: SocketAddress, settings: ClientSettings, stats: LoopStats,
         problems: Problems, prefix: String, timeout: Double, cycles: Int = .max) {
        self.cycles = cycles
        self.loop = loop
        self.address = address
        self.settings = settings
        self.stats = stats
        self.problems = problems
        self.prefix = prefix
        self.timeout = timeout
    }

    func start() -> EventLoopFuture<Void> {
        let done = loop.makePromise(of: Void.self)
        self.done = done
        cycle()
        return done.futureResult
    }

    private func cycle() {
        guard stats.running, cycles > 0 else {
            done?.succeed(())
            return
        }
        cycles -= 1
        count += 1
        let ready = loop.makePromise(of: Void.self)
        let stats = self.stats
        let problems = self.problems
        let settings = self.settings
        let clientID = prefix + String(count)
        let started = nowNanos()
        let connected = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(timeout * 1e9)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ClientHandler(role: .storm, settings: settings, clientID: clientID, topic: "",
                                                filter: nil, stats: stats, problems: problems, ready: ready)
                    handler.cycleStart = started
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(to: address)
        connected.whenFailure { ready.fail($0) }
        ready.futureResult.whenFailure { error in
            stats.failures += 1
            if let io = error as? IOError {
                problems.note("connect-storm: connect failed: \(String(cString: strerror(io.errnoCode)))")
            } else {
                problems.note("connect-storm: \(error)")
            }
        }
        connected.whenComplete { result in
            switch result {
            case .failure:
                // Back off a little so a refusing broker does not turn this into a busy loop.
                self.loop.scheduleTask(in: .milliseconds(10)) { self.cycle() }
            case .success(let channel):
                channel.closeFuture.whenComplete { _ in self.cycle() }
            }
        }
    }
}
