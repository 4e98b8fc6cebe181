import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PluginAPI
import Testing
@testable import Host
import TCPPlugin

/// Log lines, kept for assertions.
final class CapturedLog: Sendable {
    private let box = NIOLockedValueBox<[String]>([])

    var lines: [String] { box.withLockedValue { $0 } }

    func append(_ line: String) { box.withLockedValue { $0.append(line) } }

    var logger: Logger {
        Logger(label: "midge.test") { _ in CapturingLogHandler(log: self) }
    }
}

struct CapturingLogHandler: LogHandler {
    let log: CapturedLog
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        log.append("\(event.level): \(event.message)")
    }
}

/// A plugin that only publishes HTTP endpoints.
final class EndpointPlugin: HTTPEndpointProvider {
    let httpEndpoints: [HTTPEndpoint]

    init(_ endpoints: [HTTPEndpoint]) {
        httpEndpoints = endpoints
    }

    static func descriptor(name: String, endpoints: [HTTPEndpoint]) -> PluginDescriptor {
        PluginDescriptor(name: name, summary: "test endpoints") { options, _ in
            try options.finish()
            return EndpointPlugin(endpoints)
        }
    }
}

/// An admin server on an ephemeral loopback port, with its own event loops; `stop()` ends both.
private struct RunningAdmin {
    let group: MultiThreadedEventLoopGroup
    let server: AdminServer
    let port: Int

