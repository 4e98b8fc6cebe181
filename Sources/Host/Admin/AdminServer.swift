import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import PluginAPI

/// The admin HTTP listener (`admin_listener PORT [ADDRESS]`): one small HTTP/1.1 server for Kubernetes
/// probes and for the endpoints plugins publish (`HTTPEndpointProvider`, e.g. a metrics plugin's `/metrics`).
///
/// - `GET` and `HEAD` only; any other method is answered 405 with `Allow: GET, HEAD`; an unknown path 404.
/// - `/healthz`: 200 `ok` while every event loop of the process answers a round trip within a deadline, 503
///   otherwise. `/readyz`: 200 once `markReady()` was called (the broker finished `start()`), 503 before and
///   again once `close()` began.
/// - Bounded: request heads (line and headers) over `maxHeaderBytes` are answered 400 and the connection
///   closed; bodies over `maxBodyBytes` 413; a connection that does not complete a request within
///   `idleTimeout` (after it opened or after the previous response) is closed; at most `maxConnections` at once.
/// - Keep-alive as the client asks (HTTP/1.1 by default, HTTP/1.0 with `Connection: keep-alive`).
final class AdminServer: Sendable {
    /// Limits and deadlines.
    struct Settings: Sendable {
        /// How long a connection may take to send a whole request, after it opened or after the previous
        /// response; then it is closed.
        var idleTimeout: TimeAmount = .seconds(10)
        /// How long a plugin's handler may take; then the answer is 503.
        var handlerDeadline: TimeAmount = .seconds(5)
        /// How long `/healthz` waits for the event loops; then the answer is 503.
        var healthDeadline: TimeAmount = .seconds(2)
        /// The request line and header fields together.
        var maxHeaderBytes = 8 * 1024
        /// A GET or HEAD has no use for a body; anything bigger than this is refused with 413.
        var maxBodyBytes = 4 * 1024
        /// Connections open at once; more are closed at accept.
        var maxConnections = 64
    }

    /// Where a set of endpoints comes from, for the duplicate-path error.
    struct EndpointSource: Sendable {
        /// For example `plugin 'prometheus'`.
        var name: String
        /// The config line that created it, when there is one.
        var file: String
        var line: Int
        var endpoints: [HTTPEndpoint]
    }

    enum Readiness: Sendable, Equatable {
        case starting, ready, stopping
    }

    enum Route: Sendable {
        case health
        case readiness
        case plugin(HTTPEndpoint.Handler)
    }

    static let healthPath = "/healthz"
    static let readinessPath = "/readyz"

    let group: any EventLoopGroup
    let settings: Settings
    let logger: Logger
    let routes: [String: Route]
    private let readiness = NIOLockedValueBox(Readiness.starting)
    private let state = NIOLockedValueBox(ChannelState())

    private struct ChannelState {
        var server: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var closing = false
    }

    /// Builds the route table: the built-in `/healthz` and `/readyz`, then every source's endpoints. Throws a
    /// `ConfigError` naming both sides when two endpoints share a path, or naming an invalid path.
    init(group: any EventLoopGroup, sources: [EndpointSource], settings: Settings = Settings(), logger: Logger) throws {
        self.group = group
        self.settings = settings
        self.logger = logger
        var routes: [String: Route] = [Self.healthPath: .health, Self.readinessPath: .readiness]
        var owners: [String: String] = [Self.healthPath: "the admin listener's built-in health check",
                                        Self.readinessPath: "the admin listener's built-in readiness check"]
        for source in sources {
            let place = source.line > 0 ? " (\(source.file):\(source.line))" : ""
            for endpoint in source.endpoints {
                let path = endpoint.path
                guard path.hasPrefix("/"), !path.contains("?"), !path.contains("#"),
                      !path.contains(where: { $0 == " " || $0.isNewline }) else {
                    throw ConfigError(file: source.file.isEmpty ? "<plugins>" : source.file, line: source.line,
                                      message: "\(source.name) publishes the HTTP path '\(path)': a path must start with '/' and have no query, fragment or blanks")
                }
                if let owner = owners[path] {
                    throw ConfigError(file: source.file.isEmpty ? "<plugins>" : source.file, line: source.line,
                                      message: "duplicate HTTP path \(path) on the admin listener: \(source.name)\(place) and \(owner) both publish it")
                }
                owners[path] = "\(source.name)\(place)"
                routes[path] = .plugin(endpoint.handler)
            }
        }
        self.routes = routes
    }

    /// Whether `/readyz` answers 200.
    var currentReadiness: Readiness { readiness.withLockedValue { $0 } }

    /// `/readyz` answers 200 from now on (unless `close()` already began).
    func markReady() {
        readiness.withLockedValue { if $0 == .starting { $0 = .ready } }
    }

