import MQTT
import NIOConcurrencyHelpers
import NIOCore

/// The state of one client identifier that outlives its connections: subscriptions, messages in flight and
/// the queue. Guarded by its own lock, because publishers on every event loop enqueue into it; the connection
/// that owns it at the moment drains it on that connection's event loop.
final class Session: @unchecked Sendable {
    let clientID: String
    private let lock = NIOLock()

    // Everything below is guarded by `lock`.
    private var connection: ConnectionHandle?
    private var wakePending = false
    /// Protocol level of the last connection (decides the encoding of queued messages).
    private(set) var protocolVersion: ProtocolVersion
    /// Filters this session subscribes to (keys as given, shared ones with their `$share/` prefix).
    private(set) var subscriptions: [String: Subscription] = [:]
    private var queue = CircularBuffer<Delivery>(initialCapacity: 1)
    private var queuedBytes = 0
    private var queuedQoS0 = 0
    private var queuedQoS12 = 0
    private var outputBlocked = false
    private var inflight: [UInt16: Inflight] = [:]
    private var inflightOrder: [UInt16] = []
    private var nextPacketID: UInt16 = 1
    /// Incoming QoS 2 messages received but not yet released by PUBREL (delivered on PUBREL, as Mosquitto does).
    private var incomingQoS2: [UInt16: Message] = [:]
    /// Seconds the session outlives its connection; nil means forever (3.x persistent sessions).
    private(set) var expiryInterval: UInt32?
    private(set) var disconnectedAt: NIODeadline?
    /// Receive maximum the client announced (5.0), capping the in-flight window.
    private var clientReceiveMaximum = Int(UInt16.max)
    /// Largest packet the client accepts (5.0); 0 = no limit.
    private var clientMaximumPacketSize = 0
    private(set) var dropped = 0

    let limits: SessionLimits

    init(clientID: String, protocolVersion: ProtocolVersion, limits: SessionLimits) {
        self.clientID = clientID
        self.protocolVersion = protocolVersion
        self.limits = limits
    }

    struct Inflight {
        var delivery: Delivery
        var qos: QoS
        /// For QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP.
        var released: Bool
    }

    // MARK: Connection ownership

