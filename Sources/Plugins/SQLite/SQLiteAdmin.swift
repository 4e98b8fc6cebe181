import CSQLite
import Foundation
import MQTT

/// `midge users`: creates and edits the database of the `sqlite` plugin.
///
/// `run(arguments:)` takes the arguments that follow `midge users` and returns the exit status: 0 on success,
/// 1 when the command failed (no such user, a database error: the message goes to stderr), 2 for a usage error
/// (the usage goes to stderr). It does not throw for either; it throws only what it cannot report itself.
public enum SQLiteAdmin {
    public static func run(arguments: [String]) throws -> Int32 {
        run(arguments: arguments, io: .standard)
    }

    /// `midge acl --db FILE add ...` is `midge users --db FILE acl add ...`.
    public static func runACL(arguments: [String]) throws -> Int32 {
        var options: [String] = []
        var words = arguments[...]
        while let first = words.first, first.hasPrefix("--"), first != "--anonymous" {
            options.append(first)
            words = words.dropFirst()
            if first == "--db", let value = words.first {
                options.append(value)
                words = words.dropFirst()
            }
        }
        return try run(arguments: options + ["acl"] + words)
    }

    static let usage = """
        usage: midge users --db FILE COMMAND

        The database of the `sqlite` plugin (plugin sqlite / plugin_opt_database FILE).
        Commands that add something create FILE with its tables when it does not exist.

          init                                     create FILE and its tables (kept if they exist)
          [users] add [--superuser] USER [PASSWORD] add a user; no PASSWORD: asked twice (or one stdin line)
          [users] passwd USER [PASSWORD]           change a user's password
          [users] superuser USER on|off            make a user a superuser or not
          [users] del USER                         delete a user (their ACL rows stay)
          [users] list                             one user a line: USER, or USER<TAB>superuser
          acl add USER|'*'|--anonymous read|write|readwrite|deny TOPIC
                                                   add an ACL row ('*': every client; --anonymous: clients
                                                   without a user name; %u and %c in TOPIC stand for the
                                                   user name and client id); prints its id
          acl del ID                               delete an ACL row
          acl list [USER|'*'|--anonymous]          one row a line: ID<TAB>USER<TAB>ACCESS<TAB>TOPIC
                                                   (USER is '*', a user name, or --anonymous)

        Passwords are stored as mosquitto_passwd does ($7$, PBKDF2-SHA512, 101 iterations).
        """

    /// Where output goes and where passwords come from (replaced in tests).
    struct IO: Sendable {
        var out: @Sendable (String) -> Void
        var err: @Sendable (String) -> Void
        /// Asks for a new password (prompting twice on a terminal); nil when the two entries differ or there
        /// is no input.
        var readNewPassword: @Sendable () throws -> String

