/// ## The `sqlite` plugin: users and ACLs in a SQLite database
///
/// ```
/// plugin sqlite
/// plugin_opt_database /var/lib/midge/auth.db   # required; relative paths resolve against the config file
/// plugin_opt_timeout_ms 2000                    # optional: deadline of one lookup (default 2000)
/// allow_anonymous false
/// ```
///
/// The plugin authenticates clients and authorizes what they publish and receive. It only reads the database
/// (opened read-only) and never creates it: a missing file, or one without the two tables, stops start-up with
/// an error naming the file. Create and edit it with `midge users` (which writes the schema below):
///
/// ```sh
/// midge users --db auth.db init                          # create the file and the tables
/// midge users --db auth.db add alice                     # prompts twice for the password (no echo)
/// midge users --db auth.db add bob s3cret                # or takes it as an argument (or one stdin line)
/// midge users --db auth.db add --superuser root s3cret   # superusers may do everything
/// midge users --db auth.db passwd alice                  # change a password
/// midge users --db auth.db superuser alice on|off
/// midge users --db auth.db del bob
/// midge users --db auth.db list                          # USER, or USER<TAB>superuser
/// midge users --db auth.db acl add alice readwrite 'home/alice/#'
/// midge users --db auth.db acl add '*' write 'clients/%c/status'
/// midge users --db auth.db acl add --anonymous read 'public/#'
/// midge users --db auth.db acl list                      # ID<TAB>USER<TAB>ACCESS<TAB>TOPIC
/// midge users --db auth.db acl del 3
/// ```
///
/// ### Schema
///
/// ```sql
/// CREATE TABLE users (
///     username      TEXT PRIMARY KEY NOT NULL,
///     password_hash TEXT NOT NULL,               -- mosquitto_passwd's format: $7$ITERATIONS$SALT$HASH
///                                                --   (PBKDF2-HMAC-SHA512, base64; midge users writes 101 iterations)
///     is_superuser  INTEGER NOT NULL DEFAULT 0   -- non-zero: every publish, subscribe and delivery allowed
/// );
/// CREATE TABLE acls (
///     id       INTEGER PRIMARY KEY,
///     username TEXT,            -- a user name: rows for that user only
///                               -- NULL: rows for clients that sent no user name (anonymous)
///                               -- '*':  rows for every client, anonymous ones included
///     topic    TEXT NOT NULL,   -- an MQTT topic filter; %u is replaced by the user name, %c by the client id
///     access   TEXT NOT NULL CHECK (access IN ('read', 'write', 'readwrite', 'deny'))
/// );
/// CREATE INDEX acls_username ON acls (username);
/// ```
///
/// ### Semantics: those of the `acl-file` plugin (Mosquitto's `acl_file`)
///
/// - Authentication: a user name not in `users` is not this plugin's business (the next plugin decides; if
///   none does, the client is refused); a wrong or missing password is refused with "bad user name or
///   password"; a database error or a lookup slower than `timeout_ms` refuses with "server unavailable".
/// - A superuser may do everything.
/// - An empty `acls` table means no ACL: every client may do everything (as Mosquitto with a password file and
///   no `acl_file`). The first row switches the ACL on.
/// - A client's own rows (the `NULL` rows for an anonymous client) play the part of its `user` section in an
///   ACL file, the `'*'` rows that of the `pattern` lines. They are checked in this order: own `deny` rows, own
///   grants, `'*'` `deny` rows, `'*'` grants; the first row that matches the topic and denies, or grants the
///   access, decides. `read` allows receiving, `write` publishing, `readwrite` both. A topic matched only by
///   rows for the other access is denied; a topic no row matches gets no opinion from the plugin (alone in
///   the chain, that denies).
/// - SUBSCRIBE (as `acl-file`; Mosquitto 2.0 grants every SUBSCRIBE): allowed when some topic the filter
///   matches is readable (each delivery is then checked), denied when none is and the rows cover every such
///   topic, no opinion otherwise.
/// - `%u` and `%c` are substituted in every row. A row using `%u` does not apply to an anonymous client. A
///   client whose user name or client id contains `+` or `#` gets nothing from `'*'` rows (they deny all, as
///   Mosquitto's patterns do for it); an own row that would substitute such a value is dropped if it grants
///   and denies everything if it denies.
/// - Topic filters match as subscriptions do: a leading `+` or `#` does not match `$SYS/...`.
///
/// The rows for a client are read when it connects (`prepare`) and kept in memory until it disconnects, so
/// publishing never waits for the database. On SIGHUP the plugin reopens the database, checks it, reloads the
/// rows of every connected client in one read transaction and only then switches over: a failed reload keeps
/// the previous database and rules in force.
import CSQLite
import Foundation
import Logging
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import PluginAPI

