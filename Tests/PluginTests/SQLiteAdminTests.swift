import Foundation
import NIOConcurrencyHelpers
import PluginAPI
@testable import SQLitePlugin
import Testing

@Suite("midge users (sqlite admin)")
struct SQLiteAdminTests {
    @Test func initCreatesTheSchemaAndIsIdempotent() throws {
        let scratch = try SQLiteScratch()
        #expect(scratch.admin("init").status == 0)
        #expect(scratch.admin("init").status == 0)
        let connection = try SQLiteConnection(path: scratch.path, mode: .readOnly)
        #expect(try connection.hasTable("users") && connection.hasTable("acls"))
        // The CHECK constraint holds the access column to the four words.
        #expect(throws: SQLiteError.self) {
            try scratch.sql("INSERT INTO acls (username, topic, access) VALUES ('a', 't', 'everything')")
        }
    }

    @Test func usersAddListPasswdSuperuserDel() async throws {
        let scratch = try SQLiteScratch()
        // add creates the database when it does not exist.
        #expect(scratch.admin("add", "bob", "pw1").status == 0)
        #expect(scratch.admin("users", "add", "--superuser", "alice", "pw2").status == 0)
        #expect(scratch.admin("add", "carol", input: "from-prompt").status == 0)
        #expect(scratch.admin("list").out == ["alice\tsuperuser", "bob", "carol"])
        let mode = try FileManager.default.attributesOfItem(atPath: scratch.path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600, "a new database holds password hashes: owner only")
        #expect(scratch.admin("add", "erin", "--superuser", "pw").status == 0)  // the flag anywhere
        #expect(scratch.admin("del", "erin").status == 0)
        #expect(scratch.admin("users", "list").out == ["alice\tsuperuser", "bob", "carol"])

        let duplicate = scratch.admin("add", "bob", "again")
        #expect(duplicate.status == 1 && duplicate.err.contains("exists"))

        #expect(scratch.admin("passwd", "bob", "pw3").status == 0)
        #expect(scratch.admin("passwd", "nobody", "x").status == 1)
        #expect(scratch.admin("superuser", "alice", "off").status == 0)
        #expect(scratch.admin("superuser", "bob", "on").status == 0)
        #expect(scratch.admin("superuser", "nobody", "on").status == 1)
        #expect(scratch.admin("list").out == ["alice", "bob\tsuperuser", "carol"])

        let plugin = try scratch.plugin()
        #expect(try await plugin.check("bob", "pw3") == .allow)
        #expect(try await plugin.check("bob", "pw1") == .deny(.badUserNameOrPassword))
        #expect(try await plugin.check("carol", "from-prompt") == .allow)
        await plugin.shutdown()

        #expect(scratch.admin("del", "carol").status == 0)
        #expect(scratch.admin("users", "del", "carol").status == 1)
        #expect(scratch.admin("list").out == ["alice", "bob\tsuperuser"])
    }

    @Test func passwordPromptFailureAddsNobody() throws {
        let scratch = try SQLiteScratch()
        #expect(scratch.admin("init").status == 0)
        let result = scratch.admin("add", "dave")  // no input: the prompt fails
        #expect(result.status == 1)
        #expect(scratch.admin("list").out == [])
    }

    @Test func aclAddListDel() throws {
        let scratch = try SQLiteScratch()
        #expect(scratch.admin("acl", "add", "alice", "readwrite", "home/alice/#").out == ["1"])
        #expect(scratch.admin("acl", "add", "--anonymous", "read", "public/#").out == ["2"])
        #expect(scratch.admin("acl", "add", "*", "write", "clients/%c/status").out == ["3"])
        #expect(scratch.admin("acl", "add", "bob", "deny", "secret/#").out == ["4"])
        #expect(scratch.admin("acl", "list").out == [
            "1\talice\treadwrite\thome/alice/#",
            "2\t--anonymous\tread\tpublic/#",
            "3\t*\twrite\tclients/%c/status",
            "4\tbob\tdeny\tsecret/#",
        ])
        #expect(scratch.admin("acl", "list", "--anonymous").out == ["2\t--anonymous\tread\tpublic/#"])
        #expect(scratch.admin("acl", "list", "alice").out == ["1\talice\treadwrite\thome/alice/#"])
        #expect(scratch.admin("acl", "del", "2").status == 0)
        #expect(scratch.admin("acl", "del", "2").status == 1)
        #expect(scratch.admin("acl", "list").out.count == 3)
    }

    @Test func usageErrors() throws {
        let scratch = try SQLiteScratch()
        #expect(scratch.admin("acl", "add", "alice", "all", "t").status == 2)
        #expect(scratch.admin("acl", "add", "alice", "read").status == 2)
        #expect(scratch.admin("acl", "add", "alice", "read", "a/#/b").status == 1)  // not a filter
        #expect(scratch.admin("acl", "add", "alice", "read", "").status == 1)
        #expect(scratch.admin("frobnicate").status == 2)
        #expect(scratch.admin("add").status == 2)
        #expect(scratch.admin("add", "*", "pw").status == 1)
        #expect(scratch.admin("acl", "del", "one").status == 2)
        #expect(SQLiteAdmin.run(arguments: ["list"], io: .init(out: { _ in }, err: { _ in },
                                                               readNewPassword: { "" })) == 2)  // no --db
        let help = NIOLockedValueBox<[String]>([])
        #expect(SQLiteAdmin.run(arguments: ["--help"], io: .init(out: { line in help.withLockedValue { $0.append(line) } },
                                                                 err: { _ in }, readNewPassword: { "" })) == 0)
        #expect(help.withLockedValue { $0 }.joined().contains("usage: midge users"))
    }

    @Test func commandsOnAMissingDatabaseFailWithoutCreatingIt() throws {
        let scratch = try SQLiteScratch()
        let result = scratch.admin("list")
        #expect(result.status == 1 && result.err.contains(scratch.path) && result.err.contains("init"))
        #expect(scratch.admin("del", "x").status == 1)
        #expect(scratch.admin("acl", "list").status == 1)
        #expect(!FileManager.default.fileExists(atPath: scratch.path))
    }

    @Test func waitsForALockThenFails() throws {
        let scratch = try SQLiteScratch()
        #expect(scratch.admin("init").status == 0)
        let locker = try SQLiteConnection(path: scratch.path, mode: .readWrite)
        try locker.execute("BEGIN EXCLUSIVE")
        let start = ContinuousClock.now
        let result = scratch.admin("add", "eve", "pw")
        #expect(result.status == 1 && result.err.contains("locked"))
        #expect(ContinuousClock.now - start < .seconds(10))
        try locker.execute("COMMIT")
        #expect(scratch.admin("add", "eve", "pw").status == 0)
    }
}
