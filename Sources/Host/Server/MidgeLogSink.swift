import Foundation
import NIOConcurrencyHelpers

extension MidgeLogHandler {
    /// Where lines go; shared by every logger of the process.
    ///
    /// With a buffer (`log_buffer_size`, 1 MiB by default) a line is queued and a thread of the sink's own
    /// writes it, so that a slow destination (a full pipe nobody reads, a stalled disk) never stalls the
    /// event loop that logged it. A line that does not fit in the buffer is dropped and counted
    /// (`droppedLines`, `midge_log_lines_dropped_total`); once the buffer drains, one warning says how many
    /// were dropped. Without a buffer (`log_buffer_size 0`) lines are written by the thread that logs them,
    /// as Mosquitto does: nothing is dropped, and a destination that blocks blocks the broker.
    final class Sink: @unchecked Sendable {  // the mutable state below is only touched under `condition`
        let timestamps: Bool
        let format: LogFormat
        /// The most bytes waiting to be written; 0 = written at once by the caller.
        let bufferBytes: Int
        private let handles: [FileHandle]
        private let condition = NSCondition()
        private var pending: [Data] = []
        private var pendingBytes = 0
        /// Lines dropped since the last warning about them.
        private var unreported = 0
        private var dropped = 0
        /// The writer thread holds a batch it has not finished writing.
        private var writing = false
        private var started = false

        init(handles: [FileHandle], timestamps: Bool, format: LogFormat = .text, bufferBytes: Int = 0) {
            self.handles = handles
            self.timestamps = timestamps
            self.format = format
            self.bufferBytes = bufferBytes
        }

        /// Lines dropped since start because the buffer was full.
        var droppedLines: Int {
            condition.lock()
            defer { condition.unlock() }
            return dropped
        }

        func write(_ line: String) {
            let data = Data(line.utf8)
            condition.lock()
            guard bufferBytes > 0 else {
                // Under the lock, so that lines from several threads stay whole.
                for handle in handles { try? handle.write(contentsOf: data) }
                condition.unlock()
                return
            }
            if pendingBytes + data.count > bufferBytes {
                dropped += 1
                unreported += 1
                startIfNeeded()  // to say so
                condition.signal()
                condition.unlock()
                return
            }
            pending.append(data)
            pendingBytes += data.count
            startIfNeeded()
            condition.signal()
            condition.unlock()
        }

        /// Starts the writer thread on the first line (after `-d` forked: a thread started before would not
        /// survive the fork). Called under the lock.
        private func startIfNeeded() {
            if !started {
                started = true
                let thread = Thread { [self] in drain() }
                thread.name = "midge-log"
                thread.start()
            }
        }

        /// Waits until every queued line is written, or `timeout` seconds passed (a destination that never
        /// takes the lines must not keep the process from exiting); true when all were written.
        @discardableResult
        func flush(timeout: TimeInterval) -> Bool {
            let deadline = Date(timeIntervalSinceNow: timeout)
            condition.lock()
            defer { condition.unlock() }
            while !pending.isEmpty || writing || unreported > 0 {
                if !condition.wait(until: deadline) { return false }
            }
            return true
        }

        /// The writer thread: takes everything queued, writes it with one call per destination, and says how
        /// many lines were dropped since the last time it said so.
        private func drain() {
            while true {
                condition.lock()
                while pending.isEmpty && unreported == 0 { condition.wait() }
                let batch = pending
                pending = []
                pendingBytes = 0
                let lost = unreported
                unreported = 0
                writing = true
                condition.unlock()

                var data = Data(capacity: batch.reduce(0) { $0 + $1.count })
                for line in batch { data.append(line) }
                if lost > 0 { data.append(Data(droppedLine(lost).utf8)) }
                for handle in handles { try? handle.write(contentsOf: data) }

                condition.lock()
                writing = false
                condition.broadcast()
                condition.unlock()
            }
        }

        /// The warning about `count` dropped lines, in the sink's format.
        func droppedLine(_ count: Int) -> String {
            let message = "\(count) log line\(count == 1 ? "" : "s") dropped: the log destination did not keep up "
                + "(log_buffer_size)."
            if format == .json {
                return MidgeLogHandler.jsonLine(time: Date(), level: .warning, label: "midge", message: message,
                                                metadata: [:])
            }
            return (timestamps ? "\(Int(Date().timeIntervalSince1970)): " : "") + "Warning: \(message)\n"
        }

        /// The sink `midge` logs through, once `MidgeCommand.makeLogger` set it up: for its drop count in the
        /// statistics, and to be flushed before the process exits.
        static let installed = NIOLockedValueBox<Sink?>(nil)
    }
}
