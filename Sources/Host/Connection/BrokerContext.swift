import Logging
import MQTT
import NIOCore

/// Everything a connection needs from the broker, shared by all connections of a listener: one object, so
/// that a connection holds a reference to it rather than a copy.
final class BrokerContext: Sendable {
    let router: Router
    let access: AccessControl
    let connect: ConnectSettings
    let logger: Logger
    /// State shared by the connections of one event loop.
    let loops: LoopContexts
    /// The hooks, by event.
    let hooks: Hooks
    /// The quotas (none configured by default).
    let quotas: Quotas
    /// The rules every message a client sends passes (made from the values above).
    let publishPolicy: PublishPolicy

    init(router: Router, access: AccessControl, connect: ConnectSettings, logger: Logger,
         loops: LoopContexts = LoopContexts(), hooks: Hooks, quotas: Quotas = Quotas()) {
        self.router = router
        self.access = access
        self.connect = connect
        self.logger = logger
        self.loops = loops
        self.hooks = hooks
        self.quotas = quotas
        publishPolicy = PublishPolicy(access: access, hooks: hooks, settings: router.settings, logger: logger)
    }
}

/// What the connections of one event loop share instead of each holding its own: the batch of connections
/// to wake when a read ends, and scratch space for draining. Touched only on its event loop.
final class LoopContext {
    let eventLoop: any EventLoop
    let batch: DeliveryBatch
    /// Scratch space for draining: what a session hands its connection to write.
    var outgoing: [Session.Outgoing] {
        unsafeAddress { UnsafePointer(outgoingStorage) }
        unsafeMutableAddress { outgoingStorage }
    }
    /// This loop's share of the broker's statistics.
    var counters: LoopCounters {
        unsafeAddress { UnsafePointer(countersStorage) }
        unsafeMutableAddress { countersStorage }
    }
    // `outgoing` and `counters` are touched for every message, `counters` also around dictionary updates and
    // `outgoing` across the session's `takeReady`: as stored properties of this class each access would cost a
    // dynamic exclusivity check (about 80 instructions). Kept out of line and reached through these pointers,
    // they cost none; only this loop's thread touches them.
    private let outgoingStorage = UnsafeMutablePointer<[Session.Outgoing]>.allocate(capacity: 1)
    private let countersStorage = UnsafeMutablePointer<LoopCounters>.allocate(capacity: 1)
    /// Connections by their keep-alive deadline, on one timing wheel per event loop ticking every
    /// `tickInterval`: a tick looks only at the connections whose deadline came (instead of one scheduled task
    /// per connection, a few hundred bytes each, or a look at every connection on every tick). A read does not
    /// touch the wheel: a connection whose deadline came is looked at, and put back at its new deadline when
    /// it was heard from meanwhile.
    private(set) var keepAlive = TimingWheel<MQTTConnectionHandler>(resolution: tickInterval, slots: 512)
    private var tick: RepeatedTask?
    static let tickInterval = TimeAmount.milliseconds(250)

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        batch = DeliveryBatch(eventLoop: eventLoop)
        outgoingStorage.initialize(to: [])
        countersStorage.initialize(to: LoopCounters())
    }

    deinit {
        outgoingStorage.deinitialize(count: 1)
        outgoingStorage.deallocate()
        countersStorage.deinitialize(count: 1)
        countersStorage.deallocate()
    }

    /// Puts `handler` on the wheel at its keep-alive deadline (moving it if it was there already), or takes it
    /// off when it has none.
    func watch(_ handler: MQTTConnectionHandler) {
        let key = ObjectIdentifier(handler)
        guard let deadline = handler.keepAliveDeadline(now: .now()) else {
            keepAlive.remove(key)
            return
        }
        keepAlive.schedule(key, handler, at: deadline)
        if tick == nil {
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            tick = eventLoop.scheduleRepeatedTask(initialDelay: Self.tickInterval, delay: Self.tickInterval) { _ in
                bound.value.checkDeadlines()
            }
        }
    }

    func unwatch(_ handler: MQTTConnectionHandler) {
        keepAlive.remove(ObjectIdentifier(handler))
    }

    func checkDeadlines(now: NIODeadline = .now()) {
        for handler in keepAlive.advance(to: now) {
            guard let deadline = handler.keepAliveDeadline(now: now) else { continue }
            if deadline <= now {
                handler.keepAliveTimedOut()
            } else {
                keepAlive.schedule(ObjectIdentifier(handler), handler, at: deadline)
            }
        }
    }
}

/// The `LoopContext` of every event loop of the broker's group, made once at start-up, each reachable only on
/// its own loop (`NIOLoopBoundBox` checks it).
struct LoopContexts: Sendable {
    private var contexts: [ObjectIdentifier: NIOLoopBoundBox<LoopContext>] = [:]
    /// Every loop's context (read one through `eventLoop.submit`).
    var all: [NIOLoopBoundBox<LoopContext>] { Array(contexts.values) }

    init() {}

    init(group: any EventLoopGroup) {
        for loop in group.makeIterator() {
            contexts[ObjectIdentifier(loop)] = .makeBoxSendingValue(LoopContext(eventLoop: loop), eventLoop: loop)
        }
    }

    /// The context of `loop` (call on `loop`); a private one for loops outside the group (tests).
    func context(for loop: any EventLoop) -> LoopContext {
        contexts[ObjectIdentifier(loop)]?.value ?? LoopContext(eventLoop: loop)
    }
}

/// Rules applied to CONNECT and to PUBLISH from clients.
struct ConnectSettings: Sendable {
    var allowZeroLengthClientID = true
    var autoIDPrefix = "auto-"
    var maxKeepalive = 65535
    /// Largest packet accepted from clients, 0 = the protocol's limit.
    var maxPacketSize = 0
    /// Largest PUBLISH payload accepted, 0 = no limit.
    var messageSizeLimit = 0
    /// Highest topic alias a 5.0 client may use (Mosquitto's `max_topic_alias`, default 10).
    var maxTopicAlias = 10
    /// Most topic aliases the broker uses towards a 5.0 client (`max_topic_alias_broker`; 0 = none).
    var maxTopicAliasBroker = 0
    var maxInflightMessages = 20
    var connectionMessages = true
    /// Use the user name as client id (`use_username_as_clientid`).
    var useUsernameAsClientID = false
}