    static func start(endpoints: [HTTPEndpoint] = [], settings: AdminServer.Settings = AdminServer.Settings())
        async throws -> RunningAdmin {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        do {
            let server = try AdminServer(
                group: group, sources: [AdminServer.EndpointSource(name: "plugin 'test'", file: "t.conf", line: 1,
                                                                   endpoints: endpoints)],
                settings: settings, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let port = try await server.bind(host: "127.0.0.1", port: 0)
            return RunningAdmin(group: group, server: server, port: port)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    func connect() async throws -> WireHTTPClient {
        try await WireHTTPClient.connect(port: port, group: group)
    }

    func stop() async {
        await server.close()
        try? await group.shutdownGracefully()
    }
}

/// Whether a TCP connection to `port` on loopback is refused.
private func connectionRefused(port: Int, group: any EventLoopGroup) async -> Bool {
    do {
        let client = try await WireHTTPClient.connect(port: port, group: group)
        await client.close()
        return false
    } catch {
        return true
    }
}

@Suite("Admin HTTP listener")
struct AdminServerTests {
    @Test("/healthz answers ok; /readyz is 503 until ready, 200 when ready, 503 once shutdown begins")
    func healthAndReadiness() async throws {
        let admin = try await RunningAdmin.start()
        let client = try await admin.connect()

        let health = try #require(try await client.request("GET", "/healthz").response)
        #expect(health.status == 200)
        #expect(health.body == "ok\n")
        #expect(health.headers["content-type"] == "text/plain; charset=utf-8")

        let starting = try #require(try await client.request("GET", "/readyz").response)
        #expect(starting.status == 503)

        admin.server.markReady()
        let ready = try #require(try await client.request("GET", "/readyz").response)
        #expect(ready.status == 200)
        #expect(ready.headers["connection"] == nil)

        admin.server.beginShutdown()
        let stopping = try #require(try await client.request("GET", "/readyz").response)
        #expect(stopping.status == 503)
        #expect(stopping.headers["connection"] == "close")
        #expect(await client.closedByServer())

        await admin.stop()
        #expect(await connectionRefused(port: admin.port, group: MultiThreadedEventLoopGroup.singleton))
    }

    @Test("unknown paths are 404; other methods 405 with Allow; a query does not change the path")
    func statusCodes() async throws {
        let admin = try await RunningAdmin.start()
        let client = try await admin.connect()

        let missing = try #require(try await client.request("GET", "/nothing-here").response)
        #expect(missing.status == 404)

        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let refused = try #require(try await client.request(method, "/healthz", body: "x=1").response, "\(method)")
            #expect(refused.status == 405, "\(method)")
            #expect(refused.headers["allow"] == "GET, HEAD", "\(method)")
        }

        let queried = try #require(try await client.request("GET", "/healthz?verbose=1").response)
        #expect(queried.status == 200)
        await client.close()
        await admin.stop()
    }

    @Test("HEAD gives GET's status and length without a body; the connection stays usable")
    func head() async throws {
        let admin = try await RunningAdmin.start()
        let client = try await admin.connect()
        let head = try #require(try await client.request("HEAD", "/healthz").response)
        #expect(head.status == 200)
        #expect(head.headers["content-length"] == "3")
        #expect(head.body == "")
        // Had a body followed, it would now be read as the start of the next response.
        let get = try #require(try await client.request("GET", "/healthz").response)
        #expect(get.status == 200)
        #expect(get.body == "ok\n")
        await client.close()
        await admin.stop()
    }

    @Test("keep-alive: HTTP/1.1 keeps the connection, pipelined requests are answered in order, close is honoured")
    func keepAlive() async throws {
        let admin = try await RunningAdmin.start()
        let client = try await admin.connect()
        try await client.send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(await client.response().response?.status == 200)
        #expect(await client.response().response?.status == 404)
        let last = try #require(try await client.request("GET", "/healthz", headers: ["Connection: close"]).response)
        #expect(last.status == 200)
        #expect(last.headers["connection"] == "close")
        #expect(await client.closedByServer())

        let old = try await admin.connect()
        let answer = try #require(try await old.request("GET", "/healthz", version: "HTTP/1.0").response)
        #expect(answer.status == 200)
        #expect(await old.closedByServer())

        let oldKeepAlive = try await admin.connect()
        let kept = try #require(try await oldKeepAlive.request("GET", "/healthz", headers: ["Connection: keep-alive"],
                                                               version: "HTTP/1.0").response)
        #expect(kept.headers["connection"] == "keep-alive")
        #expect(try await oldKeepAlive.request("GET", "/healthz", headers: ["Connection: keep-alive"],
                                               version: "HTTP/1.0").response?.status == 200)
        await oldKeepAlive.close()
        await admin.stop()
    }

    @Test("requests are bounded: huge headers 400, huge bodies 413, and the connection closes")
    func bounded() async throws {
        let admin = try await RunningAdmin.start()

        let huge = try await admin.connect()
        let filler = String(repeating: "a", count: 20_000)
        let tooBig = try await huge.request("GET", "/healthz", headers: ["X-Filler: \(filler)"])
        #expect(tooBig.response?.status == 400)
        #expect(await huge.closedByServer())

        let longTarget = try await admin.connect()
        #expect(try await longTarget.request("GET", "/" + filler).response?.status == 400)
        #expect(await longTarget.closedByServer())

        let declared = try await admin.connect()
        try await declared.send("POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
        #expect(await declared.response().response?.status == 413)
        #expect(await declared.closedByServer())

        let chunked = try await admin.connect()
        try await chunked.send("GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = String(repeating: "b", count: 3000)
        let size = String(chunk.utf8.count, radix: 16)
        try await chunked.send("\(size)\r\n\(chunk)\r\n\(size)\r\n\(chunk)\r\n")
        #expect(await chunked.response().response?.status == 413)
        #expect(await chunked.closedByServer())
        await admin.stop()
    }

    @Test("at most maxConnections at once: one more is closed at accept; once one closes, a new one is served")
    func connectionLimit() async throws {
        var settings = AdminServer.Settings()
        settings.maxConnections = 2
        let admin = try await RunningAdmin.start(settings: settings)
        let first = try await admin.connect()
        let second = try await admin.connect()
        #expect(try await first.request("GET", "/healthz").response?.status == 200)
        #expect(try await second.request("GET", "/healthz").response?.status == 200)
        let third = try await admin.connect()  // the kernel accepts it; the server closes it
        #expect(await third.closedByServer())
        // The server closes `first` itself after this answer: once that close is seen, its slot is coming back.
        #expect(try await first.request("GET", "/healthz", headers: ["Connection: close"]).response?.status == 200)
        #expect(await first.closedByServer())
        // The slot is given back in the server's close callback, which may run just after the client saw the
        // close: each attempt is a round trip the server answers or closes, bounded in number.
        var served = false
        for _ in 0..<50 where !served {
            let next = try await admin.connect()
            if let status = try? await next.request("GET", "/healthz").response?.status, status == 200 { served = true }
            await next.close()
        }
        #expect(served)
        await second.close()
        await admin.stop()
    }

    @Test("a connection that sends nothing, or only part of a request, is closed after the idle timeout")
    func idleTimeout() async throws {
        var settings = AdminServer.Settings()
        // Long enough for the "used" request to go out first under a sanitizer on a loaded machine (200 ms
        // failed once under AddressSanitizer).
        settings.idleTimeout = .milliseconds(600)
        let admin = try await RunningAdmin.start(settings: settings)

        let silent = try await admin.connect()
        #expect(await silent.closedByServer(within: .seconds(5)))

        let partial = try await admin.connect()
        try? await partial.send("GET /healthz HTTP/1.1\r\nHost: a\r\n")  // may fail: already closed
        #expect(await partial.closedByServer(within: .seconds(5)))

        let used = try await admin.connect()
        #expect(try await used.request("GET", "/healthz").response?.status == 200)
        #expect(await used.closedByServer(within: .seconds(5)))
        await admin.stop()
    }

    @Test("plugin endpoints: answers now or later, a query and headers reach the handler, slow is 503, failed is 500")
    func pluginEndpoints() async throws {
        struct Failure: Error {}
        let abandoned = NIOLockedValueBox<[EventLoopPromise<HTTPEndpointResponse>]>([])
        var settings = AdminServer.Settings()
        settings.handlerDeadline = .milliseconds(200)
        let admin = try await RunningAdmin.start(endpoints: [
            HTTPEndpoint(path: "/metrics") { request, _ in
                .now(HTTPEndpointResponse(contentType: "text/plain; version=0.0.4",
                                          body: "up 1 \(request.method) \(request.query ?? "-") \(request.header("ACCEPT") ?? "-")\n"))
            },
            HTTPEndpoint(path: "/later") { _, loop in
                .later(loop.scheduleTask(in: .milliseconds(10)) { HTTPEndpointResponse(status: 202, body: "later\n") }.futureResult)
            },
            HTTPEndpoint(path: "/never") { _, loop in
                let promise = loop.makePromise(of: HTTPEndpointResponse.self)
                abandoned.withLockedValue { $0.append(promise) }
                return .later(promise.futureResult)
            },
            HTTPEndpoint(path: "/fails") { _, loop in .later(loop.makeFailedFuture(Failure())) },
        ], settings: settings)
        let client = try await admin.connect()

        let metrics = try #require(try await client.request("GET", "/metrics?name=up", headers: ["Accept: text/plain"]).response)
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4")
        #expect(metrics.body == "up 1 GET name=up text/plain\n")

        let head = try #require(try await client.request("HEAD", "/metrics").response)
        #expect(head.status == 200)
        #expect(head.headers["content-length"] == String("up 1 HEAD - -\n".utf8.count))

        #expect(try await client.request("GET", "/later").response?.status == 202)
        #expect(try await client.request("GET", "/never").response?.status == 503)
        #expect(try await client.request("GET", "/fails").response?.status == 500)
        #expect(try await client.request("GET", "/healthz").response?.status == 200)
        // A promise dropped unanswered keeps what waits on it (LeakSanitizer counted it): answered now, late.
        for promise in abandoned.withLockedValue({ $0 }) { promise.fail(Failure()) }
        await client.close()
        await admin.stop()
    }

    @Test("a path published twice, or a built-in path, or a malformed path, is a start-up error naming the sources")
    func duplicatePaths() throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let metrics = HTTPEndpoint(path: "/metrics") { _, _ in .now(HTTPEndpointResponse(body: "")) }
        let sources = [
            AdminServer.EndpointSource(name: "plugin 'first'", file: "a.conf", line: 3, endpoints: [metrics]),
            AdminServer.EndpointSource(name: "plugin 'second'", file: "a.conf", line: 7, endpoints: [metrics]),
        ]
        #expect(throws: ConfigError(file: "a.conf", line: 7,
                                    message: "duplicate HTTP path /metrics on the admin listener: plugin 'second' (a.conf:7) and plugin 'first' (a.conf:3) both publish it")) {
            try AdminServer(group: group, sources: sources, logger: logger)
        }

        let health = HTTPEndpoint(path: "/healthz") { _, _ in .now(HTTPEndpointResponse(body: "")) }
        do {
            _ = try AdminServer(group: group, sources: [AdminServer.EndpointSource(name: "plugin 'x'", file: "b.conf", line: 2,
                                                                                   endpoints: [health])], logger: logger)
            Issue.record("a plugin took /healthz")
        } catch let error as ConfigError {
            #expect(error.description.hasPrefix("b.conf:2: duplicate HTTP path /healthz"))
            #expect(error.message.contains("built-in health check"))
        }

        let relative = HTTPEndpoint(path: "metrics") { _, _ in .now(HTTPEndpointResponse(body: "")) }
        #expect(throws: ConfigError.self) {
            try AdminServer(group: group, sources: [AdminServer.EndpointSource(name: "plugin 'x'", file: "b.conf", line: 2,
                                                                               endpoints: [relative])], logger: logger)
        }
    }
}

