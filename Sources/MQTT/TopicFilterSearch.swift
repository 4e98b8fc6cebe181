/// One level of a topic filter split at `/`, as `TopicFilterSearch` sees it.
public protocol TopicFilterLevel: Hashable {
    /// The level is `#`.
    var isMultiLevelWildcard: Bool { get }
    /// The level is `+`.
    var isSingleLevelWildcard: Bool { get }
    /// A literal level starting with `$` (leading wildcards do not match it).
    var startsWithDollar: Bool { get }
    /// A literal empty level.
    var isEmptyLevel: Bool { get }
}

extension Substring: TopicFilterLevel {
    public var isMultiLevelWildcard: Bool { self == "#" }
    public var isSingleLevelWildcard: Bool { self == "+" }
    public var startsWithDollar: Bool { hasPrefix("$") }
    public var isEmptyLevel: Bool { isEmpty }
}

/// Whether some topic name matches every filter of one list and none of another: the question behind "may
/// this subscription receive anything?" and "do these two filters overlap?" in authorization plugins.
///
/// A topic's levels are arbitrary strings, so at each level it is enough to try the literals the filters name
/// there plus one value none of them names, and at each depth whether the topic ends there; the filters'
/// lengths bound the depth. `budget` bounds the steps; when it runs out the answer is `true` (callers take
/// "some topic exists" as the permissive side, and deliveries are still checked one by one). MQTT's rules hold:
/// `#` also matches the parent level, and a leading wildcard does not match a first level starting with `$`.
public enum TopicFilterSearch {
    /// Enough steps for any realistic ACL.
    public static let defaultBudget = 20_000

    // Inlinable, so that the plugins calling it get it specialized for their level type: generic across the
    // module boundary, every call paid for runtime metadata lookups (70% of an ACL'd SUBSCRIBE, measured).
    @inlinable
    public static func exists<Level: TopicFilterLevel>(all positive: [ArraySlice<Level>],
                                                       none negative: [ArraySlice<Level>],
                                                       budget: inout Int) -> Bool {
        search(positive, negative, depth: 0, emptySoFar: true, budget: &budget)
    }

    /// `emptySoFar`: the levels chosen so far spell "", which is not a topic name.
    @inlinable
    static func search<Level: TopicFilterLevel>(_ positive: [ArraySlice<Level>],
                                                        _ negative: [ArraySlice<Level>], depth: Int,
                                                        emptySoFar: Bool, budget: inout Int) -> Bool {
        budget -= 1
        if budget < 0 { return true }

        // The topic ends here: each positive filter is used up (or has only `#` left, which matches the
        // parent), and no negative one is.
        if !emptySoFar {
            let positiveEnds = positive.allSatisfy {
                $0.isEmpty || ($0.count == 1 && $0.first!.isMultiLevelWildcard)
            }
            let negativeEnds = negative.contains { $0.isEmpty || $0.first!.isMultiLevelWildcard }
            if positiveEnds && !negativeEnds { return true }
        }
        // Or it has another level, which every positive filter needs.
        if positive.contains(where: \.isEmpty) { return false }

        var forced: Level?
        for levels in positive {
            let first = levels.first!
            guard !first.isMultiLevelWildcard && !first.isSingleLevelWildcard else { continue }
            if let other = forced, other != first { return false }
            forced = first
        }
        var candidates: [Level?] = []
        if let forced {
            candidates = [forced]
        } else {
            for levels in negative {
                if let first = levels.first, !first.isMultiLevelWildcard, !first.isSingleLevelWildcard,
                   !candidates.contains(first) {
                    candidates.append(first)
                }
            }
            candidates.append(nil)  // a value no filter names (and not starting with `$`)
        }

        candidateLoop: for value in candidates {
            let dollar = depth == 0 && (value?.startsWithDollar ?? false)
            var nextPositive: [ArraySlice<Level>] = []
            nextPositive.reserveCapacity(positive.count)
            for levels in positive {
                let first = levels.first!
                if first.isMultiLevelWildcard {
                    if dollar { continue candidateLoop }  // otherwise satisfied by whatever follows
                } else if first.isSingleLevelWildcard {
                    if dollar { continue candidateLoop }
                    nextPositive.append(levels.dropFirst())
                } else {
                    if first != value { continue candidateLoop }
                    nextPositive.append(levels.dropFirst())
                }
            }
            var nextNegative: [ArraySlice<Level>] = []
            for levels in negative {
                guard let first = levels.first else { continue }  // it wanted the topic to end here
                if first.isMultiLevelWildcard {
                    if !dollar { continue candidateLoop }  // it matches every such topic
                } else if first.isSingleLevelWildcard {
                    if !dollar { nextNegative.append(levels.dropFirst()) }
                } else if first == value {
                    nextNegative.append(levels.dropFirst())
                }
            }
            let empty = depth == 0 && (value?.isEmptyLevel ?? false)
            if search(nextPositive, nextNegative, depth: depth + 1, emptySoFar: empty, budget: &budget) {
                return true
            }
        }
        return false
    }
}
