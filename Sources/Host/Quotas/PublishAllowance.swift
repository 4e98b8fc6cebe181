import NIOCore

/// One connection's `max_publish_rate` / `max_publish_bytes_rate`: two token buckets (messages, and bytes of
/// topic plus payload), each holding at most one second's worth and refilled continuously.
///
/// Every PUBLISH the client sends takes its share; the one that drives a bucket below zero is still handled,
/// and the connection then handles nothing more until the debt is paid back (`debt`), which slows the client
/// down through TCP (see `MQTTConnectionHandler.throttle`).
struct PublishAllowance {
    /// 0 = not limited.
    let messagesPerSecond: Int
    let bytesPerSecond: Int
    private var messages: Double
    private var bytes: Double
    private var updated: NIODeadline

    init(messagesPerSecond: Int, bytesPerSecond: Int, now: NIODeadline) {
        self.messagesPerSecond = messagesPerSecond
        self.bytesPerSecond = bytesPerSecond
        messages = Double(messagesPerSecond)
        bytes = Double(bytesPerSecond)
        updated = now
    }

    /// Takes one message of `size` bytes. Returns true when that leaves the client in debt.
    mutating func take(size: Int, now: NIODeadline) -> Bool {
        refill(now: now)
        messages -= 1
        bytes -= Double(size)
        return (messagesPerSecond > 0 && messages < 0) || (bytesPerSecond > 0 && bytes < 0)
    }

    /// How long until neither bucket is in debt (zero when none is).
    mutating func debt(now: NIODeadline) -> TimeAmount {
        refill(now: now)
        var seconds = 0.0
        if messagesPerSecond > 0 && messages < 0 { seconds = max(seconds, -messages / Double(messagesPerSecond)) }
        if bytesPerSecond > 0 && bytes < 0 { seconds = max(seconds, -bytes / Double(bytesPerSecond)) }
        return .nanoseconds(Int64((seconds * 1e9).rounded(.up)))
    }

    private mutating func refill(now: NIODeadline) {
        let elapsed = Double((now - updated).nanoseconds) / 1e9
        guard elapsed > 0 else { return }
        updated = now
        if messagesPerSecond > 0 {
            messages = min(Double(messagesPerSecond), messages + elapsed * Double(messagesPerSecond))
        }
        if bytesPerSecond > 0 {
            bytes = min(Double(bytesPerSecond), bytes + elapsed * Double(bytesPerSecond))
        }
    }
}