        static let standard = IO(
            out: { print($0) },
            err: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) },
            readNewPassword: PasswordPrompt.readNew
        )
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    struct UsageError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func run(arguments: [String], io: IO) -> Int32 {
        do {
            try dispatch(arguments, io: io)
            return 0
        } catch let error as UsageError {
            io.err("midge users: \(error.description)\n\n\(usage)")
            return 2
        } catch let error as Failure {
            io.err("midge users: error: \(error.description)")
            return 1
        } catch let error as SQLiteError {
            io.err("midge users: error: \(error.description)")
            return 1
        } catch {
            io.err("midge users: error: \(error)")
            return 1
        }
    }

    private static func dispatch(_ arguments: [String], io: IO) throws {
        var rest = arguments[...]
        var database: String?
        // Options come before the command.
        while let first = rest.first, first.hasPrefix("-") {
            rest = rest.dropFirst()
            switch first {
            case "-h", "--help":
                io.out(usage)
                return
            case "--db", "--database":
                guard let value = rest.popFirst() else { throw UsageError("--db needs a file") }
                database = value
            case _ where first.hasPrefix("--db="):
                database = String(first.dropFirst("--db=".count))
            default:
                throw UsageError("unknown option '\(first)'")
            }
        }
        guard let command = rest.popFirst() else { throw UsageError("missing command") }
        if command == "help" {
            io.out(usage)
            return
        }
        guard let database, !database.isEmpty else { throw UsageError("missing --db FILE") }
        switch command {
        case "init":
            try expectNoMore(rest)
            let db = try open(database, create: true)
            try db.execute(SQLiteSchema.sql)
        case "users":
            guard let sub = rest.popFirst() else { throw UsageError("missing users command") }
            try users(sub, Array(rest), database: database, io: io)
        case "acl":
            guard let sub = rest.popFirst() else { throw UsageError("missing acl command") }
            try acl(sub, Array(rest), database: database, io: io)
        default:
            try users(command, Array(rest), database: database, io: io)
        }
    }

    // MARK: users

    private static func users(_ command: String, _ arguments: [String], database: String, io: IO) throws {
        switch command {
        case "add":
            let superuser = arguments.contains("--superuser")
            let args = arguments.filter { $0 != "--superuser" }
            guard (1...2).contains(args.count) else { throw UsageError("usage: add [--superuser] USER [PASSWORD]") }
            let user = args[0]
            try checkUsername(user)
            let password = args.count == 2 ? args[1] : try io.readNewPassword()
            let hash = try PasswordHashing.hash(password: Array(password.utf8))
            let db = try open(database, create: true)
            try db.execute(SQLiteSchema.sql)
            let exists = try db.prepare("SELECT 1 FROM users WHERE username = ?1")
            var found = false
            try exists.query([.text(user)]) { _ in found = true }
            if found { throw Failure("user '\(user)' exists (change the password with: passwd \(user))") }
            try db.prepare("INSERT INTO users (username, password_hash, is_superuser) VALUES (?1, ?2, ?3)")
                .query([.text(user), .text(hash), .integer(superuser ? 1 : 0)])
        case "passwd":
            guard (1...2).contains(arguments.count) else { throw UsageError("usage: passwd USER [PASSWORD]") }
            let user = arguments[0]
            let db = try open(database, create: false)
            guard try userExists(user, db) else { throw Failure("no user '\(user)'") }
            let password = arguments.count == 2 ? arguments[1] : try io.readNewPassword()
            let hash = try PasswordHashing.hash(password: Array(password.utf8))
            try db.prepare("UPDATE users SET password_hash = ?2 WHERE username = ?1").query([.text(user), .text(hash)])
        case "superuser":
            guard arguments.count == 2, ["on", "off"].contains(arguments[1]) else {
                throw UsageError("usage: superuser USER on|off")
            }
            let db = try open(database, create: false)
            try db.prepare("UPDATE users SET is_superuser = ?2 WHERE username = ?1")
                .query([.text(arguments[0]), .integer(arguments[1] == "on" ? 1 : 0)])
            if db.changes == 0 { throw Failure("no user '\(arguments[0])'") }
        case "del", "delete", "rm":
            guard arguments.count == 1 else { throw UsageError("usage: del USER") }
            let db = try open(database, create: false)
            try db.prepare("DELETE FROM users WHERE username = ?1").query([.text(arguments[0])])
            if db.changes == 0 { throw Failure("no user '\(arguments[0])'") }
        case "list", "ls":
            try expectNoMore(arguments[...])
            let db = try open(database, create: false)
            try db.prepare("SELECT username, is_superuser FROM users ORDER BY username").query { row in
                let name = row.text(0) ?? ""
                io.out(row.integer(1) != 0 ? "\(name)\tsuperuser" : name)
            }
        default:
            throw UsageError("unknown command '\(command)'")
        }
    }

    // MARK: acl

    private static func acl(_ command: String, _ arguments: [String], database: String, io: IO) throws {
        switch command {
        case "add":
            guard arguments.count == 3 else {
                throw UsageError("usage: acl add USER|'*'|--anonymous read|write|readwrite|deny TOPIC")
            }
            let who = try subject(arguments[0])
            guard let access = SQLiteAccess(rawValue: arguments[1]) else {
                throw UsageError("access must be read, write, readwrite or deny, not '\(arguments[1])'")
            }
            let topic = arguments[2]
            // %u and %c stand for one whole or partial level; check the filter with a harmless stand-in.
            let sample = topic.replacing("%u", with: "u").replacing("%c", with: "c")
            guard Topic.isValidFilter(sample) else { throw Failure("'\(topic)' is not a valid topic filter") }
            let db = try open(database, create: true)
            try db.execute(SQLiteSchema.sql)
            try db.prepare("INSERT INTO acls (username, topic, access) VALUES (?1, ?2, ?3)")
                .query([who.map { .text($0) } ?? .null, .text(topic), .text(access.rawValue)])
            io.out(String(db.lastInsertRowID))
        case "del", "delete", "rm":
            guard arguments.count == 1, let id = Int64(arguments[0]) else { throw UsageError("usage: acl del ID") }
            let db = try open(database, create: false)
            try db.prepare("DELETE FROM acls WHERE id = ?1").query([.integer(id)])
            if db.changes == 0 { throw Failure("no ACL row \(id)") }
        case "list", "ls":
            guard arguments.count <= 1 else { throw UsageError("usage: acl list [USER|'*'|--anonymous]") }
            let db = try open(database, create: false)
            let print: (SQLiteStatement) -> Void = { row in
                let user = row.isNull(1) ? "--anonymous" : (row.text(1) ?? "")
                io.out("\(row.integer(0))\t\(user)\t\(row.text(2) ?? "")\t\(row.text(3) ?? "")")
            }
            if let filter = arguments.first {
                let who = try subject(filter)
                try db.prepare("SELECT id, username, access, topic FROM acls WHERE username IS ?1 ORDER BY id")
                    .query([who.map { .text($0) } ?? .null], row: print)
            } else {
                try db.prepare("SELECT id, username, access, topic FROM acls ORDER BY id").query(row: print)
            }
        default:
            throw UsageError("unknown acl command '\(command)'")
        }
    }

    // MARK: helpers

    /// An ACL row's user column: a user name, '*', or nil for --anonymous.
    private static func subject(_ argument: String) throws -> String? {
        if argument == "--anonymous" { return nil }
        if argument.hasPrefix("-") { throw UsageError("unknown option '\(argument)'") }
        return argument
    }

    private static func checkUsername(_ user: String) throws {
        if user == "*" { throw Failure("'*' cannot be a user name: in ACL rows it means every client") }
        if user.hasPrefix("-") { throw UsageError("unknown option '\(user)'") }
        if user.isEmpty { throw Failure("the user name is empty") }
    }

    private static func userExists(_ user: String, _ db: SQLiteConnection) throws -> Bool {
        var found = false
        try db.prepare("SELECT 1 FROM users WHERE username = ?1").query([.text(user)]) { _ in found = true }
        return found
    }

    private static func expectNoMore<C: Collection<String>>(_ rest: C) throws {
        if let extra = rest.first { throw UsageError("unexpected argument '\(extra)'") }
    }

    /// Opens the database for writing, waiting up to 5 s for a lock. Without `create`, the file and its tables
    /// must exist.
    private static func open(_ path: String, create: Bool) throws -> SQLiteConnection {
        if !create && !FileManager.default.fileExists(atPath: path) {
            throw Failure("database '\(path)' does not exist (create it with: midge users --db \(path) init)")
        }
        if create && !FileManager.default.fileExists(atPath: path) {
            // Password hashes are secrets: a new database is readable by its owner only (SQLite gives its
            // journal the same mode).
            let fd = createOwnerOnly(path)
            if fd < 0 && errno != EEXIST {
                throw Failure("cannot create '\(path)': \(String(cString: strerror(errno)))")
            }
            if fd >= 0 { close(fd) }
        }
        let db = try SQLiteConnection(path: path, mode: create ? .create : .readWrite)
        db.setBusyTimeout(milliseconds: 5000)
        if !create {
            for table in ["users", "acls"] where try !db.hasTable(table) {
                throw Failure("database '\(path)' has no table '\(table)' (create the tables with: midge users --db \(path) init)")
            }
        }
        return db
    }
}

/// Creates `path` with mode 0600 (fails with EEXIST if it exists).
private func createOwnerOnly(_ path: String) -> Int32 {
    open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
}

/// Reads a new password: twice without echo on the terminal, or one line from stdin when it is not one.
enum PasswordPrompt {
    static func readNew() throws -> String {
        if isatty(STDIN_FILENO) == 1 {
            let first = try readHidden(prompt: "Password: ")
            let second = try readHidden(prompt: "Reenter password: ")
            guard first == second else { throw SQLiteAdmin.Failure("passwords do not match") }
            return first
        }
        guard let line = readLine(strippingNewline: true) else {
            throw SQLiteAdmin.Failure("no password given (as an argument, on the terminal or on stdin)")
        }
        return line
    }

    private static func readHidden(prompt: String) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { throw SQLiteAdmin.Failure("cannot read the terminal") }
        var silent = saved
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = readLine(strippingNewline: true) else {
            throw SQLiteAdmin.Failure("no password given")
        }
        return line
    }
}
