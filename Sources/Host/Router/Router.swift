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

/// The core: sessions, the subscription index and the retained store, and the operations on them (connect,
/// subscribe, unsubscribe, route, retained replay). It knows nothing about sockets; it reaches connections only
/// through `ConnectionHandle` (and so the `SessionConnection` protocol).
final class Router: Sendable {
    let index = SubscriptionIndex()
    let retained = RetainedStore()
    let settings: RouterSettings
    let logger: Logger

    /// The sessions by client id, and how many clients are connected now and were at most at once.
    private struct Table {
        var sessions: [String: Session] = [:]
        var connected = 0
        var connectedMaximum = 0
        /// Offline sessions that can expire, by when: the sweep looks only at those whose time came.
        var expiring = TimingWheel<Session>(resolution: .seconds(1), slots: 4096)

        mutating func countConnected(_ change: Int) {
            connected += change
            connectedMaximum = max(connectedMaximum, connected)
        }
    }
    private let table = NIOLockedValueBox(Table())
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
        let now = NIODeadline.now()
        let result: ConnectResult = table.withLockedValue { table in
            // A session whose expiry is 0 (a 3.x clean session, 5.0 expiry 0) ends with its connection
            // (MQTT-3.1.2-6): a new connection does not resume it even while that connection is still open.
            if let existing = table.sessions[clientID], !cleanStart, existing.expiryInterval != 0,
               !isExpired(existing, now: now) {
                let old = existing.attach(handle, version: version, expiry: expiry, receiveMaximum: receiveMaximum,
                                          maximumPacketSize: maximumPacketSize)
                table.expiring.remove(ObjectIdentifier(existing))
                if old == nil { table.countConnected(+1) }
                return ConnectResult(session: existing, sessionPresent: true, replaced: old)
            }
            let old = table.sessions[clientID]
            discarded = old
            old?.supersede()
            if let old { table.expiring.remove(ObjectIdentifier(old)) }
            let session = Session(clientID: clientID, protocolVersion: version, limits: settings.session)
            _ = session.attach(handle, version: version, expiry: expiry, receiveMaximum: receiveMaximum,
                               maximumPacketSize: maximumPacketSize)
            table.sessions[clientID] = session
            // The old session keeps its connection until that one closes, and that close counts it out.
            table.countConnected(+1)
            return ConnectResult(session: session, sessionPresent: false, replaced: old?.owner())
        }
        if let discarded { endShared(discarded) }
        return result
    }

    /// Detaches a connection from its session; ends the session when its expiry is 0.
    func disconnect(_ session: Session, handle: ConnectionHandle, expiry: UInt32?) {
        guard session.detach(handle, expiry: expiry) else { return }  // taken over meanwhile
        table.withLockedValue { table in
            table.countConnected(-1)
            if expiry != 0, table.sessions[session.clientID] === session, let deadline = expiryDeadline(session) {
                table.expiring.schedule(ObjectIdentifier(session), session, at: deadline)
            }
        }
        if expiry == 0 { end(session) }
    }

    /// Clients connected now, the most at once, and offline sessions kept.
    func clientCounts() -> (connected: Int, maximum: Int, disconnected: Int) {
        table.withLockedValue { ($0.connected, $0.connectedMaximum, max(0, $0.sessions.count - $0.connected)) }
    }

    private func end(_ session: Session) {
        let removed: Bool = table.withLockedValue {
            guard $0.sessions[session.clientID] === session else { return false }
            $0.sessions[session.clientID] = nil
            $0.expiring.remove(ObjectIdentifier(session))
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

    private func isExpired(_ session: Session, now: NIODeadline) -> Bool {
        guard let deadline = expiryDeadline(session) else { return false }
        return now >= deadline
    }

    /// When an offline session expires: its 5.0 expiry interval, or `persistent_client_expiration` for a 3.x
    /// one, after it went offline; nil while it is connected or when it never expires.
    private func expiryDeadline(_ session: Session) -> NIODeadline? {
        guard let since = session.disconnectedAt else { return nil }
        let limit: Int64
        if let expiry = session.expiryInterval {
            if expiry == UInt32.max { return nil }
            limit = Int64(expiry)
        } else if let expiration = settings.persistentClientExpiration {
            limit = Int64(expiration)
        } else {
            return nil
        }
        return since + .seconds(limit)
    }

    /// Ends offline sessions whose expiry has passed (looking only at those whose time came, at a resolution
    /// of a second). Returns how many ended.
    @discardableResult
    func sweepExpiredSessions(now: NIODeadline = .now()) -> Int {
        let expired: [Session] = table.withLockedValue { table in
            var list: [Session] = []
            for session in table.expiring.advance(to: now) where table.sessions[session.clientID] === session {
                if isExpired(session, now: now) {
                    table.sessions[session.clientID] = nil
                    list.append(session)
                } else if let deadline = expiryDeadline(session) {
                    table.expiring.schedule(ObjectIdentifier(session), session, at: deadline)
                }
            }
            return list
        }
        if !expired.isEmpty { counters.withLockedValue { $0.expired += expired.count } }
        for session in expired {
            endShared(session)
            logger.notice("Expiring client \(session.clientID) due to timeout.")
        }
        return expired.count
    }

    /// Offline sessions the sweep has looked at since the start (what sweeping costs, for tests).
    var sessionsLookedAtBySweep: Int { table.withLockedValue { $0.expiring.visited } }

    var sessionCount: Int { table.withLockedValue { $0.sessions.count } }

    /// What the broker holds only in memory: sessions (and how many are connected), their messages, and the
    /// retained messages (outside `$SYS`). What a shutdown without persistence loses.
    func heldInMemory() -> (sessions: Int, connected: Int, messages: HeldMessages, retained: Int) {
        let (sessions, connected) = table.withLockedValue { (Array($0.sessions.values), $0.connected) }
        let messages = sessions.reduce(HeldMessages()) { $0 + $1.held }
        return (sessions.count, connected, messages, retained.clientMessageCount)
    }

    /// The connections attached to sessions right now.
    func connectedHandles() -> [ConnectionHandle] {
        let all = table.withLockedValue { Array($0.sessions.values) }
        return all.compactMap { $0.owner() }
    }

    // MARK: Subscriptions

    /// Adds subscriptions to a session (replacing one with the same key), then queues the retained messages
    /// each asks for: all of them for retain handling 0, only for a new subscription for 1, none for 2 or a
    /// shared subscription. They are woken through `batch`, so an acknowledgement the caller writes before
    /// the batch flushes goes out before them.
    func subscribe(_ session: Session, to subscriptions: [Subscription], batch: DeliveryBatch?) {
        var replay: [(Subscription, [Message])] = []
        for subscription in subscriptions {
            let existed = session.addSubscription(subscription)
            index.add(session, subscription)
            let handling = subscription.options.retainHandling
            if subscription.group == nil && (handling == 0 || (handling == 1 && !existed)) {
                let messages = retained.matching(subscription.filter)
                if !messages.isEmpty { replay.append((subscription, messages)) }
            }
        }
        for (subscription, messages) in replay {
            let target = Target(session: session, subscription: subscription)
            for message in messages { enqueue(message, to: target, retain: true, batch: batch) }
        }
    }

    /// Removes subscriptions of a session by key; for each, whether it existed.
    func unsubscribe(_ session: Session, from keys: [String]) -> [Bool] {
        keys.map { key in
            guard let removed = session.removeSubscription(key) else { return false }
            index.remove(session, removed)
            return true
        }
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
        /// Subscriptions it matched (one per share group), whether or not it was queued for them.
        var matched = 0
        /// Sessions it was queued for.
        var delivered = 0
        /// Sessions that refused it for `max_queued_bytes_total`.
        var overQuota = 0
    }

    /// `publish`, telling also how many sessions refused the message for `max_queued_bytes_total`.
    @discardableResult
    func route(_ message: Message, batch: DeliveryBatch?) -> Routed {
        if message.retain && settings.retainAvailable {
            retained.set(message)
        }
        let match = index.match(message.topic)
        var routed = Routed()
        if match.isEmpty { return routed }
        routed.matched = match.subscribers.count + match.groups.count
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
    /// have told the publisher. A refusal is counted. Shared subscriptions are not tried (picking a member has
    /// effects): a topic with one is never refused here.
    func refusesForQuota(_ message: Message) -> Bool {
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
        if refused { total.countRefusal() }
        return refused
    }

    private func deliveredQoS(_ message: Message, _ options: SubscriptionOptions) -> QoS {
        min(settings.upgradeOutgoingQoS ? options.qos : min(message.qos, options.qos), settings.maximumQoS)
    }

    /// Queues one message for one subscription. `retain` is true for retained messages sent on subscribe.
    @discardableResult
    private func deliver(_ message: Message, to target: Target, retain: Bool, batch: DeliveryBatch?) -> Bool {
        enqueue(message, to: target, retain: retain, batch: batch) == .queued
    }

    private enum Outcome {
        case queued
        case notQueued
        case overQuota
    }

    @discardableResult
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
