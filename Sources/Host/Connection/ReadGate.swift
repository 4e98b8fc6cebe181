import MQTT
import NIOCore

/// Every reason to stop reading from a client, in one place, and the packets that wait behind them.
///
/// Two kinds of waiting:
/// - **Holds** stop decoding: a subscriber this client publishes to is congested (`congestion`, at most
///   `pauseLimit`), the client is over its publish rate (`rate`, until its debt is paid), or too many packets
///   already wait (`backlog`). The socket is not read meanwhile (autoRead off); what was read stays undecoded.
/// - **Queueing**: while authentication runs or a publish hook decides, packets are decoded but wait in
///   `pending`, in order, at most `queueLimit` of them (then `backlog` holds).
final class ReadGate {
    struct Holds: OptionSet {
        let rawValue: UInt8
        static let congestion = Holds(rawValue: 1)
        static let rate = Holds(rawValue: 2)
        static let backlog = Holds(rawValue: 4)
    }

    /// What holds reading now.
    private(set) var holds: Holds = []
    /// True while reading is off because of a hold (cleared by `reopen`).
    private(set) var paused = false
    /// True while a publish hook decides about a message: later packets wait in `pending`.
    private(set) var awaitingHook = false
    /// Made on the first packet that waits and dropped once they are handled: an idle connection holds none
    /// (an empty `CircularBuffer` still allocates room for 16 packets).
    private var pending: CircularBuffer<Packet>?
    /// Most packets waiting behind authentication or a hook before reading stops.
    static let queueLimit = 64
    /// How long a congested subscriber may hold a publisher.
    static let pauseLimit = TimeAmount.milliseconds(50)
    /// A 5.0 client that has more than this many seconds' worth of PUBLISH packets already written and waiting
    /// (`rateLookahead` at most are looked at) is disconnected with 0x96.
    static let farOverRate = 10
    /// How far ahead of what it handles the broker reads from a client held by its publish rate.
    static let rateLookahead = 64 * 1024

    /// `max_publish_rate` / `max_publish_bytes_rate`: this client's account; nil when neither is configured
    /// (then a connection holds nothing for them).
    private let rate: RateAccount?

    private final class RateAccount {
        var allowance: PublishAllowance
        /// Set when a PUBLISH left the client in debt: the rate hold starts after that packet (`throttle`).
        var due = false
        var logged = false
        var timer: Scheduled<Void>?

        init(_ allowance: PublishAllowance) { self.allowance = allowance }
    }

    /// Whether a PUBLISH left the client in debt: `throttle` is due after the packet.
    var throttleDue: Bool { rate?.due == true }
    private var pauseTimer: Scheduled<Void>?
    private let state: ConnectionState
    var context: ChannelHandlerContext?

    init(state: ConnectionState) {
        self.state = state
        self.rate = state.broker.quotas.makePublishAllowance().map(RateAccount.init)
    }

    /// Stops the timers (the connection is gone).
    func stop() {
        pauseTimer?.cancel()
        pauseTimer = nil
        rate?.timer?.cancel()
        rate?.timer = nil
    }

    // MARK: Holds

    private func hold(_ reason: Holds) {
        holds.insert(reason)
        guard !paused else { return }
        paused = true
        setAutoRead(false)
    }

    /// Whether reading may start again: paused, and nothing holds it. Clears `paused` when it answers true.
    func reopen() -> Bool {
        guard paused, holds.isEmpty else { return false }
        paused = false
        return true
    }

    func setAutoRead(_ on: Bool) {
        context?.channel.setOption(ChannelOptions.autoRead, value: on).whenComplete { _ in }
    }

    /// A subscriber this client publishes to has a backlog: reading stops until that backlog drains
    /// (`congestionEnded`), or after at most `pauseLimit` (so two clients publishing to each other cannot
    /// stall forever).
    func congested() {
        guard !holds.contains(.congestion) else { return }
        hold(.congestion)
        let control = NIOLoopBound(self, eventLoop: state.eventLoop)
        pauseTimer = state.eventLoop.scheduleTask(in: Self.pauseLimit) { control.value.congestionEnded() }
    }

