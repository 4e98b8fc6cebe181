import MQTT
import NIOConcurrencyHelpers

/// One session that receives a message, with its matching subscriptions merged: a client whose several
/// subscriptions match gets the message once, at the highest of their QoS, with every subscription identifier
/// (as Mosquitto does).
struct Target {
    var session: Session
    var options: SubscriptionOptions
    var identifiers: [Int]
    /// The share group the session was picked from, for a shared subscription.
    var shareGroup: ShareGroup?

    init(session: Session, subscription: Subscription, shareGroup: ShareGroup? = nil) {
        self.session = session
        self.options = subscription.options
        self.identifiers = subscription.identifier.map { [$0] } ?? []
        self.shareGroup = shareGroup
    }
}

/// Who receives a message: plain subscribers, and share groups of which one member gets it.
struct MatchResult {
    var subscribers: [Target] = []
    var groups: [ShareGroup] = []
    var isEmpty: Bool { subscribers.isEmpty && groups.isEmpty }
}

/// The members of one `$share/GROUP/FILTER`; picks members round robin.
final class ShareGroup: Sendable {
    let name: String
    let filter: String
    private struct Members {
        var list: [(session: Session, subscription: Subscription)] = []
        var next = 0
    }
    private let members = NIOLockedValueBox(Members())

    init(name: String, filter: String) {
        self.name = name
        self.filter = filter
    }

    var isEmpty: Bool { members.withLockedValue { $0.list.isEmpty } }

    /// Adds or replaces a member; returns whether it is new.
    @discardableResult
    func add(_ session: Session, _ subscription: Subscription) -> Bool {
        members.withLockedValue { members in
            if let i = members.list.firstIndex(where: { $0.session === session }) {
                members.list[i] = (session, subscription)
                return false
            }
            members.list.append((session, subscription))
            return true
        }
    }

    @discardableResult
    func remove(_ session: Session) -> Bool {
        members.withLockedValue { members in
            guard let i = members.list.firstIndex(where: { $0.session === session }) else { return false }
            members.list.remove(at: i)
            return true
        }
    }

    /// The next member, preferring connected ones.
    func pick() -> (session: Session, subscription: Subscription)? {
        members.withLockedValue { members in
            let count = members.list.count
            guard count > 0 else { return nil }
            for offset in 0..<count {
                let candidate = members.list[(members.next + offset) % count]
                if candidate.session.isConnected {
                    members.next = (members.next + offset + 1) % count
                    return candidate
                }
            }
            let candidate = members.list[members.next % count]
            members.next = (members.next + 1) % count
            return candidate
        }
    }
}

/// Subscriptions by topic filter, as a tree of topic levels. Reads (every PUBLISH) take the lock once and are
/// served from a cache of topic -> result that any change clears; writes (SUBSCRIBE, UNSUBSCRIBE) are rare.
///
/// The tree and the cache are one value inside the lock's box (nodes are structs), changed in place through the
/// box's pointer: matching pays no dynamic exclusivity checks.
final class SubscriptionIndex: Sendable {
    private struct Node {
        var children: [Substring: Node] = [:]
        var subscribers: [ObjectIdentifier: (session: Session, subscription: Subscription)] = [:]
        var groups: [String: ShareGroup] = [:]
        var isEmpty: Bool { children.isEmpty && subscribers.isEmpty && groups.isEmpty }

        /// Runs `body` on the node at `levels` below this one, made when missing if `create`; nil when it is
        /// missing. With `prune`, children left empty afterwards are removed on the way back.
        mutating func withNode<T>(at levels: ArraySlice<Substring>, create: Bool, prune: Bool = false,
                                  _ body: (inout Node) -> T) -> T? {
            guard let level = levels.first else { return body(&self) }
            let result: T?
            if create {
                result = children[level, default: Node()].withNode(at: levels.dropFirst(), create: true,
                                                                   prune: prune, body)
            } else {
                guard children[level] != nil else { return nil }
                result = children[level]!.withNode(at: levels.dropFirst(), create: false, prune: prune, body)
            }
            if prune, children[level]?.isEmpty == true { children[level] = nil }
            return result
        }
    }

    private struct State {
        var root = Node()
        var cache: [String: MatchResult] = [:]
        /// What the cached results hold, estimated in bytes (`cacheCost`).
        var cacheBytes = 0
        var count = 0

        mutating func clearCache() {
            cache.removeAll(keepingCapacity: true)
            cacheBytes = 0
        }
    }

    private let state = NIOLockedValueBox(State())
    /// The cache holds at most this many topics, and results of at most `cacheByteLimit` bytes in all (a topic
    /// that many sessions match costs a target each); a result larger than a sixteenth of it is not cached.
    private let cacheLimit = 4096
    static let cacheByteLimit = 4 << 20

