/// How log lines are written (`log_format`, Midge only).
public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    /// Mosquitto's lines: `SECONDS: message` (the default).
    case text
    /// One JSON object per line, for log collectors: `time` (RFC 3339, UTC, milliseconds), `level`,
    /// `logger`, `message`, and `metadata` when there is any.
    case json
}
