import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Counts failures of one kind (a plugin's calls that threw or missed their deadline) and logs them without
/// flooding the log: the first failure of each key (a plugin and what it was asked) is logged, then at most one
/// line per `interval` for that key, saying how many more there were meanwhile. A hook failing on every
/// PUBLISH writes a line a minute, not a line a message; `count` has them all (for `/metrics`).
final class FailureLog: Sendable {
    private struct State {
        var count = 0
        /// When each key was last logged, and how many of its failures were not logged since.
        var keys: [String: (logged: NIODeadline, unlogged: Int)] = [:]
    }

    private let state = NIOLockedValueBox(State())
    let interval: TimeAmount
    /// The most keys remembered; past it, they are forgotten (each then logs once more).
    static let maximumKeys = 1024

    init(interval: TimeAmount = .seconds(60)) {
        self.interval = interval
    }

    /// Failures recorded since start.
    var count: Int { state.withLockedValue { $0.count } }

    /// Counts one failure of `key`; logs `message` (with how many went unlogged since the last line) when
    /// this key was not logged within `interval`.
    func record(_ key: String, logger: Logger, level: Logger.Level = .error, now: NIODeadline = .now(),
                _ message: @autoclosure () -> String) {
        let unlogged: Int? = state.withLockedValue { state in
            state.count += 1
            if let entry = state.keys[key], now - entry.logged < interval {
                state.keys[key]?.unlogged += 1
                return nil
            }
            if state.keys.count >= Self.maximumKeys { state.keys = [:] }
            let before = state.keys[key]?.unlogged ?? 0
            state.keys[key] = (now, 0)
            return before
        }
        guard let unlogged else { return }
        let more = unlogged > 0 ? " (\(unlogged) more like it since the last such line, not logged one by one)" : ""
        logger.log(level: level, "\(message())\(more)")
    }
}
