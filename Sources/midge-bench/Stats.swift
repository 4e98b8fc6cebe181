import Foundation
import Histogram
import NIOCore

/// Counters of one event loop. Touched only on that loop; the main thread reads them through `submit`.
final class LoopStats: @unchecked Sendable {
    /// PUBLISH packets handed to the channel by publishers (or connect cycles completed, for connect-storm).
    var sent = 0
    /// PUBLISH packets received by subscribers.
    var delivered = 0
    /// PUBACK / PUBCOMP received by publishers.
    var acked = 0
    /// PUBLISH packets received by the in-process sink.
    var sinkReceived = 0
    /// Failures that did not end the run (connect-storm retries).
    var failures = 0
    /// Latency in nanoseconds, recorded only for messages stamped inside the measured window.
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000_000,
                                      numberOfSignificantValueDigits: .three)
    var measureFrom: UInt64 = .max
    var measureTo: UInt64 = .max
    /// Publishers and connect-storm workers keep going while this is true.
    var running = true

    struct Snapshot: Sendable {
        var sent = 0, delivered = 0, acked = 0, sinkReceived = 0, failures = 0
        static func + (a: Snapshot, b: Snapshot) -> Snapshot {
            Snapshot(sent: a.sent + b.sent, delivered: a.delivered + b.delivered, acked: a.acked + b.acked,
                     sinkReceived: a.sinkReceived + b.sinkReceived, failures: a.failures + b.failures)
        }
    }

    var snapshot: Snapshot {
        Snapshot(sent: sent, delivered: delivered, acked: acked, sinkReceived: sinkReceived, failures: failures)
    }

    @inline(__always)
    func recordLatency(stampedAt stamp: UInt64, now: UInt64) {
        guard stamp >= measureFrom && stamp < measureTo && now >= stamp else { return }
        _ = histogram.record(now - stamp)
    }
}

/// One `LoopStats` per event loop of a group.
final class StatsRegistry: Sendable {
    let loops: [any EventLoop]
    private let stats: [ObjectIdentifier: LoopStats]

    init(group: any EventLoopGroup) {
        var loops: [any EventLoop] = []
        var stats: [ObjectIdentifier: LoopStats] = [:]
        for loop in group.makeIterator() {
            loops.append(loop)
            stats[ObjectIdentifier(loop)] = LoopStats()
        }
        self.loops = loops
        self.stats = stats
    }

    /// The stats of `loop`; call on that loop only.
    func on(_ loop: any EventLoop) -> LoopStats {
        stats[ObjectIdentifier(loop)]!
    }

    /// Sums every loop's counters, reading each on its own loop.
    func snapshot() -> LoopStats.Snapshot {
        let futures = loops.map { loop in
            let stats = self.on(loop)
            return loop.submit { stats.snapshot }
        }
        var total = LoopStats.Snapshot()
        for future in futures { total = total + ((try? future.wait()) ?? LoopStats.Snapshot()) }
        return total
    }

    /// Runs `body` on every loop with its stats and waits for all.
    func forEach(_ body: @escaping @Sendable (LoopStats) -> Void) {
        let futures = loops.map { loop in
            let stats = self.on(loop)
            return loop.submit { body(stats) }
        }
        for future in futures { _ = try? future.wait() }
    }

    /// Merges every loop's histogram.
    func mergedHistogram() -> Histogram<UInt64> {
        var merged = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000_000,
                                       numberOfSignificantValueDigits: .three)
        for loop in loops {
            let stats = on(loop)
            if let histogram = try? loop.submit({ stats.histogram }).wait() { merged.add(histogram) }
        }
        return merged
    }
}

/// Errors and unexpected events from any thread, for the report.
final class Problems: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    private var order: [String] = []

    func note(_ message: String) {
        lock.lock()
        defer { lock.unlock() }
        if counts[message] == nil { order.append(message) }
        counts[message, default: 0] += 1
    }

    var summary: [String] {
        lock.lock()
        defer { lock.unlock() }
        return order.map { message in
            let n = counts[message]!
            return n == 1 ? message : "\(message) (x\(n))"
        }
    }

    var total: Int {
        lock.lock()
        defer { lock.unlock() }
        return counts.values.reduce(0, +)
    }
}

/// getrusage(RUSAGE_SELF): user + system CPU seconds of this process.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Whole-machine CPU time from /proc/stat's first line, in seconds: busy (not idle, not iowait) and steal.
func machineCPU() -> (busy: Double, steal: Double)? {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
          let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
    let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard values.count >= 8 else { return nil }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = values[0] + values[1] + values[2] + values[5] + values[6]
    return (busy / ticks, values[7] / ticks)
}

/// VmRSS of a process in KiB, from /proc/PID/status.
func residentKiB(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
    }
    return nil
}

/// utime + stime of a process in seconds, from /proc/PID/stat.
func processCPUSeconds(pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Raises RLIMIT_NOFILE to its hard limit; returns the soft limit in force.
@discardableResult
func raiseFileLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
    return Int(limit.rlim_cur)
}

func sleepSeconds(_ seconds: Double) {
    guard seconds > 0 else { return }
    usleep(UInt32(min(seconds, 4000) * 1_000_000))
}

func monotonicSeconds() -> Double { Double(nowNanos()) / 1e9 }
