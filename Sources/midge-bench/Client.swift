import MQTT
import NIOCore
import NIOPosix

enum ClientRole: String, Sendable {
    case publisher, subscriber, ratePublisher = "rate-publisher", idle, storm
}

/// What every client of a run shares.
struct ClientSettings: Sendable {
    var version: ProtocolVersion
    var keepAlive: UInt16
    var username: String?
    var password: String?
    var qos: QoS
    var payloadSize: Int
    /// PUBLISH packets per write at QoS 0.
    var batch: Int
    /// QoS 1/2 window of unacknowledged PUBLISH packets.
    var inflight: Int
    /// Messages per second of one rate publisher.
    var rate: Double
    /// Stamp the send time into the payload and record latency on receipt.
    var timestamps: Bool
    /// Seconds to wait for CONNACK / SUBACK.
    var setupTimeout: Double
    /// Messages each publisher sends before it stops; 0: no limit (the run's duration decides).
    var quota: Int = 0
}

/// Events the run sends down a client's pipeline.
enum BenchEvent: Sendable {
    case start
    case disconnect
}

/// One MQTT client of the load: publisher, subscriber, rate publisher, idle holder or connect-storm cycle.
/// Reads with the hot-path scanner, answers acknowledgements in the same read batch and flushes once per
/// read batch (`channelReadComplete`).
final class ClientHandler: ChannelInboundHandler, HotPacketSink {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let role: ClientRole
    let settings: ClientSettings
    let clientID: String
    let topic: String
    let filter: String?
    let stats: LoopStats
    let problems: Problems
    /// Succeeds after CONNACK (and SUBACK for subscribers); fails on refusal, close or time-out.
    let ready: EventLoopPromise<Void>
    /// connect-storm: when the connect cycle started, for the CONNECT-to-CONNACK latency.
    var cycleStart: UInt64 = 0

    private var context: ChannelHandlerContext?
    private var decoder: MQTTDecoder
    private let v5: Bool
    private var cumulation: ByteBuffer?
    private var pendingOut: ByteBuffer
    private var isReady = false
    private var closing = false
    private var started = false
    private var setupTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?

    // Publishers.
    private var template: PublishTemplate?
    private var batchBuffer: ByteBuffer?
    private var inflight = 0
    private var window: Int
    private var nextPacketID: UInt16 = 0
    private var pumpScheduled = false
    private var inPump = false
    private var needsRefill = false
    // Rate publishers.
    private var nextSendAt: UInt64 = 0
    private var interval: UInt64 = 0
    /// Messages this publisher may still send (Int.max without a quota).
    private var remaining = Int.max

