import MQTT
import NIOConcurrencyHelpers
import NIOCore

/// The state of one client identifier that outlives its connections: subscriptions, messages in flight and
/// the queue. Guarded by its own lock, because publishers on every event loop enqueue into it; the connection
/// that owns it at the moment drains it on that connection's event loop.
///
/// Everything that changes lives in one `State` value inside the lock's box: its methods mutate it in place
/// through the box's pointer, so the per-message path pays no dynamic exclusivity checks (which every access
/// to a class's stored `var` that spans a call would).
final class Session: Sendable {
    let clientID: String
    let limits: SessionLimits
    private let state: NIOLockedValueBox<State>

    init(clientID: String, protocolVersion: ProtocolVersion, limits: SessionLimits) {
        self.clientID = clientID
        self.limits = limits
        self.state = NIOLockedValueBox(State(protocolVersion: protocolVersion, limits: limits))
    }

    deinit {
        // What still waits here leaves the broker-wide account with the session.
        let queuedBytes = state.withLockedValue { $0.queuedBytes }
        limits.total?.remove(queuedBytes)
    }

    struct Inflight {
        var delivery: Delivery
        var qos: QoS
        /// For QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP.
        var released: Bool
    }

    /// Protocol level of the last connection (decides the encoding of queued messages).
    var protocolVersion: ProtocolVersion { state.withLockedValue { $0.protocolVersion } }
    /// Filters this session subscribes to (keys as given, shared ones with their `$share/` prefix).
    var subscriptions: [String: Subscription] { state.withLockedValue { $0.subscriptions } }
    /// Seconds the session outlives its connection; nil means forever (3.x persistent sessions).
    var expiryInterval: UInt32? { state.withLockedValue { $0.expiryInterval } }
    var disconnectedAt: NIODeadline? { state.withLockedValue { $0.disconnectedAt } }
    var dropped: Int { state.withLockedValue { $0.dropped } }

    // MARK: Connection ownership

    /// Attaches a connection; returns the connection it replaces, if any.
    /// A will waiting for its delay is cancelled: a connection took the session back.
    func attach(_ handle: ConnectionHandle, version: ProtocolVersion, expiry: UInt32?, receiveMaximum: Int,
                maximumPacketSize: Int) -> ConnectionHandle? {
        let (old, will) = state.withLockedValue {
            let old = $0.attach(handle, version: version, expiry: expiry, receiveMaximum: receiveMaximum,
                                maximumPacketSize: maximumPacketSize)
            return (old, $0.takeWillTimer())
        }
        will?.cancel()
        return old
    }

    /// Marks the session replaced by a new one for its client id (a clean start, or a takeover of a session
    /// that ended with its connection): a will waiting for its delay is cancelled.
    func supersede() {
        let will = state.withLockedValue {
            $0.superseded = true
            return $0.takeWillTimer()
        }
        will?.cancel()
    }

    /// Keeps the timer of a will waiting for its delay, so that the will (and its payload) goes with the
    /// session's next connection instead of waiting for the timer (`attach`, `supersede`).
    func holdWill(_ timer: Scheduled<Void>) {
        let earlier = state.withLockedValue {
            let earlier = $0.takeWillTimer()
            $0.willTimer = timer
            return earlier
        }
        earlier?.cancel()
    }

    /// The will's timer fired: the session no longer holds it.
    func willFired() { _ = state.withLockedValue { $0.takeWillTimer() } }

    /// Whether a will waits for its delay.
    var holdsWill: Bool { state.withLockedValue { $0.willTimer != nil } }

    /// Whether a new session replaced this one (`supersede`).
    var isSuperseded: Bool { state.withLockedValue { $0.superseded } }

    /// Detaches `handle` if it still owns the session. Returns false if another connection took over.
    func detach(_ handle: ConnectionHandle, expiry: UInt32?) -> Bool {
        let (detached, paused) = state.withLockedValue { $0.detach(handle, expiry: expiry) }
        for publisher in paused { publisher.resumeReading() }
        return detached
    }