/// The `sqlite` authentication and authorization plugin (see the file comment for schema and semantics).
///
/// All database work runs on one dedicated thread (an `NIOThreadPool` of one thread) that owns the only
/// connection, so its lock is never contended and a reload is serialized with lookups.
public final class SQLitePlugin: AuthenticationPlugin, AuthorizationPlugin, ReloadablePlugin, Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "sqlite", summary: "users and ACLs in a SQLite database", commands: [
        PluginCommand(name: "users", usage: "users --db FILE init | add [--superuser] USER [PASSWORD] | del USER | list | passwd USER",
                      run: SQLiteAdmin.run(arguments:)),
        PluginCommand(name: "acl", usage: "acl --db FILE add USER|'*'|--anonymous read|write|readwrite|deny TOPIC | del ID | list",
                      run: SQLiteAdmin.runACL(arguments:)),
    ], pathOptions: ["database"]) { options, context in
        try SQLitePlugin(options: &options, context: context)
    }

    /// The database file (absolute, or as given when the config directory was ".").
    public let databasePath: String
    /// The deadline of one lookup.
    public let timeoutMilliseconds: Int
    private let logger: Logger
    private let pool: NIOThreadPool

    private struct State: Sendable {
        /// The open database. Used on the pool's thread only; replaced by a reload's commit (a task on the
        /// database thread takes it once, at its start, and keeps that one to its end).
        var store: LockedSQLiteStore
        /// What `prepare` loaded, per connection. Keyed by the whole `ClientInfo` (its remote address tells two
        /// connections of one client id apart, so a taken-over connection's `forget` leaves the new one's
        /// rules), which also makes a second `prepare` of the same connection (the host's re-check after a
        /// reload) a replacement.
        var cache: [ClientInfo: SQLiteClientRules] = [:]
    }

    private let state: NIOLockedValueBox<State>

    /// Options: `database` (required), `timeout_ms` (default 2000).
    public init(options: inout PluginOptions, context: PluginContext) throws {
        let name = options.pluginName
        let database = try options.requiredString("database")
        guard !database.isEmpty else {
            throw PluginError(pluginName: name, message: "option 'database' must name a file")
        }
        let timeout = try options.int("timeout_ms") ?? 2000
        guard timeout > 0 else {
            throw PluginError(pluginName: name, message: "option 'timeout_ms' must be a positive number of milliseconds")
        }
        try options.finish()
        self.databasePath = database.hasPrefix("/") || context.configDirectory.isEmpty
            ? database : context.configDirectory + "/" + database
        self.timeoutMilliseconds = timeout
        self.logger = context.logger
        do {
            let store = try SQLiteStore(path: databasePath, busyTimeoutMilliseconds: timeout)
            self.state = NIOLockedValueBox(State(store: LockedSQLiteStore(store)))
        } catch let error as SQLiteError {
            throw PluginError(pluginName: name, message: error.message)
        }
        self.pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    deinit {
        // In case the host never called shutdown (start-up failed after this plugin was made).
        pool.shutdownGracefully { _ in }
    }

    // MARK: Authentication

    public func authenticate(client: ClientInfo, credentials: Credentials, on eventLoop: any EventLoop)
        -> PluginAnswer<Decision> {
        guard let username = credentials.username else { return .now(.abstain) }
        let password = credentials.password.map { Array($0.readableBytesView) }
        let future = run(on: eventLoop) { store -> Decision in
            guard let user = try store.user(named: username) else { return .abstain }
            guard let password else { return .deny(.badUserNameOrPassword) }
            let matches: Bool
            do {
                matches = try PasswordHashing.verify(password: password, against: user.passwordHash)
            } catch let error as SQLiteError {
                throw SQLiteError(code: error.code, message: "\(store.connection.path): \(error.message)")
            }
            return matches ? .allow : .deny(.badUserNameOrPassword)
        }
        return .later(future.flatMapErrorThrowing { [logger] error in
            logger.error("sqlite: cannot check user '\(username)' (client '\(client.clientID)'): \(error)")
            return .deny(.serverUnavailable)
        })
    }

    // MARK: Authorization

    public func prepare(client: ClientInfo, on eventLoop: any EventLoop) -> PluginAnswer<Void> {
        let future = run(on: eventLoop, body: { store in
            try store.rules(clientID: client.clientID, username: client.username)
        }, commit: { [self] rules in
            // Runs on the database thread, so it is ordered with reloads.
            state.withLockedValue { $0.cache[client] = rules }
        })
        return .later(future.map { _ in }.flatMapErrorThrowing { [logger] error in
            logger.error("sqlite: cannot load ACL rows for client '\(client.clientID)': \(error)")
            throw PluginError(pluginName: "sqlite", message: "cannot load ACL rows: \(error)")
        })
    }

    public func authorize(client: ClientInfo, access: Access, topic: String, qos: QoS, retain: Bool) -> Decision {
        guard let rules = state.withLockedValue({ $0.cache[client] }) else {
            // Not prepared (or prepare failed): fail closed.
            return .deny(.notAuthorized)
        }
        return rules.decide(access, topic: topic)
    }

    public func forget(client: ClientInfo) {
        state.withLockedValue { _ = $0.cache.removeValue(forKey: client) }
    }

    // MARK: Reload

    /// The database file: a change (a new file, or `midge users` / `midge acl` writing to it) triggers a
    /// reload.
    public var watchedFiles: [String] { [databasePath] }

    /// Opens the database again, checks it, and reads the rows of every connected client in one read
    /// transaction; the commit switches to that connection and those rows at once.
    public func prepareReload() async throws -> PreparedReload {
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeoutMilliseconds))
        let (fresh, refreshed, counts) = try await pool.runIfActive { [self] in
            let fresh: LockedSQLiteStore
            do {
                fresh = LockedSQLiteStore(try SQLiteStore(path: databasePath,
                                                          busyTimeoutMilliseconds: remaining(until: deadline)))
            } catch let error as SQLiteError {
                throw PluginError(pluginName: "sqlite", message: error.message)
            }
            let keys = state.withLockedValue { Array($0.cache.keys) }
            let (refreshed, counts) = try fresh.withStore { fresh in
                var refreshed: [ClientInfo: SQLiteClientRules] = [:]
                var counts = (users: 0, rows: 0)
                do {
                    fresh.connection.setBusyTimeout(milliseconds: remaining(until: deadline))
                    try fresh.connection.execute("BEGIN")
                    defer { try? fresh.connection.execute("COMMIT") }
                    counts = try fresh.counts()
                    // One read per user name, however many clients share it.
                    var byUser: [String?: SQLiteStore.UserEntries] = [:]
                    for key in keys {
                        guard NIODeadline.now() < deadline else { throw timeoutError() }
                        if byUser[key.username] == nil { byUser[key.username] = try fresh.userEntries(key.username) }
                        refreshed[key] = byUser[key.username]!.rules(clientID: key.clientID, username: key.username)
                    }
                } catch let error as SQLiteError {
                    throw PluginError(pluginName: "sqlite", message: error.message)
                }
                return (refreshed, counts)
            }
            return (fresh, refreshed, counts)
        }
        return PreparedReload { [self] in
            // At once: the new connection and the rows read for the clients connected then.
            state.withLockedValue { state in
                state.store = fresh
                for key in Array(state.cache.keys) {
                    if let rows = refreshed[key] { state.cache[key] = rows }
                }
            }
            // Clients prepared since were read from the old database: read them again, on the database thread
            // after what is queued there (a `prepare` still running on the old database commits before this).
            pool.submit { [self] work in
                guard work == .active else { return }
                let current = state.withLockedValue { $0.store }
                for key in state.withLockedValue({ $0.cache.keys.filter { refreshed[$0] == nil } }) {
                    guard let rows = try? current.withStore({ try $0.rules(clientID: key.clientID, username: key.username) })
                    else { continue }
                    state.withLockedValue { if $0.cache[key] != nil { $0.cache[key] = rows } }
                }
            }
            logger.info("sqlite: reloaded '\(databasePath)': \(counts.users) users, \(counts.rows) ACL rows")
        }
    }

    // MARK: The database thread

    /// Runs `body` on the database thread with a deadline of `timeout_ms`: the future fails when the deadline
    /// passes first, however long SQLite takes. `commit` runs on the database thread with the result, only if
    /// the deadline has not claimed the answer.
    private func run<T: Sendable>(on eventLoop: any EventLoop, body: @escaping @Sendable (SQLiteStore) throws -> T,
                                  commit: (@Sendable (T) -> Void)? = nil) -> EventLoopFuture<T> {
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeoutMilliseconds))
        let promise = eventLoop.makePromise(of: T.self)
        let once = Once()
        let timer = eventLoop.scheduleTask(deadline: deadline) { [self] in
            if once.claim() { promise.fail(timeoutError()) }
        }
        pool.submit { [self] work in
            guard work == .active else {
                if once.claim() { promise.fail(SQLiteError(code: 0, message: "the plugin is shutting down")) }
                return
            }
            // A lookup that waited in the queue past its deadline is not worth running.
            let remainingMilliseconds = remaining(until: deadline)
            guard remainingMilliseconds > 0 else {
                if once.claim() { promise.fail(timeoutError()) }
                return
            }
            let result = state.withLockedValue { $0.store }.withStore { store in
                store.connection.setBusyTimeout(milliseconds: remainingMilliseconds)
                return Result { try body(store) }
            }
            guard once.claim() else { return }
            timer.cancel()
            if case .success(let value) = result { commit?(value) }
            promise.completeWith(result)
        }
        return promise.futureResult
    }

    private func remaining(until deadline: NIODeadline) -> Int {
        Int((deadline - NIODeadline.now()).nanoseconds / 1_000_000)
    }

    private func timeoutError() -> SQLiteError {
        SQLiteError(code: SQLITE_BUSY, message: "database '\(databasePath)' did not answer within \(timeoutMilliseconds) ms")
    }
}