    init(role: ClientRole, settings: ClientSettings, clientID: String, topic: String, filter: String?,
         stats: LoopStats, problems: Problems, ready: EventLoopPromise<Void>) {
        self.role = role
        self.settings = settings
        self.clientID = clientID
        self.topic = topic
        self.filter = filter
        self.stats = stats
        self.problems = problems
        self.ready = ready
        self.decoder = MQTTDecoder(version: settings.version)
        self.v5 = settings.version == .v5
        self.pendingOut = ByteBuffer()
        self.window = max(1, min(settings.inflight, 65_535))
        if settings.quota > 0 { remaining = settings.quota }
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let busy = role == .publisher || role == .subscriber || role == .ratePublisher
        pendingOut = context.channel.allocator.buffer(capacity: busy ? 4096 : 64)
        if role == .publisher || role == .ratePublisher {
            let template = PublishTemplate(topic: topic, payloadSize: settings.payloadSize, qos: settings.qos,
                                           version: settings.version, allocator: context.channel.allocator)
            self.template = template
            if role == .publisher && settings.qos == .atMostOnce {
                batchBuffer = template.batch(settings.batch, allocator: context.channel.allocator)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        let connect = ConnectPacket(protocolVersion: settings.version, cleanStart: true,
                                    keepAlive: settings.keepAlive, clientID: clientID,
                                    username: settings.username,
                                    password: settings.password.map { ByteBuffer(string: $0) })
        var buffer = context.channel.allocator.buffer(capacity: 64)
        Packet.connect(connect).write(version: settings.version, to: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        let timeout = TimeAmount.nanoseconds(Int64(settings.setupTimeout * 1e9))
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        setupTimer = context.eventLoop.scheduleTask(in: timeout) {
            let handler = bound.value
            guard !handler.isReady, !handler.closing else { return }
            let what = handler.filter != nil ? "CONNACK/SUBACK" : "CONNACK"
            handler.fail("no \(what) within \(handler.settings.setupTimeout) s")
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        setupTimer?.cancel()
        closeTimer?.cancel()
        if !isReady {
            isReady = true
            ready.fail(WireError("connection closed by the broker before it was set up"))
        } else if !closing {
            problems.note("\(role.rawValue) connection closed by the broker during the run")
        }
        closing = true
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !closing { problems.note("\(role.rawValue): \(error)") }
        fail("\(error)")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        do {
            if var partial = self.cumulation {
                self.cumulation = nil
                guard try completePartialPacket(&partial, from: &buffer) else {
                    self.cumulation = partial
                    return
                }
                try process(&partial)
            }
            try process(&buffer)
            if buffer.readableBytes > 0 {
                self.cumulation = savePartialPacket(&buffer, allocator: context.channel.allocator)
            }
        } catch {
            problems.note("\(role.rawValue): bad packet from the broker: \(error)")
            fail("\(error)")
            return
        }
        if needsRefill {
            needsRefill = false
            refill()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushPending()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && started && role == .publisher && settings.qos == .atMostOnce
            && !pumpScheduled && !inPump {
            pump()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? BenchEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch event {
        case .start:
            guard !started, isReady else { return }
            started = true
            switch role {
            case .publisher:
                if settings.qos == .atMostOnce { pump() } else { refill(); flushPending() }
            case .ratePublisher:
                interval = UInt64(1e9 / max(settings.rate, 0.001))
                nextSendAt = nowNanos()
                tick()
            default:
                break
            }
        case .disconnect:
            guard !closing else { return }
            closing = true
            var buffer = context.channel.allocator.buffer(capacity: 4)
            Packet.disconnect(DisconnectPacket()).write(version: settings.version, to: &buffer)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            context.close(promise: nil)
        }
    }

    // MARK: Reading

    private func process(_ buffer: inout ByteBuffer) throws {
        while buffer.readableBytes > 0 {
            let v5 = self.v5
            let (consumed, stop) = try buffer.withUnsafeReadableBytes { raw in
                try scanHotPackets(raw, v5: v5, sink: self)
            }
            buffer.moveReaderIndex(forwardBy: consumed)
            switch stop {
            case .needMore:
                return
            case .control(let length):
                var frame = buffer.readSlice(length: length)!
                guard let packet = try decoder.decode(buffer: &frame) else {
                    throw WireError("undecodable packet")
                }
                handleControl(packet)
            }
        }
    }

    func onPublish(qos: UInt8, packetID: UInt16, payload: UnsafeRawBufferPointer) {
        stats.delivered &+= 1
        if settings.timestamps && payload.count >= 8 {
            let stamp = UInt64(bigEndian: payload.loadUnaligned(as: UInt64.self))
            stats.recordLatency(stampedAt: stamp, now: nowNanos())
        }
        if qos == 1 {
            pendingOut.writeAck(type: 4, packetID: packetID)
        } else if qos == 2 {
            pendingOut.writeAck(type: 5, packetID: packetID)
        }
    }

    func onAck(type: UInt8, packetID: UInt16) {
        switch type {
        case 4, 7:  // PUBACK, PUBCOMP
            inflight -= 1
            stats.acked &+= 1
            needsRefill = true
        case 5:  // PUBREC
            pendingOut.writeAck(type: 6, packetID: packetID)
        case 6:  // PUBREL
            pendingOut.writeAck(type: 7, packetID: packetID)
        default:
            break
        }
    }

    func onPing(type: UInt8) {
        if type == 12 { pendingOut.writeInteger(UInt16(0xD000)) }
    }

    private func handleControl(_ packet: Packet) {
        switch packet {
        case .connack(let connack):
            guard connack.code == 0 else {
                let reason = v5 ? ReasonCode(connack.code).description : "return code \(connack.code)"
                fail("CONNACK refused: \(reason)")
                return
            }
            if let maximum = connack.properties.receiveMaximum { window = min(window, Int(maximum)) }
            switch role {
            case .subscriber:
                let subscribe = SubscribePacket(packetID: 1, subscriptions: [
                    TopicSubscription(filter: filter ?? topic, options: SubscriptionOptions(qos: settings.qos)),
                ])
                Packet.subscribe(subscribe).write(version: settings.version, to: &pendingOut)
            case .storm:
                if cycleStart > 0 { stats.recordLatency(stampedAt: cycleStart, now: nowNanos()) }
                markReady()
                stats.sent &+= 1
                closing = true
                Packet.disconnect(DisconnectPacket()).write(version: settings.version, to: &pendingOut)
                flushPending()
                // The broker closes after DISCONNECT (so the TIME-WAIT is its); close ourselves if it does not.
                if let context {
                    let channel = context.channel
                    closeTimer = context.eventLoop.scheduleTask(in: .milliseconds(200)) { channel.close(promise: nil) }
                }
            default:
                markReady()
            }
        case .suback(let suback):
            if let refused = suback.reasonCodes.first(where: { $0.rawValue >= 0x80 }) {
                fail("SUBACK refused \(filter ?? topic): \(refused)")
            } else {
                markReady()
            }
        case .disconnect(let disconnect):
            problems.note("\(role.rawValue): broker sent DISCONNECT \(disconnect.reasonCode)")
        case .publish, .ack, .pingreq, .pingresp:
            break  // handled by the scanner
        default:
            problems.note("\(role.rawValue): unexpected \(packet.type) from the broker")
        }
    }

    private func markReady() {
        guard !isReady else { return }
        isReady = true
        setupTimer?.cancel()
        setupTimer = nil
        ready.succeed(())
    }

    private func fail(_ message: String) {
        if !isReady {
            isReady = true
            ready.fail(WireError(message))
        }
        guard !closing else { return }
        closing = true
        context?.close(promise: nil)
    }

    // MARK: Writing

    private func flushPending() {
        guard pendingOut.readableBytes > 0, let context else { return }
        context.writeAndFlush(wrapOutboundOut(pendingOut), promise: nil)
        pendingOut.clear()
    }

    @inline(__always)
    private func takePacketID() -> UInt16 {
        nextPacketID = nextPacketID == 65_535 ? 1 : nextPacketID + 1
        return nextPacketID
    }

    /// QoS 1/2: fills the window of unacknowledged PUBLISH packets (flushed at the end of the read batch).
    private func refill() {
        guard started, role == .publisher, let template, stats.running, !closing else { return }
        let qos = settings.qos
        while inflight < window && remaining > 0 {
            template.append(to: &pendingOut, packetID: takePacketID(), qos: qos)
            inflight += 1
            remaining -= 1
            stats.sent &+= 1
        }
    }

    /// QoS 0: writes pre-encoded batches while the channel is writable, then flushes once and yields the
    /// loop (so that reads and other channels go on) before writing more.
    private func pump() {
        pumpScheduled = false
        guard let context, let batchBuffer, stats.running, !closing else { return }
        inPump = true
        defer { inPump = false }
        let perBatch = settings.batch
        var writes = 0
        while context.channel.isWritable && writes < 16 && remaining > 0 {
            if remaining >= perBatch {
                context.write(wrapOutboundOut(batchBuffer), promise: nil)
                stats.sent &+= perBatch
                remaining -= perBatch
            } else if let template {
                var last = context.channel.allocator.buffer(capacity: template.bytes.readableBytes * remaining)
                for _ in 0..<remaining { last.writeImmutableBuffer(template.bytes) }
                context.write(wrapOutboundOut(last), promise: nil)
                stats.sent &+= remaining
                remaining = 0
            }
            writes += 1
        }
        context.flush()
        if context.channel.isWritable && remaining > 0 {
            pumpScheduled = true
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.pump() }
        }
    }

    /// Rate publishers: sends every message that is due, stamped with the time it is written, then sleeps
    /// until the next one is due.
    private func tick() {
        guard let context, let template, stats.running, !closing else { return }
        let now = nowNanos()
        let qos = settings.qos
        while nextSendAt <= now && remaining > 0 {
            template.append(to: &pendingOut, packetID: takePacketID(), timestamp: nowNanos(), qos: qos)
            stats.sent &+= 1
            remaining -= 1
            nextSendAt &+= interval
        }
        flushPending()
        guard remaining > 0 else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(nextSendAt)) { bound.value.tick() }
    }
}
