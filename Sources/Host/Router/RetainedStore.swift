import MQTT
import NIOConcurrencyHelpers

/// Retained messages by topic, as a tree of topic levels so that a wildcard subscription finds its matches
/// without scanning every retained message.
///
/// The tree is a value (nodes are structs) behind one lock: `set` changes it in place, `matching` reads it.
final class RetainedStore: Sendable {
    private struct Node: Sendable {
        var children: [Substring: Node] = [:]
        var message: Message?
    }

    private struct Tree: Sendable {
        var root = Node()
        var count = 0
    }

    private let tree = NIOLockedValueBox(Tree())

    /// Retained messages now.
    var messageCount: Int { tree.withLockedValue { $0.count } }

    /// Retained messages now outside `$` topics (`$SYS`: the broker's own, published again after a restart).
    var clientMessageCount: Int {
        tree.withLockedValue { tree in
            tree.count - tree.root.children.filter { $0.key.hasPrefix("$") }.reduce(0) { $0 + Self.count($1.value) }
        }
    }

    private static func count(_ node: Node) -> Int {
        node.children.values.reduce(node.message == nil ? 0 : 1) { $0 + count($1) }
    }

    /// Stores `message` for its topic, or deletes the topic's retained message when the payload is empty.
    func set(_ message: Message) {
        let levels = message.topic.split(separator: "/", omittingEmptySubsequences: false)
        if message.payload.readableBytes == 0 {
            tree.withLockedValue { tree in
                if Self.remove(at: levels[...], below: &tree.root) { tree.count -= 1 }
            }
            return
        }
        let stored = message.detachedPayload()
        tree.withLockedValue { tree in
            if Self.insert(stored, at: levels[...], below: &tree.root) { tree.count += 1 }
        }
    }

    /// Puts `message` at `levels` below `node`, making the levels missing; true when the topic had none.
    private static func insert(_ message: Message, at levels: ArraySlice<Substring>, below node: inout Node) -> Bool {
        guard let level = levels.first else {
            defer { node.message = message }
            return node.message == nil
        }
        return insert(message, at: levels.dropFirst(), below: &node.children[level, default: Node()])
    }

    /// Deletes the message at `levels` below `node` and the levels left empty; true when there was one.
    private static func remove(at levels: ArraySlice<Substring>, below node: inout Node) -> Bool {
        guard let level = levels.first else {
            defer { node.message = nil }
            return node.message != nil
        }
        guard node.children[level] != nil else { return false }
        let removed = remove(at: levels.dropFirst(), below: &node.children[level]!)
        if let child = node.children[level], child.message == nil, child.children.isEmpty {
            node.children[level] = nil
        }
        return removed
    }

    /// Retained messages whose topic matches `filter`.
    func matching(_ filter: String) -> [Message] {
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        return tree.withLockedValue { tree in
            var out: [Message] = []
            Self.collect(tree.root, levels[...], depth: 0, into: &out)
            return out
        }
    }

    private static func collect(_ node: Node, _ levels: ArraySlice<Substring>, depth: Int, into out: inout [Message]) {
        guard let level = levels.first else {
            if let message = node.message { out.append(message) }
            return
        }
        switch level {
        case "#":
            // Matches this level's parent too ("a/#" matches "a"), and everything below.
            if depth > 0, let message = node.message { out.append(message) }
            everything(below: node, topLevel: depth == 0, into: &out)
        case "+":
            for (name, child) in node.children where !(depth == 0 && name.hasPrefix("$")) {
                collect(child, levels.dropFirst(), depth: depth + 1, into: &out)
            }
        default:
            if let child = node.children[level] {
                collect(child, levels.dropFirst(), depth: depth + 1, into: &out)
            }
        }
    }

    private static func everything(below node: Node, topLevel: Bool, into out: inout [Message]) {
        for (name, child) in node.children where !(topLevel && name.hasPrefix("$")) {
            if let message = child.message { out.append(message) }
            everything(below: child, topLevel: false, into: &out)
        }
    }
}