    var isConnected: Bool { state.withLockedValue { $0.connection != nil } }

    /// When the last connection detached, if none is attached now.
    func detachedSince() -> NIODeadline? {
        state.withLockedValue { $0.connection == nil ? $0.disconnectedAt : nil }
    }

    func owner() -> ConnectionHandle? { state.withLockedValue { $0.connection } }

    // MARK: Subscriptions

    /// Records a subscription; returns true if it already existed (for retain handling 1).
    func addSubscription(_ subscription: Subscription) -> Bool {
        state.withLockedValue { $0.subscriptions.updateValue(subscription, forKey: subscription.key) != nil }
    }

    func removeSubscription(_ key: String) -> Subscription? {
        state.withLockedValue { $0.subscriptions.removeValue(forKey: key) }
    }

    func allSubscriptions() -> [Subscription] { state.withLockedValue { Array($0.subscriptions.values) } }

    // MARK: Outgoing messages

    enum EnqueueResult {
        /// Queued; `congested`: the publisher should pause reading until this session drains.
        case queued(congested: Bool)
        /// Queued, and the owning connection must be woken to drain.
        case wake(ConnectionHandle, congested: Bool)
        /// Not queued (a limit was reached); `congested` as for `queued`.
        case dropped(reason: String, congested: Bool)
        /// Not queued, by rule rather than for a limit: QoS 0 for an offline client without
        /// `queue_qos0_messages`.
        case skipped
        /// Not queued: it would have to wait and `max_queued_bytes_total` is reached. `firstTime`: the first
        /// such refusal for this session (log it).
        case overQuota(firstTime: Bool)
    }

    /// Queues a delivery for this session (any thread).
    ///
    /// Counting follows Mosquitto: a QoS 1/2 message that fits the in-flight window of a connected client is
    /// in flight, not queued; `max_queued_messages` / `max_queued_bytes` bound what waits beyond the window
    /// (and, for an offline client, everything). QoS 0 for a connected client is sent at once, unless its
    /// socket is backed up: then at most `max_queued_messages` of them wait.
    func enqueue(_ delivery: Delivery, publisher: ConnectionHandle? = nil) -> EnqueueResult {
        state.withLockedValue { $0.enqueue(delivery, publisher: publisher) }
    }

    static let stuckAfter = TimeAmount.seconds(1)

    /// Whether a message of `qos` for this session would wait in its queue rather than go out at once; nil
    /// when it would not be queued at all (QoS 0 for an offline client without `queue_qos0_messages`).
    func wouldWait(qos: QoS) -> Bool? {
        state.withLockedValue { $0.wouldWait(qos: qos) }
    }

    /// Set by the connection when its socket stops (or starts again) taking bytes.
    func setOutputBlocked(_ blocked: Bool) {
        state.withLockedValue { $0.outputBlocked = blocked }
    }

    /// A packet ready to write, taken from the session for its connection.
    enum Outgoing {
        case publish(Delivery, packetID: UInt16?, dup: Bool)
        case pubrel(UInt16)
    }

    /// Takes what may be sent now: queued messages while the in-flight window has room, at most `limit`.
    /// Called on the owning connection's event loop.
    /// `permit`, when given, is asked for each message (the read authorization, checked at delivery as
    /// Mosquitto does); a message it refuses is dropped silently. It runs while this session's lock is held:
    /// it must not call back into this session.
    /// Returns the publishers that paused for this session and may read again.
    @discardableResult
    func takeReady(limit: Int, into out: inout [Outgoing], permit: ((Delivery) -> Bool)? = nil) -> [ConnectionHandle] {
        state.withLockedValue { $0.takeReady(limit: limit, into: &out, permit: permit) }
    }

