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

/// Decides whether some topic name matches every filter of one list and none of another.
///
/// Topic levels are arbitrary strings, so the search only has to try, at each level, the literals the filters
/// name there and one "fresh" value none of them names; and at each depth whether the topic ends there. The
/// depth is bounded by the longest filter, so the search ends; `budget` bounds its steps, and when it runs out
/// the answer is `true` (the caller treats "some topic exists" as the permissive side).
enum TopicSearch {
    static let defaultBudget = 20_000

    typealias Levels = ArraySlice<FilterLevel>

    static func exists(all positive: [Levels], none negative: [Levels], budget: inout Int) -> Bool {
        exists(positive, negative, depth: 0, emptySoFar: true, budget: &budget)
    }

    /// `emptySoFar`: the levels chosen so far spell the empty string, which is not a topic name.
    private static func exists(_ positive: [Levels], _ negative: [Levels], depth: Int, emptySoFar: Bool,
                               budget: inout Int) -> Bool {
        budget -= 1
        if budget < 0 { return true }

        // The topic ends here.
        if !emptySoFar {
            let positiveEnds = positive.allSatisfy { $0.isEmpty || ($0.count == 1 && $0.first == .hash) }
            let negativeEnds = negative.contains { $0.isEmpty || $0.first == .hash }
            if positiveEnds && !negativeEnds { return true }
        }

        // The topic has another level: every positive filter must have one.
        if positive.contains(where: { $0.isEmpty }) { return false }

        var forced: [UInt8]? = nil
        for levels in positive {
            if case .literal(let bytes) = levels.first! {
                if let other = forced, other != bytes { return false }
                forced = bytes
            }
        }
        var candidates: [[UInt8]?] = []
        if let forced {
            candidates.append(forced)
        } else {
            for levels in negative {
                if case .literal(let bytes)? = levels.first, !candidates.contains(bytes) { candidates.append(bytes) }
            }
            candidates.append(nil)  // a value no filter names here
        }

        candidateLoop: for value in candidates {
            // A leading wildcard does not match a first level starting with `$`.
            let dollar = depth == 0 && value?.first == UInt8(ascii: "$")
            var nextPositive: [Levels] = []
            nextPositive.reserveCapacity(positive.count)
            for levels in positive {
                switch levels.first! {
                case .hash:
                    if dollar { continue candidateLoop }
                    // Satisfied by whatever follows.
                case .plus:
                    if dollar { continue candidateLoop }
                    nextPositive.append(levels.dropFirst())
                case .literal(let bytes):
                    if bytes != value { continue candidateLoop }
                    nextPositive.append(levels.dropFirst())
                }
            }
            var nextNegative: [Levels] = []
            for levels in negative {
                guard let first = levels.first else { continue }  // wants the topic to end here
                switch first {
                case .hash:
                    if !dollar { continue candidateLoop }  // would match any such topic
                case .plus:
                    if !dollar { nextNegative.append(levels.dropFirst()) }
                case .literal(let bytes):
                    if bytes == value { nextNegative.append(levels.dropFirst()) }
                }
            }
            let empty = depth == 0 && value == []
            if exists(nextPositive, nextNegative, depth: depth + 1, emptySoFar: empty, budget: &budget) {
                return true
            }
        }
        return false
    }
}