/// The open database, shared by the plugin and the tasks of its database thread. Those run one at a time, so
/// the lock is never contended; it makes the confinement checkable.
// @unchecked: `lock` guards every use of `store` (an SQLite connection and its prepared statements).
final class LockedSQLiteStore: @unchecked Sendable {
    private let lock = NIOLock()
    private let store: SQLiteStore

    init(_ store: SQLiteStore) { self.store = store }

    /// Runs `body` with the database, alone.
    func withStore<T: Sendable>(_ body: (SQLiteStore) throws -> T) rethrows -> T {
        try lock.withLock { try body(store) }
    }
}

/// Lets exactly one of the racers (the answer, the deadline) complete a promise.
private final class Once: Sendable {
    private let done = NIOLockedValueBox(false)

    func claim() -> Bool {
        done.withLockedValue { done in
            if done { return false }
            done = true
            return true
        }
    }
}

/// The schema `midge users init` creates.
enum SQLiteSchema {
    static let sql = """
        CREATE TABLE IF NOT EXISTS users (
            username      TEXT PRIMARY KEY NOT NULL,
            password_hash TEXT NOT NULL,
            is_superuser  INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS acls (
            id       INTEGER PRIMARY KEY,
            username TEXT,
            topic    TEXT NOT NULL,
            access   TEXT NOT NULL CHECK (access IN ('read', 'write', 'readwrite', 'deny'))
        );
        CREATE INDEX IF NOT EXISTS acls_username ON acls (username);
        """
}

