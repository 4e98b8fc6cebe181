import Logging
import MQTT
import NIOConcurrencyHelpers
import NIOCore

/// Settings the router and connections follow, derived from the config.
struct RouterSettings: Sendable {
    var session = SessionLimits()
    var retainAvailable = true
    var maximumQoS: QoS = .exactlyOnce
    var upgradeOutgoingQoS = false
    /// Seconds an offline persistent 3.x session is kept; nil = forever (Mosquitto's default).
    var persistentClientExpiration: Int?
}

/// The core: sessions, the subscription index and the retained store. It knows nothing about sockets; it
/// reaches connections only through `ConnectionHandle`.
// @unchecked: `sessions`, `connected`, `connectedMaximum` are touched under `lock` only; the index and the
// retained store guard themselves.
final class Router: @unchecked Sendable {
    let index = SubscriptionIndex()
    let retained = RetainedStore()
    let settings: RouterSettings
    let logger: Logger

    private let lock = NIOLock()
    private var sessions: [String: Session] = [:]
    /// Clients connected now, and the most at once (under `lock`).
    private var connected = 0
    private var connectedMaximum = 0
    /// Counters the statistics report: messages dropped for queue limits, sessions expired.
    struct Counters {
        var dropped = 0
        var expired = 0
    }
    let counters = NIOLockedValueBox(Counters())