    /// Binds and starts accepting; returns the bound port. A nil `host` means all interfaces: IPv6 and IPv4
    /// (`::`), or IPv4 only on hosts without IPv6.
    func bind(host: String?, port: Int) async throws -> Int {
        let limit = ConnectionLimit(settings.maxConnections)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                self.initialize(channel, limit: limit)
            }
        let channel: any Channel
        if let host {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } else {
            do {
                channel = try await bootstrap.bind(host: "::", port: port).get()
            } catch {
                channel = try await bootstrap.bind(host: "0.0.0.0", port: port).get()
            }
        }
        let closing = state.withLockedValue { state -> Bool in
            if !state.closing { state.server = channel }
            return state.closing
        }
        if closing { try? await channel.close() }
        return channel.localAddress?.port ?? port
    }

    /// `/readyz` answers 503 from now on, and responses close their connection.
    func beginShutdown() {
        readiness.withLockedValue { $0 = .stopping }
    }

    /// `beginShutdown()`, then stops accepting and closes every open connection.
    func close() async {
        beginShutdown()
        let (server, connections) = state.withLockedValue { state in
            state.closing = true
            let taken = (state.server, Array(state.connections.values))
            state.server = nil
            state.connections = [:]
            return taken
        }
        try? await server?.close()
        for connection in connections { try? await connection.close() }
    }

    private func initialize(_ channel: any Channel, limit: ConnectionLimit?) -> EventLoopFuture<Void> {
        let id = ObjectIdentifier(channel)
        let remote = channel.remoteAddress?.description ?? "?"
        logger.debug("Admin HTTP connection from \(remote).")
        let admitted = state.withLockedValue { state -> Bool in
            guard !state.closing else { return false }
            state.connections[id] = channel
            return true
        }
        guard admitted else { return channel.close() }
        channel.closeFuture.whenComplete { [state, logger] _ in
            _ = state.withLockedValue { $0.connections.removeValue(forKey: id) }
            logger.debug("Admin HTTP connection from \(remote) closed.")
        }
        if let limit {
            guard limit.acquire() else {
                logger.notice("Admin HTTP connection from \(channel.remoteAddress?.description ?? "?") refused: \(limit.maximum) connections are open.")
                return channel.close()
            }
            channel.closeFuture.whenComplete { _ in limit.release() }
        }
        return channel.eventLoop.makeCompletedFuture {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = self.settings.maxHeaderBytes
            limits.maxHeaderListSize = self.settings.maxHeaderBytes
            limits.maxHeaderFieldCount = 100
            let sync = channel.pipeline.syncOperations
            try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true,
                                                 withOutboundHeaderValidation: true,
                                                 withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
                                                 withDecoderLimitConfiguration: limits)
            try sync.addHandler(AdminHTTPHandler(server: self))
        }
    }

    // MARK: Answers

    /// The answer to a GET or HEAD of a known path, on `loop`.
    func answer(_ route: Route, request: HTTPEndpointRequest, on loop: any EventLoop) -> EventLoopFuture<HTTPEndpointResponse> {
        switch route {
        case .readiness:
            let ready = currentReadiness == .ready
            return loop.makeSucceededFuture(ready ? Self.text(200, "ready\n")
                                                  : Self.text(503, currentReadiness == .stopping ? "shutting down\n" : "starting\n"))
        case .health:
            let pings = group.makeIterator().map { $0.submit {} }
            let all = EventLoopFuture.andAllSucceed(pings, on: loop)
            return Self.within(settings.healthDeadline, all, on: loop).map { answered in
                answered == nil ? Self.text(503, "event loops did not answer within the deadline\n") : Self.text(200, "ok\n")
            }
        case .plugin(let handler):
            let future: EventLoopFuture<HTTPEndpointResponse>
            switch handler(request, loop) {
            case .now(let response): return loop.makeSucceededFuture(response)
            case .later(let later): future = later
            }
            let logger = self.logger
            let path = request.path
            return Self.within(settings.handlerDeadline, future, on: loop).map { response in
                if let response { return response }
                logger.warning("Admin HTTP endpoint \(path) did not answer within the deadline.")
                return Self.text(503, "the endpoint did not answer in time\n")
            }.flatMapErrorThrowing { error in
                logger.warning("Admin HTTP endpoint \(path) failed: \(error)")
                return Self.text(500, "internal error\n")
            }
        }
    }

    static func text(_ status: Int, _ body: String) -> HTTPEndpointResponse {
        HTTPEndpointResponse(status: status, contentType: "text/plain; charset=utf-8", body: body)
    }

    /// `future`'s value, or nil when it did not complete within `deadline`; on `loop`.
    static func within<Value: Sendable>(_ deadline: TimeAmount, _ future: EventLoopFuture<Value>,
                                        on loop: any EventLoop) -> EventLoopFuture<Value?> {
        future.bounded(by: deadline, on: loop, what: "the answer").map { Optional($0) }.flatMapError { error in
            error is PluginTimeout ? loop.makeSucceededFuture(nil) : loop.makeFailedFuture(error)
        }
    }
}

