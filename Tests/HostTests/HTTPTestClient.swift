import Foundation
import NIOCore
import NIOPosix

/// One HTTP response as read off the wire.
struct WireHTTPResponse: Sendable {
    var status: Int
    /// Header names in lower case; a repeated header keeps its last value.
    var headers: [String: String]
    var body: String
}

/// What waiting for a response gave.
enum WireHTTPOutcome: Sendable {
    case response(WireHTTPResponse)
    /// The server closed the connection before a whole response arrived.
    case closed
    case timedOut

    var response: WireHTTPResponse? {
        if case .response(let response) = self { return response }
        return nil
    }
}

/// A raw HTTP/1.x client over a real loopback socket: the test writes exact request bytes and reads exact
/// responses, so it can send what a polite client would not (huge headers, bodies, pipelined requests).
/// Every wait is bounded.
final class WireHTTPClient: @unchecked Sendable {
    let channel: any Channel
    private let collector: Collector
    /// Where the connection came from (kept: a closed channel no longer says).
    let localAddress: SocketAddress?

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
        localAddress = channel.localAddress
    }

    static func connect(port: Int, host: String = "127.0.0.1", group: any EventLoopGroup) async throws -> WireHTTPClient {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: host, port: port).get()
        return WireHTTPClient(channel: channel, collector: collector)
    }

    /// Writes `text` as is (use `\r\n` line ends).
    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// The next response; `bodyless` for the answer to a HEAD (its Content-Length is not followed by a body).
    func response(bodyless: Bool = false, timeout: TimeAmount = .seconds(5)) async -> WireHTTPOutcome {
        let loop = channel.eventLoop
        let collector = self.collector
        let future = loop.flatSubmit { () -> EventLoopFuture<WireHTTPOutcome> in
            let promise = loop.makePromise(of: WireHTTPOutcome.self)
            let timer = loop.scheduleTask(in: timeout) { promise.succeed(.timedOut) }
            promise.futureResult.whenComplete { _ in timer.cancel() }
            collector.waiter = (bodyless, promise)
            collector.check()
            return promise.futureResult
        }
        return (try? await future.get()) ?? .closed
    }

    /// Sends one request and reads its response.
    func request(_ method: String, _ target: String, headers: [String] = [], body: String = "",
                 version: String = "HTTP/1.1") async throws -> WireHTTPOutcome {
        var text = "\(method) \(target) \(version)\r\nHost: localhost\r\n"
        for header in headers { text += header + "\r\n" }
        if !body.isEmpty { text += "Content-Length: \(body.utf8.count)\r\n" }
        try await send(text + "\r\n" + body)
        return await response(bodyless: method == "HEAD")
    }

    /// Whether the server closed the connection within `timeout`.
    func closedByServer(within timeout: TimeAmount = .seconds(5)) async -> Bool {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: Bool.self)
        let timer = loop.scheduleTask(in: timeout) { promise.succeed(false) }
        channel.closeFuture.whenComplete { _ in
            timer.cancel()
            promise.succeed(true)
        }
        return (try? await promise.futureResult.get()) ?? false
    }

    func close() async {
        try? await channel.close()
    }

    /// What the connection saw, for a failed test's message.
    var diagnostics: String {
        get async {
            let collector = self.collector
            return (try? await channel.eventLoop.submit {
                "closed \(collector.isClosed), \(collector.buffer.readableBytes) bytes unread, errors \(collector.errors)"
            }.get()) ?? "?"
        }
    }

    /// Gathers bytes on the channel's event loop and answers the one waiter when a whole response is there.
    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer

        var buffer = ByteBuffer()
        var isClosed = false
        /// Errors the pipeline saw (for a test's diagnostics).
        var errors: [String] = []

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            errors.append("\(error)")
            context.fireErrorCaught(error)
        }
        var waiter: (bodyless: Bool, promise: EventLoopPromise<WireHTTPOutcome>)?

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            buffer.writeBuffer(&bytes)
            check()
        }

        func channelInactive(context: ChannelHandlerContext) {
            isClosed = true
            check()
            context.fireChannelInactive()
        }

        func check() {
            guard let (bodyless, promise) = waiter else { return }
            if let response = takeResponse(bodyless: bodyless) {
                waiter = nil
                promise.succeed(.response(response))
            } else if isClosed {
                waiter = nil
                promise.succeed(.closed)
            }
        }

        private func takeResponse(bodyless: Bool) -> WireHTTPResponse? {
            let bytes = Array(buffer.readableBytesView)
            let separator: [UInt8] = Array("\r\n\r\n".utf8)
            guard bytes.count >= 4,
                  let end = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<($0 + 4)]) == separator }) else {
                return nil
            }
            let head = String(decoding: bytes[..<end], as: UTF8.self)
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ")
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
            var headers: [String: String] = [:]
            for line in lines {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = bodyless ? 0 : Int(headers["content-length"] ?? "0") ?? 0
            let bodyStart = end + 4
            guard bytes.count >= bodyStart + length else { return nil }
            let body = String(decoding: bytes[bodyStart..<(bodyStart + length)], as: UTF8.self)
            buffer.moveReaderIndex(forwardBy: bodyStart + length)
            return WireHTTPResponse(status: status, headers: headers, body: body)
        }
    }
}
