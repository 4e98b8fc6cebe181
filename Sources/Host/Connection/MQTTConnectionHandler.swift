import Foundation
import Logging
import MQTT
import NIOCore
import PluginAPI

/// One client connection: decodes packets, runs the protocol state machine, and writes what its session has
/// for it. Lives on its channel's event loop.
final class MQTTConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingConnect
        case authenticating
        case connected
        case closed
    }

    private let broker: BrokerContext
    private let facts: ConnectionFacts
    private var decoder: MQTTDecoder
    /// The start of a packet that has not fully arrived, copied out of the read buffer so an idle connection
    /// holds no read buffer.
    private var partial: ByteBuffer?
    /// True while reading is held: a congested subscriber asked this publisher to wait (`congestionHold`), or
    /// it is over its publish rate (`rateHold`).
    private var readingPaused = false
    private var congestionHold = false
    private var rateHold = false
    private var pauseTimer: Scheduled<Void>?
    /// `max_publish_rate` / `max_publish_bytes_rate`: this client's allowance; nil when neither is configured.
    private var publishAllowance: PublishAllowance?
    /// Set when a PUBLISH left the client in debt: reading stops after that packet until the debt is paid.
    private var throttleDue = false
    private var throttleLogged = false
    private var rateTimer: Scheduled<Void>?
    /// The `max_connections_per_user` slot this connection holds.
    private var userSlot: (user: String, clientID: String)?
    private var state = State.awaitingConnect
    private var context: ChannelHandlerContext!
    private var handle: ConnectionHandle!
    private var loopContext: LoopContext!
    private var batch: DeliveryBatch { loopContext.batch }
    private var logger: Logger

    private var version = ProtocolVersion.v3_1_1
    private var session: Session?
    private var client: ClientInfo?
    private var will: Will?
    private var sessionExpiry: UInt32?
    private var keepAlive: Int64 = 0
    private var lastRead = NIODeadline.now()
    /// How long the connection may stay silent (1.5 times the keep alive; a grace period before CONNECT);
    /// nil for none.
    private var keepAliveWindow: TimeAmount?
    /// Packets that arrived while authentication was pending.
    private var pending: [Packet] = []
    private var needsFlush = false
    private var inRead = false
    private var topicAliases: [UInt16: String] = [:]
    /// Topic aliases this connection uses towards the client (`max_topic_alias_broker`), first come first
    /// served: the first `outgoingAliasLimit` topics sent get one, for as long as the connection lives.
    private var outgoingAliases: [String: UInt16] = [:]
    private var outgoingAliasLimit = 0
    private var remoteAddress: String?
    /// Kept to check the client again after a reload (secret: never logged).
    private var credentials: Credentials?
    /// True while publish hooks decide about a message: later packets wait in `pending`, in order.
    private var awaitingHook = false
    /// Why the connection ends, for the disconnect hooks (set where the broker decides to close).
    private var disconnectReason = DisconnectReason.connectionLost
    /// Whether `channelActive` counted this connection in its listener's gauge.
    private var counted = false
    /// Enhanced authentication (MQTT 5.0 AUTH): the CONNECT's method, the exchange running, if any, and the
    /// CONNECT waiting for it.
    private var authMethod: String?
    private var exchange: AuthExchange?
    private var connectAwaitingExchange: (connect: ConnectPacket, clientID: String, assigned: Bool,
                                          serverKeepAlive: UInt16?)?

    init(broker: BrokerContext, facts: ConnectionFacts) {
        self.broker = broker
        self.facts = facts
        self.logger = broker.logger
        self.decoder = MQTTDecoder(maximumPacketSize: broker.connect.maxPacketSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.handle = ConnectionHandle(eventLoop: context.eventLoop, handler: self)
        self.loopContext = broker.loops.context(for: context.eventLoop)
        remoteAddress = context.channel.remoteAddress?.peerDescription
        publishAllowance = broker.quotas.makePublishAllowance()
        // A client gets as long as a keep alive of 60 s would allow to send CONNECT.
        keepAliveWindow = .seconds(90)
        loopContext.watch(self)
    }

    /// Breaks the handler <-> context cycle: without this every closed connection stays in memory.
    func handlerRemoved(context: ChannelHandlerContext) {
        loopContext.unwatch(self)
        pauseTimer?.cancel()
        pauseTimer = nil
        rateTimer?.cancel()
        rateTimer = nil
        releaseUserSlot()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        loopContext.counters.connectionsAccepted += 1
        loopContext.counters.connectionsByListener[facts.listener, default: 0] += 1
        counted = true
        if broker.connect.connectionMessages {
            logger.notice("New connection from \(remoteAddress ?? "?") on port \(facts.listener).")
        }
        context.fireChannelActive()
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state != .closed else { return }
        var buffer = unwrapInboundIn(data)
        if var partial {
            self.partial = nil
            partial.writeBuffer(&buffer)
            buffer = partial
        }
        lastRead = .now()
        inRead = true
        loopContext.counters.bytesReceived += buffer.readableBytes
        process(&buffer)
    }

    /// Decodes and handles packets until the buffer holds no whole packet, or a subscriber this connection
    /// publishes to is congested: then the rest waits (reading pauses) until that subscriber drains.
    private func process(_ buffer: inout ByteBuffer) {
        batch.publisher = handle
        defer { batch.publisher = nil }
        do {
            while state != .closed && !readingPaused, let packet = try nextPacket(&buffer) {
                loopContext.counters.messagesReceived += 1
                try receive(packet)
                if batch.congested {
                    batch.congested = false
                    pauseReading()
                }
            }
            if buffer.readableBytes > 0 && state != .closed {
                var copy = context.channel.allocator.buffer(capacity: buffer.readableBytes)
                copy.writeBuffer(&buffer)
                partial = copy
            }
            if throttleDue { throttle() }
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

    // MARK: Flow control

    /// Stops reading from this client: a subscriber it publishes to has a backlog. Resumed when that backlog
    /// drains, or after at most `pauseLimit` (so two clients publishing to each other cannot stall forever).
    private func pauseReading() {
        guard !congestionHold else { return }
        congestionHold = true
        holdReading()
        pauseTimer = context.eventLoop.scheduleTask(in: Self.pauseLimit) { [weak self] in self?.resumeReading() }
    }

    static let pauseLimit = TimeAmount.milliseconds(50)

    private func holdReading() {
        guard !readingPaused else { return }
        readingPaused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
    }

    /// The congested subscriber drained (or the pause limit passed): reads again unless the publish rate
    /// still holds the client.
    func resumeReading() {
        guard congestionHold else { return }
        congestionHold = false
        pauseTimer?.cancel()
        pauseTimer = nil
        readAgain()
    }

    /// Reads again once nothing holds reading: first the packets queued while the client was authenticated
    /// or a hook answered, then what was left of the last read, then from the socket.
    private func readAgain() {
        guard readingPaused, !congestionHold, !rateHold, state != .closed, let context else { return }
        readingPaused = false
        if !pending.isEmpty && state == .connected && !awaitingHook {
            handlePending()
            guard !readingPaused, state != .closed else { return }
        }
        if var pending = partial {
            partial = nil
            inRead = true
            process(&pending)
            channelReadComplete(context: context)
        }
        guard !readingPaused, state != .closed else {
            // Held by the publish rate again: read on into `partial` (autoRead stays off), so that what the
            // client has written ahead is seen (`farOverRate`), up to `rateLookahead` bytes.
            if rateHold, (partial?.readableBytes ?? 0) < Self.rateLookahead, state != .closed { context.read() }
            return
        }
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        context.read()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        batch.flush()
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        session?.setOutputBlocked(!writable)
        if writable { drainSession() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if state != .closed {
            logger.debug("Connection error from \(clientName): \(error)")
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            counted = false
            loopContext.counters.connectionsByListener[facts.listener, default: 1] -= 1
        }
        batch.flush()
        loopContext.unwatch(self)
        endExchange()
        finishSession()
        state = .closed
        handle.release()
        context.fireChannelInactive()
    }

    /// Ends this connection's part in its session: publishes the will unless the client disconnected
    /// normally, and detaches. Runs before the socket closes when the broker closes it, so a client that
    /// reconnects after seeing the close finds the session already detached.
    private func finishSession() {
        guard state == .connected, let session else { return }
        state = .closed
        let delay = willDelay()
        if !broker.hooks.disconnect.isEmpty, let client {
            let event = DisconnectEvent(client: client, reason: disconnectReason, willPending: will != nil)
            broker.hooks.notify(broker.hooks.disconnect, event: "disconnect", on: context.eventLoop) {
                try $0.disconnected(event, on: self.context.eventLoop)
            }
        }
        if let will, delay == 0 {
            self.will = nil
            publishWill(will)
        }
        broker.router.disconnect(session, handle: handle, expiry: sessionExpiry)
        if let will, delay > 0 {
            // MQTT 5.0 will delay: published when the delay (capped by the session expiry) has passed, unless
            // a new connection took the session meanwhile.
            self.will = nil
            // nil: another connection has the session already (a takeover): no will, as for a reconnect.
            let since = session.detachedSince()
            let loop = context.eventLoop
            let publish = { [broker, client, logger] in
                guard let since, session.detachedSince() == since else {
                    logger.debug("Will of \(session.clientID) cancelled: the client came back within its delay.")
                    return
                }
                Self.publishWill(will, client: client, broker: broker, loop: loop)
            }
            context.eventLoop.scheduleTask(in: .seconds(Int64(delay))) { publish() }
        }
        if let client { broker.access.forget(client: client) }
        releaseUserSlot()
    }

    private func releaseUserSlot() {
        guard let slot = userSlot else { return }
        userSlot = nil
        broker.quotas.userConnections?.release(user: slot.user, clientID: slot.clientID)
    }

    // MARK: Publish rate

    /// Charges one PUBLISH (`size`: topic plus payload bytes) to the client's allowance; in debt, the packets
    /// after this one wait (`throttle`).
    private func chargePublish(size: Int) {
        if publishAllowance!.take(size: size, now: .now()) {
            throttleDue = true
            holdReading()
        }
    }

    /// A 5.0 client that has more than this many seconds' worth of PUBLISH packets already written and waiting
    /// (`rateLookahead` at most are looked at) is disconnected with 0x96.
    static let farOverRate = 10
    /// How far ahead of what it handles the broker reads from a client held by its publish rate.
    static let rateLookahead = 64 * 1024

    /// What the client's publish rate settings say, for logs.
    private var rateLimitsText: String {
        let limits = broker.quotas.settings
        return [limits.maxPublishRate > 0 ? "max_publish_rate \(limits.maxPublishRate)" : nil,
                limits.maxPublishBytesRate > 0 ? "max_publish_bytes_rate \(limits.maxPublishBytesRate)" : nil]
            .compactMap { $0 }.joined(separator: ", ")
    }

    /// A PUBLISH left the client in debt: reading stops until the debt is paid back, so TCP slows the client
    /// down; then the next packets are handled, each as its allowance permits.
    private func throttle() {
        throttleDue = false
        guard state == .connected, publishAllowance != nil else { return }
        // The next packet waits at least a little, so that reading again never recurses into this.
        let wait = max(publishAllowance!.debt(now: .now()), .milliseconds(1))
        if !throttleLogged {
            throttleLogged = true
            broker.quotas.count(.maxPublishRate)
            logger.notice("Client \(clientName) publishes faster than \(rateLimitsText) per second: reading from it is slowed down.")
        }
        rateHold = true
        holdReading()
        rateTimer?.cancel()
        rateTimer = context.eventLoop.scheduleTask(in: wait) { [weak self] in
            guard let self, self.state == .connected else { return }
            self.rateTimer = nil
            self.rateHold = false
            // The keep-alive window starts again where the broker starts reading again.
            self.lastRead = .now()
            if self.version == .v5, self.isFarOverRate() {
                self.logger.notice("Client \(self.clientName) disconnected: publishing far over \(self.rateLimitsText) (more than \(Self.farOverRate) seconds' worth written ahead).")
                self.broker.quotas.countRateDisconnect()
                self.disconnectReason = .protocolError(.messageRateTooHigh, "publishing far over \(self.rateLimitsText)")
                self.send(.disconnect(DisconnectPacket(reasonCode: .messageRateTooHigh)))
                self.close()
                return
            }
            self.readAgain()
        }
    }

    /// Whether the PUBLISH packets waiting in `partial` (already received, not yet handled) are more than
    /// `farOverRate` seconds' worth of the client's rate, in packets or in bytes (whole packets).
    private func isFarOverRate() -> Bool {
        guard let waiting = partial else { return false }
        let limits = broker.quotas.settings
        let messages = limits.maxPublishRate > 0 ? limits.maxPublishRate * Self.farOverRate : Int.max
        let bytes = limits.maxPublishBytesRate > 0 ? limits.maxPublishBytesRate * Self.farOverRate : Int.max
        var index = waiting.readerIndex
        var count = 0
        var total = 0
        while index < waiting.writerIndex, let first = waiting.getInteger(at: index, as: UInt8.self) {
            // Fixed header: type and flags, then the remaining length (at most 4 bytes).
            var length = 0
            var cursor = index + 1
            var complete = false
            for shift in stride(from: 0, to: 28, by: 7) {
                guard let byte = waiting.getInteger(at: cursor, as: UInt8.self) else { break }
                length |= Int(byte & 0x7F) << shift
                cursor += 1
                if byte & 0x80 == 0 { complete = true; break }
            }
            guard complete else { break }
            if first >> 4 == 3 {
                count += 1
                total += cursor - index + length
                if count > messages || total > bytes { return true }
            }
            index = cursor + length
        }
        return false
    }

    /// After a reload: authenticates the client again with the credentials it connected with, and closes
    /// the connection if they are no longer accepted (as Mosquitto does); reloads its authorization rules.
    func revalidate() {
        guard state == .connected, let client else { return }
        let credentials = self.credentials ?? Credentials(username: client.username, password: nil)
        let access = broker.access
        let loop = context.eventLoop
        // An enhanced authentication method needs the client to run again (it may re-authenticate itself):
        // only its authorization rules are reloaded.
        (authMethod != nil ? loop.makeSucceededFuture(Decision.allow)
                           : access.authenticate(client: client, credentials: credentials, on: loop))
            .flatMap { decision -> EventLoopFuture<Decision> in
                guard decision.isAllow else { return loop.makeSucceededFuture(decision) }
                return access.prepare(client: client, on: loop).map { decision }
            }
            .whenComplete { result in
                guard self.state == .connected else { return }
                let decision = try? result.get()
                if decision?.isAllow == true { return }
                if decision == nil || decision == .deny(.serverUnavailable) {
                    // The check itself failed (a database that did not answer in time): that says nothing
                    // about the credentials, so the client stays.
                    self.logger.warning("Client \(client.clientID) could not be checked again after a reload; it stays connected.")
                    return
                }
                self.logger.notice("Client \(client.clientID) disconnected: its credentials are no longer accepted after a reload.")
                self.disconnectReason = .notAuthorized
                if self.version == .v5 {
                    self.send(.disconnect(DisconnectPacket(reasonCode: .notAuthorized)))
                }
                self.close()
            }
    }

    private var clientName: String { client?.clientID ?? remoteAddress ?? "unknown" }

    // MARK: Packets

    private func receive(_ packet: Packet) throws {
        switch state {
        case .closed:
            return
        case .authenticating:
            if case .auth(let auth) = packet {
                try handleAuth(auth)
            } else {
                pending.append(packet)
            }
            return
        case .connected where awaitingHook:
            pending.append(packet)
            return
        case .awaitingConnect:
            guard case .connect(let connect) = packet else {
                throw MQTTError.protocolError("first packet must be CONNECT")
            }
            handleConnect(connect)
        case .connected:
            try handleConnected(packet)
        }
    }

    private func handleConnected(_ packet: Packet) throws {
        guard let session else { return }
        switch packet {
        case .publish(let publish):
            try handlePublish(publish, session: session)
        case .ack(let ack):
            switch ack.type {
            case .puback, .pubcomp:
                if session.complete(ack.packetID) { drainSession() }
            case .pubrec:
                if ack.reasonCode.isFailure {
                    if session.complete(ack.packetID) { drainSession() }
                } else {
                    _ = session.received(ack.packetID)
                    send(.ack(AckPacket(type: .pubrel, packetID: ack.packetID)))
                }
            case .pubrel:
                if let message = session.releaseIncoming(ack.packetID) {
                    route(message)
                }
                send(.ack(AckPacket(type: .pubcomp, packetID: ack.packetID)))
            default:
                throw MQTTError.protocolError("unexpected \(ack.type)")
            }
        case .subscribe(let subscribe):
            handleSubscribe(subscribe, session: session)
        case .unsubscribe(let unsubscribe):
            var codes: [ReasonCode] = []
            for filter in unsubscribe.filters {
                if let removed = session.removeSubscription(filter) {
                    broker.router.index.remove(session, removed)
                    codes.append(.success)
                } else {
                    codes.append(.noSubscriptionExisted)
                }
            }
            send(.unsuback(UnsubAckPacket(packetID: unsubscribe.packetID, reasonCodes: codes)))
            if !broker.hooks.unsubscribe.isEmpty, let client {
                let event = UnsubscribeEvent(client: client, filters: Array(zip(unsubscribe.filters, codes))
                    .map { (filter: $0.0, reasonCode: $0.1) })
                broker.hooks.notify(broker.hooks.unsubscribe, event: "unsubscribe", on: context.eventLoop) {
                    try $0.unsubscribed(event, on: self.context.eventLoop)
                }
            }
        case .pingreq:
            send(.pingresp)
        case .disconnect(let disconnect):
            if version == .v5 {
                if let expiry = disconnect.properties.sessionExpiryInterval {
                    if sessionExpiry == 0 && expiry != 0 {
                        throw MQTTError.protocolError("session expiry changed from 0 at DISCONNECT")
                    }
                    sessionExpiry = expiry
                }
                if disconnect.reasonCode != .disconnectWithWillMessage { will = nil }
            } else {
                will = nil
            }
            disconnectReason = .clientDisconnected(version == .v5 ? disconnect.reasonCode : .success)
            close()
        case .connect:
            throw MQTTError.protocolError("second CONNECT")
        case .auth(let auth):
            try handleAuth(auth)
        case .connack, .suback, .unsuback, .pingresp:
            throw MQTTError.protocolError("\(packet.type) from a client")
        }
    }

    // MARK: CONNECT

    private func handleConnect(_ connect: ConnectPacket) {
        version = connect.protocolVersion
        if let rate = broker.quotas.connectionRate, let address = context.channel.remoteAddress?.ipAddress,
           case .refused(let firstTime) = rate.admit(address) {
            broker.quotas.count(.maxConnectionRate)
            if firstTime {
                logger.notice("Connections from \(address) are refused: more than max_connection_rate \(rate.count) CONNECTs in \(rate.window.nanoseconds / 1_000_000_000) s (logged once while it lasts).")
            }
            refuseConnect(.connectionRateExceeded, why: "max_connection_rate exceeded", log: false)
            return
        }
        let settings = broker.connect
        // use_identity_as_username / use_subject_as_username: the certificate names the user, and the CONNECT's
        // user name and password are ignored (as Mosquitto does).
        var username = connect.username
        var password = connect.password
        if facts.usernameFromCertificate != nil {
            guard let identity = facts.certificateUsername else {
                refuseConnect(.badUserNameOrPassword, why: "the client certificate gives no user name")
                return
            }
            username = identity
            password = nil
        }
        var clientID = connect.clientID
        if settings.useUsernameAsClientID, let username { clientID = username }
        var assigned = false
        if clientID.isEmpty {
            let refuse: Bool
            switch version {
            case .v3_1: refuse = true
            case .v3_1_1: refuse = !connect.cleanStart || !settings.allowZeroLengthClientID
            case .v5: refuse = !settings.allowZeroLengthClientID
            }
            if refuse {
                refuseConnect(.clientIdentifierNotValid, why: "empty client id")
                return
            }
            clientID = settings.autoIDPrefix + UUID().uuidString
            assigned = true
        }
        var serverKeepAlive: UInt16?
        // A 5.0 client is told the keep alive to use; a 3.x client keeps its own (Mosquitto 2.0 accepts it).
        if version == .v5 && (Int(connect.keepAlive) > settings.maxKeepalive
                              || (connect.keepAlive == 0 && settings.maxKeepalive < 65535)) {
            serverKeepAlive = UInt16(settings.maxKeepalive)
        }
        if let will = connect.will, settings.messageSizeLimit > 0, will.payload.readableBytes > settings.messageSizeLimit {
            refuseConnect(.packetTooLarge, why: "will payload larger than message_size_limit")
            return
        }
        var enhanced: (method: String, plugin: any EnhancedAuthenticationPlugin)?
        if version == .v5, let method = connect.properties.authenticationMethod {
            guard let plugin = broker.access.enhancedAuthenticator(for: method) else {
                refuseConnect(.badAuthenticationMethod, why: "no plugin offers the authentication method \(method)")
                return
            }
            enhanced = (method, plugin)
        } else if version == .v5, connect.properties.authData != nil {
            refuseConnect(.protocolError, why: "authentication data without an authentication method")
            return
        }
        keepAlive = Int64(serverKeepAlive ?? connect.keepAlive)
        let info = ClientInfo(clientID: clientID, username: username, protocolVersion: version,
                              listener: facts.listener, remoteAddress: remoteAddress,
                              certificateSubject: facts.certificateSubject)
        client = info
        state = .authenticating
        if let enhanced {
            // The CONNECT's keep alive bounds each wait for the client during the exchange.
            if keepAlive > 0 { keepAliveWindow = .milliseconds(keepAlive * 1500) }
            authMethod = enhanced.method
            connectAwaitingExchange = (connect, clientID, assigned, serverKeepAlive)
            startExchange(enhanced.method, plugin: enhanced.plugin, reauthentication: false,
                          data: connect.properties.authData)
            return
        }
        let credentials = Credentials(username: username, password: password?.detached(),
                                      properties: connect.properties)
        if !broker.access.authenticators.isEmpty { self.credentials = credentials }
        let loop = context.eventLoop
        let verified = facts.usernameFromCertificate != nil
        admit(verified ? loop.makeSucceededFuture(Decision.allow)
                       : broker.access.authenticate(client: info, credentials: credentials, on: loop),
              connect, clientID: clientID, assigned: assigned, serverKeepAlive: serverKeepAlive)
    }

    /// Once authentication decided: prepares the authorization plugins for the client, then accepts it (or
    /// refuses it).
    private func admit(_ decided: EventLoopFuture<Decision>, _ connect: ConnectPacket, clientID: String,
                       assigned: Bool, serverKeepAlive: UInt16?, authResponse: ByteBuffer? = nil) {
        guard let info = client else { return }
        let access = broker.access
        let loop = context.eventLoop
        decided
            .flatMap { decision -> EventLoopFuture<Decision> in
                guard decision.isAllow else { return loop.makeSucceededFuture(decision) }
                return access.prepare(client: info, on: loop).map { decision }
            }
            .whenComplete { result in
                guard self.state == .authenticating else {
                    // Closed while the plugins worked: let them drop what they prepared.
                    access.forget(client: info)
                    return
                }
                switch result {
                case .success(let decision) where decision.isAllow:
                    self.accept(connect, clientID: clientID, assigned: assigned, serverKeepAlive: serverKeepAlive,
                                authResponse: authResponse)
                case .success(let decision) where decision.isDeny:
                    self.refuseConnect(decision.denyReason ?? .notAuthorized, why: "not authorised")
                default:
                    self.refuseConnect(.notAuthorized, why: "not authorised")
                }
            }
    }

    private func accept(_ connect: ConnectPacket, clientID: String, assigned: Bool, serverKeepAlive: UInt16?,
                        authResponse: ByteBuffer? = nil) {
        let settings = broker.connect
        let expiry: UInt32?
        if version == .v5 {
            expiry = connect.properties.sessionExpiryInterval ?? 0
        } else {
            expiry = connect.cleanStart ? 0 : nil
        }
        sessionExpiry = expiry
        if version == .v5 {
            outgoingAliasLimit = min(Int(connect.properties.topicAliasMaximum ?? 0), settings.maxTopicAliasBroker)
        }
        if let users = broker.quotas.userConnections, let username = client?.username {
            guard users.acquire(user: username, clientID: clientID) else {
                broker.quotas.count(.maxConnectionsPerUser)
                if let client { broker.access.forget(client: client) }
                refuseConnect(.quotaExceeded, why: "max_connections_per_user (\(users.maximum)) reached for user \(username)")
                return
            }
            userSlot = (username, clientID)
        }
        if var kept = connect.will {
            kept.payload = kept.payload.detached()
            will = kept
        } else {
            will = nil
        }
        let result = broker.router.connect(
            clientID: clientID, cleanStart: connect.cleanStart, version: version, expiry: expiry, handle: handle,
            receiveMaximum: Int(connect.properties.receiveMaximum ?? UInt16.max),
            maximumPacketSize: Int(connect.properties.maximumPacketSize ?? 0))
        session = result.session
        if let replaced = result.replaced {
            logger.notice("Client \(clientID) already connected, closing old connection.")
            replaced.takeOver()
        }
        state = .connected
        if !broker.hooks.connect.isEmpty, let client {
            let event = ConnectEvent(client: client, cleanStart: connect.cleanStart,
                                     sessionPresent: result.sessionPresent, keepAlive: Int(keepAlive),
                                     properties: connect.properties)
            broker.hooks.notify(broker.hooks.connect, event: "connect", on: context.eventLoop) {
                try $0.connected(event, on: self.context.eventLoop)
            }
        }
        var properties = Properties()
        if version == .v5 {
            // Mosquitto's order, so the bytes match.
            if settings.maxTopicAlias > 0 { properties.append(.topicAliasMaximum(UInt16(settings.maxTopicAlias))) }
            if let serverKeepAlive { properties.append(.serverKeepAlive(serverKeepAlive)) }
            if assigned { properties.append(.assignedClientIdentifier(clientID)) }
            let router = broker.router.settings
            if !router.retainAvailable { properties.append(.retainAvailable(0)) }
            if settings.maxPacketSize > 0 { properties.append(.maximumPacketSize(UInt32(settings.maxPacketSize))) }
            if settings.maxInflightMessages > 0 && settings.maxInflightMessages < 65535 {
                properties.append(.receiveMaximum(UInt16(settings.maxInflightMessages)))
            }
            if router.maximumQoS != .exactlyOnce { properties.append(.maximumQoS(router.maximumQoS.rawValue)) }
            if let authMethod {
                for item in Properties.authentication(method: authMethod, data: authResponse).items {
                    properties.append(item)
                }
            }
        }
        send(.connack(ConnAckPacket(sessionPresent: result.sessionPresent, code: 0, properties: properties)))
        if keepAlive > 0 {
            keepAliveWindow = .milliseconds(keepAlive * 1500)
        } else {
            keepAliveWindow = nil
            loopContext.unwatch(self)
        }
        // Resend what was in flight, then what queued while the client was away.
        loopContext.outgoing.removeAll(keepingCapacity: true)
        result.session.resendInflight(into: &loopContext.outgoing)
        writeOutgoing(result.session)
        drainSession()
        flushIfOutsideRead()
        // Packets that arrived while authentication ran (their answers are flushed when that ended outside a
        // read).
        handlePending()
        flushIfOutsideRead()
    }

    /// Handles the packets that waited (for authentication, or for a publish hook), in order, until one of
    /// them has to wait for a publish hook again.
    private func handlePending() {
        do {
            // Held reading (a congested subscriber, the publish rate) holds these too; `readAgain` goes on.
            while state == .connected && !awaitingHook && !readingPaused && !pending.isEmpty {
                try handleConnected(pending.removeFirst())
            }
        } catch {
            fail(error)
        }
        if throttleDue { throttle() }
    }

    // MARK: AUTH (MQTT 5.0 enhanced authentication)

    /// AUTH from the client: an answer to a challenge (0x18) or the start of a re-authentication (0x19).
    /// Protocol errors: AUTH when the CONNECT named no method, another method, an answer nobody asked for,
    /// any other reason code. Before CONNACK they are answered with CONNACK 0x82, afterwards DISCONNECT 0x82.
    private func handleAuth(_ auth: AuthPacket) throws {
        let connecting = state == .authenticating
        let problem: String
        if let method = authMethod {
            if auth.properties.authenticationMethod != method {
                problem = "AUTH with another authentication method than CONNECT's \(method)"
            } else if auth.reasonCode == .continueAuthentication, let exchange, exchange.awaitingClient {
                exchange.clientAnswered(auth.properties.authData, client: clientName)
                return
            } else if auth.reasonCode == .reAuthenticate && !connecting && exchange == nil {
                guard let plugin = broker.access.enhancedAuthenticator(for: method) else { return }
                startExchange(method, plugin: plugin, reauthentication: true, data: auth.properties.authData)
                return
            } else {
                problem = "unexpected AUTH with reason code \(auth.reasonCode)"
            }
        } else {
            problem = "AUTH without an authentication method in CONNECT"
        }
        if connecting {
            refuseConnect(.protocolError, why: problem)
        } else {
            throw ProtocolViolation(code: .protocolError, message: problem)
        }
    }

    private func startExchange(_ method: String, plugin: any EnhancedAuthenticationPlugin, reauthentication: Bool,
                               data: ByteBuffer?) {
        guard let client else { return }
        let exchange = AuthExchange(method: method, plugin: plugin, reauthentication: reauthentication,
                                    access: broker.access, loop: context.eventLoop) { [weak self] outcome in
            self?.exchangeStepped(outcome)
        }
        self.exchange = exchange
        exchange.start(client: client, data: data)
    }

    private func exchangeStepped(_ outcome: AuthExchange.Outcome) {
        guard state != .closed, let exchange else { return }
        let method = exchange.method
        if case .challenge(let data) = outcome {
            send(.auth(AuthPacket(reasonCode: .continueAuthentication,
                                  properties: .authentication(method: method, data: data))))
            flushIfOutsideRead()
            return
        }
        self.exchange = nil
        if !exchange.reauthentication {
            guard let waiting = connectAwaitingExchange else { return }
            connectAwaitingExchange = nil
            switch outcome {
            case .success(let data, let username):
                if let username { client?.username = username }
                admit(context.eventLoop.makeSucceededFuture(.allow), waiting.connect, clientID: waiting.clientID,
                      assigned: waiting.assigned, serverKeepAlive: waiting.serverKeepAlive, authResponse: data)
            case .failure(let code, let why):
                refuseConnect(AuthExchange.connackCode(code), why: "authentication with \(method) failed: \(why)")
            case .challenge:
                break
            }
            return
        }
        var failure: (code: ReasonCode, why: String)?
        switch outcome {
        case .success(let data, let username):
            if let username, username != client?.username {
                failure = (.notAuthorized, "re-authentication as another user (\(username))")
            } else {
                logger.debug("Client \(clientName) re-authenticated with \(method).")
                send(.auth(AuthPacket(reasonCode: .success, properties: .authentication(method: method, data: data))))
                flushIfOutsideRead()
            }
        case .failure(let code, let why):
            failure = (code, why)
        case .challenge:
            break
        }
        if let failure {
            logger.notice("Client \(clientName) disconnected: re-authentication with \(method) failed: \(failure.why).")
            disconnectReason = .notAuthorized
            send(.disconnect(DisconnectPacket(reasonCode: AuthExchange.disconnectCode(failure.code))))
            close()
        }
    }

    /// The connection ends: a running exchange ends with it.
    private func endExchange() {
        exchange?.cancel()
        exchange = nil
        connectAwaitingExchange = nil
    }

    private func refuseConnect(_ reason: ReasonCode, why: String, log: Bool = true) {
        if log { logger.notice("Client \(clientName) from \(remoteAddress ?? "?") refused: \(why).") }
        let code = version == .v5 ? reason.rawValue : ConnectReturnCode(reason).rawValue
        send(.connack(ConnAckPacket(sessionPresent: false, code: code)))
        close()
    }

    // MARK: PUBLISH

    private func handlePublish(_ publish: PublishPacket, session: Session) throws {
        var topic = publish.topic
        if version == .v5 {
            if let alias = publish.properties.topicAlias {
                guard Int(alias) <= broker.connect.maxTopicAlias else {
                    throw ProtocolViolation(code: .topicAliasInvalid, message: "topic alias \(alias) above maximum")
                }
                if topic.isEmpty {
                    guard let known = topicAliases[alias] else {
                        throw MQTTError.protocolError("unknown topic alias \(alias)")
                    }
                    topic = known
                } else {
                    topicAliases[alias] = topic
                }
            }
            if publish.properties.subscriptionIdentifier != nil {
                throw MQTTError.protocolError("subscription identifier in PUBLISH from a client")
            }
        }
        let router = broker.router.settings
        if publish.qos > router.maximumQoS {
            throw ProtocolViolation(code: .qosNotSupported, message: "QoS \(publish.qos.rawValue) not supported")
        }
        if publish.retain && !router.retainAvailable {
            throw ProtocolViolation(code: .retainNotSupported, message: "retain not supported")
        }
        var reason = ReasonCode.success
        if broker.connect.messageSizeLimit > 0 && publish.payload.readableBytes > broker.connect.messageSizeLimit {
            logger.notice("Dropped too large PUBLISH from \(clientName) (\(publish.payload.readableBytes) bytes).")
            reason = .packetTooLarge
        } else if topic.utf8.first == UInt8(ascii: "$") && Self.isReservedForBroker(topic) {
            logger.notice("Denied PUBLISH from \(clientName) to \(topic): reserved for the broker.")
            reason = .notAuthorized
        } else if let client, !broker.access.authorize(client: client, access: .write, topic: topic,
                                                        qos: publish.qos, retain: publish.retain) {
            logger.notice("Denied PUBLISH from \(clientName) to \(topic).")
            reason = .notAuthorized
        }
        loopContext.counters.publishReceived += 1
        if publishAllowance != nil { chargePublish(size: topic.utf8.count + publish.payload.readableBytes) }
        if reason == .success, !broker.hooks.publish.isEmpty, let client {
            let original = HookMessage(topic: topic, payload: publish.payload, qos: publish.qos,
                                       retain: publish.retain, properties: version == .v5 ? publish.properties : [])
            switch broker.hooks.runPublish(original, from: client, on: context.eventLoop) {
            case .now(let outcome):
                finishPublish(publish, session: session, message: hooked(outcome, publish: publish, topic: topic))
            case .later(let future):
                // Later packets of this client wait, so its messages keep their order.
                awaitingHook = true
                context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
                future.whenComplete { result in
                    guard self.state == .connected, let session = self.session else { return }
                    self.awaitingHook = false
                    let outcome: Hooks.PublishOutcome
                    switch result {
                    case .success(let value): outcome = value
                    case .failure: outcome = .reject(.implementationSpecificError)
                    }
                    let wasInRead = self.inRead
                    self.inRead = true
                    self.finishPublish(publish, session: session,
                                       message: self.hooked(outcome, publish: publish, topic: topic))
                    self.handlePending()
                    self.inRead = wasInRead
                    if !wasInRead, let context = self.context { self.channelReadComplete(context: context) }
                    if !self.awaitingHook && self.state == .connected && !self.readingPaused {
                        self.context?.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                        self.context?.read()
                    }
                }
            }
            return
        }
        finishPublish(publish, session: session,
                      message: reason == .success ? .route(makeMessage(publish, topic: topic)) : .refuse(reason))
    }

    /// The message to route after the publish hooks, or the reason it is refused. A rewritten topic is
    /// checked and authorized again.
    private func hooked(_ outcome: Hooks.PublishOutcome, publish: PublishPacket, topic: String)
        -> PublishDecision {
        switch outcome {
        case .reject(let code):
            logger.debug("A hook rejected PUBLISH from \(clientName) to \(topic).")
            return .refuse(code)
        case .accept(nil):
            return .route(makeMessage(publish, topic: topic))
        case .accept(let rewritten?):
            if rewritten.topic != topic {
                guard Topic.isValidName(rewritten.topic) else {
                    logger.notice("A hook rewrote PUBLISH from \(clientName) to the invalid topic '\(rewritten.topic)'; dropped.")
                    return .refuse(.topicNameInvalid)
                }
                if Self.isReservedForBroker(rewritten.topic) || !(client.map {
                    broker.access.authorize(client: $0, access: .write, topic: rewritten.topic, qos: rewritten.qos,
                                            retain: rewritten.retain)
                } ?? true) {
                    logger.notice("Denied PUBLISH from \(clientName) to \(rewritten.topic) (rewritten by a hook from \(topic)).")
                    return .refuse(.notAuthorized)
                }
            }
            let qos = min(rewritten.qos, broker.router.settings.maximumQoS)
            return .route(Message(topic: rewritten.topic, payload: rewritten.payload, qos: qos,
                                    retain: rewritten.retain && broker.router.settings.retainAvailable,
                                    properties: version == .v5 ? rewritten.properties.allowed(in: .publish) : [],
                                    origin: client?.clientID))
        }
    }

    /// Routes (or, for QoS 2, stores) an accepted message and acknowledges the PUBLISH.
    private func finishPublish(_ publish: PublishPacket, session: Session, message: PublishDecision) {
        let v5 = version == .v5
        var reason = ReasonCode.success
        var accepted: Message?
        switch message {
        case .route(let value): accepted = value
        case .refuse(let code): reason = code
        }
        switch publish.qos {
        case .atMostOnce:
            if let accepted { route(accepted) }
        case .atLeastOnce:
            if let accepted {
                let routed = route(accepted)
                if routed.delivered == 0 && v5 {
                    // Matching subscribers that all refused it for max_queued_bytes_total: 0x97.
                    reason = routed.overQuota > 0 ? .quotaExceeded : .noMatchingSubscribers
                }
            }
            send(.ack(AckPacket(type: .puback, packetID: publish.packetID!, reasonCode: v5 ? reason : .success)))
        case .exactlyOnce:
            if let accepted {
                if v5 && broker.router.wouldBeRefusedForQuota(accepted) {
                    broker.router.settings.session.total?.countRefusal()
                    reason = .quotaExceeded
                } else {
                    _ = session.storeIncoming(publish.packetID!, accepted)
                }
            }
            send(.ack(AckPacket(type: .pubrec, packetID: publish.packetID!, reasonCode: v5 ? reason : .success)))
        }
    }

    /// `$SYS/...` is written by the broker only, and `$share/...` is a subscription prefix, not a topic
    /// (Mosquitto refuses both before any ACL is asked).
    static func isReservedForBroker(_ topic: String) -> Bool {
        topic.hasPrefix("$SYS") || topic.hasPrefix("$share")
    }

    private func makeMessage(_ publish: PublishPacket, topic: String) -> Message {
        Message(topic: topic, payload: publish.payload, qos: publish.qos, retain: publish.retain,
                properties: version == .v5 ? publish.properties : [], origin: client?.clientID)
    }

    @discardableResult
    private func route(_ message: Message) -> Router.Routed {
        broker.router.route(message, batch: inRead ? batch : nil)
    }

    /// Seconds to wait before publishing the will: the 5.0 will delay interval, capped by the session expiry
    /// (the will goes when the session ends, if that comes first); 0 for 3.x.
    private func willDelay() -> UInt32 {
        guard version == .v5, let will, let delay = will.properties.willDelayInterval, delay > 0 else { return 0 }
        return min(delay, sessionExpiry ?? UInt32.max)
    }

    private func publishWill(_ will: Will) {
        Self.publishWill(will, client: client, broker: broker, loop: context.eventLoop)
    }

    private static func publishWill(_ will: Will, client: ClientInfo?, broker: BrokerContext, loop: any EventLoop) {
        guard let client else { return }
        guard broker.access.authorize(client: client, access: .write, topic: will.topic, qos: will.qos,
                                      retain: will.retain) else { return }
        let message = Message(topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain,
                              properties: will.properties, origin: client.clientID)
        if !broker.hooks.will.isEmpty {
            let event = WillEvent(client: client, message: HookMessage(message))
            broker.hooks.notify(broker.hooks.will, event: "will", on: loop) { try $0.willPublished(event, on: loop) }
        }
        broker.router.publish(message, batch: nil)
    }

    // MARK: SUBSCRIBE

    private func handleSubscribe(_ subscribe: SubscribePacket, session: Session) {
        let router = broker.router
        var codes: [ReasonCode] = []
        var retainedToSend: [(Subscription, [Message])] = []
        let identifier = subscribe.properties.subscriptionIdentifier
        for request in subscribe.subscriptions {
            var filter = request.filter
            var group: String?
            switch Topic.parseShared(request.filter) {
            case .none:
                codes.append(version == .v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            case .some(.some(let shared)):
                if version == .v5 && request.options.noLocal {
                    codes.append(.protocolError)
                    continue
                }
                group = shared.group
                filter = shared.filter
            case .some(.none):
                break
            }
            var options = request.options
            options.qos = min(options.qos, router.settings.maximumQoS)
            if let client, !broker.access.authorize(client: client, access: .subscribe, topic: request.filter,
                                                     qos: options.qos, retain: false) {
                codes.append(version == .v5 ? .notAuthorized : .unspecifiedError)
                continue
            }
            let subscription = Subscription(key: request.filter, filter: filter, group: group, options: options,
                                            identifier: identifier)
            let existed = session.addSubscription(subscription)
            router.index.add(session, subscription)
            codes.append(ReasonCode(options.qos.rawValue))
            if group == nil && (options.retainHandling == 0 || (options.retainHandling == 1 && !existed)) {
                let messages = router.retained.matching(filter)
                if !messages.isEmpty { retainedToSend.append((subscription, messages)) }
            }
        }
        send(.suback(SubAckPacket(packetID: subscribe.packetID, reasonCodes: codes)))
        if !broker.hooks.subscribe.isEmpty, let client {
            let results = zip(subscribe.subscriptions, codes).map {
                SubscriptionResult(filter: $0.0.filter, options: $0.0.options, reasonCode: $0.1)
            }
            let event = SubscribeEvent(client: client, subscriptions: results, subscriptionIdentifier: identifier)
            broker.hooks.notify(broker.hooks.subscribe, event: "subscribe", on: context.eventLoop) {
                try $0.subscribed(event, on: self.context.eventLoop)
            }
        }
        for (subscription, messages) in retainedToSend {
            for message in messages {
                router.deliver(message, to: Target(session: session, subscription: subscription), retain: true,
                               batch: batch)
            }
        }
        if !inRead { batch.flush() }
    }

    // MARK: Writing

    private func send(_ packet: Packet) {
        var buffer = context.channel.allocator.buffer(capacity: 16)
        packet.write(version: version, to: &buffer)
        loopContext.counters.messagesSent += 1
        loopContext.counters.bytesSent += buffer.readableBytes
        context.write(wrapOutboundOut(buffer), promise: nil)
        needsFlush = true
    }

    private func flushIfOutsideRead() {
        if !inRead && needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    /// Writes what the session has ready, while the channel accepts more.
    func drainSession() {
        guard state == .connected, let session else { return }
        var wrote = false
        var permit: ((Delivery) -> Bool)?
        if !broker.access.authorizers.isEmpty, let client {
            let access = broker.access
            permit = { delivery in
                access.authorize(client: client, access: .read, topic: delivery.message.topic,
                                 qos: delivery.qos, retain: delivery.retain)
            }
        }
        while context.channel.isWritable {
            loopContext.outgoing.removeAll(keepingCapacity: true)
            let resumable = session.takeReady(limit: 256, into: &loopContext.outgoing, permit: permit)
            for publisher in resumable { publisher.resumeReading() }
            if loopContext.outgoing.isEmpty { break }
            writeOutgoing(session)
            wrote = true
        }
        if wrote {
            if inRead {
                needsFlush = true
            } else {
                needsFlush = false
                context.flush()
            }
        }
    }

    /// Encodes `outgoing` into one buffer and writes it.
    private func writeOutgoing(_ session: Session) {
        guard !loopContext.outgoing.isEmpty else { return }
        var buffer = context.channel.allocator.buffer(capacity: 256)
        let maximum = session.maximumPacketSize
        for item in loopContext.outgoing {
            switch item {
            case .pubrel(let id):
                Packet.ack(AckPacket(type: .pubrel, packetID: id)).write(version: version, to: &buffer)
                loopContext.counters.messagesSent += 1
            case .publish(let delivery, let packetID, let dup):
                let message = delivery.message
                var properties = Properties()
                if version == .v5 {
                    properties = message.properties
                    if let expiresAt = message.expiresAt {
                        let left = max(0, (expiresAt - .now()).nanoseconds / 1_000_000_000)
                        properties.items.removeAll { if case .messageExpiryInterval = $0 { return true }; return false }
                        properties.append(.messageExpiryInterval(UInt32(clamping: left)))
                    }
                    for id in delivery.subscriptionIDs { properties.append(.subscriptionIdentifier(id)) }
                }
                var topic = message.topic
                var newAlias: UInt16?
                if outgoingAliasLimit > 0 {
                    if let alias = outgoingAliases[topic] {
                        properties.append(.topicAlias(alias))
                        topic = ""
                    } else if outgoingAliases.count < outgoingAliasLimit {
                        // Recorded once the packet is really sent (it may be too large for the client).
                        newAlias = UInt16(outgoingAliases.count + 1)
                        properties.append(.topicAlias(newAlias!))
                    }
                }
                let publish = PublishPacket(topic: topic, payload: message.payload, qos: delivery.qos,
                                            retain: delivery.retain, dup: dup, packetID: packetID,
                                            properties: properties)
                if maximum > 0 && publish.encodedSize(version: version) > maximum {
                    if let packetID { _ = session.complete(packetID) }
                    session.countDropped()
                    loopContext.counters.publishDropped += 1
                    continue
                }
                publish.write(version: version, to: &buffer)
                if let newAlias { outgoingAliases[message.topic] = newAlias }
                loopContext.counters.messagesSent += 1
                loopContext.counters.publishSent += 1
                if !broker.hooks.deliver.isEmpty, let client {
                    let event = DeliverEvent(client: client, message: HookMessage(
                        topic: message.topic, payload: message.payload, qos: delivery.qos, retain: delivery.retain,
                        properties: properties), duplicate: dup)
                    broker.hooks.notify(broker.hooks.deliver, event: "deliver", on: context.eventLoop) {
                        try $0.delivered(event, on: self.context.eventLoop)
                    }
                }
            }
        }
        loopContext.outgoing.removeAll(keepingCapacity: true)
        if buffer.readableBytes > 0 {
            loopContext.counters.bytesSent += buffer.readableBytes
            context.write(wrapOutboundOut(buffer), promise: nil)
            needsFlush = true
        }
    }

    // MARK: Closing

    /// Another connection took this client id: 5.0 clients are told why.
    func closeForTakeover() {
        guard state != .closed else { return }
        if version == .v5 && state == .connected {
            send(.disconnect(DisconnectPacket(reasonCode: .sessionTakenOver)))
        }
        disconnectReason = .takenOver
        close()
    }

    private func fail(_ error: any Error) {
        guard state != .closed else { return }
        let code: ReasonCode
        let message: String
        switch error {
        case let error as MQTTError:
            code = error.reasonCode
            message = error.description
            if case .unsupportedProtocolVersion = error, state == .awaitingConnect {
                logger.notice("Client from \(remoteAddress ?? "?") refused: \(error).")
                version = .v3_1_1
                send(.connack(ConnAckPacket(code: ConnectReturnCode.unacceptableProtocolVersion.rawValue)))
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
        logger.notice("Client \(clientName) disconnected: \(message).")
        disconnectReason = .protocolError(code, message)
        if version == .v5 && state == .connected {
            send(.disconnect(DisconnectPacket(reasonCode: code)))
        }
        close()
    }

    private func close() {
        guard state != .closed else { return }
        loopContext.unwatch(self)
        endExchange()
        finishSession()
        state = .closed
        // What this connection routed must reach its subscribers even though no read-complete follows.
        batch.flush()
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.close(promise: nil)
    }

    // MARK: Keep alive

    /// Whether the client has been silent longer than its keep-alive window allows. Time spent held back by
    /// its publish rate does not count: the broker is not reading then.
    func keepAliveExpired(now: NIODeadline) -> Bool {
        guard let keepAliveWindow, state != .closed, !rateHold else { return false }
        return now - lastRead >= keepAliveWindow
    }

    /// Closes a connection that stayed silent too long (its will is published).
    func keepAliveTimedOut() {
        guard state != .closed else { return }
        logger.notice("Client \(clientName) has exceeded timeout, disconnecting.")
        disconnectReason = .keepAliveTimeout
        if version == .v5 && state == .connected {
            send(.disconnect(DisconnectPacket(reasonCode: .keepAliveTimeout)))
        }
        close()
    }
}

/// What happens to a client's PUBLISH once checks and hooks are done.
private enum PublishDecision {
    case route(Message)
    case refuse(ReasonCode)
}

/// A protocol rule broken with a specific 5.0 reason code.
struct ProtocolViolation: Error {
    var code: ReasonCode
    var message: String
}

@available(*, unavailable)
extension MQTTConnectionHandler: Sendable {}