    /// The estimated bytes one cached result holds: its topic, the entry, and one target per subscriber.
    static func cacheCost(_ topic: String, _ result: MatchResult) -> Int {
        64 + topic.utf8.count + result.subscribers.count * MemoryLayout<Target>.stride
            + result.subscribers.reduce(0) { $0 + $1.identifiers.count * 8 } + result.groups.count * 8
    }

    /// Topics and estimated bytes in the match cache now.
    var cacheUse: (topics: Int, bytes: Int) { state.withLockedValue { ($0.cache.count, $0.cacheBytes) } }

    /// Subscriptions now; each member of a shared subscription counts once.
    var subscriptionCount: Int { state.withLockedValue { $0.count } }

    /// Adds or replaces a session's subscription.
    func add(_ session: Session, _ subscription: Subscription) {
        let levels = subscription.filter.split(separator: "/", omittingEmptySubsequences: false)
        state.withLockedValue { state in
            let added = state.root.withNode(at: levels[...], create: true) { node -> Bool in
                if let group = subscription.group {
                    let shareGroup = node.groups[group] ?? ShareGroup(name: group, filter: subscription.filter)
                    node.groups[group] = shareGroup
                    return shareGroup.add(session, subscription)
                }
                return node.subscribers.updateValue((session, subscription), forKey: ObjectIdentifier(session)) == nil
            }
            if added == true { state.count += 1 }
            state.clearCache()
        }
    }

    /// Removes a session's subscription; returns whether it existed.
    @discardableResult
    func remove(_ session: Session, _ subscription: Subscription) -> Bool {
        let levels = subscription.filter.split(separator: "/", omittingEmptySubsequences: false)
        return state.withLockedValue { state in
            let removed = state.root.withNode(at: levels[...], create: false, prune: true) { node -> Bool in
                if let group = subscription.group, let shareGroup = node.groups[group] {
                    let removed = shareGroup.remove(session)
                    if shareGroup.isEmpty { node.groups[group] = nil }
                    return removed
                }
                return node.subscribers.removeValue(forKey: ObjectIdentifier(session)) != nil
            } ?? false
            if removed {
                state.count -= 1
                state.clearCache()
            }
            return removed
        }
    }

    /// Every subscription matching a topic name.
    func match(_ topic: String) -> MatchResult {
        state.withLockedValue { state in
            if let hit = state.cache[topic] { return hit }
            var result = MatchResult()
            let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
            Self.collect(state.root, levels[...], dollar: topic.utf8.first == UInt8(ascii: "$"), into: &result)
            if result.subscribers.count > 1 { Self.merge(&result) }
            let cost = Self.cacheCost(topic, result)
            if cost <= Self.cacheByteLimit / 16 {
                if state.cache.count >= cacheLimit || state.cacheBytes + cost > Self.cacheByteLimit {
                    state.clearCache()
                }
                state.cache[topic] = result
                state.cacheBytes += cost
            }
            return result
        }
    }

    private static func collect(_ node: Node, _ levels: ArraySlice<Substring>, dollar: Bool,
                                into result: inout MatchResult) {
        let wildcardsAllowed = !dollar
        if wildcardsAllowed, let hash = node.children["#"] {
            add(hash, to: &result)
        }
        guard let level = levels.first else {
            add(node, to: &result)
            return
        }
        let rest = levels.dropFirst()
        if let child = node.children[level] {
            collect(child, rest, dollar: false, into: &result)
        }
        if wildcardsAllowed, let plus = node.children["+"] {
            collect(plus, rest, dollar: false, into: &result)
        }
    }

    /// Folds several matching subscriptions of one session into one target.
    private static func merge(_ result: inout MatchResult) {
        var position: [ObjectIdentifier: Int] = [:]
        var merged: [Target] = []
        merged.reserveCapacity(result.subscribers.count)
        for target in result.subscribers {
            let key = ObjectIdentifier(target.session)
            if let index = position[key] {
                merged[index].options.qos = max(merged[index].options.qos, target.options.qos)
                merged[index].options.noLocal = merged[index].options.noLocal && target.options.noLocal
                merged[index].options.retainAsPublished = merged[index].options.retainAsPublished
                    || target.options.retainAsPublished
                merged[index].identifiers += target.identifiers
            } else {
                position[key] = merged.count
                merged.append(target)
            }
        }
        result.subscribers = merged
    }

    private static func add(_ node: Node, to result: inout MatchResult) {
        for entry in node.subscribers.values {
            result.subscribers.append(Target(session: entry.session, subscription: entry.subscription))
        }
        for group in node.groups.values { result.groups.append(group) }
    }
}