    /// Everything in flight, to resend on a reconnect: PUBLISH with DUP, or PUBREL.
    func resendInflight(into out: inout [Outgoing]) {
        state.withLockedValue { $0.resendInflight(into: &out) }
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for a message we sent. Returns false if the id was unknown.
    func complete(_ id: UInt16) -> Bool {
        state.withLockedValue { $0.complete(id) }
    }

    /// An acknowledgement from the client for a message this session sent.
    enum Acknowledgement {
        case puback
        /// PUBREC with a success code: PUBREL follows.
        case pubrec
        /// PUBREC with a failure code: the exchange ends.
        case pubrecFailure
        case pubcomp
    }

    enum AcknowledgementResult {
        /// The message is done: its slot in the in-flight window is free.
        case completed
        /// PUBREC recorded: PUBREL goes out.
        case released
        /// No message in flight has this id (answered as Mosquitto does: ignored, or PUBREL for PUBREC).
        case unknown
        /// The acknowledgement does not fit the message's QoS or state (PUBACK for QoS 2, PUBREC or PUBCOMP
        /// for QoS 1, PUBCOMP before PUBREC): a protocol violation, as Mosquitto treats it.
        case mismatch
    }

    /// Applies an acknowledgement to the message in flight under `id`.
    func acknowledge(_ id: UInt16, _ ack: Acknowledgement) -> AcknowledgementResult {
        state.withLockedValue { $0.acknowledge(id, ack) }
    }

    var maximumPacketSize: Int { state.withLockedValue { $0.clientMaximumPacketSize } }

    // MARK: Incoming QoS 2

    /// Whether an incoming QoS 2 message under `id` may be stored with at most `limit` waiting for PUBREL:
    /// true when there is room, or `id` waits already (a resend).
    func canStoreIncoming(_ id: UInt16, limit: Int) -> Bool {
        state.withLockedValue { $0.incomingQoS2[id] != nil || $0.incomingQoS2.count < limit }
    }

    /// Stores an incoming QoS 2 message until PUBREL; returns false if the id is already waiting.
    func storeIncoming(_ id: UInt16, _ message: Message) -> Bool {
        state.withLockedValue {
            if $0.incomingQoS2[id] != nil { return false }
            $0.incomingQoS2[id] = message
            return true
        }
    }

    /// Releases an incoming QoS 2 message on PUBREL.
    func releaseIncoming(_ id: UInt16) -> Message? {
        state.withLockedValue { $0.incomingQoS2.removeValue(forKey: id) }
    }

    func countDropped() { state.withLockedValue { $0.dropped += 1 } }

    /// Messages this session holds now: queued at QoS 0 and at QoS 1/2, in flight (sent, not yet
    /// acknowledged), and received at QoS 2 but not yet released.
    var held: HeldMessages {
        state.withLockedValue {
            HeldMessages(queuedQoS0: $0.queuedQoS0, queuedQoS12: $0.queuedQoS12, inflight: $0.inflight.count,
                         incomingQoS2: $0.incomingQoS2.count)
        }
    }

    /// Removes and returns the messages that came through a shared subscription and were not acknowledged:
    /// queued, or in flight without PUBACK / PUBREC. For the router, when this session ends.
    func takeUnacknowledgedShared() -> [Delivery] {
        state.withLockedValue { $0.takeUnacknowledgedShared() }
    }
}

/// What sessions hold in memory (`Session.held`), summed by `Router.heldInMemory()`.
struct HeldMessages: Sendable, Equatable {
    var queuedQoS0 = 0
    var queuedQoS12 = 0
    var inflight = 0
    var incomingQoS2 = 0

