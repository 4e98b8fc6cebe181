import PluginAPI
@testable import SQLitePlugin
import Testing

@Suite("sqlite plugin ACL rules")
struct SQLiteRulesTests {
    typealias Row = (username: String?, topic: String, access: String)

    func rules(_ rows: [Row], client: String = "c1", user: String? = "alice", superuser: Bool = false) -> SQLiteClientRules {
        SQLiteClientRules(superuser: superuser, rows: rows, clientID: client, username: user)
    }

    @Test func filterMatchingFollowsMQTT() {
        let cases: [(String, String, Bool)] = [
            ("a/b", "a/b", true), ("a/+", "a/b", true), ("a/+", "a/b/c", false), ("a/#", "a", true),
            ("a/#", "a/b/c", true), ("#", "a/b", true), ("+/+", "a/b", true), ("+", "/a", false),
            ("+/a", "/a", true), ("#", "$SYS/x", false), ("+/x", "$SYS/x", false), ("$SYS/#", "$SYS/x", true),
            ("a/b", "a/b/", false), ("a//b", "a//b", true),
        ]
        for (filter, topic, expected) in cases {
            let rule = SQLiteRule(filter: filter, access: .read)
            let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
            #expect(rule.matches(levels, dollar: topic.hasPrefix("$")) == expected, "\(filter) vs \(topic)")
        }
    }

    @Test func accessWords() {
        let r = rules([("alice", "r", "read"), ("alice", "w", "write"), ("alice", "rw", "readwrite")])
        #expect(r.decide(.read, topic: "r") == .allow)
        #expect(r.decide(.write, topic: "r") == .deny(.notAuthorized))  // matched only for the other access
        #expect(r.decide(.write, topic: "w") == .allow)
        #expect(r.decide(.read, topic: "w") == .deny(.notAuthorized))
        #expect(r.decide(.read, topic: "other") == .abstain)
        #expect(r.decide(.read, topic: "rw") == .allow)
        #expect(r.decide(.write, topic: "rw") == .allow)
    }

    @Test func unknownAccessWordFailsClosed() {
        let r = rules([("alice", "#", "readwrite"), ("alice", "x", "everything")])
        #expect(r.decide(.read, topic: "x") == .deny(.notAuthorized))
        #expect(r.decide(.read, topic: "y") == .allow)
    }

    @Test func substitution() {
        let r = rules([("*", "u/%u/c/%c", "readwrite"), ("alice", "mine/%c", "write")], client: "dev1")
        #expect(r.decide(.write, topic: "u/alice/c/dev1") == .allow)
        #expect(r.decide(.write, topic: "u/bob/c/dev1") == .abstain)
        #expect(r.decide(.write, topic: "mine/dev1") == .allow)
        let anonymous = rules([(nil, "a/%c", "read"), ("*", "u/%u", "read"), ("*", "c/%c", "read")],
                              client: "s", user: nil)
        #expect(anonymous.rules.count == 2)
        #expect(anonymous.decide(.read, topic: "a/s") == .allow)
        #expect(anonymous.decide(.read, topic: "c/s") == .allow)
    }

    @Test func dangerousNamesAreDenied() {
        // A wildcard in the client id: every '*' row denies, as do own rows using %c; own rows without it apply.
        let wildClient = rules([("*", "c/%c", "readwrite"), ("alice", "plain", "read"), ("alice", "p/%u", "read"),
                                ("alice", "q/%c", "read")], client: "x/#")
        #expect(wildClient.decide(.read, topic: "plain") == .allow)
        #expect(wildClient.decide(.read, topic: "p/alice") == .allow)
        #expect(wildClient.decide(.read, topic: "q/x/y") == .deny(.notAuthorized))
        #expect(wildClient.decide(.read, topic: "c/x/anything") == .deny(.notAuthorized))
        #expect(wildClient.decide(.read, topic: "elsewhere") == .deny(.notAuthorized))
        // A wildcard in the user name: the same for %u.
        let wildUser = rules([("*", "public/#", "read"), ("a+", "own", "read"), ("a+", "u/%u", "read")],
                             client: "ok", user: "a+")
        #expect(wildUser.decide(.read, topic: "own") == .allow)
        #expect(wildUser.decide(.read, topic: "u/a/b") == .deny(.notAuthorized))
        #expect(wildUser.decide(.read, topic: "public/x") == .deny(.notAuthorized))
        // An own deny row that cannot be substituted safely denies everything.
        let wildDeny = rules([("alice", "#", "readwrite"), ("alice", "private/%c", "deny")], client: "+")
        #expect(wildDeny.decide(.read, topic: "anything") == .deny(.notAuthorized))
        // Without '*' rows nothing else changes.
        #expect(rules([("alice", "t", "read")], client: "#").decide(.read, topic: "t") == .allow)
    }

