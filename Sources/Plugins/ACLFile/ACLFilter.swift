import MQTT

/// One level of a pre-split topic filter.
enum FilterLevel: Hashable, Sendable {
    case literal([UInt8])
    case plus
    case hash
}

/// A topic filter split into levels once, so that matching a topic name needs no allocation.
///
/// Matching follows Mosquitto's `mosquitto_topic_matches_sub`: MQTT matching (`+` one level, `#` the rest
/// including the parent level, so `a/#` matches `a`), and a filter starting with `$` matches only topics
/// starting with `$` and the other way round (so `#` and `+/x` never match `$SYS/x`).
struct ACLFilter: Hashable, Sendable, CustomStringConvertible {
    let text: String
    let levels: [FilterLevel]
    let startsWithDollar: Bool

    /// `text` must be a valid filter (`Topic.isValidFilter`); `+` and `#` are wildcards only as whole levels.
    init(_ text: String) {
        self.text = text
        var levels: [FilterLevel] = []
        for part in text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if part.count == 1 && part.first == UInt8(ascii: "+") {
                levels.append(.plus)
            } else if part.count == 1 && part.first == UInt8(ascii: "#") {
                levels.append(.hash)
            } else {
                levels.append(.literal(Array(part)))
            }
        }
        self.levels = levels
        self.startsWithDollar = text.utf8.first == UInt8(ascii: "$")
    }

    var description: String { text }

    /// Whether the topic name matches this filter.
    func matches(topic: String) -> Bool {
        if let result = topic.utf8.withContiguousStorageIfAvailable({ matches($0) }) { return result }
        return Array(topic.utf8).withUnsafeBufferPointer { matches($0) }
    }

    /// Whether the topic name (UTF-8 bytes) matches this filter.
    func matches(_ topic: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = topic.first else { return false }
        if (first == UInt8(ascii: "$")) != startsWithDollar { return false }
        let slash = UInt8(ascii: "/")
        let count = topic.count
        var start = 0
        var index = 0
        let levelCount = levels.count
        while index < levelCount {
            var end = start
            switch levels[index] {
            case .hash:
                return true
            case .plus:
                while end < count && topic[end] != slash { end += 1 }
            case .literal(let bytes):
                var k = 0
                let n = bytes.count
                while end < count && topic[end] != slash {
                    if k >= n || bytes[k] != topic[end] { return false }
                    k += 1
                    end += 1
                }
                if k != n { return false }
            }
            index += 1
            if end == count {
                // The topic has no more levels: what is left of the filter must be nothing or `#`.
                return index == levelCount || (index == levelCount - 1 && levels[index] == .hash)
            }
            start = end + 1
        }
        return false
    }

    /// Whether some topic name matches both filters.
    static func overlap(_ a: ACLFilter, _ b: ACLFilter) -> Bool {
        var budget = TopicSearch.defaultBudget
        return TopicSearch.exists(all: [a.levels[...], b.levels[...]], none: [], budget: &budget)
    }
}

extension FilterLevel: TopicFilterLevel {
    var isMultiLevelWildcard: Bool { self == .hash }
    var isSingleLevelWildcard: Bool { self == .plus }
    var startsWithDollar: Bool {
        if case .literal(let bytes) = self { return bytes.first == UInt8(ascii: "$") }
        return false
    }
    var isEmptyLevel: Bool { self == .literal([]) }
}

/// The MQTT module's `TopicFilterSearch` over pre-split ACL filters.
enum TopicSearch {
    static let defaultBudget = TopicFilterSearch.defaultBudget

    typealias Levels = ArraySlice<FilterLevel>

    static func exists(all positive: [Levels], none negative: [Levels], budget: inout Int) -> Bool {
        TopicFilterSearch.exists(all: positive, none: negative, budget: &budget)
    }
}