/// The open database with its prepared statements, as the plugin reads it.
final class SQLiteStore {
    let connection: SQLiteConnection
    private let findUser: SQLiteStatement
    private let findSuperuser: SQLiteStatement
    private let findRows: SQLiteStatement

    /// Opens `path` read-only and checks that it has both tables with their columns.
    init(path: String, busyTimeoutMilliseconds: Int) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw SQLiteError(code: SQLITE_CANTOPEN,
                              message: "database '\(path)' does not exist (create it with `midge users --db \(path) init`)")
        }
        connection = try SQLiteConnection(path: path, mode: .readOnly)
        connection.setBusyTimeout(milliseconds: busyTimeoutMilliseconds)
        for table in ["users", "acls"] where try !connection.hasTable(table) {
            throw SQLiteError(code: SQLITE_ERROR,
                              message: "database '\(path)' has no table '\(table)' (create the tables with `midge users --db \(path) init`)")
        }
        do {
            findUser = try connection.prepare("SELECT password_hash, is_superuser FROM users WHERE username = ?1")
            findSuperuser = try connection.prepare("SELECT is_superuser FROM users WHERE username = ?1")
            findRows = try connection.prepare(
                "SELECT username, topic, access FROM acls WHERE username IS ?1 OR username = '*' ORDER BY id")
        } catch let error as SQLiteError {
            throw SQLiteError(code: error.code, message: "database '\(path)' does not have the expected columns: \(error.message)")
        }
    }

    func user(named username: String) throws -> (passwordHash: String, superuser: Bool)? {
        var found: (String, Bool)?
        try findUser.query([.text(username)]) { row in
            found = (row.text(0) ?? "", row.integer(1) != 0)
        }
        return found
    }

    /// The rules for one client: its superuser flag, its own rows (or the NULL rows) and the '*' rows.
    func rules(clientID: String, username: String?) throws -> SQLiteClientRules {
        try userEntries(username).rules(clientID: clientID, username: username)
    }

    /// What the database says of one user name (nil: anonymous clients), for every client id.
    struct UserEntries {
        /// False: the acls table is empty, which is no ACL at all.
        var anyRows: Bool
        var superuser = false
        var rows: [(username: String?, topic: String, access: String)] = []

        func rules(clientID: String, username: String?) -> SQLiteClientRules {
            // An empty acls table is no ACL at all: everything allowed, as Mosquitto with a password file and
            // no acl_file. Swapping `password_file` for `plugin sqlite` then changes nothing for clients.
            anyRows ? SQLiteClientRules(superuser: superuser, rows: rows, clientID: clientID, username: username)
                    : SQLiteClientRules(superuser: true)
        }
    }

    func userEntries(_ username: String?) throws -> UserEntries {
        var entries = UserEntries(anyRows: false)
        try connection.prepare("SELECT EXISTS (SELECT 1 FROM acls)").query { row in entries.anyRows = row.integer(0) != 0 }
        if !entries.anyRows { return entries }
        if let username {
            try findSuperuser.query([.text(username)]) { row in entries.superuser = row.integer(0) != 0 }
        }
        try findRows.query([username.map { .text($0) } ?? .null]) { row in
            entries.rows.append((row.text(0), row.text(1) ?? "", row.text(2) ?? ""))
        }
        return entries
    }

    func counts() throws -> (users: Int, rows: Int) {
        var users = 0, rows = 0
        try connection.prepare("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM acls)").query { row in
            users = Int(row.integer(0))
            rows = Int(row.integer(1))
        }
        return (users, rows)
    }
}