    init(settings: RouterSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    struct ConnectResult {
        var session: Session
        var sessionPresent: Bool
        /// A connection that held this client id and must now be closed (takeover).
        var replaced: ConnectionHandle?
    }

    /// Attaches a connection to the session of `clientID`, resuming it unless `cleanStart`.
    func connect(clientID: String, cleanStart: Bool, version: ProtocolVersion, expiry: UInt32?,
                 handle: ConnectionHandle, receiveMaximum: Int, maximumPacketSize: Int) -> ConnectResult {
        var discarded: Session?
        let result: ConnectResult = lock.withLock {
            if let existing = sessions[clientID], !cleanStart, !isExpired(existing) {
                let old = existing.attach(handle, version: version, expiry: expiry, receiveMaximum: receiveMaximum,
                                          maximumPacketSize: maximumPacketSize)
                if old == nil { countConnected(+1) }
                return ConnectResult(session: existing, sessionPresent: true, replaced: old)
            }
            let old = sessions[clientID]
            discarded = old
            let session = Session(clientID: clientID, protocolVersion: version, limits: settings.session)
            _ = session.attach(handle, version: version, expiry: expiry, receiveMaximum: receiveMaximum,
                               maximumPacketSize: maximumPacketSize)
            sessions[clientID] = session
            let replaced = old?.owner()
            if replaced == nil { countConnected(+1) }
            return ConnectResult(session: session, sessionPresent: false, replaced: replaced)
        }
        if let discarded { endShared(discarded) }
        return result
    }

    /// Detaches a connection from its session; ends the session when its expiry is 0.
    func disconnect(_ session: Session, handle: ConnectionHandle, expiry: UInt32?) {
        guard session.detach(handle, expiry: expiry) else { return }  // taken over meanwhile
        lock.withLock { countConnected(-1) }
        if expiry == 0 { end(session) }
    }

    /// Call under `lock`.
    private func countConnected(_ change: Int) {
        connected += change
        connectedMaximum = max(connectedMaximum, connected)
    }

    /// Clients connected now, the most at once, and offline sessions kept.
    func clientCounts() -> (connected: Int, maximum: Int, disconnected: Int) {
        lock.withLock { (connected, connectedMaximum, max(0, sessions.count - connected)) }
    }

    private func end(_ session: Session) {
        let removed: Bool = lock.withLock {
            guard sessions[session.clientID] === session else { return false }
            sessions[session.clientID] = nil
            return true
        }
        if removed { endShared(session) }
    }

    /// A session ended: it leaves its subscriptions, and the messages it got through shared subscriptions
    /// and never acknowledged go to another member of the group (MQTT 5.0 4.8.2 recommends it; Mosquitto
    /// drops them).
    private func endShared(_ session: Session) {
        removeSubscriptions(of: session)
        let unacknowledged = session.takeUnacknowledgedShared()
        guard !unacknowledged.isEmpty else { return }
        var moved = 0
        for delivery in unacknowledged {
            guard let group = delivery.shareGroup, let (member, subscription) = group.pick(), member !== session
            else { continue }
            let target = Target(session: member, subscription: subscription, shareGroup: group)
            if deliver(delivery.message, to: target, retain: false, batch: nil) { moved += 1 }
        }
        if moved > 0 {
            logger.info("Session \(session.clientID) ended with \(moved) unacknowledged shared-subscription message(s); sent to other members.")
        }
    }

    private func removeSubscriptions(of session: Session) {
        for subscription in session.allSubscriptions() {
            index.remove(session, subscription)
        }
    }

    private func isExpired(_ session: Session, now: NIODeadline = .now()) -> Bool {
        guard let since = session.disconnectedAt else { return false }
        let limit: Int64
        if let expiry = session.expiryInterval {
            if expiry == UInt32.max { return false }
            limit = Int64(expiry)
        } else if let expiration = settings.persistentClientExpiration {
            limit = Int64(expiration)
        } else {
            return false
        }
        return now - since >= .seconds(limit)
    }

    /// Ends offline sessions whose expiry has passed. Returns how many ended.
    @discardableResult
    func sweepExpiredSessions() -> Int {
        let now = NIODeadline.now()
        let expired: [Session] = lock.withLock {
            let list = sessions.values.filter { isExpired($0, now: now) }
            for session in list { sessions[session.clientID] = nil }
            return list
        }
        if !expired.isEmpty { counters.withLockedValue { $0.expired += expired.count } }
        for session in expired {
            endShared(session)
            logger.notice("Expiring client \(session.clientID) due to timeout.")
        }
        return expired.count
    }

    var sessionCount: Int { lock.withLock { sessions.count } }

    /// The connections attached to sessions right now.
    func connectedHandles() -> [ConnectionHandle] {
        let all = lock.withLock { Array(sessions.values) }
        return all.compactMap { $0.owner() }
    }

    // MARK: Messages

    /// Routes a message to every matching subscription and stores it if retained. Wakes the connections that
    /// received something through `batch` (flushed by the caller when its read batch ends), or at once when
    /// there is no batch. Returns the number of sessions it was queued for.
    @discardableResult
    func publish(_ message: Message, batch: DeliveryBatch?) -> Int {
        route(message, batch: batch).delivered
    }

    /// What `route` did with a message.
    struct Routed {
        /// Sessions it was queued for.
        var delivered = 0
        /// Sessions that refused it for `max_queued_bytes_total`.
        var overQuota = 0
    }

    /// `publish`, telling also how many sessions refused the message for `max_queued_bytes_total`.
    func route(_ message: Message, batch: DeliveryBatch?) -> Routed {
        if message.retain && settings.retainAvailable {
            retained.set(message)
        }
        let match = index.match(message.topic)
        var routed = Routed()
        if match.isEmpty { return routed }
        for target in match.subscribers {
            count(enqueue(message, to: target, retain: false, batch: batch), in: &routed)
        }
        for group in match.groups {
            if let (session, subscription) = group.pick() {
                count(enqueue(message, to: Target(session: session, subscription: subscription, shareGroup: group),
                              retain: false, batch: batch), in: &routed)
            }
        }
        return routed
    }

    private func count(_ outcome: Outcome, in routed: inout Routed) {
        switch outcome {
        case .queued: routed.delivered += 1
        case .overQuota: routed.overQuota += 1
        case .notQueued: break
        }
    }

    /// Whether `message` would be refused for `max_queued_bytes_total` by every subscriber it matches now (and
    /// matches one at least): for a QoS 2 PUBLISH, which is routed only on PUBREL, after the PUBREC that could
    /// have told the publisher. Shared subscriptions are not tried (picking a member has effects): a topic with
    /// one is never refused here.
    func wouldBeRefusedForQuota(_ message: Message) -> Bool {
        guard let total = settings.session.total, total.wouldExceed(message.size) else { return false }
        let match = index.match(message.topic)
        guard match.groups.isEmpty else { return false }
        var refused = false
        for target in match.subscribers {
            let options = target.options
            if options.noLocal && message.origin == target.session.clientID { continue }
            switch target.session.wouldWait(qos: deliveredQoS(message, options)) {
            case true?: refused = true
            case false?: return false
            case nil: continue
            }
        }
        return refused
    }

    private func deliveredQoS(_ message: Message, _ options: SubscriptionOptions) -> QoS {
        min(settings.upgradeOutgoingQoS ? options.qos : min(message.qos, options.qos), settings.maximumQoS)
    }

    /// Queues one message for one subscription. `retain` is true for retained messages sent on subscribe.
    @discardableResult
    func deliver(_ message: Message, to target: Target, retain: Bool, batch: DeliveryBatch?) -> Bool {
        enqueue(message, to: target, retain: retain, batch: batch) == .queued
    }

    private enum Outcome {
        case queued
        case notQueued
        case overQuota
    }

    private func enqueue(_ message: Message, to target: Target, retain: Bool, batch: DeliveryBatch?) -> Outcome {
        let session = target.session
        let options = target.options
        if options.noLocal && message.origin == session.clientID { return .notQueued }
        let qos = deliveredQoS(message, options)
        let retainFlag = retain || (options.retainAsPublished && message.retain)
        let delivery = Delivery(message: message, qos: qos, retain: retainFlag,
                                subscriptionIDs: target.identifiers, shareGroup: target.shareGroup)
        switch session.enqueue(delivery, publisher: batch?.publisher) {
        case .queued(let congested):
            if congested { batch?.congested = true }
            return .queued
        case .wake(let handle, let congested):
            if congested { batch?.congested = true }
            if let batch { batch.wake(handle) } else { handle.wakeSoon() }
            return .queued
        case .skipped:
            return .notQueued
        case .overQuota(let firstTime):
            // Counted once, atomically; the statistics add these to the messages dropped.
            settings.session.total?.countRefusal()
            if firstTime {
                logger.warning("Outgoing messages for client \(session.clientID) are being dropped: max_queued_bytes_total (\(settings.session.total?.limit ?? 0) bytes) reached.")
            }
            return .overQuota
        case .dropped(let reason, let congested):
            if congested { batch?.congested = true }
            counters.withLockedValue { $0.dropped += 1 }
            let count = session.dropped
            if count == 1 || count % 1000 == 0 {
                logger.warning("Outgoing messages are being dropped for client \(session.clientID): \(reason) (\(count) dropped so far).")
            }
            return .notQueued
        }
    }
}

/// Connections to wake at the end of a read batch: those on this event loop are drained in place, others are
/// handed to their event loop in one task per loop.
final class DeliveryBatch {
    private let eventLoop: any EventLoop
    /// The connection whose packets are being routed, so a congested session can ask it to pause.
    var publisher: ConnectionHandle?
    /// Set when a target session is congested: the publisher should stop reading for a while.
    var congested = false
    private var local: [ConnectionHandle] = []
    private var remote: [ObjectIdentifier: (loop: any EventLoop, handles: [ConnectionHandle])] = [:]

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    var isEmpty: Bool { local.isEmpty && remote.isEmpty }

