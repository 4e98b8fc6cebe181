import MQTT
import PluginAPI

/// What a rule grants. An empty set is `deny`.
struct ACLRuleAccess: OptionSet, Hashable, Sendable {
    let rawValue: UInt8
    static let read = ACLRuleAccess(rawValue: 1)
    static let write = ACLRuleAccess(rawValue: 2)
    static let deny: ACLRuleAccess = []
    static let readWrite: ACLRuleAccess = [.read, .write]

    var isDeny: Bool { isEmpty }
}

/// A `topic` line: a filter split once at load time.
struct ACLTopicRule: Hashable, Sendable {
    let filter: ACLFilter
    let access: ACLRuleAccess
    let line: Int
}

/// A `pattern` line: the filter text with `%c` / `%u`, substituted for each client.
struct ACLPatternRule: Hashable, Sendable {
    let text: String
    let access: ACLRuleAccess
    let usesUsername: Bool
    let line: Int

    /// Mosquitto's substitution: scanning left to right, `%c` becomes the client id and `%u` the user name
    /// (only when the client has one; the caller skips patterns with `%u` for clients without one). Anywhere
    /// in the text, not only as a whole level.
    func substituted(clientID: String, username: String?) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + clientID.utf8.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%") && i + 1 < bytes.count {
                if bytes[i + 1] == UInt8(ascii: "c") {
                    out.append(contentsOf: clientID.utf8)
                    i += 2
                    continue
                } else if let username, bytes[i + 1] == UInt8(ascii: "u") {
                    out.append(contentsOf: username.utf8)
                    i += 2
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A parsed ACL file in Mosquitto's `acl_file` format.
///
///     # comment (a line whose first non-blank character is #)
///     topic [read|write|readwrite|deny] TOPIC     (rules before any `user` line: clients without a user name)
///     user USERNAME                               (the rest of the line, so names may contain spaces)
///     topic [read|write|readwrite|deny] TOPIC     (rules for that user; sections of one name add up)
///     pattern [read|write|readwrite|deny] TOPIC   (for every client, wherever it appears; %c client id, %u user)
///
/// The access defaults to `readwrite`; TOPIC is the rest of the line, trimmed, so it may contain spaces, and
/// must be a valid topic filter. As in Mosquitto, `deny` rules come first within their list (anonymous rules,
/// each user's rules, patterns) whatever their place in the file.
public struct ACLFile: Sendable {
    /// Rules for clients that send no user name (the lines before the first `user` line).
    var anonymous: [ACLTopicRule] = []
    /// Rules per user name.
    var users: [String: [ACLTopicRule]] = [:]
    /// Pattern rules, for everyone.
    var patterns: [ACLPatternRule] = []
    /// The file it came from, for messages.
    public let path: String

    /// The number of `topic` and `pattern` rules.
    public var ruleCount: Int { anonymous.count + users.values.reduce(0) { $0 + $1.count } + patterns.count }

    /// The user names that have a `user` section.
    public var usernames: [String] { users.keys.sorted() }

    /// Parses the text of an ACL file. Throws a `PluginError` naming `path:line` for a line it cannot parse.
    public init(parsing text: String, path: String) throws {
        self.path = path
        var user: String? = nil
        var lineNumber = 0
        var anonymousAllowed: [ACLTopicRule] = [], anonymousDenied: [ACLTopicRule] = []
        var usersAllowed: [String: [ACLTopicRule]] = [:], usersDenied: [String: [ACLTopicRule]] = [:]
        var patternsAllowed: [ACLPatternRule] = [], patternsDenied: [ACLPatternRule] = []

        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine[...]
            while let last = line.last, Self.isSpace(last) { line.removeLast() }
            // Mosquitto needs comments and keywords at the very start of the line; leading blanks are allowed
            // here (a file Mosquitto accepts means the same).
            while let first = line.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                line.removeFirst()
            }
            if line.isEmpty || line.first == UInt8(ascii: "#") { continue }

            func fail(_ message: String) -> PluginError {
                PluginError(pluginName: ACLFilePlugin.name, message: message,
                            origin: PluginOptions.Origin(file: path, line: lineNumber))
            }

            var rest = line[...]
            let keyword = Self.nextToken(&rest)
            switch String(decoding: keyword, as: UTF8.self) {
            case "topic", "pattern":
                let isPattern = keyword.elementsEqual("pattern".utf8)
                guard let first = Self.nextToken(&rest).nilIfEmpty else {
                    throw fail("'\(isPattern ? "pattern" : "topic")' needs a topic")
                }
                var topicBytes: Substring.UTF8View.SubSequence
                var access = ACLRuleAccess.readWrite
                let remainder = Self.trimmed(rest)
                if remainder.isEmpty {
                    topicBytes = first
                } else {
                    topicBytes = remainder
                    switch String(decoding: first, as: UTF8.self) {
                    case "read": access = .read
                    case "write": access = .write
                    case "readwrite": access = .readWrite
                    case "deny": access = .deny
                    default:
                        throw fail("invalid access type '\(String(decoding: first, as: UTF8.self))' "
                                   + "(read, write, readwrite or deny)")
                    }
                }
                let topic = String(decoding: topicBytes, as: UTF8.self)
                guard Topic.isValidFilter(topic) else { throw fail("invalid topic filter '\(topic)'") }
                if isPattern {
                    let rule = ACLPatternRule(text: topic, access: access, usesUsername: topic.contains("%u"),
                                           line: lineNumber)
                    if access.isDeny { patternsDenied.append(rule) } else { patternsAllowed.append(rule) }
                } else {
                    let rule = ACLTopicRule(filter: ACLFilter(topic), access: access, line: lineNumber)
                    if let user {
                        if access.isDeny { usersDenied[user, default: []].append(rule) }
                        else { usersAllowed[user, default: []].append(rule) }
                    } else {
                        if access.isDeny { anonymousDenied.append(rule) } else { anonymousAllowed.append(rule) }
                    }
                }
            case "user":
                let name = Self.trimmed(rest)
                guard !name.isEmpty else { throw fail("'user' needs a user name") }
                user = String(decoding: name, as: UTF8.self)
            default:
                throw fail("invalid line (expected 'topic', 'pattern', 'user' or a # comment): "
                           + "'\(String(decoding: line, as: UTF8.self))'")
            }
        }

        anonymous = anonymousDenied + anonymousAllowed
        for name in Set(usersAllowed.keys).union(usersDenied.keys) {
            users[name] = (usersDenied[name] ?? []) + (usersAllowed[name] ?? [])
        }
        patterns = patternsDenied + patternsAllowed
    }

