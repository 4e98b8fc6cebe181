import MQTT
import NIOConcurrencyHelpers

/// Retained messages by topic, as a tree of topic levels so that a wildcard subscription finds its matches
/// without scanning every retained message.
// @unchecked: the tree of `Node`s and `count` are touched under `lock` only.
final class RetainedStore: @unchecked Sendable {
    private final class Node {
        var children: [Substring: Node] = [:]
        var message: Message?
    }

    private let lock = NIOLock()
    private let root = Node()
    private var count = 0

    /// Retained messages now.
    var messageCount: Int { lock.withLock { count } }

    /// Stores `message` for its topic, or deletes the topic's retained message when the payload is empty.
    func set(_ message: Message) {
        lock.withLock {
            let levels = message.topic.split(separator: "/", omittingEmptySubsequences: false)
            if message.payload.readableBytes == 0 {
                var path: [(Node, Substring)] = []
                var node = root
                for level in levels {
                    guard let child = node.children[level] else { return }
                    path.append((node, level))
                    node = child
                }
                if node.message != nil { count -= 1 }
                node.message = nil
                while let (parent, level) = path.popLast(), let child = parent.children[level],
                      child.message == nil, child.children.isEmpty {
                    parent.children[level] = nil
                }
                return
            }
            var node = root
            for level in levels {
                if let child = node.children[level] {
                    node = child
                } else {
                    let child = Node()
                    node.children[level] = child
                    node = child
                }
            }
            if node.message == nil { count += 1 }
            node.message = message.detachedPayload()
        }
    }

    /// Retained messages whose topic matches `filter`.
    func matching(_ filter: String) -> [Message] {
        lock.withLock {
            var out: [Message] = []
            let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
            collect(root, levels[...], depth: 0, into: &out)
            return out
        }
    }

    private func collect(_ node: Node, _ levels: ArraySlice<Substring>, depth: Int, into out: inout [Message]) {
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

    private func everything(below node: Node, topLevel: Bool, into out: inout [Message]) {
        for (name, child) in node.children where !(topLevel && name.hasPrefix("$")) {
            if let message = child.message { out.append(message) }
            everything(below: child, topLevel: false, into: &out)
        }
    }
}
