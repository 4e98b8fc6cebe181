import Foundation
import Logging

extension MidgeLogHandler {
    /// One `log_format json` line: `{"time":…,"level":…,"logger":…,"message":…,"metadata":{…}}` and a newline.
    /// `time` is RFC 3339 in UTC with milliseconds; `metadata` is left out when empty. Keys keep this order.
    /// The message is cut (as escaped, at a whole character) so that the line takes at most `lineLimit` bytes;
    /// the metadata is never cut (Midge's own is a few short values).
    static func jsonLine(time: Date, level: Logger.Level, label: String, message: String,
                         metadata: Logger.Metadata) -> String {
        var line = "{\"time\":\"\(rfc3339(time))\",\"level\":\"\(level.rawValue)\",\"logger\":"
        appendJSONString(label, to: &line)
        line += ",\"message\":"
        var rest = ""
        if !metadata.isEmpty {
            rest += ",\"metadata\":"
            appendJSON(.dictionary(metadata), to: &rest)
        }
        rest += "}\n"
        // The message's two quotes are part of what it takes.
        let budget = lineLimit - line.utf8.count - rest.utf8.count - 2
        appendJSONString(message, to: &line, budget: budget)
        line += rest
        return line
    }

    /// `2024-05-01T12:34:56.789Z`: UTC, to the nearest millisecond.
    static func rfc3339(_ date: Date) -> String {
        let total = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(total / 1000)
        let milliseconds = Int(total % 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
    }

    private static func appendJSON(_ value: Logger.MetadataValue, to line: inout String) {
        switch value {
        case .string(let text):
            appendJSONString(text, to: &line)
        case .stringConvertible(let convertible):
            appendJSONString(convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                appendJSON(element, to: &line)
            }
            line += "]"
        case .dictionary(let entries):
            line += "{"
            for (index, key) in entries.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                appendJSONString(key, to: &line)
                line += ":"
                appendJSON(entries[key]!, to: &line)
            }
            line += "}"
        }
    }

    /// `text` as a JSON string literal: quotes, backslashes and control characters escaped, the rest as is.
    /// With a `budget`, the scalars whose escaped form would take the literal's content past that many bytes
    /// are left out (the quotes are not counted).
    private static func appendJSONString(_ text: String, to line: inout String, budget: Int = .max) {
        line += "\""
        var left = budget
        for scalar in text.unicodeScalars {
            let escaped: String?
            switch scalar {
            case "\"": escaped = "\\\""
            case "\\": escaped = "\\\\"
            case "\n": escaped = "\\n"
            case "\r": escaped = "\\r"
            case "\t": escaped = "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                escaped = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                escaped = nil
            }
            let size = escaped?.utf8.count ?? UTF8.width(scalar)
            if size > left { break }
            left -= size
            if let escaped { line += escaped } else { line.unicodeScalars.append(scalar) }
        }
        line += "\""
    }
}