    @Test func superuserAndSubscribe() {
        #expect(rules([("alice", "#", "deny")], superuser: true).decide(.write, topic: "x") == .allow)
        #expect(rules([]).decide(.subscribe, topic: "#") == .abstain)
        #expect(rules([]).decide(.read, topic: "x") == .abstain)
    }

    @Test func orderOwnDeniesOwnGrantsStarDeniesStarGrants() {
        let r = rules([("*", "a/#", "readwrite"), ("*", "a/b", "deny"), ("alice", "a/b", "read"),
                       ("alice", "a/c", "deny"), ("alice", "#", "write")])
        #expect(r.rules.map { $0.access } == [.deny, .read, .write, .deny, .readwrite])
        #expect(r.decide(.read, topic: "a/b") == .allow)                 // own grant before '*' deny
        #expect(r.decide(.read, topic: "a/c") == .deny(.notAuthorized))  // own deny first
        #expect(r.decide(.read, topic: "a/d") == .allow)                 // own '#' is write only: passed over
        #expect(r.decide(.write, topic: "a/b") == .allow)
    }

    @Test func subscriptions() {
        let r = rules([("alice", "a/#", "read"), ("alice", "a/secret", "deny"), ("alice", "w/#", "write"),
                       ("alice", "d/#", "deny"), ("alice", "$app/#", "read")])
        #expect(r.decide(.subscribe, topic: "a/#") == .allow)
        #expect(r.decide(.subscribe, topic: "+/x") == .allow)
        #expect(r.decide(.subscribe, topic: "#") == .allow)
        #expect(r.decide(.subscribe, topic: "a/secret") == .deny(.notAuthorized))
        #expect(r.decide(.subscribe, topic: "w/+") == .deny(.notAuthorized))    // write only
        #expect(r.decide(.subscribe, topic: "d/x/#") == .deny(.notAuthorized))
        #expect(r.decide(.subscribe, topic: "z/#") == .abstain)                 // no row covers it
        #expect(r.decide(.subscribe, topic: "$app/x") == .allow)
        #expect(r.decide(.subscribe, topic: "$SYS/#") == .abstain)              // '#' rows do not reach $
        #expect(r.decide(.subscribe, topic: "$share/g/a/+") == .allow)
        #expect(r.decide(.subscribe, topic: "$share/g") == .deny(.notAuthorized))
        #expect(r.decide(.subscribe, topic: "a/#/b") == .deny(.notAuthorized))
        // `a/#` matches `a` itself: a deny on a/# covers the subscription to `a`.
        let parent = rules([("alice", "a", "read"), ("alice", "a/#", "deny")])
        #expect(parent.decide(.subscribe, topic: "a") == .deny(.notAuthorized))
        // A wildcard client id with '*' rows: nothing through them.
        let wild = rules([("*", "x/#", "read")], client: "#")
        #expect(wild.decide(.subscribe, topic: "x/#") == .deny(.notAuthorized))
    }

    @Test func topicSearch() {
        func levels(_ f: String) -> ArraySlice<Substring> { f.split(separator: "/", omittingEmptySubsequences: false)[...] }
        func exists(_ all: [String], _ none: [String]) -> Bool {
            var budget = SQLiteTopicSearch.defaultBudget
            return SQLiteTopicSearch.exists(all: all.map(levels), none: none.map(levels), budget: &budget)
        }
        #expect(exists(["a/+"], ["a/b"]))
        #expect(!exists(["a/b"], ["a/+"]))
        #expect(!exists(["a/#"], ["#"]))
        #expect(exists(["$SYS/#"], ["#"]))
        #expect(!exists(["+/x", "$SYS/x"], []))
        #expect(exists(["a/#", "+/b"], ["a/c"]))
        #expect(!exists(["a", "b"], []))
        #expect(exists(["+"], ["a", "b", "c"]))
        #expect(!exists(["a/#"], ["a", "a/+", "a/+/#"]))
        #expect(exists(["a/#"], ["a/+", "a/+/#"]))   // `a` itself is left
    }
}
