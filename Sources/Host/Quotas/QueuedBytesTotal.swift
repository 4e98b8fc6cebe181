import Atomics

/// `max_queued_bytes_total`: the bytes (topic plus payload) waiting in every session's queue together, one
/// atomic counter that sessions add to and take from as they queue and send.
///
/// A message that would have to wait (the same cases `max_queued_messages` / `max_queued_bytes` count: an
/// offline client, a QoS 1/2 message beyond the in-flight window, QoS 0 to a client whose socket is backed up)
/// is refused when it would take the total over the limit. Check and add are not one step, so concurrent
/// publishers on different event loops may overshoot the limit by one message each.
final class QueuedBytesTotal: Sendable {
    let limit: Int
    private let total = ManagedAtomic(0)
    private let refused = ManagedAtomic(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Bytes queued now.
    var current: Int { total.load(ordering: .relaxed) }

    /// Whether queueing `size` more bytes would pass the limit.
    func wouldExceed(_ size: Int) -> Bool {
        total.load(ordering: .relaxed) + size > limit
    }

    func add(_ size: Int) {
        total.wrappingIncrement(by: size, ordering: .relaxed)
    }

    func remove(_ size: Int) {
        guard size != 0 else { return }
        total.wrappingDecrement(by: size, ordering: .relaxed)
    }

    /// Counts a message not queued for one session.
    func countRefusal() {
        refused.wrappingIncrement(ordering: .relaxed)
    }

    /// Messages not queued (one per session refused) since start.
    var refusals: Int { refused.load(ordering: .relaxed) }
}
