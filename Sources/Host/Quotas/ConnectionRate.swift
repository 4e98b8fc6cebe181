import NIOConcurrencyHelpers
import NIOCore

/// `max_connection_rate N [SECONDS]`: at most N CONNECT packets per source address in SECONDS (default 1).
///
/// One token bucket per address, holding at most N and refilled at N per SECONDS; a CONNECT takes a token,
/// a refused one takes none (so a client that backs off gets in again). An address whose bucket is full again
/// (idle for a whole window) is forgotten by `sweep`; the table holds at most `maximumAddresses`: beyond that,
/// new addresses are let through untracked rather than refused (a full table is swept again at most every
/// `fullSweepInterval`).
final class ConnectionRate: Sendable {
    let count: Int
    let window: TimeAmount
    static let maximumAddresses = 65_536

    private struct Bucket {
        var tokens: Double
        var updated: NIODeadline
        /// Whether a refusal was logged since the address was last forgotten.
        var logged = false
    }

    private struct Table {
        var buckets: [String: Bucket] = [:]
        /// When a full table was last swept from `admit` (at most every `fullSweepInterval`, so a flood of new
        /// addresses cannot make every CONNECT walk the whole table).
        var lastFullSweep: NIODeadline = .distantPast
    }

    private let table = NIOLockedValueBox(Table())
    static let fullSweepInterval = TimeAmount.milliseconds(500)

    init(count: Int, window: TimeAmount) {
        self.count = count
        self.window = window
    }

    /// What `admit` decided.
    enum Verdict: Equatable {
        case allowed
        /// Over the rate; `firstTime`: the first refusal of this address since it was idle (log it).
        case refused(firstTime: Bool)
    }

    /// Takes a token for one CONNECT from `address`.
    func admit(_ address: String, now: NIODeadline = .now()) -> Verdict {
        table.withLockedValue { table in
            var bucket: Bucket
            if let known = table.buckets[address] {
                bucket = known
                refill(&bucket, now: now)
            } else {
                if table.buckets.count >= Self.maximumAddresses {
                    guard now - table.lastFullSweep >= Self.fullSweepInterval else { return .allowed }
                    table.lastFullSweep = now
                    sweep(&table.buckets, now: now)
                    if table.buckets.count >= Self.maximumAddresses { return .allowed }
                }
                bucket = Bucket(tokens: Double(count), updated: now)
            }
            guard bucket.tokens >= 1 else {
                let first = !bucket.logged
                bucket.logged = true
                table.buckets[address] = bucket
                return .refused(firstTime: first)
            }
            bucket.tokens -= 1
            table.buckets[address] = bucket
            return .allowed
        }
    }

    /// Forgets the addresses whose bucket is full again.
    func sweep(now: NIODeadline = .now()) {
        table.withLockedValue { sweep(&$0.buckets, now: now) }
    }

    /// Addresses tracked now.
    var addressCount: Int { table.withLockedValue { $0.buckets.count } }

    private func sweep(_ table: inout [String: Bucket], now: NIODeadline) {
        table = table.filter { _, bucket in
            var bucket = bucket
            refill(&bucket, now: now)
            return bucket.tokens < Double(count)
        }
    }

    private func refill(_ bucket: inout Bucket, now: NIODeadline) {
        let elapsed = Double((now - bucket.updated).nanoseconds)
        guard elapsed > 0 else { return }
        bucket.tokens = min(Double(count), bucket.tokens + elapsed * Double(count) / Double(window.nanoseconds))
        bucket.updated = now
    }
}
