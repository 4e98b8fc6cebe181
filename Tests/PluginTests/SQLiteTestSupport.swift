import Foundation
import Logging
import MQTT
import NIOCore
import NIOPosix
import PluginAPI
@testable import SQLitePlugin

// Helpers for the sqlite plugin's tests: a scratch directory with a database, the admin tool with captured
// output, a plugin over that database, a log that records.

/// A scratch directory holding `auth.db`; removed on deinit.
final class SQLiteScratch: @unchecked Sendable {
    let directory: String
    var path: String { directory + "/auth.db" }
    let log = SQLiteTestLog()

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/midge-sqlite-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(.EIO)
        }
        directory = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Runs `midge users ARGS` against this database (`--db` added); `input` answers a password prompt.
    @discardableResult
    func admin(_ arguments: String..., input: String? = nil) -> (status: Int32, out: [String], err: String) {
        let box = OutputBox()
        let io = SQLiteAdmin.IO(
            out: { box.out.append($0) },
            err: { box.err += $0 + "\n" },
            readNewPassword: {
                guard let input else { throw SQLiteAdmin.Failure("no password given") }
                return input
            })
        let status = SQLiteAdmin.run(arguments: ["--db", path] + arguments, io: io)
        return (status, box.out, box.err)
    }

    /// Runs SQL on the database with a writable connection of its own.
    func sql(_ text: String) throws {
        let connection = try SQLiteConnection(path: path, mode: .readWrite)
        try connection.execute(text)
    }

    /// A plugin over this database with these options (besides `database`).
    func plugin(_ extra: [(String, String)] = [], database: String? = nil) throws -> SQLitePlugin {
        var entries: [(key: String, value: String, origin: PluginOptions.Origin?)] = [("database", database ?? path, nil)]
        entries += extra.map { ($0.0, $0.1, nil) }
        var options = PluginOptions(pluginName: "sqlite", entries: entries)
        return try SQLitePlugin(options: &options, context: log.context(directory: directory))
    }
}

private final class OutputBox: @unchecked Sendable {
    var out: [String] = []
    var err = ""
}

/// A log handler that keeps every message.
final class SQLiteTestLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []

    var messages: [String] { lock.withLock { stored } }
    var allText: String { messages.joined(separator: "\n") }

    func context(directory: String) -> PluginContext {
        var logger = Logger(label: "sqlite") { _ in Handler(log: self) }
        logger.logLevel = .trace
        return PluginContext(logger: logger, configDirectory: directory)
    }

    struct Handler: LogHandler {
        let log: SQLiteTestLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.append(event.message.description)
        }
    }

    func append(_ text: String) { lock.withLock { stored.append(text) } }
}

/// The answer of a plugin call, waited for.
func sqliteResolve<T: Sendable>(_ answer: PluginAnswer<T>) async throws -> T {
    switch answer {
    case .now(let value): return value
    case .later(let future): return try await future.get()
    }
}

func sqliteClient(_ clientID: String, _ username: String?, port: Int = 40000) -> ClientInfo {
    ClientInfo(clientID: clientID, username: username, protocolVersion: .v3_1_1, listener: "1883",
               remoteAddress: "127.0.0.1:\(port)")
}

func sqliteCredentials(_ username: String?, _ password: String?) -> Credentials {
    Credentials(username: username, password: password.map { ByteBuffer(string: $0) })
}

let sqliteLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()

extension SQLitePlugin {
    /// authenticate, waited for.
    func check(_ username: String?, _ password: String?, clientID: String = "c") async throws -> Decision {
        try await sqliteResolve(authenticate(client: sqliteClient(clientID, username),
                                             credentials: sqliteCredentials(username, password), on: sqliteLoop))
    }

    /// prepare, waited for; returns the client for authorize calls.
    @discardableResult
    func prepared(_ clientID: String, _ username: String?, port: Int = 40000) async throws -> ClientInfo {
        let client = sqliteClient(clientID, username, port: port)
        try await sqliteResolve(prepare(client: client, on: sqliteLoop))
        return client
    }

    func may(_ client: ClientInfo, _ access: Access, _ topic: String) -> Decision {
        authorize(client: client, access: access, topic: topic, qos: .atMostOnce, retain: false)
    }
}

extension SQLiteScratch {
    /// The admin tool on another database file, output discarded.
    struct Admin {
        let path: String

        @discardableResult
        func run(_ arguments: String...) -> Int32 {
            let io = SQLiteAdmin.IO(out: { _ in }, err: { _ in },
                                    readNewPassword: { throw SQLiteAdmin.Failure("no password given") })
            return SQLiteAdmin.run(arguments: ["--db", path] + arguments, io: io)
        }
    }
}