    /// Attaches a connection; returns the connection it replaces, if any.
    func attach(_ handle: ConnectionHandle, version: ProtocolVersion, expiry: UInt32?, receiveMaximum: Int,
                maximumPacketSize: Int) -> ConnectionHandle? {
        lock.withLock {
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
    }

    /// Detaches `handle` if it still owns the session. Returns false if another connection took over.
    func detach(_ handle: ConnectionHandle, expiry: UInt32?) -> Bool {
        lock.withLock {
            guard connection === handle else { return false }
            connection = nil
            expiryInterval = expiry
            disconnectedAt = .now()
            wakePending = false
            return true
        }
    }

    var isConnected: Bool { lock.withLock { connection != nil } }

    func owner() -> ConnectionHandle? { lock.withLock { connection } }

    // MARK: Subscriptions

    /// Records a subscription; returns true if it already existed (for retain handling 1).
    func addSubscription(_ subscription: Subscription) -> Bool {
        lock.withLock { subscriptions.updateValue(subscription, forKey: subscription.key) != nil }
    }

    func removeSubscription(_ key: String) -> Subscription? {
        lock.withLock { subscriptions.removeValue(forKey: key) }
    }

    func allSubscriptions() -> [Subscription] { lock.withLock { Array(subscriptions.values) } }

    // MARK: Outgoing messages

    enum EnqueueResult {
        case queued
        /// Queued, and the owning connection must be woken to drain.
        case wake(ConnectionHandle)
        case dropped(reason: String)
    }

    /// Queues a delivery for this session (any thread).
    ///
    /// Counting follows Mosquitto: a QoS 1/2 message that fits the in-flight window of a connected client is
    /// in flight, not queued; `max_queued_messages` / `max_queued_bytes` bound what waits beyond the window
    /// (and, for an offline client, everything). QoS 0 for a connected client is sent at once, unless its
    /// socket is backed up: then at most `max_queued_messages` of them wait.
    func enqueue(_ delivery: Delivery) -> EnqueueResult {
        lock.withLock {
            let online = connection != nil
            if delivery.qos == .atMostOnce {
                if !online && !limits.queueQoS0Offline {
                    return .dropped(reason: "QoS 0 message for an offline client")
                }
                if !online || outputBlocked {
                    if let reason = overLimit(waiting: queuedQoS0 + (online ? 0 : queuedQoS12), bytes: queuedBytes) {
                        dropped += 1
                        return .dropped(reason: reason)
                    }
                }
            } else {
                let room = online ? max(0, window - inflight.count) : 0
                if queuedQoS12 >= room,
                   let reason = overLimit(waiting: queuedQoS12 - room + (online ? 0 : queuedQoS0), bytes: queuedBytes) {
                    dropped += 1
                    return .dropped(reason: reason)
                }
            }
            queue.append(delivery)
            queuedBytes += delivery.message.size
            if delivery.qos == .atMostOnce { queuedQoS0 += 1 } else { queuedQoS12 += 1 }
            if let connection, !wakePending {
                wakePending = true
                return .wake(connection)
            }
            return .queued
        }
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

    /// Set by the connection when its socket stops (or starts again) taking bytes.
    func setOutputBlocked(_ blocked: Bool) {
        lock.withLock { outputBlocked = blocked }
    }

    /// A packet ready to write, taken from the session for its connection.
    enum Outgoing {
        case publish(Delivery, packetID: UInt16?, dup: Bool)
        case pubrel(UInt16)
    }

    /// Takes what may be sent now: queued messages while the in-flight window has room, at most `limit`.
    /// Called on the owning connection's event loop.
    /// `permit`, when given, is asked for each message (the read authorization, checked at delivery as
    /// Mosquitto does); a message it refuses is dropped silently.
    func takeReady(limit: Int, into out: inout [Outgoing], permit: ((Delivery) -> Bool)? = nil) {
        lock.withLock {
            wakePending = false
            let window = self.window
            var taken = 0
            while taken < limit, let next = queue.first {
                if next.qos != .atMostOnce && inflight.count >= window { break }
                queue.removeFirst()
                queuedBytes -= next.message.size
                if next.qos == .atMostOnce { queuedQoS0 -= 1 } else { queuedQoS12 -= 1 }
                if next.message.isExpired { continue }
                if let permit, !permit(next) { continue }
                taken += 1
                if next.qos == .atMostOnce {
                    out.append(.publish(next, packetID: nil, dup: false))
                } else {
                    let id = allocatePacketID()
                    inflight[id] = Inflight(delivery: next, qos: next.qos, released: false)
                    inflightOrder.append(id)
                    out.append(.publish(next, packetID: id, dup: false))
                }
            }
        }
    }

    /// Everything in flight, to resend on a reconnect: PUBLISH with DUP, or PUBREL.
    func resendInflight(into out: inout [Outgoing]) {
        lock.withLock {
            for id in inflightOrder {
                guard let entry = inflight[id] else { continue }
                out.append(entry.released ? .pubrel(id) : .publish(entry.delivery, packetID: id, dup: true))
            }
        }
    }

    var hasQueued: Bool { lock.withLock { !queue.isEmpty } }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for a message we sent. Returns false if the id was unknown.
    func complete(_ id: UInt16) -> Bool {
        lock.withLock {
            guard inflight.removeValue(forKey: id) != nil else { return false }
            if let index = inflightOrder.firstIndex(of: id) { inflightOrder.remove(at: index) }
            return true
        }
    }

    /// PUBREC for a QoS 2 message we sent. Returns false if the id was unknown.
    func received(_ id: UInt16) -> Bool {
        lock.withLock {
            guard inflight[id] != nil else { return false }
            inflight[id]!.released = true
            return true
        }
    }

    private func allocatePacketID() -> UInt16 {
        for _ in 0..<Int(UInt16.max) {
            let id = nextPacketID
            nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
            if inflight[id] == nil { return id }
        }
        return nextPacketID
    }

    var maximumPacketSize: Int { lock.withLock { clientMaximumPacketSize } }

    // MARK: Incoming QoS 2

    /// Stores an incoming QoS 2 message until PUBREL; returns false if the id is already waiting.
    func storeIncoming(_ id: UInt16, _ message: Message) -> Bool {
        lock.withLock {
            if incomingQoS2[id] != nil { return false }
            incomingQoS2[id] = message
            return true
        }
    }

    /// Releases an incoming QoS 2 message on PUBREL.
    func releaseIncoming(_ id: UInt16) -> Message? {
        lock.withLock { incomingQoS2.removeValue(forKey: id) }
    }

    func countDropped() { lock.withLock { dropped += 1 } }
}

/// Limits that bound one session's memory.
struct SessionLimits: Sendable {
    var maxInflightMessages = 20
    var maxQueuedMessages = 1000
    var maxQueuedBytes = 0
    var queueQoS0Offline = false
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