    static func + (a: HeldMessages, b: HeldMessages) -> HeldMessages {
        HeldMessages(queuedQoS0: a.queuedQoS0 + b.queuedQoS0, queuedQoS12: a.queuedQoS12 + b.queuedQoS12,
                     inflight: a.inflight + b.inflight, incomingQoS2: a.incomingQoS2 + b.incomingQoS2)
    }
}

extension Session {
    /// What `Session` guards with its lock.
    private struct State {
        let limits: SessionLimits
        var connection: ConnectionHandle?
        var wakePending = false
        var protocolVersion: ProtocolVersion
        var subscriptions: [String: Subscription] = [:]
        var queue = CircularBuffer<Delivery>(initialCapacity: 1)
        var queuedBytes = 0
        var queuedQoS0 = 0
        var queuedQoS12 = 0
        var outputBlocked = false
        /// Publishers told to stop reading because this session's backlog passed the congestion mark; resumed
        /// when it drains below half of that (or by their own fallback timer).
        var pausedPublishers: [ObjectIdentifier: ConnectionHandle] = [:]
        var inflight: [UInt16: Inflight] = [:]
        var inflightOrder: [UInt16] = []
        var nextPacketID: UInt16 = 1
        /// Incoming QoS 2 messages received but not yet released by PUBREL (delivered on PUBREL, as Mosquitto
        /// does).
        var incomingQoS2: [UInt16: Message] = [:]
        var expiryInterval: UInt32?
        var disconnectedAt: NIODeadline?
        /// Receive maximum the client announced (5.0), capping the in-flight window.
        var clientReceiveMaximum = Int(UInt16.max)
        /// Largest packet the client accepts (5.0); 0 = no limit.
        var clientMaximumPacketSize = 0
        var dropped = 0
        /// Set when a new session replaced this one for its client id.
        var superseded = false
        /// The timer of a will waiting for its delay.
        var willTimer: Scheduled<Void>?

        mutating func takeWillTimer() -> Scheduled<Void>? {
            defer { willTimer = nil }
            return willTimer
        }
        /// Whether a refusal for `max_queued_bytes_total` was logged for this session.
        var quotaLogged = false
        /// When the connection last took messages or had one acknowledged.
        var lastProgress = NIODeadline.now()

        init(protocolVersion: ProtocolVersion, limits: SessionLimits) {
            self.protocolVersion = protocolVersion
            self.limits = limits
        }

        mutating func attach(_ handle: ConnectionHandle, version: ProtocolVersion, expiry: UInt32?,
                             receiveMaximum: Int, maximumPacketSize: Int) -> ConnectionHandle? {
            let old = connection
            connection = handle
            protocolVersion = version
            expiryInterval = expiry
            clientReceiveMaximum = receiveMaximum
            clientMaximumPacketSize = maximumPacketSize
            disconnectedAt = nil
            wakePending = false
            outputBlocked = false
            return old
        }

        mutating func detach(_ handle: ConnectionHandle, expiry: UInt32?) -> (Bool, [ConnectionHandle]) {
            guard connection === handle else { return (false, []) }
            connection = nil
            expiryInterval = expiry
            disconnectedAt = .now()
            wakePending = false
            return (true, releasablePublishers(force: true))
        }

        mutating func enqueue(_ delivery: Delivery, publisher: ConnectionHandle?) -> EnqueueResult {
            let online = connection != nil
            if delivery.qos == .atMostOnce {
                if !online && !limits.queueQoS0Offline {
                    return .skipped
                }
                if !online || outputBlocked {
                    if let refusal = overQuota(delivery) { return refusal }
                    if let reason = overLimit(waiting: queuedQoS0 + (online ? 0 : queuedQoS12), bytes: queuedBytes) {
                        dropped += 1
                        return .dropped(reason: reason, congested: pause(publisher))
                    }
                }
            } else {
                let room = online ? max(0, window - inflight.count) : 0
                if queuedQoS12 >= room, let refusal = overQuota(delivery) { return refusal }
                if queuedQoS12 >= room,
                   let reason = overLimit(waiting: queuedQoS12 - room + (online ? 0 : queuedQoS0), bytes: queuedBytes) {
                    dropped += 1
                    return .dropped(reason: reason, congested: pause(publisher))
                }
            }
            var delivery = delivery
            // A QoS 1 or 2 message gets its packet id when it is queued, as Mosquitto gives it, so that ids
            // follow the order messages arrived in even when one expires before it is sent.
            if delivery.qos != .atMostOnce { delivery.packetID = allocatePacketID() }
            queue.append(delivery)
            queuedBytes += delivery.message.size
            limits.total?.add(delivery.message.size)
            if delivery.qos == .atMostOnce { queuedQoS0 += 1 } else { queuedQoS12 += 1 }
            var congested = false
            // Also slow publishers down when the queue is long though not yet counted (a QoS 0 burst waiting
            // for the subscriber's next drain), before its socket backs up and the limit starts dropping.
            if publisher != nil, backlog >= congestionMark || queue.count / 4 >= congestionMark {
                congested = pause(publisher)
            }
            if let connection, !wakePending {
                wakePending = true
                return .wake(connection, congested: congested)
            }
            return .queued(congested: congested)
        }