    /// The congested subscriber drained (or the pause limit passed).
    func congestionEnded() {
        guard holds.contains(.congestion) else { return }
        holds.remove(.congestion)
        pauseTimer?.cancel()
        pauseTimer = nil
        state.control?.readAgain()
    }

    // MARK: Queueing

    /// Whether packets queue instead of being handled now.
    var queueing: Bool { awaitingHook || state.phase == .authenticating }

    /// Queues a packet behind authentication or a hook; at `queueLimit`, decoding stops.
    func enqueue(_ packet: Packet) {
        if pending == nil { pending = CircularBuffer(initialCapacity: 4) }
        pending!.append(packet)
        if pending!.count >= Self.queueLimit { hold(.backlog) }
    }

    /// The next queued packet to handle now, if any: none while a hook decides, or a congestion or rate hold
    /// holds. The backlog hold ends when the queue is empty.
    func nextPending() -> Packet? {
        guard !awaitingHook, holds.subtracting(.backlog).isEmpty, state.phase == .connected else { return nil }
        guard let packet = pending?.popFirst() else {
            pending = nil
            holds.remove(.backlog)
            return nil
        }
        return packet
    }

    var hasPending: Bool { !(pending?.isEmpty ?? true) }

    /// A publish hook decides: later packets queue, the socket is not read.
    func hookStarted() {
        awaitingHook = true
        setAutoRead(false)
    }

    func hookAnswered() {
        awaitingHook = false
    }

    // MARK: Publish rate

    /// Charges one PUBLISH (`size`: topic plus payload bytes) to the client's allowance; in debt, the packets
    /// after this one wait (`throttle`).
    func chargePublish(size: Int) {
        guard let rate else { return }
        if rate.allowance.take(size: size, now: .now()) {
            rate.due = true
            hold(.rate)
        }
    }

    /// What the client's publish rate settings say, for logs.
    var rateLimitsText: String {
        let limits = state.broker.quotas.settings
        return [limits.maxPublishRate > 0 ? "max_publish_rate \(limits.maxPublishRate)" : nil,
                limits.maxPublishBytesRate > 0 ? "max_publish_bytes_rate \(limits.maxPublishBytesRate)" : nil]
            .compactMap { $0 }.joined(separator: ", ")
    }

    /// A PUBLISH left the client in debt: reading stops until the debt is paid back, so TCP slows the client
    /// down; then the next packets are handled, each as its allowance permits.
    func throttle() {
        guard let rate else { return }
        rate.due = false
        guard state.phase == .connected else {
            holds.remove(.rate)
            return
        }
        // The next packet waits at least a little, so that reading again never recurses into this.
        let wait = max(rate.allowance.debt(now: .now()), .milliseconds(1))
        if !rate.logged {
            rate.logged = true
            state.broker.quotas.count(.maxPublishRate)
            state.logger.notice("Client \(state.clientName) publishes faster than \(rateLimitsText) per second: reading from it is slowed down.")
        }
        hold(.rate)
        rate.timer?.cancel()
        let bound = NIOLoopBound(self, eventLoop: state.eventLoop)
        rate.timer = state.eventLoop.scheduleTask(in: wait) {
            let gate = bound.value
            guard gate.state.phase == .connected else { return }
            gate.rate?.timer = nil
            gate.holds.remove(.rate)
            gate.state.control?.rateWaitEnded()
        }
    }

    /// Whether the PUBLISH packets in `waiting` (received, not yet handled) are more than `farOverRate`
    /// seconds' worth of the client's rate, in packets or in bytes (whole packets).
    func isFarOverRate(_ waiting: ByteBuffer?) -> Bool {
        guard let waiting else { return false }
        let limits = state.broker.quotas.settings
        let messages = limits.maxPublishRate > 0 ? limits.maxPublishRate * Self.farOverRate : Int.max
        let bytes = limits.maxPublishBytesRate > 0 ? limits.maxPublishBytesRate * Self.farOverRate : Int.max
        var index = waiting.readerIndex
        var count = 0
        var total = 0
        while let header = MQTTDecoder.fixedHeader(in: waiting, at: index) {
            if header.type == .publish {
                count += 1
                total += header.totalLength
                if count > messages || total > bytes { return true }
            }
            index += header.totalLength
        }
        return false
    }
}
