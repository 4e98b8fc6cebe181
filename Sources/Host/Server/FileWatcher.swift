import Foundation
import NIOConcurrencyHelpers

/// Polls a set of files and reports when they changed: edited in place, replaced by a new file (a rename, as
/// editors and `midge passwd` write), removed or created, or re-pointed by a symlink swap (Kubernetes mounts a
/// Secret or ConfigMap as `NAME -> ..data/NAME` and updates it by swapping the `..data` symlink at once).
///
/// A file's fingerprint is what `stat` says of the file at the end of its symlinks (device, inode, size,
/// modification and change times), so every one of those changes shows. A change is reported once the files
/// have stayed the same for one more interval, so a file still being written (copied in place, say) is not
/// read half-way.
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
    let interval: Duration
    /// The fingerprints changes are measured against: taken at creation, so a change between loading the
    /// files and `start()` is not missed.
    private let baseline: Snapshot
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    init(paths: [String], interval: Duration) {
        var seen = Set<String>()
        self.paths = paths.filter { seen.insert($0).inserted }
        self.interval = interval
        var now: Snapshot = [:]
        for path in self.paths { now[path] = Self.fingerprint(path) }
        baseline = now
    }

    /// The fingerprint of every watched file now.
    func snapshot() -> Snapshot {
        var result: Snapshot = [:]
        for path in paths { result[path] = Self.fingerprint(path) }
        return result
    }

    static func fingerprint(_ path: String) -> Fingerprint? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Fingerprint(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                           modified: [info.st_mtim.tv_sec, info.st_mtim.tv_nsec],
                           changed: [info.st_ctim.tv_sec, info.st_ctim.tv_nsec])
    }

    /// Starts polling; `changed` gets the paths that changed (and stayed the same for one more interval)
    /// and is awaited before polling goes on.
    func start(changed: @escaping @Sendable ([String]) async -> Void) {
        guard !paths.isEmpty else { return }
        let interval = self.interval
        let started = Task { [self] in
            var settled = baseline
            var pending: Snapshot?
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                let now = snapshot()
                if let candidate = pending, candidate == now {
                    let paths = self.paths.filter { settled[$0] != now[$0] }
                    settled = now
                    pending = nil
                    await changed(paths)
                } else {
                    pending = now == settled ? nil : now
                }
            }
        }
        task.withLockedValue { $0 = started }
    }

    func stop() {
        task.withLockedValue { $0?.cancel(); $0 = nil }
    }
}