        /// Asks `publisher` (not this session's own connection) to pause until this session drains.
        /// Returns whether the publisher should pause.
        private mutating func pause(_ publisher: ConnectionHandle?) -> Bool {
            guard let publisher, connection != nil, publisher !== connection else { return false }
            // A subscriber that has taken nothing for a while is stuck, not slow: slowing everyone who publishes
            // to it would let one client throttle the others. Its messages are dropped (and counted) instead.
            guard NIODeadline.now() - lastProgress < Session.stuckAfter else { return false }
            pausedPublishers[ObjectIdentifier(publisher)] = publisher
            return true
        }

        /// Messages waiting that count against `max_queued_messages` now (see `enqueue`).
        private var backlog: Int {
            guard connection != nil else { return queue.count }
            let room = max(0, window - inflight.count)
            return max(0, queuedQoS12 - room) + (outputBlocked ? queuedQoS0 : 0)
        }

        /// Half of `max_queued_messages`: a backlog this long slows the publishers feeding it down, so that the
        /// limit, where messages are dropped, is reached only when they cannot be slowed (or it is 0: no limit).
        private var congestionMark: Int {
            limits.maxQueuedMessages > 0 ? max(1, limits.maxQueuedMessages / 2) : Int.max
        }

        /// Publishers to resume once the backlog is below half the congestion mark (or the session went away).
        private mutating func releasablePublishers(force: Bool) -> [ConnectionHandle] {
            guard !pausedPublishers.isEmpty, force || backlog < congestionMark / 2 else { return [] }
            let handles = Array(pausedPublishers.values)
            pausedPublishers.removeAll()
            return handles
        }

        /// The refusal for a delivery that would wait while `max_queued_bytes_total` is reached, if so.
        private mutating func overQuota(_ delivery: Delivery) -> EnqueueResult? {
            guard let total = limits.total, total.wouldExceed(delivery.message.size) else { return nil }
            dropped += 1
            defer { quotaLogged = true }
            return .overQuota(firstTime: !quotaLogged)
        }

        func wouldWait(qos: QoS) -> Bool? {
            let online = connection != nil
            if qos == .atMostOnce {
                if !online && !limits.queueQoS0Offline { return nil }
                return !online || outputBlocked
            }
            let room = online ? max(0, window - inflight.count) : 0
            return queuedQoS12 >= room
        }

        private func overLimit(waiting: Int, bytes: Int) -> String? {
            if limits.maxQueuedMessages > 0 && waiting >= limits.maxQueuedMessages { return "max_queued_messages reached" }
            if limits.maxQueuedBytes > 0 && bytes >= limits.maxQueuedBytes { return "max_queued_bytes reached" }
            return nil
        }

        /// The in-flight window: the lower of `max_inflight_messages` and the client's receive maximum.
        private var window: Int {
            min(limits.maxInflightMessages > 0 ? limits.maxInflightMessages : Int.max, clientReceiveMaximum)
        }

