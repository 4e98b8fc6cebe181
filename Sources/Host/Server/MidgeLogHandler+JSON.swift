import Foundation
import Logging

extension MidgeLogHandler {
    /// One `log_format json` line: `{"time":…,"level":…,"logger":…,"message":…,"metadata":{…}}` and a newline.
    /// `time` is RFC 3339 in UTC with milliseconds; `metadata` is left out when empty. Keys keep this order.
    static func jsonLine(time: Date, level: Logger.Level, label: String, message: String,
                         metadata: Logger.Metadata) -> String {
        var line = "{\"time\":\"\(rfc3339(time))\",\"level\":\"\(level.rawValue)\",\"logger\":"
        appendJSONString(label, to: &line)
        line += ",\"message\":"
        appendJSONString(message, to: &line)
        if !metadata.isEmpty {
            line += ",\"metadata\":"
            appendJSON(.dictionary(metadata), to: &line)
        }
        line += "}\n"
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
    private static func appendJSONString(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }
}
