import MQTT
import PluginAPI

/// The `access` column of an `acls` row.
enum SQLiteAccess: String, Sendable {
    case read, write, readwrite, deny

    func grants(_ access: Access) -> Bool {
        switch self {
        case .read: return access == .read
        case .write: return access == .write
        case .readwrite: return access == .read || access == .write
        case .deny: return false
        }
    }
}

/// One ACL row after `%u` and `%c` were substituted for a client, with its filter split into levels.
struct SQLiteRule: Sendable, Equatable {
    var levels: [Substring]
    var access: SQLiteAccess
    /// Matches every topic, `$` topics included (stands in for rows that must fail closed).
    var matchesEverything = false

    init(filter: String, access: SQLiteAccess) {
        self.levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        self.access = access
    }

    static let denyEverything: SQLiteRule = {
        var rule = SQLiteRule(filter: "#", access: .deny)
        rule.matchesEverything = true
        return rule
    }()

    /// MQTT filter matching (`Topic.matches`), on a topic already split into levels; `dollar` tells whether
    /// the topic starts with `$`, which a leading wildcard does not match.
    func matches(_ topic: [Substring], dollar: Bool) -> Bool {
        if matchesEverything { return true }
        if dollar, let first = levels.first, first == "+" || first == "#" { return false }
        var i = 0
        while i < levels.count {
            if levels[i] == "#" { return true }
            guard i < topic.count else { return false }
            if levels[i] != "+" && levels[i] != topic[i] { return false }
            i += 1
        }
        return i == topic.count
    }
}

/// What `authorize` knows about one client, loaded by `prepare`: the same decisions as the `acl-file` plugin
/// makes from an ACL file, with the client's own rows in the place of its `user` section (or the anonymous
/// lines) and the `'*'` rows in the place of the `pattern` lines.
struct SQLiteClientRules: Sendable, Equatable {
    /// `users.is_superuser`: everything allowed.
    var superuser = false
    /// Checked in order: own deny rows, own grants, `'*'` deny rows, `'*'` grants.
    var rules: [SQLiteRule] = []

    /// Builds the rules from raw rows (`username`, `topic`, `access` in id order) for this client.
    init(superuser: Bool, rows: [(username: String?, topic: String, access: String)], clientID: String,
         username: String?) {
        self.superuser = superuser
        // Mosquitto gives nothing through patterns to a client whose user name or client id holds a wildcard:
        // either could widen a %u / %c filter.
        let dangerousUsername = username.map(Self.hasWildcard) ?? false
        let dangerousClientID = Self.hasWildcard(clientID)
        var ownDenies: [SQLiteRule] = [], ownGrants: [SQLiteRule] = []
        var everyoneDenies: [SQLiteRule] = [], everyoneGrants: [SQLiteRule] = []
        var everyoneDenied = false
        for row in rows {
            let isEveryone = row.username == "*"
            // An unknown access value (a hand-made table without the CHECK) fails closed.
            let access = SQLiteAccess(rawValue: row.access) ?? .deny
            var topic = row.topic
            let usesUsername = topic.contains("%u")
            let usesClientID = topic.contains("%c")
            if usesUsername && username == nil { continue }  // as mosquitto: such a row does not apply
            if isEveryone && (dangerousUsername || dangerousClientID) {
                everyoneDenied = true
                continue
            }
            if (usesUsername && dangerousUsername) || (usesClientID && dangerousClientID) {
                // An own row that would substitute a wildcard: a grant is dropped (it could only widen); a deny
                // that cannot be applied exactly denies everything.
                if access == .deny { ownDenies.append(.denyEverything) }
                continue
            }
            if usesUsername, let username { topic = topic.replacing("%u", with: username) }
            if usesClientID { topic = topic.replacing("%c", with: clientID) }
            let rule = SQLiteRule(filter: topic, access: access)
            switch (isEveryone, access == .deny) {
            case (false, true): ownDenies.append(rule)
            case (false, false): ownGrants.append(rule)
            case (true, true): everyoneDenies.append(rule)
            case (true, false): everyoneGrants.append(rule)
            }
        }
        if everyoneDenied {
            everyoneDenies = [.denyEverything]
            everyoneGrants = []
        }
        rules = ownDenies + ownGrants + everyoneDenies + everyoneGrants
    }

    init(superuser: Bool = false, rules: [SQLiteRule] = []) {
        self.superuser = superuser
        self.rules = rules
    }

    /// The decision for one access.
    func decide(_ access: Access, topic: String) -> Decision {
        if superuser { return .allow }
        if access == .subscribe { return decideSubscription(topic) }
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        let dollar = topic.hasPrefix("$")
        // The first matching rule that denies or grants this access decides. A match that grants only the other
        // access is passed over, but makes the answer a deny rather than "no opinion".
        var matched = false
        for rule in rules where rule.matches(levels, dollar: dollar) {
            if rule.access == .deny { return .deny(.notAuthorized) }
            if rule.access.grants(access) { return .allow }
            matched = true
        }
        return matched ? .deny(.notAuthorized) : .abstain
    }

    /// SUBSCRIBE (as the `acl-file` plugin decides it): `.allow` when some topic the filter matches is readable
    /// (deliveries are then checked one by one); `.deny` when none is and the rows decide every such topic;
    /// `.abstain` when none is readable but some are covered by no row, so a later plugin may grant them.
    private func decideSubscription(_ subscription: String) -> Decision {
        let filter: String
        switch Topic.parseShared(subscription) {
        case .some(.some(let shared)): filter = shared.filter
        case .some(.none): filter = subscription
        case .none: return .deny(.notAuthorized)
        }
        guard Topic.isValidFilter(filter) else { return .deny(.notAuthorized) }
        let wanted = filter.split(separator: "/", omittingEmptySubsequences: false)[...]
        var budget = SQLiteTopicSearch.defaultBudget
        var denies: [ArraySlice<Substring>] = []
        for rule in rules {
            if rule.matchesEverything { return .deny(.notAuthorized) }  // nothing after it can grant
            if rule.access == .deny {
                denies.append(rule.levels[...])
            } else if rule.access.grants(.read),
                      SQLiteTopicSearch.exists(all: [wanted, rule.levels[...]], none: denies, budget: &budget) {
                return .allow
            }
        }
        // Is some topic of the filter covered by no row at all?
        if SQLiteTopicSearch.exists(all: [wanted], none: rules.map { $0.levels[...] }, budget: &budget) { return .abstain }
        return .deny(.notAuthorized)
    }

    private static func hasWildcard(_ string: String) -> Bool {
        string.utf8.contains { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }
    }
}

/// The MQTT module's `TopicFilterSearch` over filters split into `Substring` levels.
enum SQLiteTopicSearch {
    static let defaultBudget = TopicFilterSearch.defaultBudget

    typealias Levels = ArraySlice<Substring>

    static func exists(all positive: [Levels], none negative: [Levels], budget: inout Int) -> Bool {
        TopicFilterSearch.exists(all: positive, none: negative, budget: &budget)
    }
}
