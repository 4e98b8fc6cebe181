import Logging
import MQTT
import NIOCore
import PluginAPI

/// One client connection: reads bytes, decodes packets and hands each to its stage, on the channel's event
/// loop. The stages, in the order a packet meets them:
///
/// - `ReadGate`: every reason to stop reading (a congested subscriber, the publish rate, packets queued
///   behind authentication or a publish hook).
/// - `ConnectAdmission`: CONNECT to CONNACK, enhanced authentication, checks after a reload.
/// - `InboundPublish`: a PUBLISH to the router (aliases, limits, the `PublishPolicy`, hooks, QoS 1/2).
/// - `SubscriptionRequests`: SUBSCRIBE / UNSUBSCRIBE to the router.
/// - `OutboundWriter`: everything written to the client.
/// - `WillScheduler`: the will when the connection ends.
///
/// This type keeps the I/O, the dispatch, the keep alive and closing.
final class MQTTConnectionHandler: ChannelInboundHandler, SessionConnection, ConnectionControl {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let state: ConnectionState
    private let gate: ReadGate
    private let writer: OutboundWriter
    private let admission: ConnectAdmission
    private let inbound: InboundPublish
    private var subscriptions: SubscriptionRequests { SubscriptionRequests(state: state) }
    private var wills: WillScheduler { WillScheduler(state: state) }
    private var decoder: MQTTDecoder
    /// The start of a packet that has not fully arrived, copied out of the read buffer so an idle connection
    /// holds no read buffer.
    private var partial: ByteBuffer?
    private var context: ChannelHandlerContext?
    private var lastRead = NIODeadline.now()
    /// Whether `channelActive` counted this connection in its listener's gauge.
    private var counted = false

    init(broker: BrokerContext, facts: ConnectionFacts, eventLoop: any EventLoop) {
        let state = ConnectionState(broker: broker, facts: facts, eventLoop: eventLoop)
        self.state = state
        gate = ReadGate(state: state)
        writer = OutboundWriter(state: state)
        admission = ConnectAdmission(state: state, writer: writer)
        inbound = InboundPublish(state: state, gate: gate, writer: writer)
        decoder = MQTTDecoder(maximumPacketSize: broker.connect.maxPacketSize)
    }

