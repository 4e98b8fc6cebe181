import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import Testing
@testable import Host

@Suite("File watcher")
struct FileWatcherTests {
    /// A directory laid out as the kubelet mounts a Secret: `passwd -> ..data/passwd`, `..data -> ..v1`.
    private func kubeletDirectory() throws -> String {
        let top = FileManager.default.temporaryDirectory.appendingPathComponent("midge-watch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: top + "/..v1", withIntermediateDirectories: true)
        try "first\n".write(toFile: top + "/..v1/passwd", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: top + "/..data", withDestinationPath: "..v1")
        try FileManager.default.createSymbolicLink(atPath: top + "/passwd", withDestinationPath: "..data/passwd")
        return top
    }

    /// The kubelet's update: a new hidden directory, then one rename of a new `..data` link over the old one.
    private func swap(_ top: String, to version: String, content: String) throws {
        try FileManager.default.createDirectory(atPath: top + "/" + version, withIntermediateDirectories: true)
        try content.write(toFile: top + "/\(version)/passwd", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: top + "/..data_tmp", withDestinationPath: version)
        #expect(rename(top + "/..data_tmp", top + "/..data") == 0)
    }

    @Test func aDataSymlinkSwapIsReportedOnceSettled() async throws {
        let top = try kubeletDirectory()
        defer { try? FileManager.default.removeItem(atPath: top) }
        let watcher = FileWatcher(paths: [top + "/passwd", top + "/passwd", top + "/missing"],
                                  interval: .milliseconds(20))
        #expect(watcher.paths.count == 2)
        let reports = NIOLockedValueBox<[[String]]>([])
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        watcher.start(on: loop) { changed in
            reports.withLockedValue { $0.append(changed) }
            return loop.makeSucceededFuture(true)
        }
        defer { watcher.stop() }

        // The same size as before: the inode behind the links tells.
        try swap(top, to: "..v2", content: "fifth\n")
        try await eventually("the swap to be reported") { reports.withLockedValue { $0.count } == 1 }
        #expect(reports.withLockedValue { $0 } == [[top + "/passwd"]])

        // Nothing changes: nothing more is reported over five more polls.
        let polled = watcher.polls.withLockedValue { $0 }
        try await eventually("five more polls") { watcher.polls.withLockedValue { $0 } >= polled + 5 }
        #expect(reports.withLockedValue { $0.count } == 1)

        // A file that appears counts as a change too.
        try "now here\n".write(toFile: top + "/missing", atomically: true, encoding: .utf8)
        try await eventually("the new file to be reported") { reports.withLockedValue { $0.count } == 2 }
        #expect(reports.withLockedValue { $0.last } == [top + "/missing"])
    }

    @Test func aFailedChangeIsTriedAgainAFewTimesThenLeftUntilTheFilesChange() async throws {
        let top = try kubeletDirectory()
        defer { try? FileManager.default.removeItem(atPath: top) }
        let watcher = FileWatcher(paths: [top + "/passwd"], interval: .milliseconds(10),
                                  retryDelays: [.milliseconds(30), .milliseconds(30)])
        let reports = NIOLockedValueBox(0)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        watcher.start(on: loop) { _ in
            // The broken files fail (the change and both retries); the fixed ones are taken in.
            let count = reports.withLockedValue { $0 += 1; return $0 }
            return loop.makeSucceededFuture(count > 3)
        }
        defer { watcher.stop() }

        try swap(top, to: "..v2", content: "broken\n")
        // The change, then one try after each of the two delays.
        try await eventually("the change and its two retries") { reports.withLockedValue { $0 } == 3 }
        let polled = watcher.polls.withLockedValue { $0 }
        try await eventually("twenty more polls") { watcher.polls.withLockedValue { $0 } >= polled + 20 }
        #expect(reports.withLockedValue { $0 } == 3, "tried again after the retries ran out")

        // A new change is reported again at once.
        try swap(top, to: "..v3", content: "fixed\n")
        try await eventually("the new change") { reports.withLockedValue { $0 } == 4 }
    }
}
