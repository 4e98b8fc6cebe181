import CSQLite

/// An error from SQLite, with the database's own message.
struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// The primary result code (`SQLITE_BUSY`, `SQLITE_CANTOPEN`, ...), or 0 for errors of this wrapper.
    var code: Int32
    var message: String

    var description: String { message }

    /// True when the database was locked by another connection for longer than the busy timeout.
    var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
}

/// SQLite wants this as the destructor of bound text it must copy.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection. Not thread-safe by itself: the owner uses it from one thread at a time (the plugin
/// confines it to its single database thread).
final class SQLiteConnection {
    let handle: OpaquePointer
    /// The file, for error messages.
    let path: String

    enum Mode {
        /// Read only; the file must exist (the plugin).
        case readOnly
        /// Read and write; the file must exist.
        case readWrite
        /// Read and write; the file is created when missing (the admin tool).
        case create
    }

    init(path: String, mode: Mode) throws {
        var flags = SQLITE_OPEN_FULLMUTEX
        switch mode {
        case .readOnly: flags |= SQLITE_OPEN_READONLY
        case .readWrite: flags |= SQLITE_OPEN_READWRITE
        case .create: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc & 0xFF, message: "cannot open database '\(path)': \(message)")
        }
        self.handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 0)
    }

    deinit {
        // Statements keep the connection alive, so none is left here; _v2 would defer anyway.
        sqlite3_close_v2(handle)
    }

    /// How long a statement waits for a lock held by another connection before it fails with SQLITE_BUSY.
    func setBusyTimeout(milliseconds: Int) {
        sqlite3_busy_timeout(handle, Int32(clamping: max(0, milliseconds)))
    }

    /// Runs SQL that returns no rows (several statements allowed).
    func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? lastErrorMessage
            sqlite3_free(errorMessage)
            throw SQLiteError(code: rc & 0xFF, message: "\(path): \(message)")
        }
    }

    func prepare(_ sql: String) throws -> SQLiteStatement {
        try SQLiteStatement(connection: self, sql: sql)
    }

    /// Whether a table of this name exists.
    func hasTable(_ name: String) throws -> Bool {
        let statement = try prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")
        var found = false
        try statement.query([.text(name)]) { _ in found = true }
        return found
    }

    /// The rowid of the last INSERT.
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    var lastErrorMessage: String { String(cString: sqlite3_errmsg(handle)) }

    func error(_ rc: Int32, _ context: String) -> SQLiteError {
        SQLiteError(code: rc & 0xFF, message: "\(path): \(context): \(lastErrorMessage)")
    }
}

/// A value bound to a statement parameter.
enum SQLiteValue {
    case null
    case integer(Int64)
    case text(String)
}

/// A prepared statement, reused: `query` binds, steps through the rows and resets.
final class SQLiteStatement {
    let connection: SQLiteConnection
    private let handle: OpaquePointer
    private let sql: String

    fileprivate init(connection: SQLiteConnection, sql: String) throws {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v2(connection.handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw connection.error(rc, "cannot prepare '\(sql)'")
        }
        self.connection = connection
        self.handle = statement
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(handle)
    }

    /// Binds `values` to ?1, ?2, ..., calls `row` for each result row, and resets the statement (also on error).
    func query(_ values: [SQLiteValue] = [], row: (SQLiteStatement) throws -> Void = { _ in }) throws {
        defer {
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            let rc: Int32
            switch value {
            case .null:
                rc = sqlite3_bind_null(handle, position)
            case .integer(let number):
                rc = sqlite3_bind_int64(handle, position, number)
            case .text(let string):
                // The byte count, not NUL termination, delimits the text; "" stays text, not NULL.
                rc = string.withCString { chars in
                    sqlite3_bind_text(handle, position, chars, Int32(string.utf8.count), transient)
                }
            }
            guard rc == SQLITE_OK else { throw connection.error(rc, "cannot bind parameter \(position)") }
        }
        while true {
            let rc = sqlite3_step(handle)
            if rc == SQLITE_ROW {
                try row(self)
            } else if rc == SQLITE_DONE {
                return
            } else {
                throw connection.error(rc, "query failed")
            }
        }
    }

    /// Column `index` of the current row as text; nil for NULL.
    func text(_ index: Int32) -> String? {
        guard sqlite3_column_type(handle, index) != SQLITE_NULL, let bytes = sqlite3_column_text(handle, index) else {
            return nil
        }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    /// Column `index` of the current row as an integer (NULL is 0).
    func integer(_ index: Int32) -> Int64 {
        sqlite3_column_int64(handle, index)
    }

    /// Whether column `index` of the current row is NULL.
    func isNull(_ index: Int32) -> Bool {
        sqlite3_column_type(handle, index) == SQLITE_NULL
    }
}