    private var batch: DeliveryBatch { state.loop.batch }
    private var logger: Logger { state.logger }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        writer.context = context
        gate.context = context
        state.control = self
        state.handle.attach(self)
        state.remoteAddress = context.channel.remoteAddress?.peerDescription
        state.loop.watch(self)
    }

    /// Breaks the handler <-> context cycle: without this every closed connection stays in memory.
    func handlerRemoved(context: ChannelHandlerContext) {
        state.loop.unwatch(self)
        gate.stop()
        admission.end()
        self.context = nil
        writer.context = nil
        gate.context = nil
        state.control = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        state.loop.counters.connectionsAccepted += 1
        state.loop.counters.connectionsByListener[state.facts.listener, default: 0] += 1
        counted = true
        if state.broker.connect.connectionMessages {
            logger.notice("New connection from \(state.remoteAddress ?? "?") on port \(state.facts.listener).")
        }
        context.fireChannelActive()
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state.phase != .closed else { return }
        var buffer = unwrapInboundIn(data)
        if var partial {
            self.partial = nil
            partial.writeBuffer(&buffer)
            buffer = partial
        }
        // While authentication runs, reading does not extend the window: an exchange (5.0 AUTH) must end
        // within it however often the client answers.
        if state.phase != .authenticating { lastRead = .now() }
        writer.inRead = true
        state.loop.counters.bytesReceived += buffer.readableBytes
        process(&buffer)
    }

    /// Decodes and handles packets until the buffer holds no whole packet or the gate holds reading: then the
    /// rest waits in `partial`.
    private func process(_ buffer: inout ByteBuffer) {
        batch.publisher = state.handle
        defer { batch.publisher = nil }
        do {
            while state.phase != .closed && !gate.paused, let packet = try nextPacket(&buffer) {
                state.loop.counters.messagesReceived += 1
                try receive(packet)
                if batch.congested {
                    batch.congested = false
                    gate.congested()
                }
            }
            if buffer.readableBytes > 0 && state.phase != .closed, let context {
                var copy = context.channel.allocator.buffer(capacity: buffer.readableBytes)
                copy.writeBuffer(&buffer)
                partial = copy
            }
            if gate.throttleDue { gate.throttle() }
        } catch {
            fail(error)
        }
    }

    /// The next whole packet of `buffer`, if any. The decoder is copied out and back rather than mutated in
    /// place, so that no access to it spans the call (which would cost a dynamic exclusivity check).
    private func nextPacket(_ buffer: inout ByteBuffer) throws -> Packet? {
        var decoder = self.decoder
        defer { self.decoder = decoder }
        return try decoder.decode(buffer: &buffer)
    }

    /// Reads again once nothing holds reading: first the packets queued while the client was authenticated
    /// or a hook answered, then what was left of the last read, then from the socket.
    func readAgain() {
        guard state.phase != .closed, let context, gate.reopen() else { return }
        if gate.hasPending && state.phase == .connected {
            handlePending()
            guard !gate.paused, state.phase != .closed else { return }
        }
        if var pending = partial {
            partial = nil
            writer.inRead = true
            process(&pending)
            channelReadComplete(context: context)
        }
        guard !gate.paused, state.phase != .closed else {
            // Held by the publish rate again: read on into `partial` (autoRead stays off), so that what the
            // client has written ahead is seen (`isFarOverRate`), up to `rateLookahead` bytes.
            if gate.holds.contains(.rate), (partial?.readableBytes ?? 0) < ReadGate.rateLookahead,
               state.phase != .closed {
                context.read()
            }
            return
        }
        gate.setAutoRead(true)
        context.read()
    }

    func rateWaitEnded() {
        // The keep-alive window starts again where the broker starts reading again.
        lastRead = .now()
        if state.version == .v5, gate.isFarOverRate(partial) {
            let limits = gate.rateLimitsText
            logger.notice("Client \(state.clientName) disconnected: publishing far over \(limits) (more than \(ReadGate.farOverRate) seconds' worth written ahead).")
            state.broker.quotas.countRateDisconnect()
            disconnect(.protocolError(.messageRateTooHigh, "publishing far over \(limits)"), code: .messageRateTooHigh)
            return
        }
        readAgain()
    }

    func resumeReading() {
        gate.congestionEnded()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        writer.inRead = false
        batch.flush()
        writer.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        state.session?.setOutputBlocked(!writable)
        if writable { writer.drain() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if state.phase != .closed {
            logger.debug("Connection error from \(state.clientName): \(error)")
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            counted = false
            state.loop.counters.connectionsByListener[state.facts.listener, default: 1] -= 1
        }
        batch.flush()
        state.loop.unwatch(self)
        admission.end()
        finishSession()
        state.phase = .closed
        state.handle.release()
        context.fireChannelInactive()
    }

    // MARK: Dispatch

    private func receive(_ packet: Packet) throws {
        switch state.phase {
        case .closed:
            return
        case .awaitingConnect:
            guard case .connect(let connect) = packet else {
                throw MQTTError.protocolError("first packet must be CONNECT")
            }
            admission.connect(connect)
        case .authenticating:
            if case .auth(let auth) = packet {
                try admission.auth(auth)
            } else {
                gate.enqueue(packet)
            }
        case .connected:
            if gate.awaitingHook {
                gate.enqueue(packet)
            } else {
                try handleConnected(packet)
            }
        }
    }

    private func handleConnected(_ packet: Packet) throws {
        guard let session = state.session else { return }
        switch packet {
        case .publish(let publish):
            try handlePublish(publish)
        case .ack(let ack):
            let kind: Session.Acknowledgement
            switch ack.type {
            case .puback: kind = .puback
            case .pubcomp: kind = .pubcomp
            case .pubrec: kind = ack.reasonCode.isFailure ? .pubrecFailure : .pubrec
            case .pubrel:
                inbound.release(ack.packetID, batch: routingBatch)
                return
            default:
                throw MQTTError.protocolError("unexpected \(ack.type)")
            }
            switch session.acknowledge(ack.packetID, kind) {
            case .completed:
                writer.drain()
            case .released:
                writer.send(.ack(AckPacket(type: .pubrel, packetID: ack.packetID)))
            case .unknown:
                // As Mosquitto: PUBREL still answers a PUBREC; other acknowledgements are ignored.
                if kind == .pubrec { writer.send(.ack(AckPacket(type: .pubrel, packetID: ack.packetID))) }
            case .mismatch:
                throw MQTTError.protocolError("\(ack.type) for packet identifier \(ack.packetID), which is not in that state or of that QoS")
            }
        case .subscribe(let subscribe):
            writer.send(subscriptions.subscribe(subscribe, session: session, batch: batch))
            if !writer.inRead { batch.flush() }
        case .unsubscribe(let unsubscribe):
            writer.send(subscriptions.unsubscribe(unsubscribe, session: session))
        case .pingreq:
            writer.send(.pingresp)
        case .disconnect(let disconnect):
            if state.version == .v5 {
                if let expiry = disconnect.properties.sessionExpiryInterval {
                    if state.sessionExpiry == 0 && expiry != 0 {
                        throw MQTTError.protocolError("session expiry changed from 0 at DISCONNECT")
                    }
                    state.sessionExpiry = expiry
                }
                if disconnect.reasonCode != .disconnectWithWillMessage { wills.cancel() }
            } else {
                wills.cancel()
            }
            state.disconnectReason = .clientDisconnected(state.version == .v5 ? disconnect.reasonCode : .success)
            close()
        case .connect:
            throw MQTTError.protocolError("second CONNECT")
        case .auth(let auth):
            try admission.auth(auth)
        case .connack, .suback, .unsuback, .pingresp:
            throw MQTTError.protocolError("\(packet.type) from a client")
        }
    }

    /// The batch that wakes subscribers of what this connection routes: the read batch during a read, none
    /// (wake at once) outside one.
    private var routingBatch: DeliveryBatch? { writer.inRead ? batch : nil }

    private func handlePublish(_ publish: PublishPacket) throws {
        guard let decided = try inbound.receive(publish, batch: routingBatch) else { return }
        // A publish hook answers later: the later packets of this client wait, so its messages keep their
        // order.
        gate.hookStarted()
        let bound = NIOLoopBound(self, eventLoop: state.eventLoop)
        decided.whenComplete { result in
            bound.value.hookAnswered(publish, result)
        }
    }

    private func hookAnswered(_ publish: PublishPacket, _ result: Result<PublishDecision, any Error>) {
        guard state.phase == .connected else { return }
        gate.hookAnswered()
        let decision = (try? result.get()) ?? .refuse(.implementationSpecificError)
        let wasInRead = writer.inRead
        writer.inRead = true
        inbound.finish(publish, decision, batch: batch)
        handlePending()
        writer.inRead = wasInRead
        if !wasInRead, let context { channelReadComplete(context: context) }
        guard !gate.awaitingHook, state.phase == .connected else { return }
        if !gate.paused {
            gate.setAutoRead(true)
            context?.read()
        } else if gate.holds.isEmpty {
            readAgain()  // the queue had held reading (`backlog`)
        }
    }

    /// Handles the packets that waited (for authentication, or for a publish hook), in order, until one of
    /// them has to wait for a publish hook again or a hold stops them.
    private func handlePending() {
        do {
            while state.phase == .connected, let packet = gate.nextPending() {
                try handleConnected(packet)
            }
        } catch {
            fail(error)
        }
        if gate.throttleDue { gate.throttle() }
    }

    /// CONNACK went out: keep alive, what the session kept, then the packets that waited.
    func admitted() {
        guard state.phase == .connected else { return }
        lastRead = .now()
        state.loop.watch(self)  // the client's window from now (or none)
        if let session = state.session { writer.resume(session) }
        writer.flushIfOutsideRead()
        // Packets that arrived while authentication ran (their answers are flushed when that ended outside a
        // read).
        handlePending()
        writer.flushIfOutsideRead()
        // The queue may have held reading (`backlog`): go on with what was left of the last read.
        if gate.paused && gate.holds.isEmpty { readAgain() }
    }

    func drainSession() {
        writer.drain()
    }

    func revalidate() {
        admission.revalidate()
    }

    // MARK: Closing

    /// Another connection took this client id: 5.0 clients are told why.
    func closeForTakeover() {
        guard state.phase != .closed else { return }
        disconnect(.takenOver, code: .sessionTakenOver)
    }

    /// Ends the connection: a connected 5.0 client is told why with DISCONNECT `code`.
    private func disconnect(_ reason: DisconnectReason, code: ReasonCode) {
        state.disconnectReason = reason
        if state.version == .v5 && state.phase == .connected {
            writer.send(.disconnect(DisconnectPacket(reasonCode: code)))
        }
        close()
    }

    private func fail(_ error: any Error) {
        guard state.phase != .closed else { return }
        let code: ReasonCode
        let message: String
        switch error {
        case let error as MQTTError:
            code = error.reasonCode
            message = error.description
            if case .unsupportedProtocolVersion = error, state.phase == .awaitingConnect {
                logger.notice("Client from \(state.remoteAddress ?? "?") refused: \(error).")
                state.version = .v3_1_1
                writer.send(.connack(ConnAckPacket(code: ConnectReturnCode.unacceptableProtocolVersion.rawValue)))
                close()
                return
            }
        case let violation as ProtocolViolation:
            code = violation.code
            message = violation.message
        default:
            code = .unspecifiedError
            message = "\(error)"
        }
        logger.notice("Client \(state.clientName) disconnected: \(message).")
        disconnect(.protocolError(code, message), code: code)
    }

    func close() {
        guard state.phase != .closed else { return }
        state.loop.unwatch(self)
        admission.end()
        finishSession()
        state.phase = .closed
        // What this connection routed must reach its subscribers even though no read-complete follows.
        batch.flush()
        writer.flush()
        context?.close(promise: nil)
    }

    /// Ends this connection's part in its session: publishes the will unless the client disconnected
    /// normally, and detaches. Runs before the socket closes when the broker closes it, so a client that
    /// reconnects after seeing the close finds the session already detached.
    private func finishSession() {
        guard state.phase == .connected, let session = state.session else { return }
        state.phase = .closed
        let delay = wills.delay
        let willPending = wills.will != nil
        let reason = state.disconnectReason
        state.notify(state.broker.hooks.disconnect, "disconnect", {
            DisconnectEvent(client: $0, reason: reason, willPending: willPending)
        }) { try $0.disconnected($1, on: $2) }
        if delay == 0 { wills.publishNow() }
        state.broker.router.disconnect(session, handle: state.handle, expiry: state.sessionExpiry)
        if delay > 0 { wills.schedule(for: session) }
        if let client = state.client { state.broker.access.forget(client: client) }
        admission.end()
    }

    // MARK: Keep alive

    /// When the client's silence exceeds its keep-alive window; nil when it has none or the connection closed.
    /// Time spent held back by its publish rate does not count (the broker is not reading then): while that
    /// lasts, the answer is a second from `now`, to be asked again.
    func keepAliveDeadline(now: NIODeadline) -> NIODeadline? {
        guard let window = state.keepAliveWindow, state.phase != .closed else { return nil }
        if gate.holds.contains(.rate) { return now + .seconds(1) }
        return lastRead + window
    }

    /// The keep-alive window changed (CONNECT set the client's, CONNACK ended the pre-CONNECT grace period):
    /// the connection's place on the loop's wheel moves with it.
    func keepAliveChanged() {
        guard context != nil else { return }
        state.loop.watch(self)
    }

    /// Closes a connection that stayed silent too long (its will is published).
    func keepAliveTimedOut() {
        guard state.phase != .closed else { return }
        logger.notice("Client \(state.clientName) has exceeded timeout, disconnecting.")
        disconnect(.keepAliveTimeout, code: .keepAliveTimeout)
    }
}

@available(*, unavailable)
extension MQTTConnectionHandler: Sendable {}
