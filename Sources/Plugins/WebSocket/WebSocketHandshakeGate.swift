import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// Sits behind the HTTP handlers until the WebSocket upgrade: closes a connection that has not upgraded within
/// `timeout`, and answers every request the upgrader did not take (it only ever sees those) with a 4xx and
/// closes: `426 Upgrade Required` for a plain HTTP request, `400 Bad Request` for an upgrade it refused (no
/// acceptable subprotocol, a missing or wrong `Sec-WebSocket-Key` or `Sec-WebSocket-Version`, not a `GET`).
/// The upgrade removes it.
final class WebSocketHandshakeGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let listener: String
    let timeout: TimeAmount
    let logger: Logger
    private(set) var peer = "?"
    private var timer: Scheduled<Void>?
    private var answered = false
    private var refusal: (any Error)?

    init(listener: String, timeout: TimeAmount, logger: Logger) {
        self.listener = listener
        self.timeout = timeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress?.peerDescription ?? "?"
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            logger.notice("Client connection from \(peer) on port \(listener) closed: no WebSocket handshake within \(Self.seconds(timeout)) s.")
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data), !answered else { return }
        answered = true
        let isUpgrade = !request.headers["Upgrade"].isEmpty
        let status: HTTPResponseStatus = isUpgrade ? .badRequest : .upgradeRequired
        let reason = isUpgrade ? "WebSocket upgrade refused (\(refusal.map(Self.explain) ?? "not acceptable"))"
                               : "not a WebSocket upgrade request"
        logger.info("Client connection from \(peer) on port \(listener): \(request.method) \(request.uri): \(reason); answered \(status.code).")
        var headers = HTTPHeaders([("Connection", "close"), ("Content-Length", "0")])
        if !isUpgrade {
            headers.add(name: "Upgrade", value: "websocket")
            headers.add(name: "Sec-WebSocket-Version", value: "13")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                      promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case is NIOWebSocketUpgradeError:
            // The upgrader refused the request; it passes the request on to `channelRead` next.
            refusal = error
        case is HTTPParserError:
            // An unfinished request when the connection closes: nothing to answer.
            guard context.channel.isActive else { return }
            // HTTPServerProtocolErrorHandler has answered 400.
            logger.info("Client connection from \(peer) on port \(listener): not HTTP (\(error)); answered 400.")
            context.close(promise: nil)
        default:
            logger.debug("Client connection from \(peer) on port \(listener) closed before the WebSocket handshake: \(error)")
            context.close(promise: nil)
        }
    }

    private static func explain(_ error: any Error) -> String {
        if let upgradeError = error as? NIOWebSocketUpgradeError {
            if upgradeError == .invalidUpgradeHeader {
                return "missing or invalid Sec-WebSocket-Key or Sec-WebSocket-Version"
            }
            if upgradeError == .unsupportedWebSocketTarget {
                return "no acceptable subprotocol, or not a GET"
            }
        }
        return "\(error)"
    }

    static func seconds(_ amount: TimeAmount) -> String {
        let milliseconds = amount.nanoseconds / 1_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)" : "\(Double(milliseconds) / 1000)"
    }
}
