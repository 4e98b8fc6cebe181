import Logging
import NIOCore
import NIOWebSocket

/// Between the WebSocket frame codec and the MQTT handler once the upgrade is done: turns frames into the
/// byte stream MQTT expects and back.
///
/// Inbound, the payload of each binary frame and of its continuation frames is passed on as it arrives
/// (MQTT frames the bytes itself, so packet and frame boundaries need not agree); a ping is answered with a
/// pong carrying its payload; a close is answered with a close carrying its status code, then the connection
/// is closed. A text frame, an unmasked frame, reserved bits, an unknown opcode or a continuation outside a
/// message close the connection with status 1003 or 1002; a frame over the size cap (reported by the decoder)
/// with 1009.
///
/// Outbound, each buffer becomes one final binary frame. When the handlers behind it close the connection, a
/// close frame (1000) goes out first.
final class WebSocketFrameAdapter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    let listener: String
    let peer: String
    let maxFrameSize: Int
    let logger: Logger
    private var context: ChannelHandlerContext?
    /// A fragmented binary message is under way: continuation frames are expected.
    private var inMessage = false
    /// A close frame was sent: nothing more goes out, nothing more is read.
    private var closing = false

    init(listener: String, peer: String, maxFrameSize: Int, logger: Logger) {
        self.listener = listener
        self.peer = peer
        self.maxFrameSize = maxFrameSize
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Starts the connection for the handlers behind this one, which were added after `channelActive`.
    func start() {
        guard let context, context.channel.isActive, !closing else { return }
        context.fireChannelActive()
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let frame = unwrapInboundIn(data)
        guard frame.maskKey != nil else { return fail(context, .protocolError, "an unmasked frame") }
        guard frame.reservedBits.isEmpty else { return fail(context, .protocolError, "reserved bits set") }
        switch frame.opcode {
        case .binary:
            guard !inMessage else { return fail(context, .protocolError, "a new message inside a fragmented one") }
            inMessage = !frame.fin
            forward(context, frame.unmaskedData)
        case .continuation:
            guard inMessage else { return fail(context, .protocolError, "a continuation frame outside a message") }
            inMessage = !frame.fin
            forward(context, frame.unmaskedData)
        case .text:
            fail(context, .unacceptableData, "a text frame (MQTT needs binary frames)")
        case .ping:
            send(context, WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
            context.flush()
        case .pong:
            break
        case .connectionClose:
            var payload = frame.unmaskedData
            let status = payload.readableBytes >= 2 ? payload.readSlice(length: 2) : nil
            logger.debug("Client connection from \(peer) on port \(listener): WebSocket close received.")
            closeWith(context, status ?? context.channel.allocator.buffer(capacity: 0))
        default:
            fail(context, .protocolError, "unknown opcode \(frame.opcode)")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? NIOWebSocketError else {
            context.fireErrorCaught(error)
            return
        }
        switch error {
        case .invalidFrameLength:
            logger.notice("Client connection from \(peer) on port \(listener) closed: a WebSocket frame larger than \(maxFrameSize) bytes.")
            fail(context, .messageTooLarge, nil)
        case .fragmentedControlFrame:
            fail(context, .protocolError, "a fragmented control frame")
        case .multiByteControlFrameLength:
            fail(context, .protocolError, "a control frame longer than 125 bytes")
        }
    }

    private func forward(_ context: ChannelHandlerContext, _ payload: ByteBuffer) {
        guard payload.readableBytes > 0 else { return }
        context.fireChannelRead(wrapInboundOut(payload))
    }

    /// Ends the connection for a protocol violation: a close frame with `code`, then close.
    private func fail(_ context: ChannelHandlerContext, _ code: WebSocketErrorCode, _ what: String?) {
        if let what {
            logger.info("Client connection from \(peer) on port \(listener) closed: WebSocket protocol error: \(what).")
        }
        var status = context.channel.allocator.buffer(capacity: 2)
        status.write(webSocketErrorCode: code)
        closeWith(context, status)
    }

    private func closeWith(_ context: ChannelHandlerContext, _ status: ByteBuffer) {
        guard !closing else { return }
        closing = true
        send(context, WebSocketFrame(fin: true, opcode: .connectionClose, data: status))
        context.flush()
        context.close(promise: nil)
    }

    private func send(_ context: ChannelHandlerContext, _ frame: WebSocketFrame) {
        context.write(wrapOutboundOut(frame), promise: nil)
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !closing else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        let frame = WebSocketFrame(fin: true, opcode: .binary, data: unwrapOutboundIn(data))
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, !closing, context.channel.isActive {
            closing = true
            var status = context.channel.allocator.buffer(capacity: 2)
            status.write(webSocketErrorCode: .normalClosure)
            send(context, WebSocketFrame(fin: true, opcode: .connectionClose, data: status))
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}
