import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// Polls a set of files and reports when they changed: edited in place, replaced by a new file (a rename, as
/// editors and `midge passwd` write), removed or created, or re-pointed by a symlink swap (Kubernetes mounts a
/// Secret or ConfigMap as `NAME -> ..data/NAME` and updates it by swapping the `..data` symlink at once).
///
/// A file's fingerprint is what `stat` says of the file at the end of its symlinks (device, inode, size,
/// modification and change times), so every one of those changes shows. A change is reported once the files
/// have stayed the same for one more interval, so a file still being written (copied in place, say) is not
/// read half-way. When the answer to a change fails (a broken file, a database busy at that moment), the
/// same files are tried again after each of `retryDelays` (5, 15 and 45 s), then left until they change
/// again.
final class FileWatcher: Sendable {
    /// What `stat` says of one file, or nil when it cannot be read.
    struct Fingerprint: Hashable, Sendable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: [Int]
        var changed: [Int]
    }

    typealias Snapshot = [String: Fingerprint?]

    let paths: [String]
    let interval: TimeAmount
    /// How many times the files were checked (for tests).
    let polls = NIOLockedValueBox(0)
    private let task = NIOLockedValueBox<RepeatedTask?>(nil)
    /// The polling state; touched only on the event loop `start` was given.
    private let state: NIOLockedValueBox<PollState>

    private struct PollState {
        /// The fingerprints changes are measured against: at first those of when the watcher was made (when
        /// the plugins had just loaded the files), so a change before `start()` is not missed.
        var settled: Snapshot
        /// Changed fingerprints waiting one more interval to show they stay.
        var pending: Snapshot?
        /// Whether the answer to the latest change is still running (polls skip meanwhile).
        var busy = false
        /// Files whose change was answered with a failure: tried again at `due` (after `attempts` failures)
        /// while they stay the same.
        var failed: (files: Snapshot, attempts: Int, due: NIODeadline)?
    }

    /// How long to wait before each new try of a change that failed.
    let retryDelays: [TimeAmount]

    init(paths: [String], interval: TimeAmount,
         retryDelays: [TimeAmount] = [.seconds(5), .seconds(15), .seconds(45)]) {
        var seen = Set<String>()
        self.paths = paths.filter { seen.insert($0).inserted }
        self.interval = interval
        self.retryDelays = retryDelays
        state = NIOLockedValueBox(PollState(settled: Self.snapshot(of: self.paths)))
    }

    /// The fingerprint of every watched file now.
    func snapshot() -> Snapshot {
        Self.snapshot(of: paths)
    }

    /// The fingerprint of each of `paths` now.
    static func snapshot(of paths: [String]) -> Snapshot {
        var result: Snapshot = [:]
        for path in paths { result[path] = fingerprint(path) }
        return result
    }

    static func fingerprint(_ path: String) -> Fingerprint? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Fingerprint(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                           modified: [info.st_mtim.tv_sec, info.st_mtim.tv_nsec],
                           changed: [info.st_ctim.tv_sec, info.st_ctim.tv_nsec])
    }

    /// Polls on `loop` (a few `stat` calls each interval: on its own timer, independent of Swift's
    /// cooperative threads). `changed` gets the paths that changed and stayed the same for one more interval;
    /// polling pauses until the future it returns completes, with whether the change was taken in (false:
    /// try again later, see `retryDelays`).
    func start(on loop: any EventLoop, changed: @escaping @Sendable ([String]) -> EventLoopFuture<Bool>) {
        guard !paths.isEmpty else { return }
        let repeated = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            poll(changed: changed)
        }
        task.withLockedValue { $0 = repeated }
    }

    private func poll(changed: @escaping @Sendable ([String]) -> EventLoopFuture<Bool>) {
        guard !state.withLockedValue({ $0.busy }) else { return }
        let now = snapshot()
        polls.withLockedValue { $0 += 1 }
        let report: [String]? = state.withLockedValue { state in
            if let failed = state.failed {
                guard failed.files != now else {
                    // The files a failed change left: tried again when due, otherwise left alone.
                    guard NIODeadline.now() >= failed.due else { return nil }
                    state.busy = true
                    return paths.filter { state.settled[$0] != now[$0] }
                }
                state.failed = nil      // changed again: a change like any other
            }
            if let candidate = state.pending, candidate == now {
                state.pending = nil
                state.busy = true
                return paths.filter { state.settled[$0] != now[$0] }
            }
            state.pending = now == state.settled ? nil : now
            return nil
        }
        guard let report else { return }
        changed(report).whenComplete { [state, retryDelays] result in
            state.withLockedValue { state in
                state.busy = false
                if case .success(true) = result {
                    state.settled = now
                    state.failed = nil
                    return
                }
                let attempts = (state.failed?.files == now ? state.failed!.attempts : 0) + 1
                let due = attempts <= retryDelays.count ? NIODeadline.now() + retryDelays[attempts - 1] : .distantFuture
                state.failed = (now, attempts, due)
            }
        }
    }

    func stop() {
        task.withLockedValue { $0?.cancel(); $0 = nil }
    }
}