        mutating func takeReady(limit: Int, into out: inout [Outgoing], permit: ((Delivery) -> Bool)?)
            -> [ConnectionHandle] {
            wakePending = false
            let window = self.window
            var taken = 0
            let queuedBefore = queuedBytes
            defer { limits.total?.remove(queuedBefore - queuedBytes) }
            while taken < limit, let next = queue.first {
                if next.qos != .atMostOnce && inflight.count >= window { break }
                queue.removeFirst()
                queuedBytes -= next.message.size
                if next.qos == .atMostOnce { queuedQoS0 -= 1 } else { queuedQoS12 -= 1 }
                if next.message.isExpired { continue }
                if let permit, !permit(next) { continue }
                taken += 1
                lastProgress = .now()
                if next.qos == .atMostOnce {
                    out.append(.publish(next, packetID: nil, dup: false))
                } else {
                    // The id given at queue time, unless a message still in flight holds it (after a wrap).
                    let id = next.packetID.flatMap { inflight[$0] == nil ? $0 : nil } ?? allocatePacketID()
                    inflight[id] = Inflight(delivery: next, qos: next.qos, released: false)
                    inflightOrder.append(id)
                    out.append(.publish(next, packetID: id, dup: false))
                }
            }
            return releasablePublishers(force: false)
        }

        func resendInflight(into out: inout [Outgoing]) {
            for id in inflightOrder {
                guard let entry = inflight[id] else { continue }
                out.append(entry.released ? .pubrel(id) : .publish(entry.delivery, packetID: id, dup: true))
            }
        }

        mutating func acknowledge(_ id: UInt16, _ ack: Acknowledgement) -> AcknowledgementResult {
            guard let entry = inflight[id] else { return .unknown }
            switch ack {
            case .puback:
                guard entry.qos == .atLeastOnce else { return .mismatch }
            case .pubrec:
                guard entry.qos == .exactlyOnce else { return .mismatch }
                inflight[id]!.released = true
                return .released
            case .pubrecFailure:
                guard entry.qos == .exactlyOnce, !entry.released else { return .mismatch }
            case .pubcomp:
                guard entry.qos == .exactlyOnce, entry.released else { return .mismatch }
            }
            _ = complete(id)
            return .completed
        }

        mutating func complete(_ id: UInt16) -> Bool {
            guard inflight.removeValue(forKey: id) != nil else { return false }
            lastProgress = .now()
            if let index = inflightOrder.firstIndex(of: id) { inflightOrder.remove(at: index) }
            return true
        }

        private mutating func allocatePacketID() -> UInt16 {
            for _ in 0..<Int(UInt16.max) {
                let id = nextPacketID
                nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
                if inflight[id] == nil { return id }
            }
            return nextPacketID
        }

        mutating func takeUnacknowledgedShared() -> [Delivery] {
            var taken: [Delivery] = []
            for id in inflightOrder {
                guard let entry = inflight[id], !entry.released, entry.delivery.shareGroup != nil else { continue }
                taken.append(entry.delivery)
                inflight[id] = nil
            }
            let remaining = inflight
            inflightOrder.removeAll { remaining[$0] == nil }
            let queuedBefore = queuedBytes
            defer { limits.total?.remove(queuedBefore - queuedBytes) }
            var kept = CircularBuffer<Delivery>(initialCapacity: queue.count)
            for delivery in queue {
                if delivery.shareGroup != nil {
                    taken.append(delivery)
                    queuedBytes -= delivery.message.size
                    if delivery.qos == .atMostOnce { queuedQoS0 -= 1 } else { queuedQoS12 -= 1 }
                } else {
                    kept.append(delivery)
                }
            }
            queue = kept
            return taken
        }
    }
}

/// Limits that bound one session's memory.
struct SessionLimits: Sendable {
    var maxInflightMessages = 20
    var maxQueuedMessages = 1000
    var maxQueuedBytes = 0
    var queueQoS0Offline = false
    /// `max_queued_bytes_total`: the broker-wide account every session's queue draws on; nil = no limit.
    var total: QueuedBytesTotal?
}

/// One subscription of one session.
struct Subscription: Sendable {
    /// The filter as the client sent it (with `$share/GROUP/` for shared ones).
    var key: String
    /// The filter matched against topics.
    var filter: String
    /// The share group, for `$share/GROUP/FILTER`.
    var group: String?
    var options: SubscriptionOptions
    var identifier: Int?
}