    /// The rules that apply to one client, in the order they are checked.
    func rules(for client: ClientInfo) -> ACLClientRules {
        let section = client.username.map { users[$0] ?? [] } ?? anonymous
        if patterns.isEmpty {
            return ACLClientRules(rules: section, denyAfterSection: false)
        }
        if Self.hasWildcard(client.clientID) || client.username.map(Self.hasWildcard) == true {
            // Mosquitto: a client id or user name with + or # could widen a pattern, so once patterns exist
            // such a client gets nothing beyond its own section.
            return ACLClientRules(rules: section, denyAfterSection: true)
        }
        var compiled = section
        for pattern in patterns {
            if pattern.usesUsername && client.username == nil { continue }
            let text = pattern.substituted(clientID: client.clientID, username: client.username)
            compiled.append(ACLTopicRule(filter: ACLFilter(text), access: pattern.access, line: pattern.line))
        }
        return ACLClientRules(rules: compiled, denyAfterSection: false)
    }

    private static func hasWildcard(_ text: String) -> Bool {
        text.utf8.contains { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }

    /// `strtok(" ")`: skips spaces, returns the bytes up to the next space and leaves `rest` after that space.
    private static func nextToken(_ rest: inout Substring.UTF8View.SubSequence) -> Substring.UTF8View.SubSequence {
        while rest.first == UInt8(ascii: " ") { rest.removeFirst() }
        guard let end = rest.firstIndex(of: UInt8(ascii: " ")) else {
            let token = rest
            rest = rest[rest.endIndex...]
            return token
        }
        let token = rest[..<end]
        rest = rest[rest.index(after: end)...]
        return token
    }

    private static func trimmed(_ bytes: Substring.UTF8View.SubSequence) -> Substring.UTF8View.SubSequence {
        var out = bytes
        while let first = out.first, isSpace(first) { out.removeFirst() }
        while let last = out.last, isSpace(last) { out.removeLast() }
        return out
    }
}

private extension Substring.UTF8View.SubSequence {
    var nilIfEmpty: Self? { isEmpty ? nil : self }
}

/// The rules for one client, compiled once (patterns substituted, filters split) and checked on every
/// PUBLISH and delivery without allocating.
final class ACLClientRules: Sendable {
    /// Checked in order: the client's section (denies first), then the patterns (denies first).
    let rules: [ACLTopicRule]
    /// The client's id or user name has `+` or `#` and patterns exist: deny whatever the section does not allow.
    let denyAfterSection: Bool

    init(rules: [ACLTopicRule], denyAfterSection: Bool) {
        self.rules = rules
        self.denyAfterSection = denyAfterSection
    }

    /// Publish (`.write`) or delivery (`.read`) of a topic name, as Mosquitto's `mosquitto_acl_check_default`:
    /// the first matching rule that is a deny or grants the access decides. A match that grants only the
    /// other access is passed over, but makes the answer `.deny` rather than `.abstain` if nothing decides.
    func decide(_ wanted: ACLRuleAccess, topic: UnsafeBufferPointer<UInt8>) -> Decision {
        var matched = false
        for rule in rules where rule.filter.matches(topic) {
            if rule.access.isDeny { return .deny(.notAuthorized) }
            if rule.access.contains(wanted) { return .allow }
            matched = true
        }
        if denyAfterSection || matched { return .deny(.notAuthorized) }
        return .abstain
    }

    func decide(_ wanted: ACLRuleAccess, topic: String) -> Decision {
        if let result = topic.utf8.withContiguousStorageIfAvailable({ decide(wanted, topic: $0) }) { return result }
        return Array(topic.utf8).withUnsafeBufferPointer { decide(wanted, topic: $0) }
    }

    /// SUBSCRIBE to a filter: `.allow` when some topic the filter matches is readable (the deliveries are then
    /// checked one by one with `.read`); `.deny` when none is and the rules decide every such topic; `.abstain`
    /// when none is readable but some are not covered by any rule, so a later plugin may still grant them.
    func decideSubscription(_ filter: ACLFilter) -> Decision {
        var budget = TopicSearch.defaultBudget
        let wanted = filter.levels[...]
        var denies: [ArraySlice<FilterLevel>] = []
        for rule in rules {
            if rule.access.isDeny {
                denies.append(rule.filter.levels[...])
            } else if rule.access.contains(.read) {
                // Readable topics through this rule: matched by the filter and the rule, by no earlier deny.
                // (A topic an earlier read rule matches was found readable at that rule already.)
                if TopicSearch.exists(all: [wanted, rule.filter.levels[...]], none: denies, budget: &budget) {
                    return .allow
                }
            }
        }
        if denyAfterSection { return .deny(.notAuthorized) }
        // Is every topic of the filter decided by some rule (of any access)?
        let all = rules.map { $0.filter.levels[...] }
        if TopicSearch.exists(all: [wanted], none: all, budget: &budget) { return .abstain }
        return .deny(.notAuthorized)
    }
}
