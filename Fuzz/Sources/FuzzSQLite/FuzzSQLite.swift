import FuzzSupport
import MQTT
import PasswordFilePlugin
import PluginAPI
@testable import SQLitePlugin

/// Fields: up to six rows of the `users` table (user name, password hash, superuser flag) and the `acls`
/// table (user name, topic, access), then a client id, a user name and a topic. The rows go into a real
/// SQLite file as raw text (invalid UTF-8 included, and an `acls` table without the CHECK on `access`, as a
/// hand-made database may be); the plugin's store reads them back as it does at CONNECT, and the rules it
/// builds decide the topic. What matters: no crash, whatever the rows hold.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSQLite(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var fields = FuzzFields(start, count, limit: 24)
    var sql = "BEGIN; DELETE FROM users; DELETE FROM acls;"
    for _ in 0..<3 {
        let name = fields.bytes(), hash = fields.bytes(), flag = fields.bytes()
        sql += "INSERT OR REPLACE INTO users VALUES (\(literal(name)), \(literal(hash)), \(flag.first.map { Int($0) % 3 } ?? 0));"
    }
    for _ in 0..<4 {
        let name = fields.bytes(), topic = fields.bytes(), access = fields.bytes()
        let user = name == [0x2D] ? "NULL" : literal(name)  // "-" stands for NULL (anonymous rows)
        sql += "INSERT INTO acls (username, topic, access) VALUES (\(user), \(literal(topic)), \(literal(access)));"
    }
    sql += "COMMIT;"
    let clientID = fields.text(), username = fields.text(), topic = fields.text()
    do {
        try Database.writer.execute(sql)
    } catch {
        try? Database.writer.execute("ROLLBACK;")
        return 0
    }
    let user: String? = username.isEmpty ? nil : username
    do {
        if let user, let found = try Database.store.user(named: user) {
            if let hash = try? PasswordHash(parsing: found.passwordHash), hash.iterations <= 1_000 {
                _ = hash.verify(password: "password")
            }
        }
        let rules = try Database.store.rules(clientID: clientID, username: user)
        for access in [Access.read, .write, .subscribe] {
            _ = rules.decide(access, topic: topic)
        }
        _ = try Database.store.counts()
    } catch {
        preconditionFailure("the store failed on rows that were written: \(error)")
    }
    return 0
}

/// A byte string as an SQL text literal, whatever it holds.
private func literal(_ bytes: [UInt8]) -> String {
    let hex = bytes.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    return "CAST(x'\(hex)' AS TEXT)"
}

/// One database file for the process: a connection that writes the rows, and the plugin's read-only store.
private enum Database {
    static let path = FuzzScratch.directory + "/auth.db"
    nonisolated(unsafe) static let writer: SQLiteConnection = {
        let connection = try! SQLiteConnection(path: path, mode: .create)
        try! connection.execute("""
            PRAGMA synchronous = OFF;
            CREATE TABLE users (username TEXT PRIMARY KEY NOT NULL, password_hash TEXT NOT NULL,
                                is_superuser INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE acls (id INTEGER PRIMARY KEY, username TEXT, topic TEXT NOT NULL, access TEXT NOT NULL);
            """)
        return connection
    }()
    nonisolated(unsafe) static let store: SQLiteStore = {
        _ = writer
        return try! SQLiteStore(path: path, busyTimeoutMilliseconds: 1_000)
    }()
}