/// One admin HTTP connection. The pipeline handler before it hands over one request at a time and holds back
/// pipelined ones until the previous response is complete.
private final class AdminHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Between requests (the idle timer runs).
        case waiting
        /// A request's head arrived; its body is being counted.
        case receiving(HTTPRequestHead, bodyBytes: Int)
        /// The request is complete; its answer is being produced or written.
        case responding
        /// Refused (body too large); the connection closes once the answer is written.
        case refused
    }

    private let server: AdminServer
    private var state = State.waiting
    /// Bumped at every request and response boundary, so a timer armed for an earlier wait does nothing.
    private var generation = 0
    private var idleTimer: Scheduled<Void>?

    init(server: AdminServer) {
        self.server = server
    }

    func handlerAdded(context: ChannelHandlerContext) {
        armIdleTimer(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .waiting = state else { return }
            if let length = head.headers.first(name: "content-length").flatMap({ Int($0) }),
               length > server.settings.maxBodyBytes {
                refuse(context: context, version: head.version)
                return
            }
            state = .receiving(head, bodyBytes: 0)
        case .body(let body):
            guard case .receiving(let head, let bodyBytes) = state else { return }
            let total = bodyBytes + body.readableBytes
            if total > server.settings.maxBodyBytes {
                refuse(context: context, version: head.version)
                return
            }
            state = .receiving(head, bodyBytes: total)
        case .end:
            guard case .receiving(let head, _) = state else { return }
            state = .responding
            generation += 1
            idleTimer?.cancel()
            idleTimer = nil
            respond(to: head, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // HTTPServerProtocolErrorHandler already answered 400 to a parser error (a head over the limit).
        server.logger.debug("Admin HTTP connection from \(context.channel.remoteAddress?.description ?? "?") closed: \(error).")
        context.close(promise: nil)
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = head.isKeepAlive && server.currentReadiness != .stopping
        guard head.method == .GET || head.method == .HEAD else {
            write(AdminServer.text(405, "method not allowed\n"), extraHeaders: [("Allow", "GET, HEAD")], request: head, keepAlive: keepAlive, context: context)
            return
        }
        let target = head.uri
        let path: String
        let query: String?
        if let mark = target.firstIndex(of: "?") {
            path = String(target[..<mark])
            query = String(target[target.index(after: mark)...])
        } else {
            path = target
            query = nil
        }
        guard let route = server.routes[path] else {
            write(AdminServer.text(404, "not found\n"), request: head, keepAlive: keepAlive, context: context)
            return
        }
        let request = HTTPEndpointRequest(method: head.method == .HEAD ? "HEAD" : "GET", path: path, query: query,
                                          headers: head.headers.map { (name: $0.name, value: $0.value) })
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        server.answer(route, request: request, on: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            let response: HTTPEndpointResponse
            switch result {
            case .success(let value): response = value
            case .failure: response = AdminServer.text(500, "internal error\n")
            }
            handler.write(response, request: head, keepAlive: keepAlive, context: context)
        }
    }

    /// A body over the limit: 413, then close (the rest of the body is not read).
    private func refuse(context: ChannelHandlerContext, version: HTTPVersion) {
        state = .refused
        generation += 1
        idleTimer?.cancel()
        idleTimer = nil
        var head = HTTPRequestHead(version: version, method: .GET, uri: "/")
        head.headers.replaceOrAdd(name: "connection", value: "close")
        write(AdminServer.text(413, "request body too large\n"), request: head, keepAlive: false, context: context)
    }

    private func write(_ response: HTTPEndpointResponse, extraHeaders: [(String, String)] = [],
                       request: HTTPRequestHead, keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.readableBytes))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if request.version.major == 1 && request.version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        let status = HTTPResponseStatus(statusCode: response.status)
        let version = request.version.major == 1 && request.version.minor == 0 ? HTTPVersion.http1_0 : .http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))),
                      promise: nil)
        if request.method != .HEAD && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        if keepAlive, case .responding = state {
            // Before the end is written: the pipeline handler may hand over the next request from inside it.
            state = .waiting
            generation += 1
            armIdleTimer(context: context)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func armIdleTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        let armedAt = generation
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: server.settings.idleTimeout) {
            let (handler, context) = bound.value
            guard handler.generation == armedAt else { return }
            context.close(promise: nil)
        }
    }
}
