import Foundation
import Testing
@testable import Host

@Suite("Log sink: a slow destination never blocks whoever logs")
struct LogSinkTests {
    /// `count` lines of 100 bytes each (newline included), numbered.
    private func lines(_ count: Int) -> [String] {
        (0..<count).map { i in
            let head = "line \(i) "
            return head + String(repeating: "x", count: 99 - head.utf8.count) + "\n"
        }
    }

    @Test("a buffered sink writes every line whole and in order, and flush waits for them")
    func buffered() throws {
        let pipe = TestPipe()
        let sink = MidgeLogHandler.Sink(handles: [pipe.fileHandleForWriting], timestamps: false,
                                        bufferBytes: 1 << 20)
        let all = lines(200)
        for line in all { sink.write(line) }
        #expect(sink.flush(timeout: 10))
        try pipe.fileHandleForWriting.close()
        #expect(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == all.joined())
        #expect(sink.droppedLines == 0)
    }

    @Test("a destination that takes nothing: writes return at once, what does not fit is dropped, counted, and reported once per run of drops")
    func blockedDestination() throws {
        let pipe = TestPipe()  // nobody reads it until the end: 64 KiB, then every write(2) to it blocks
        let sink = MidgeLogHandler.Sink(handles: [pipe.fileHandleForWriting], timestamps: false,
                                        bufferBytes: 10_000)
        let all = lines(2_000)  // 200 KB: more than the pipe and the buffer hold together
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for line in all { sink.write(line) }
            done.signal()
        }
        let returned = done.wait(timeout: .now() + 10) == .success
        #expect(returned, "write blocked on a destination that takes nothing")
        let dropped = sink.droppedLines
        #expect(dropped > 0)
        #expect(dropped < all.count)
        // Read everything from here on: the writer thread goes on, then says what it dropped.
        let text = LockedText()
        DispatchQueue(label: "reader").async {
            text.set(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        }
        #expect(sink.flush(timeout: 10))
        try pipe.fileHandleForWriting.close()
        let output = try #require(text.wait(timeout: 10))
        let written = output.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        // One warning per run of drops (a slow machine may see the writer get room and lose it again, so
        // there can be a few), each after the lines it follows; together they count every dropped line.
        let reports = written.filter { $0.hasPrefix("Warning: ") }
        let reported = reports.compactMap { Int($0.dropFirst("Warning: ".count).split(separator: " ")[0]) }
        #expect(reports.allSatisfy { $0.hasSuffix("log lines dropped: the log destination did not keep up (log_buffer_size).") || $0.hasSuffix("log line dropped: the log destination did not keep up (log_buffer_size).") })
        #expect(reported.reduce(0, +) == dropped)
        #expect(!reports.isEmpty && reports.count <= 10, "reported once per run of drops, not per line")
        // What was written is whole lines, in order: the lines with some left out.
        let kept = written.filter { !$0.hasPrefix("Warning: ") }
        #expect(kept.count + dropped == all.count)
        let numbers = kept.compactMap { Int($0.split(separator: " ")[1]) }
        #expect(numbers == numbers.sorted())
        #expect(kept.allSatisfy { $0.utf8.count == 99 })
    }

    @Test("without a buffer (log_buffer_size 0) lines are written by the caller, as Mosquitto does")
    func unbuffered() throws {
        let pipe = TestPipe()
        let sink = MidgeLogHandler.Sink(handles: [pipe.fileHandleForWriting], timestamps: false, bufferBytes: 0)
        sink.write("one\n")
        try pipe.fileHandleForWriting.close()  // no flush: written already
        #expect(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "one\n")
    }
}

/// A pipe whose ends are closed on exec: a process another test starts meanwhile must not inherit the write
/// end (Foundation's `Pipe` leaves it inheritable), or reading to the end would wait until that process exits,
/// holding one of the few threads every test shares.
struct TestPipe {
    let fileHandleForReading: FileHandle
    let fileHandleForWriting: FileHandle

    init() {
        var fds: [Int32] = [0, 0]
        // pipe2(O_CLOEXEC) is not in Swift's Glibc module: a fork in the instant between these calls could
        // still inherit them, a far smaller window than Pipe's, whose ends stay inheritable.
        precondition(pipe(&fds) == 0, "pipe: errno \(errno)")
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        fileHandleForReading = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        fileHandleForWriting = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
    }
}

/// A string another thread sets once, and a wait for it.
private final class LockedText: @unchecked Sendable {  // `value` is only touched under `condition`
    private let condition = NSCondition()
    private var value: String?

    func set(_ text: String) {
        condition.lock()
        value = text
        condition.broadcast()
        condition.unlock()
    }

    func wait(timeout: TimeInterval) -> String? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while value == nil { if !condition.wait(until: deadline) { break } }
        return value
    }
}
