import Foundation
import Logging
import NIOConcurrencyHelpers

/// Writes log lines as Mosquitto does (`SECONDS: message`), or as JSON objects under `log_format json`, to the
/// destinations `log_dest` names, for the types `log_type` enables.
struct MidgeLogHandler: LogHandler {
    let sink: Sink
    let enabled: Set<Logger.Level>
    /// The logger's label (`midge`, `midge.plugin.NAME`, ...): the `logger` field of JSON lines.
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level

    init(label: String = "midge", sink: Sink, enabled: Set<Logger.Level>) {
        self.label = label
        self.sink = sink
        self.enabled = enabled
        self.logLevel = enabled.min() ?? .critical
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let (level, message, metadata) = (event.level, event.message, event.metadata)
        guard enabled.contains(level) else { return }
        if sink.format == .json {
            var merged = self.metadata
            if let metadata { merged.merge(metadata) { $1 } }
            sink.write(Self.jsonLine(time: Date(), level: level, label: label, message: message.description,
                                     metadata: merged))
            return
        }
        var text = sink.timestamps ? "\(Int(Date().timeIntervalSince1970)): " : ""
        if level <= .warning && level >= .warning {
            text += "Warning: "
        } else if level >= .error {
            text += "Error: "
        }
        text += message.description
        Self.cut(&text, toBytes: Self.lineLimit - 1)
        text += "\n"
        sink.write(text)
    }

    /// The most bytes a line takes, its newline included: Mosquitto formats each line into a
    /// `char log_line[1000]` (`log__vprintf`), so a text line holds at most 999 bytes before its newline,
    /// timestamp and `Warning: ` included, and the rest is cut (a 65,535-byte topic is not written whole).
    /// A JSON line is cut in its message so that the whole object fits too.
    static let lineLimit = 1000

    /// Cuts `text` to at most `limit` bytes of UTF-8, at the start of a Unicode scalar (Mosquitto cuts at the
    /// byte, even inside a character; a cut line here stays valid UTF-8, and is the same for ASCII).
    static func cut(_ text: inout String, toBytes limit: Int) {
        let utf8 = text.utf8
        guard utf8.count > limit else { return }
        var end = utf8.index(utf8.startIndex, offsetBy: max(0, limit))
        while end > utf8.startIndex && UTF8.isContinuation(utf8[end]) { end = utf8.index(before: end) }
        text = String(text.unicodeScalars[..<end])
    }

    /// The swift-log levels Mosquitto's `log_type` names enable.
    static func levels(for types: [String], verbose: Bool) -> Set<Logger.Level> {
        if verbose { return Set(Logger.Level.allCases) }
        var levels: Set<Logger.Level> = [.critical]
        for type in types {
            switch type {
            case "error": levels.insert(.error)
            case "warning": levels.insert(.warning)
            case "notice": levels.insert(.notice)
            case "information": levels.insert(.info)
            case "debug", "subscribe", "unsubscribe", "websockets", "internal": levels.insert(.debug)
            case "all": levels.formUnion(Logger.Level.allCases)
            default: break
            }
        }
        return levels
    }
}
