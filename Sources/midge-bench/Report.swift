import Foundation

/// A small ordered JSON value, so the machine-readable line keeps its keys in a stable order.
indirect enum JSON {
    case string(String)
    case int(Int)
    case double(Double, Int)
    case bool(Bool)
    case array([JSON])
    case object([(String, JSON)])
    case null

    static func number(_ value: Double?, _ places: Int = 1) -> JSON {
        guard let value, value.isFinite else { return .null }
        return .double(value, places)
    }

    var rendered: String {
        switch self {
        case .string(let s): return JSON.quote(s)
        case .int(let i): return String(i)
        case .double(let d, let places): return String(format: "%.\(places)f", d)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "[" + items.map(\.rendered).joined(separator: ",") + "]"
        case .object(let pairs):
            return "{" + pairs.map { JSON.quote($0.0) + ":" + $0.1.rendered }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// 1234567 -> "1,234,567".
func grouped(_ value: Double) -> String {
    let n = Int(value.rounded())
    let digits = String(abs(n))
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

func fixed(_ value: Double, _ places: Int = 1) -> String { String(format: "%.\(places)f", value) }
