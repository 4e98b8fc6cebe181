@testable import ACLFilePlugin
import MQTT
import NIOCore
import NIOPosix
import PluginAPI
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - helpers

private func client(_ id: String, _ username: String? = nil, port: Int = 1) -> ClientInfo {
    ClientInfo(clientID: id, username: username, protocolVersion: .v3_1_1, listener: "1883",
               remoteAddress: "127.0.0.1:\(port)")
}

private func rules(_ text: String) throws -> ACLFile { try ACLFile(parsing: text, path: "test.acl") }

/// A fresh temporary directory (removed by the caller with `removeTree`).
private func temporaryDirectory() -> String {
    var template = Array("/tmp/midge-acl-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(made != nil)
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

private func writeFile(_ text: String, to path: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0)
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

private func removeTree(_ directory: String, files: [String]) {
    for file in files { unlink(directory + "/" + file) }
    rmdir(directory)
}

extension ACLFilePlugin {
    func check(_ client: ClientInfo, _ access: Access, _ topic: String) -> Decision {
        authorize(client: client, access: access, topic: topic, qos: .atMostOnce, retain: false)
    }
}

private let denied = Decision.deny(.notAuthorized)

/// Plugin from text through a temporary file.
private func plugin(_ text: String) throws -> ACLFilePlugin {
    let dir = temporaryDirectory()
    defer { removeTree(dir, files: ["acl"]) }
    writeFile(text, to: dir + "/acl")
    return try ACLFilePlugin(path: dir + "/acl")
}

// MARK: - parsing

@Suite("acl-file: parsing")
struct ACLFileParsingTests {
    @Test("topic, user and pattern lines; comments, blank lines, default readwrite")
    func basics() throws {
        let file = try rules("""
            # anonymous section
            topic read public/#

              # indented comment (Mosquitto refuses it; accepted here)
            topic  weather
            user alice
            topic write alice/out
            topic deny alice/secret
            pattern readwrite devices/%c/#
            user alice
            topic read more
            """)
        #expect(file.anonymous.map(\.filter.text) == ["public/#", "weather"])
        #expect(file.anonymous.map(\.access) == [.read, .readWrite])
        // deny first, then the rest in file order; sections with one name add up
        #expect(file.users["alice"]?.map(\.filter.text) == ["alice/secret", "alice/out", "more"])
        #expect(file.patterns.map(\.text) == ["devices/%c/#"])
        #expect(file.ruleCount == 6)
        #expect(file.usernames == ["alice"])
    }

    @Test("topics and user names take the rest of the line, trimmed")
    func restOfLine() throws {
        let file = try rules("topic read   a topic with spaces  \r\nuser   jane doe \ntopic deny x y\n")
        #expect(file.anonymous.map(\.filter.text) == ["a topic with spaces"])
        #expect(file.users["jane doe"]?.map(\.filter.text) == ["x y"])
        #expect(file.users["jane doe"]?.first?.access == .deny)
    }

    @Test("a single word after topic is the topic, even an access word")
    func singleWord() throws {
        let file = try rules("topic read\ntopic deny\n")
        #expect(file.anonymous.map(\.filter.text) == ["read", "deny"])
        #expect(file.anonymous.allSatisfy { $0.access == .readWrite })
    }

    @Test("errors name file and line", arguments: [
        ("topic read a\ntopic foo bar\n", 2, "invalid access type 'foo'"),
        ("topic READ a\n", 1, "invalid access type 'READ'"),
        ("\n\ntopic\n", 3, "needs a topic"),
        ("pattern\n", 1, "needs a topic"),
        ("user\n", 1, "needs a user name"),
        ("user    \n", 1, "needs a user name"),
        ("topic read a/#/b\n", 1, "invalid topic filter 'a/#/b'"),
        ("topic read a+\n", 1, "invalid topic filter 'a+'"),
        ("pattern read %c#\n", 1, "invalid topic filter"),
        ("bogus x\n", 1, "invalid line"),
        ("TOPIC a\n", 1, "invalid line"),
        ("topic\tread\ta\n", 1, "invalid line"),
    ])
    func errors(text: String, line: Int, message: String) {
        do {
            _ = try ACLFile(parsing: text, path: "/etc/acl")
            Issue.record("parsed: \(text.debugDescription)")
        } catch let error as PluginError {
            #expect(error.origin == PluginOptions.Origin(file: "/etc/acl", line: line))
            #expect(error.message.contains(message), "\(error.message)")
            #expect(error.pluginName == "acl-file")
            #expect(error.description.hasPrefix("/etc/acl:\(line): plugin 'acl-file': "))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("a missing file is an error naming it")
    func missingFile() {
        #expect(throws: PluginError.self) { try ACLFilePlugin(path: "/nonexistent/acl") }
        do {
            _ = try ACLFilePlugin(path: "/nonexistent/acl")
        } catch let error as PluginError {
            #expect(error.message.contains("/nonexistent/acl"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("descriptor: name, required option, unknown options, relative path")
    func descriptor() throws {
        #expect(ACLFilePlugin.descriptor.name == "acl-file")
        let dir = temporaryDirectory()
        defer { removeTree(dir, files: ["rules.acl"]) }
        writeFile("topic read a\n", to: dir + "/rules.acl")
        let context = PluginContext(logger: .init(label: "test"), configDirectory: dir)

        var options = PluginOptions(pluginName: "acl-file", entries: [("acl_file", "rules.acl", nil)])
        let made = try ACLFilePlugin.descriptor.make(&options, context)
        let acl = try #require(made as? ACLFilePlugin)
        #expect(acl.path == dir + "/rules.acl")
        #expect(acl.current.ruleCount == 1)

        var missing = PluginOptions(pluginName: "acl-file")
        #expect(throws: PluginError.self) { try ACLFilePlugin.descriptor.make(&missing, context) }

        var typo = PluginOptions(pluginName: "acl-file",
                                 entries: [("acl_file", dir + "/rules.acl", nil), ("acl_fiel", "x", nil)])
        #expect(throws: PluginError.self) { try ACLFilePlugin.descriptor.make(&typo, context) }
    }
}

// MARK: - decisions

@Suite("acl-file: publish and delivery decisions")
struct ACLFileDecisionTests {
    static let text = """
        topic read public/#
        topic readwrite anon/#
        topic deny public/private
        user alice
        topic readwrite alice/#
        topic deny alice/secret
        topic write drop/box
        user bob
        topic read alice/#
        pattern readwrite devices/%c/#
        pattern write users/%u/out
        pattern read mid%c/x
        pattern deny devices/%c/locked
        """

    @Test("the anonymous section applies only to clients without a user name")
    func anonymousSection() throws {
        let acl = try plugin(Self.text)
        let anonymous = client("c1")
        #expect(acl.check(anonymous, .read, "public/news") == .allow)
        #expect(acl.check(anonymous, .write, "anon/x") == .allow)
        #expect(acl.check(anonymous, .write, "public/news") == denied)  // matched, read only
        #expect(acl.check(anonymous, .read, "public/private") == denied)  // deny wins though listed later
        #expect(acl.check(anonymous, .read, "alice/a") == .abstain)  // no rule at all
        // A user with no section of its own gets only the patterns, not the anonymous section.
        let carol = client("c2", "carol")
        #expect(acl.check(carol, .read, "public/news") == .abstain)
        #expect(acl.check(carol, .read, "devices/c2/t") == .allow)
        // An empty user name is a user name (Mosquitto keeps it), not anonymous.
        #expect(acl.check(client("c3", ""), .read, "public/news") == .abstain)
    }

    @Test("user sections, read versus write, deny precedence")
    func userSections() throws {
        let acl = try plugin(Self.text)
        let alice = client("a1", "alice")
        let bob = client("b1", "bob")
        #expect(acl.check(alice, .write, "alice/x") == .allow)
        #expect(acl.check(alice, .read, "alice/x") == .allow)
        #expect(acl.check(alice, .read, "alice/secret") == denied)
        #expect(acl.check(alice, .write, "alice/secret") == denied)
        #expect(acl.check(alice, .write, "drop/box") == .allow)
        #expect(acl.check(alice, .read, "drop/box") == denied)  // write-only rule matched
        #expect(acl.check(alice, .read, "anon/x") == .abstain)
        #expect(acl.check(bob, .read, "alice/secret") == .allow)  // alice's deny is alice's
        #expect(acl.check(bob, .write, "alice/x") == denied)
        #expect(acl.check(alice, .read, "alice") == .allow)  // a/# matches a
    }

    @Test("patterns: %c and %u substituted, for everyone, %u skipped without a user name")
    func patterns() throws {
        let acl = try plugin(Self.text)
        let anonymous = client("dev1")
        #expect(acl.check(anonymous, .write, "devices/dev1/temp") == .allow)
        #expect(acl.check(anonymous, .write, "devices/dev2/temp") == .abstain)
        #expect(acl.check(anonymous, .write, "devices/dev1/locked") == denied)  // pattern deny first
        #expect(acl.check(anonymous, .write, "users/%u/out") == .abstain)  // no user name: pattern skipped
        #expect(acl.check(anonymous, .read, "middev1/x") == .allow)  // substitution inside a level
        let alice = client("a1", "alice")
        #expect(acl.check(alice, .write, "users/alice/out") == .allow)
        #expect(acl.check(alice, .read, "users/alice/out") == denied)
        #expect(acl.check(alice, .write, "devices/a1/x") == .allow)  // patterns apply after user sections
        // A client id with / spans levels.
        let slashed = client("s/t")
        #expect(acl.check(slashed, .write, "devices/s/t/x") == .allow)
        #expect(acl.check(slashed, .write, "devices/s/x") == .abstain)
    }

    @Test("a user section allow wins over a pattern deny (Mosquitto checks the section first)")
    func sectionBeforePatterns() throws {
        let acl = try plugin("user alice\ntopic read a/#\npattern deny a/%u/x\n")
        #expect(acl.check(client("c", "alice"), .read, "a/alice/x") == .allow)
        #expect(acl.check(client("c", "bob"), .read, "a/bob/x") == denied)
    }

    @Test("+ or # in a client id or user name: nothing through patterns, own section still applies")
    func wildcardIdentities() throws {
        let acl = try plugin(Self.text)
        let plusID = client("a+b")
        #expect(acl.check(plusID, .read, "public/news") == .allow)  // anonymous section
        #expect(acl.check(plusID, .write, "devices/a+b/x") == denied)
        #expect(acl.check(plusID, .write, "unrelated") == denied)  // deny, not abstain
        let hashUser = client("ok", "x#y")
        #expect(acl.check(hashUser, .write, "devices/ok/x") == denied)
        let alice = client("w#", "alice")
        #expect(acl.check(alice, .write, "alice/x") == .allow)
        #expect(acl.check(alice, .write, "devices/w#/x") == denied)
        // Without any pattern in the file such clients are not special.
        let plain = try plugin("topic read x\n")
        #expect(plain.check(plusID, .read, "x") == .allow)
        #expect(plain.check(plusID, .read, "y") == .abstain)
    }

    @Test("$ topics: only filters starting with $ match them")
    func dollarTopics() throws {
        let acl = try plugin("topic read #\ntopic read +/info\ntopic read $SYS/broker/#\n")
        let c = client("c")
        #expect(acl.check(c, .read, "anything/at/all") == .allow)
        #expect(acl.check(c, .read, "$SYS/broker/uptime") == .allow)
        #expect(acl.check(c, .read, "$SYS/other") == .abstain)
        #expect(acl.check(c, .read, "$x/info") == .abstain)
        #expect(acl.check(c, .read, "x/info") == .allow)
    }

    @Test("no rules at all: everything abstains")
    func emptyFile() throws {
        let acl = try plugin("# nothing\n")
        #expect(acl.check(client("c"), .write, "a") == .abstain)
        #expect(acl.check(client("c"), .subscribe, "#") == .abstain)
    }
}

// MARK: - subscribe

@Suite("acl-file: SUBSCRIBE filters")
struct ACLFileSubscribeTests {
    @Test("granted when some matching topic is readable, refused when none is")
    func subscribe() throws {
        let acl = try plugin("""
            topic read public/#
            topic deny public/private/#
            topic write inbox/#
            topic read sensors/+/temp
            topic deny sensors/secret/+
            topic read only/this
            """)
        let c = client("c")
        #expect(acl.check(c, .subscribe, "#") == .allow)  // partial rights: filtered per delivery
        #expect(acl.check(c, .subscribe, "public/#") == .allow)
        #expect(acl.check(c, .subscribe, "public/private/#") == denied)  // all denied
        #expect(acl.check(c, .subscribe, "public/private/x") == denied)
        #expect(acl.check(c, .subscribe, "public/+/x") == .allow)
        #expect(acl.check(c, .subscribe, "inbox/#") == denied)  // write only, fully covered
        #expect(acl.check(c, .subscribe, "+/+/temp") == .allow)
        #expect(acl.check(c, .subscribe, "sensors/secret/temp") == denied)
        #expect(acl.check(c, .subscribe, "sensors/+/temp") == .allow)
        #expect(acl.check(c, .subscribe, "sensors/#") == .allow)
        #expect(acl.check(c, .subscribe, "only/+") == .allow)
        #expect(acl.check(c, .subscribe, "only/that") == .abstain)  // no rule covers it
        #expect(acl.check(c, .subscribe, "elsewhere/#") == .abstain)
        #expect(acl.check(c, .subscribe, "$share/g/public/#") == .allow)
        #expect(acl.check(c, .subscribe, "$share/g/public/private/#") == denied)
        #expect(acl.check(c, .subscribe, "$SYS/#") == .abstain)  // # does not reach $SYS
    }

    @Test("denies that cover a filter only together refuse it")
    func unionOfDenies() throws {
        let covered = try plugin("topic deny a\ntopic deny a/+/#\ntopic read a/#\n")
        #expect(covered.check(client("c"), .subscribe, "a/#") == denied)
        #expect(covered.check(client("c"), .read, "a") == denied)
        #expect(covered.check(client("c"), .read, "a/b/c") == denied)
        let gap = try plugin("topic deny a/+/#\ntopic read a/#\n")
        #expect(gap.check(client("c"), .subscribe, "a/#") == .allow)  // "a" itself is readable
        #expect(gap.check(client("c"), .read, "a") == .allow)
    }

    @Test("+ or # in the client id: only the own section can grant a subscription")
    func wildcardIdentity() throws {
        let acl = try plugin("topic read pub/#\npattern read dev/%c/#\n")
        #expect(acl.check(client("a+b"), .subscribe, "pub/#") == .allow)
        #expect(acl.check(client("a+b"), .subscribe, "dev/#") == denied)
        #expect(acl.check(client("ab"), .subscribe, "dev/#") == .allow)
    }

    @Test("filter overlap", arguments: [
        ("a/+", "+/b", true), ("a/#", "a", true), ("+/#", "a", true), ("#", "$SYS/x", false),
        ("$SYS/#", "$SYS", true), ("a/+", "a", false), ("a/+/c", "a/b/+", true), ("a/b", "a/c", false),
        ("+/+", "a", false), ("+/+", "a/b/c", false), ("a/#", "b/#", false), ("a//b", "a/+/b", true),
        ("+", "$SYS", false), ("$SYS/+", "+/+", false), ("#", "#", true), ("/#", "+/+", true),
        ("/#", "+", false),  // only the empty string, which is not a topic name
        ("a/+/#", "a", false), ("a/+/#", "a/", true), ("+/+/#", "a/#", true),
    ])
    func overlap(a: String, b: String, expected: Bool) {
        #expect(ACLFilter.overlap(ACLFilter(a), ACLFilter(b)) == expected, "\(a) ∩ \(b)")
        #expect(ACLFilter.overlap(ACLFilter(b), ACLFilter(a)) == expected, "\(b) ∩ \(a)")
    }

    /// Checks the search against brute force: every topic of up to 4 levels over a small alphabet (which
    /// includes a value no filter names).
    @Test("topic search agrees with brute force")
    func bruteForce() {
        let values = ["a", "b", "$s", "", "z"]
        var topics: [String] = []
        var frontier = values
        for _ in 0..<4 {
            topics += frontier.filter { !$0.isEmpty }  // "" is not a topic name
            frontier = frontier.flatMap { prefix in values.map { prefix + "/" + $0 } }
        }
        let levelChoices = ["a", "b", "$s", "", "+"]
        var filters: [String] = []
        var partial = levelChoices
        for depth in 0..<3 {
            filters += partial
            filters += partial.map { $0 + "/#" }
            if depth < 2 { partial = partial.flatMap { prefix in levelChoices.map { prefix + "/" + $0 } } }
        }
        filters.append("#")
        filters = filters.filter(Topic.isValidFilter)
        let parsed = filters.map(ACLFilter.init)
        let matchTable = parsed.map { filter in topics.map { filter.matches(topic: $0) } }
        // Matching agrees with the MQTT module's reference implementation.
        for (i, filter) in parsed.enumerated() {
            for (j, topic) in topics.enumerated() {
                #expect(matchTable[i][j] == Topic.matches(filter: filter.text, topic: topic),
                        "\(filter.text) vs \(topic)")
            }
        }
        // One positive besides the filter, one or two negatives: pseudo-random sample.
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(n))
        }
        for _ in 0..<3000 {
            let f = next(parsed.count), g = next(parsed.count)
            let negatives = (0..<next(3)).map { _ in next(parsed.count) }
            var budget = 1_000_000
            let found = TopicSearch.exists(all: [parsed[f].levels[...], parsed[g].levels[...]],
                                           none: negatives.map { parsed[$0].levels[...] }, budget: &budget)
            let brute = topics.indices.contains { j in
                matchTable[f][j] && matchTable[g][j] && !negatives.contains { matchTable[$0][j] }
            }
            #expect(found == brute, "\(parsed[f]) ∩ \(parsed[g]) − \(negatives.map { parsed[$0] })")
        }
    }
}

// MARK: - lifecycle

@Suite("acl-file: prepare, forget, reload")
struct ACLFileLifecycleTests {
    @Test("prepare caches a client's rules, forget drops them, takeover keeps the new one")
    func cache() throws {
        let acl = try plugin("pattern readwrite d/%c/#\n")
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let first = client("dev", port: 1000)
        let second = client("dev", port: 2000)
        _ = acl.prepare(client: first, on: loop)
        _ = acl.prepare(client: first, on: loop)  // again after a reload: still one entry
        #expect(acl.cachedClientCount == 1)
        _ = acl.prepare(client: second, on: loop)
        #expect(acl.cachedClientCount == 2)
        acl.forget(client: first)
        #expect(acl.cachedClientCount == 1)
        #expect(acl.check(second, .write, "d/dev/x") == .allow)
        acl.forget(client: second)
        #expect(acl.cachedClientCount == 0)
        // Not prepared: still answered (compiled on the spot).
        #expect(acl.check(first, .write, "d/dev/x") == .allow)
        #expect(acl.cachedClientCount == 0)
    }

    @Test("reload swaps the rules for connected clients; a bad or missing file keeps the last good ones")
    func reload() async throws {
        let dir = temporaryDirectory()
        defer { removeTree(dir, files: ["acl"]) }
        let path = dir + "/acl"
        writeFile("topic read old/#\n", to: path)
        let acl = try ACLFilePlugin(path: path)
        let c = client("c")
        _ = acl.prepare(client: c, on: MultiThreadedEventLoopGroup.singleton.next())
        #expect(acl.check(c, .read, "old/x") == .allow)

        writeFile("topic read new/#\n", to: path)
        try await acl.reload()
        #expect(acl.check(c, .read, "old/x") == .abstain)
        #expect(acl.check(c, .read, "new/x") == .allow)

        writeFile("topic read newer/#\ntopic bogus x\n", to: path)
        await #expect(throws: PluginError.self) { try await acl.reload() }
        #expect(acl.check(c, .read, "new/x") == .allow)
        #expect(acl.check(c, .read, "newer/x") == .abstain)

        unlink(path)
        await #expect(throws: PluginError.self) { try await acl.reload() }
        #expect(acl.check(c, .read, "new/x") == .allow)
    }
}

@Suite("acl-file: SUBSCRIBE to a filter without wildcards")
struct ACLFilePlainSubscribeTests {
    /// The plugin answers such a SUBSCRIBE with the topic's `.read` answer instead of the search over filters;
    /// both give the same answer for every rule set and topic here.
    @Test func theShortcutAnswersAsTheSearch() throws {
        let files = [
            "topic read #\n",
            "topic deny a/secret\ntopic read a/#\n",
            "topic write a/#\n",
            "topic write a/b\ntopic read +/b\n",
            "topic read $SYS/#\ntopic readwrite +/+\n",
            "topic deny #\ntopic read a/b\n",
            "topic readwrite a//c\ntopic read /x\n",
            "user u\ntopic read a/#\npattern read own/%c/#\npattern write w/%u\n",
            "pattern readwrite d/%c/#\ntopic read a/+/c\n",
        ]
        let topics = ["a", "a/b", "a/secret", "a/b/c", "x/b", "$SYS/x", "$SYS", "b", "a//c", "/x", "own/c1/t",
                      "own/c1", "w/u", "d/c1/z", "d/c+/z", "a/x/c", "x/y"]
        let clients = [client("c1"), client("c1", "u"), client("c+", "u"), client("c2", "v")]
        for text in files {
            let file = try rules(text)
            for someone in clients {
                let compiled = file.rules(for: someone)
                for topic in topics {
                    #expect(compiled.decide(.read, topic: topic) == compiled.decideSubscription(ACLFilter(topic)),
                            "\(text) \(someone.clientID) \(topic)")
                }
            }
        }
        let acl = try plugin("topic read a/#\ntopic deny a/secret\n")
        #expect(acl.check(client("c1"), .subscribe, "a/b") == .allow)
        #expect(acl.check(client("c1"), .subscribe, "a/secret") == denied)
        #expect(acl.check(client("c1"), .subscribe, "b") == .abstain)
        #expect(acl.check(client("c1"), .subscribe, "$share/g/a/b") == .allow)
    }
}