@Suite("Broker with an admin listener")
struct BrokerAdminTests {
    private static func config(admin: Bool, pluginLines: [Int] = []) -> BrokerConfig {
        var config = BrokerConfig()
        config.listeners = [ListenerConfig(port: 0, bindAddress: "127.0.0.1", file: "t.conf", line: 1)]
        config.allowAnonymous = true
        if admin { config.adminListener = AdminListenerConfig(port: 0, bindAddress: "127.0.0.1", file: "t.conf", line: 2) }
        config.plugins = pluginLines.map { PluginConfig(name: "test-metrics", file: "t.conf", line: $0) }
        return config
    }

    /// The built-in `tcp` listener, and a test plugin with an endpoint.
    private static let registry = PluginRegistry([
        TCPTransport.descriptor,
        EndpointPlugin.descriptor(name: "test-metrics", endpoints: [
            HTTPEndpoint(path: "/metrics") { _, _ in .now(HTTPEndpointResponse(body: "midge_up 1\n")) },
        ]),
    ])

    @Test("start() opens the admin listener first (ready only at the end) and logs its port; plugins' endpoints are served; shutdown closes it")
    func lifecycle() async throws {
        let log = CapturedLog()
        let broker = try Broker(config: Self.config(admin: true, pluginLines: [5]), logger: log.logger,
                                registry: Self.registry)
        #expect(broker.adminPort == nil)
        try await broker.start()
        let port = try #require(broker.adminPort)
        #expect(log.lines.contains("notice: Admin HTTP listener on port \(port)."))
        let mqttLine = try #require(log.lines.firstIndex { $0.contains("listen socket on port") })
        let adminLine = try #require(log.lines.firstIndex { $0.contains("Admin HTTP listener") })
        // A busy admin port stops start-up before any MQTT port opens.
        #expect(adminLine < mqttLine)

        let group = MultiThreadedEventLoopGroup.singleton
        var client = try await WireHTTPClient.connect(port: port, group: group)
        var step = "readyz"
        do {
            var ready: WireHTTPOutcome
            do {
                ready = try await client.request("GET", "/readyz")
            } catch ChannelError.ioOnClosedChannel {
                // Seen in about one full parallel run in seven (never alone): the connection is closed before
                // its first byte, with nothing in the broker's log (not its connection limit, not an error).
                // Not understood yet; recorded as a known issue, with what both ends saw, and tried once more.
                let diagnostics = await client.diagnostics
                let seen = "port \(port), from \(String(describing: client.localAddress)), \(diagnostics), log \(log.lines)"
                withKnownIssue("admin connection closed before its first request: \(seen)", isIntermittent: true) {
                    throw ChannelError.ioOnClosedChannel
                }
                client = try await WireHTTPClient.connect(port: port, group: group)
                ready = try await client.request("GET", "/readyz")
            }
            #expect(ready.response?.status == 200)
            step = "healthz"
            #expect(try await client.request("GET", "/healthz").response?.body == "ok\n")
            step = "metrics"
            #expect(try await client.request("GET", "/metrics").response?.body == "midge_up 1\n")
            step = "other"
            #expect(try await client.request("GET", "/other").response?.status == 404)
        } catch {
            let seen = await client.diagnostics
            Issue.record("step \(step), port \(port), from \(String(describing: client.localAddress)), \(seen): \(error); log: \(log.lines)")
        }

        await broker.shutdown()
        #expect(await client.closedByServer())
        #expect(await connectionRefused(port: port, group: group))
    }

