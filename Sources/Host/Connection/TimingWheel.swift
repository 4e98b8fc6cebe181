import NIOCore

/// Deadlines for many objects at once, in slots of `resolution`: scheduling, moving and removing a deadline
/// cost a dictionary update, and each tick looks only at the slot whose time came, never at every object
/// (a hashed timing wheel). A deadline further away than one turn of the wheel (`slots × resolution`) waits
/// in its slot and is looked at once per turn until it is due.
///
/// Not thread-safe: its owner keeps it on one event loop (`LoopContext`) or under its lock (`Router`).
struct TimingWheel<Value> {
    fileprivate struct Entry {
        var deadline: NIODeadline
        var value: Value
    }

    /// Nanoseconds per slot.
    private let resolution: Int64
    private var slots: [[ObjectIdentifier: Entry]]
    /// The slot each key is in.
    private var slotOf: [ObjectIdentifier: Int] = [:]
    /// The last tick `advance` reached (ticks count `resolution`s of uptime).
    private var reached: Int64
    /// Entries looked at by `advance` since the start: what a tick costs, for tests.
    private(set) var visited = 0

    init(resolution: TimeAmount, slots: Int, now: NIODeadline = .now()) {
        precondition(resolution.nanoseconds > 0 && slots > 0)
        self.resolution = resolution.nanoseconds
        self.slots = Array(repeating: [:], count: slots)
        reached = Int64(now.uptimeNanoseconds / UInt64(resolution.nanoseconds))
    }

    /// Deadlines scheduled now.
    var count: Int { slotOf.count }

    /// Whether `key` has a deadline.
    func contains(_ key: ObjectIdentifier) -> Bool { slotOf[key] != nil }

    /// Sets `key`'s deadline (replacing one it had) with the value `advance` hands back once it passed.
    mutating func schedule(_ key: ObjectIdentifier, _ value: Value, at deadline: NIODeadline) {
        remove(key)
        // The first tick at or after the deadline (rounded up, so that a due entry's deadline has passed by
        // the time its slot is looked at), and never one `advance` has already passed.
        let nanoseconds = Int64(clamping: deadline.uptimeNanoseconds)
        let tick = max(nanoseconds / resolution + (nanoseconds % resolution == 0 ? 0 : 1), reached + 1)
        let slot = Int(tick % Int64(slots.count))
        slots[slot][key] = Entry(deadline: deadline, value: value)
        slotOf[key] = slot
    }

    /// Drops `key`'s deadline; its value, if it had one.
    @discardableResult
    mutating func remove(_ key: ObjectIdentifier) -> Value? {
        guard let slot = slotOf.removeValue(forKey: key) else { return nil }
        return slots[slot].removeValue(forKey: key)?.value
    }

    /// The values whose deadline is at or before `now`, each removed; looks only at the slots of the ticks
    /// since the last call (each slot once, however long the pause was).
    mutating func advance(to now: NIODeadline) -> [Value] {
        let target = Int64(now.uptimeNanoseconds / UInt64(resolution))
        guard target > reached else { return [] }
        var due: [Value] = []
        let steps = min(target - reached, Int64(slots.count))
        for step in 1...steps {
            let slot = Int((reached + step) % Int64(slots.count))
            guard !slots[slot].isEmpty else { continue }
            visited += slots[slot].count
            var dueKeys: [ObjectIdentifier] = []
            for (key, entry) in slots[slot] where entry.deadline <= now { dueKeys.append(key) }
            for key in dueKeys {
                slotOf[key] = nil
                if let entry = slots[slot].removeValue(forKey: key) { due.append(entry.value) }
            }
        }
        reached = target
        return due
    }
}

extension TimingWheel: Sendable where Value: Sendable {}
extension TimingWheel.Entry: Sendable where Value: Sendable {}