    func wake(_ handle: ConnectionHandle) {
        if handle.eventLoop === eventLoop {
            local.append(handle)
        } else {
            let key = ObjectIdentifier(handle.eventLoop)
            remote[key, default: (handle.eventLoop, [])].handles.append(handle)
        }
    }

    /// Drains every woken connection. Call on `eventLoop`.
    func flush() {
        if !local.isEmpty {
            let handles = local
            local.removeAll(keepingCapacity: true)
            for handle in handles { handle.drainNow() }
        }
        if !remote.isEmpty {
            for (_, entry) in remote {
                let handles = entry.handles
                entry.loop.execute {
                    for handle in handles { handle.drainNow() }
                }
            }
            remote.removeAll(keepingCapacity: true)
        }
    }
}

/// The router's way to reach a connection without holding the channel's handler: drain its session or close
/// it. Its methods hop to the connection's event loop where needed.
// @unchecked: `handler` is set and read on `eventLoop` only (every method hops there first).
final class ConnectionHandle: @unchecked Sendable {
    let eventLoop: any EventLoop
    /// Set and read on `eventLoop` only.
    private var handler: MQTTConnectionHandler?

    init(eventLoop: any EventLoop, handler: MQTTConnectionHandler) {
        self.eventLoop = eventLoop
        self.handler = handler
    }

    /// Forgets the handler (on `eventLoop`), when the channel closes.
    func release() {
        eventLoop.preconditionInEventLoop()
        handler = nil
    }

    /// Drains the session into the channel; must be called on `eventLoop`.
    func drainNow() {
        eventLoop.preconditionInEventLoop()
        handler?.drainSession()
    }

    /// Drains soon, from any thread.
    func wakeSoon() {
        eventLoop.execute { self.handler?.drainSession() }
    }

    /// Checks the client's credentials again (after a reload).
    func revalidate() {
        eventLoop.execute { self.handler?.revalidate() }
    }

    /// Lets a paused publisher read again (from any thread).
    func resumeReading() {
        eventLoop.execute { self.handler?.resumeReading() }
    }

    /// Closes the connection because another one took its client id over.
    func takeOver() {
        eventLoop.execute { self.handler?.closeForTakeover() }
    }
}