    @Test("two plugins publishing one path stop start-up with an error naming both config lines")
    func duplicatePluginPaths() async throws {
        let broker = try Broker(config: Self.config(admin: true, pluginLines: [5, 9]),
                                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                registry: Self.registry)
        do {
            try await broker.start()
            Issue.record("start() succeeded")
        } catch let error as ConfigError {
            #expect(error.description == "t.conf:9: duplicate HTTP path /metrics on the admin listener: plugin 'test-metrics' (t.conf:9) and plugin 'test-metrics' (t.conf:5) both publish it")
        }
        #expect(broker.adminPort == nil)
        await broker.shutdown()
    }

    @Test("endpoints without an admin_listener: one warning, nothing served")
    func endpointsWithoutListener() async throws {
        let log = CapturedLog()
        let broker = try Broker(config: Self.config(admin: false, pluginLines: [5]), logger: log.logger,
                                registry: Self.registry)
        try await broker.start()
        #expect(broker.adminPort == nil)
        let warnings = log.lines.filter { $0.contains("no admin_listener is configured") }
        #expect(warnings == ["warning: Plugins publish HTTP endpoints (/metrics) but no admin_listener is configured: they are not served."])
        await broker.shutdown()
    }

    @Test("a broker without plugin endpoints or admin_listener logs nothing about it")
    func noAdmin() async throws {
        let log = CapturedLog()
        let broker = try Broker(config: Self.config(admin: false), logger: log.logger, registry: Self.registry)
        try await broker.start()
        #expect(broker.adminPort == nil)
        #expect(!log.lines.contains { $0.contains("Admin HTTP") || $0.contains("admin_listener") })
        await broker.shutdown()
    }
}
