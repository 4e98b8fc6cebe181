import Foundation
import MQTT
import NIOCore
import PluginAPI
@testable import SQLitePlugin
import Testing

@Suite("sqlite plugin")
struct SQLitePluginTests {
    /// A database with alice (password "wonderland"), root (superuser) and a few ACL rows.
    static func standardDatabase() throws -> SQLiteScratch {
        let scratch = try SQLiteScratch()
        #expect(scratch.admin("init").status == 0)
        #expect(scratch.admin("add", "alice", "wonderland").status == 0)
        #expect(scratch.admin("add", "--superuser", "root", "toor").status == 0)
        #expect(scratch.admin("acl", "add", "alice", "readwrite", "home/alice/#").status == 0)
        #expect(scratch.admin("acl", "add", "alice", "read", "news/#").status == 0)
        #expect(scratch.admin("acl", "add", "alice", "deny", "news/secret").status == 0)
        #expect(scratch.admin("acl", "add", "--anonymous", "read", "public/#").status == 0)
        #expect(scratch.admin("acl", "add", "*", "write", "clients/%c/status").status == 0)
        #expect(scratch.admin("acl", "add", "*", "readwrite", "users/%u/#").status == 0)
        return scratch
    }

    // MARK: Authentication

    @Test func authenticatesAllowsDeniesAndAbstains() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        #expect(try await plugin.check("alice", "wonderland") == .allow)
        #expect(try await plugin.check("alice", "wrong") == .deny(.badUserNameOrPassword))
        #expect(try await plugin.check("alice", nil) == .deny(.badUserNameOrPassword))
        #expect(try await plugin.check("alice", "") == .deny(.badUserNameOrPassword))
        #expect(try await plugin.check("mallory", "wonderland") == .abstain)
        #expect(try await plugin.check(nil, nil) == .abstain)
        #expect(try await plugin.check("root", "toor") == .allow)
        #expect(!scratch.log.allText.contains("wonderland"))
        await plugin.shutdown()
    }

    @Test func acceptsHashesWrittenByMosquittoPasswd() async throws {
        let scratch = try Self.standardDatabase()
        // `mosquitto_passwd -b pw golden 'g0lden pass'` (mosquitto 2.0.11).
        let hash = "$7$101$X2l3PxTvSLm4Zl8p$Xl4JVX71gkMvlEMvLxDK/0P91Emr6zQGM7thICOx7YefQMGdKLFqZS9hK/mH3mVphcVljixm++L+jJ57qBvSMw=="
        try scratch.sql("INSERT INTO users (username, password_hash) VALUES ('golden', '\(hash)')")
        let plugin = try scratch.plugin()
        #expect(try await plugin.check("golden", "g0lden pass") == .allow)
        #expect(try await plugin.check("golden", "g0lden pas") == .deny(.badUserNameOrPassword))
        await plugin.shutdown()
    }

    @Test func adminWritesMosquittoFormatHashes() throws {
        let scratch = try Self.standardDatabase()
        let connection = try SQLiteConnection(path: scratch.path, mode: .readOnly)
        var hash = ""
        try connection.prepare("SELECT password_hash FROM users WHERE username = 'alice'").query { hash = $0.text(0) ?? "" }
        let parts = hash.split(separator: "$", omittingEmptySubsequences: false)
        #expect(parts.count == 5 && parts[1] == "7" && parts[2] == "101")
        #expect(try PasswordHashing.verify(password: Array("wonderland".utf8), against: hash))
    }

    @Test func malformedHashIsAServerErrorAndLogged() async throws {
        let scratch = try Self.standardDatabase()
        try scratch.sql("INSERT INTO users (username, password_hash) VALUES ('plain', 'secret-in-clear')")
        let plugin = try scratch.plugin()
        #expect(try await plugin.check("plain", "secret-in-clear") == .deny(.serverUnavailable))
        #expect(scratch.log.allText.contains("plain"))
        #expect(!scratch.log.allText.contains("secret-in-clear"))
        await plugin.shutdown()
    }

    // MARK: Start-up

    @Test func missingDatabaseIsAnErrorNamingTheFile() throws {
        let scratch = try SQLiteScratch()
        #expect {
            _ = try scratch.plugin()
        } throws: { error in
            "\(error)".contains(scratch.path) && "\(error)".contains("does not exist") && error is PluginError
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path), "the plugin must not create the database")
    }

    @Test func databaseWithoutTablesIsAnError() throws {
        let scratch = try SQLiteScratch()
        #expect(FileManager.default.createFile(atPath: scratch.path, contents: Data()))
        #expect {
            _ = try scratch.plugin()
        } throws: { error in
            "\(error)".contains(scratch.path) && "\(error)".contains("no table 'users'")
        }
        try scratch.sql("CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, is_superuser INTEGER NOT NULL DEFAULT 0)")
        #expect(throws: PluginError.self) { _ = try scratch.plugin() }  // acls missing
    }

    @Test func fileThatIsNotADatabaseIsAnError() throws {
        let scratch = try SQLiteScratch()
        try "user:password\n".write(toFile: scratch.path, atomically: false, encoding: .utf8)
        #expect {
            _ = try scratch.plugin()
        } throws: { error in "\(error)".contains(scratch.path) }
    }

    @Test func options() async throws {
        let scratch = try Self.standardDatabase()
        // Relative to the config directory.
        let relative = try scratch.plugin(database: "auth.db")
        #expect(relative.databasePath == scratch.directory + "/auth.db")
        #expect(relative.timeoutMilliseconds == 2000)
        await relative.shutdown()
        let quick = try scratch.plugin([("timeout_ms", "250")])
        #expect(quick.timeoutMilliseconds == 250)
        await quick.shutdown()
        #expect(throws: PluginError.self) { _ = try scratch.plugin([("timeout_ms", "0")]) }
        #expect(throws: PluginError.self) { _ = try scratch.plugin([("timeout_ms", "soon")]) }
        #expect(throws: PluginError.self) { _ = try scratch.plugin([("databse", "x")]) }
        var none = PluginOptions(pluginName: "sqlite")
        #expect(throws: PluginError.self) {
            _ = try SQLitePlugin.descriptor.make(&none, scratch.log.context(directory: scratch.directory))
        }
        #expect(SQLitePlugin.descriptor.name == "sqlite")
    }

    // MARK: Authorization

    @Test func aclRowsDecide() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        let alice = try await plugin.prepared("alice-phone", "alice")
        #expect(plugin.may(alice, .write, "home/alice/lamp") == .allow)
        #expect(plugin.may(alice, .read, "home/alice/lamp") == .allow)
        #expect(plugin.may(alice, .read, "news/today") == .allow)
        #expect(plugin.may(alice, .write, "news/today") == .deny(.notAuthorized))  // matched, read only
        #expect(plugin.may(alice, .read, "news/secret") == .deny(.notAuthorized))  // deny wins in its tier
        #expect(plugin.may(alice, .write, "home/bob/lamp") == .abstain)
        #expect(plugin.may(alice, .read, "public/x") == .abstain)          // anonymous rows are not alice's
        // '*' rows with %c and %u.
        #expect(plugin.may(alice, .write, "clients/alice-phone/status") == .allow)
        #expect(plugin.may(alice, .write, "clients/other/status") == .abstain)
        #expect(plugin.may(alice, .read, "users/alice/inbox") == .allow)
        #expect(plugin.may(alice, .read, "users/bob/inbox") == .abstain)
        // SUBSCRIBE: granted when something under the filter is readable (deliveries are checked one by one),
        // denied when the rows decide the whole filter and nothing is readable, no opinion otherwise.
        #expect(plugin.may(alice, .subscribe, "#") == .allow)
        #expect(plugin.may(alice, .subscribe, "news/+") == .allow)
        #expect(plugin.may(alice, .subscribe, "$share/g/home/alice/#") == .allow)
        #expect(plugin.may(alice, .subscribe, "news/secret") == .deny(.notAuthorized))
        #expect(plugin.may(alice, .subscribe, "clients/alice-phone/status") == .deny(.notAuthorized))
        #expect(plugin.may(alice, .subscribe, "home/bob/#") == .abstain)
        await plugin.shutdown()
    }

    @Test func anonymousClientsGetTheNullRowsAndStarRowsWithoutUsername() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        let anonymous = try await plugin.prepared("sensor-1", nil)
        #expect(plugin.may(anonymous, .read, "public/weather") == .allow)
        #expect(plugin.may(anonymous, .write, "public/weather") == .deny(.notAuthorized))
        #expect(plugin.may(anonymous, .write, "clients/sensor-1/status") == .allow)
        #expect(plugin.may(anonymous, .read, "users//inbox") == .abstain)  // %u rows skip anonymous clients
        #expect(plugin.may(anonymous, .read, "home/alice/lamp") == .abstain)
        await plugin.shutdown()
    }

    @Test func superuserMayDoEverything() async throws {
        let scratch = try Self.standardDatabase()
        try scratch.sql("INSERT INTO acls (username, topic, access) VALUES ('root', '#', 'deny')")
        let plugin = try scratch.plugin()
        let root = try await plugin.prepared("console", "root")
        #expect(plugin.may(root, .write, "anything/at/all") == .allow)
        #expect(plugin.may(root, .read, "$SYS/broker/uptime") == .allow)
        #expect(plugin.may(root, .subscribe, "#") == .allow)
        await plugin.shutdown()
    }

    @Test func ownRowsComeBeforeStarRowsAndDenyWinsWithinATier() async throws {
        let scratch = try Self.standardDatabase()
        try scratch.sql("""
            INSERT INTO acls (username, topic, access) VALUES ('*', 'shared/#', 'deny');
            INSERT INTO acls (username, topic, access) VALUES ('alice', 'shared/alice', 'readwrite');
            INSERT INTO acls (username, topic, access) VALUES ('*', 'open/#', 'readwrite');
            INSERT INTO acls (username, topic, access) VALUES ('*', 'open/closed', 'deny');
            """)
        let plugin = try scratch.plugin()
        let alice = try await plugin.prepared("a", "alice")
        #expect(plugin.may(alice, .write, "shared/alice") == .allow)    // own row decides first (as mosquitto)
        #expect(plugin.may(alice, .write, "shared/bob") == .deny(.notAuthorized))
        #expect(plugin.may(alice, .write, "open/door") == .allow)
        #expect(plugin.may(alice, .write, "open/closed") == .deny(.notAuthorized))
        await plugin.shutdown()
    }

    @Test func wildcardsInClientIDOrUsernameAreDeniedByPatternRows() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        let sneaky = try await plugin.prepared("+", "alice")
        #expect(plugin.may(sneaky, .write, "clients/x/status") == .deny(.notAuthorized))
        #expect(plugin.may(sneaky, .write, "home/alice/lamp") == .allow)  // own rows without %c still apply
        await plugin.shutdown()
    }

    @Test func dollarTopicsAreNotMatchedByLeadingWildcards() async throws {
        let scratch = try Self.standardDatabase()
        try scratch.sql("INSERT INTO acls (username, topic, access) VALUES ('alice', '#', 'read')")
        let plugin = try scratch.plugin()
        let alice = try await plugin.prepared("a", "alice")
        #expect(plugin.may(alice, .read, "any/topic") == .allow)
        #expect(plugin.may(alice, .read, "$SYS/broker/uptime") == .abstain)
        await plugin.shutdown()
    }

    @Test func unpreparedClientsAreDeniedAndForgetDropsTheRules() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        let stranger = sqliteClient("nobody", "alice")
        #expect(plugin.may(stranger, .write, "home/alice/lamp") == .deny(.notAuthorized))
        let alice = try await plugin.prepared("phone", "alice")
        #expect(plugin.may(alice, .write, "home/alice/lamp") == .allow)
        plugin.forget(client: alice)
        #expect(plugin.may(alice, .write, "home/alice/lamp") == .deny(.notAuthorized))
        await plugin.shutdown()
    }

    @Test func takeoverKeepsTheNewConnectionsRules() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        let old = try await plugin.prepared("phone", "alice", port: 1000)
        let new = try await plugin.prepared("phone", "alice", port: 2000)  // same client id: the takeover
        plugin.forget(client: old)                                           // the old connection closes after
        #expect(plugin.may(new, .write, "home/alice/lamp") == .allow)
        #expect(plugin.may(old, .write, "home/alice/lamp") == .deny(.notAuthorized))
        plugin.forget(client: new)
        #expect(plugin.may(new, .write, "home/alice/lamp") == .deny(.notAuthorized))
        await plugin.shutdown()
    }

    @Test func preparingAgainReplacesTheRules() async throws {
        // The host prepares every connected client again after a reload, without a forget in between.
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        let alice = try await plugin.prepared("phone", "alice")
        #expect(scratch.admin("acl", "add", "alice", "write", "garden/#").status == 0)
        try await plugin.prepared("phone", "alice")
        #expect(plugin.may(alice, .write, "garden/gate") == .allow)
        plugin.forget(client: alice)                  // one forget is enough
        #expect(plugin.may(alice, .write, "garden/gate") == .deny(.notAuthorized))
        await plugin.shutdown()
    }

    // MARK: Reload

    @Test func reloadSeesNewPasswordsUsersAndRowsAndRefreshesConnectedClients() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        let alice = try await plugin.prepared("phone", "alice")
        #expect(plugin.may(alice, .write, "garden/gate") == .abstain)

        #expect(scratch.admin("passwd", "alice", "looking-glass").status == 0)
        #expect(scratch.admin("add", "bob", "builder").status == 0)
        #expect(scratch.admin("acl", "add", "alice", "write", "garden/#").status == 0)
        #expect(scratch.admin("acl", "add", "alice", "deny", "home/alice/safe").status == 0)
        #expect(scratch.admin("superuser", "root", "off").status == 0)

        // The plugin reads the database at every lookup; the connected client's rules change only at reload.
        #expect(try await plugin.check("alice", "looking-glass") == .allow)
        #expect(plugin.may(alice, .write, "garden/gate") == .abstain)

        try await plugin.reload()
        #expect(try await plugin.check("alice", "wonderland") == .deny(.badUserNameOrPassword))
        #expect(try await plugin.check("bob", "builder") == .allow)
        #expect(plugin.may(alice, .write, "garden/gate") == .allow)       // no re-prepare needed
        #expect(plugin.may(alice, .read, "home/alice/safe") == .deny(.notAuthorized))
        let root = try await plugin.prepared("console", "root")
        #expect(plugin.may(root, .write, "anything") == .abstain)
        #expect(scratch.log.allText.contains("reloaded"))
        await plugin.shutdown()
    }

    @Test func failedReloadKeepsTheLastGoodState() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        let alice = try await plugin.prepared("phone", "alice")
        let moved = scratch.directory + "/moved.db"
        try FileManager.default.moveItem(atPath: scratch.path, toPath: moved)
        await #expect(throws: PluginError.self) { try await plugin.reload() }
        try FileManager.default.moveItem(atPath: moved, toPath: scratch.path)
        try scratch.sql("DROP TABLE acls")
        await #expect {
            try await plugin.reload()
        } throws: { error in "\(error)".contains("no table 'acls'") }
        #expect(plugin.may(alice, .write, "home/alice/lamp") == .allow)
        #expect(try await plugin.check("alice", "wonderland") == .allow)
        await plugin.shutdown()
    }

    @Test func reloadSwitchesToAReplacedFile() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        // Replace the file (as a deployment would, with mv): the open connection still sees the old inode.
        let staging = scratch.directory + "/staging.db"
        let other = SQLiteScratch.Admin(path: staging)
        #expect(other.run("add", "carol", "c") == 0)
        try FileManager.default.removeItem(atPath: scratch.path)
        try FileManager.default.moveItem(atPath: staging, toPath: scratch.path)
        #expect(try await plugin.check("carol", "c") == .abstain)
        try await plugin.reload()
        #expect(try await plugin.check("carol", "c") == .allow)
        #expect(try await plugin.check("alice", "wonderland") == .abstain)
        await plugin.shutdown()
    }

    // MARK: A locked database

    @Test(.timeLimit(.minutes(1)))
    func lockedDatabaseDeniesWithinTheDeadline() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin([("timeout_ms", "300")])
        let early = try await plugin.prepared("early", "alice")

        let locker = try SQLiteConnection(path: scratch.path, mode: .readWrite)
        try locker.execute("BEGIN EXCLUSIVE")

        let start = ContinuousClock.now
        #expect(try await plugin.check("alice", "wonderland") == .deny(.serverUnavailable))
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(2), "took \(elapsed)")

        // Several at once: each bounded by its own deadline, none hangs behind the others.
        let start2 = ContinuousClock.now
        try await withThrowingTaskGroup(of: Decision.self) { group in
            for index in 0..<5 {
                group.addTask { try await plugin.check("alice", "wonderland", clientID: "c\(index)") }
            }
            for try await decision in group { #expect(decision == .deny(.serverUnavailable)) }
        }
        #expect(ContinuousClock.now - start2 < .seconds(2))

        await #expect(throws: (any Error).self) { try await plugin.prepared("late", "alice") }
        await #expect(throws: (any Error).self) { try await plugin.reload() }
        // What was loaded before the lock still answers, from memory.
        #expect(plugin.may(early, .write, "home/alice/lamp") == .allow)
        #expect(!scratch.log.allText.contains("wonderland"))
        #expect(scratch.log.allText.contains("did not answer within 300 ms"))

        try locker.execute("COMMIT")
        #expect(try await plugin.check("alice", "wonderland") == .allow)
        try await plugin.reload()
        #expect(plugin.may(early, .write, "home/alice/lamp") == .allow)
        await plugin.shutdown()
    }

    @Test func shutdownAnswersInsteadOfHanging() async throws {
        let scratch = try Self.standardDatabase()
        let plugin = try scratch.plugin()
        await plugin.shutdown()
        let answer = try await plugin.check("alice", "wonderland")
        #expect(answer == .deny(.serverUnavailable))
    }
}
