/// Rules for topic names (what PUBLISH carries) and topic filters (what SUBSCRIBE carries).
public enum Topic {
    /// A topic name: at least one character, no `+` or `#`.
    public static func isValidName(_ topic: String) -> Bool {
        guard !topic.isEmpty else { return false }
        let isWildcard = { (byte: UInt8) in byte == UInt8(ascii: "+") || byte == UInt8(ascii: "#") }
        // Over the contiguous UTF-8 of a native string (every PUBLISH's topic) a tight loop; String.UTF8View's
        // own iterator costs several times as much per byte.
        if let found = topic.utf8.withContiguousStorageIfAvailable({ $0.contains(where: isWildcard) }) {
            return !found
        }
        return !topic.utf8.contains(where: isWildcard)
    }

    /// Most `/` separators a topic name or filter may have (Mosquitto's `TOPIC_HIERARCHY_LIMIT`): 200, so
    /// 201 levels are accepted and more are refused, exactly as Mosquitto counts.
    public static let maximumSeparators = 200

    /// Whether `topic` has more than `maximumSeparators` separators. Only long topics are counted: a topic
    /// of 200 bytes or less cannot have 201.
    @inline(__always)
    public static func hasTooManyLevels(_ topic: String) -> Bool {
        guard topic.utf8.count > maximumSeparators else { return false }
        var separators = 0
        for byte in topic.utf8 where byte == UInt8(ascii: "/") { separators += 1 }
        return separators > maximumSeparators
    }

    /// A topic filter: at least one character; `+` only as a whole level; `#` only as the whole last level.
    public static func isValidFilter(_ filter: String) -> Bool {
        let bytes = Array(filter.utf8)
        guard !bytes.isEmpty else { return false }
        let plus = UInt8(ascii: "+"), hash = UInt8(ascii: "#"), slash = UInt8(ascii: "/")
        for (index, byte) in bytes.enumerated() {
            if byte == plus || byte == hash {
                if index > 0 && bytes[index - 1] != slash { return false }
                if index + 1 < bytes.count && bytes[index + 1] != slash { return false }
                if byte == hash && index != bytes.count - 1 { return false }
            }
        }
        return true
    }

    /// Splits `$share/GROUP/FILTER` into its group and filter. Returns nil for a filter that is not shared;
    /// throws `MQTTError.protocolError` for a malformed shared filter.
    public static func parseShared(_ filter: String) -> (group: String, filter: String)?? {
        guard filter.hasPrefix("$share/") else { return .some(nil) }
        let rest = filter.dropFirst("$share/".count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let group = rest[rest.startIndex..<slash]
        let inner = rest[rest.index(after: slash)...]
        guard !group.isEmpty, !group.contains("+"), !group.contains("#"), !inner.isEmpty,
              isValidFilter(String(inner)) else { return nil }
        return .some((String(group), String(inner)))
    }

    /// Whether `filter` has a wildcard.
    public static func hasWildcard(_ filter: String) -> Bool {
        filter.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") })
    }

    /// Whether a (non-shared) filter matches a topic name, with MQTT's rule that a leading wildcard does not
    /// match a topic starting with `$`.
    public static func matches(filter: String, topic: String) -> Bool {
        let f = filter.split(separator: "/", omittingEmptySubsequences: false)
        let t = topic.split(separator: "/", omittingEmptySubsequences: false)
        if topic.hasPrefix("$"), let first = f.first, first == "+" || first == "#" { return false }
        var i = 0
        while i < f.count {
            if f[i] == "#" { return true }
            guard i < t.count else { return false }
            if f[i] != "+" && f[i] != t[i] { return false }
            i += 1
        }
        return i == t.count
    }
}
