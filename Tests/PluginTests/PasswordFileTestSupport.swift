import Foundation
import Logging
@testable import PasswordFilePlugin
import PluginAPI

// Helpers for the password-file tests: scratch directories, a logger that records, bounded child processes.

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct ScratchDirectory {
    let path: String

    init() throws {
        var base = NSTemporaryDirectory()
        while base.hasSuffix("/") { base.removeLast() }
        var template = Array((base + "/midge-passwd-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(.EIO)
        }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        let target = file(name)
        try text.write(toFile: target, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: target)
        return target
    }

    func read(_ name: String) throws -> String { try String(contentsOfFile: file(name), encoding: .utf8) }

    func mode(_ name: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: file(name))[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func names() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A log handler that keeps every message, for checking warnings (and that no secret is ever logged).
final class RecordingLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [(Logger.Level, String)] = []

    var messages: [(level: Logger.Level, text: String)] { lock.withLock { stored.map { ($0.0, $0.1) } } }
    var warnings: [String] { messages.filter { $0.level == .warning }.map(\.text) }
    var allText: String { messages.map(\.text).joined(separator: "\n") }

    func append(_ level: Logger.Level, _ text: String) { lock.withLock { stored.append((level, text)) } }

    var context: PluginContext { context(directory: "/nonexistent") }

    func context(directory: String) -> PluginContext {
        var logger = Logger(label: "passwd") { _ in Handler(log: self) }
        logger.logLevel = .trace
        return PluginContext(logger: logger, configDirectory: directory)
    }

    struct Handler: LogHandler {
        let log: RecordingLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.append(event.level, event.message.description)
        }
    }
}

/// Runs a program to completion within `timeout` seconds (killing it after), returning status and output.
@discardableResult
func runProgram(_ path: String, _ arguments: [String], timeout: TimeInterval = 10) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        process.terminate()
        let killDeadline = Date().addingTimeInterval(2)
        while process.isRunning && Date() < killDeadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        throw POSIXError(.ETIMEDOUT)
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func isListening(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// Runs `PasswdTool` with scripted passwords for the prompt; returns status, standard output, standard error.
func runPasswd(_ arguments: [String], typed: [String?] = []) -> (status: Int32, output: String, error: String) {
    final class Box: @unchecked Sendable {
        var output = "", error = "", typed: [String?] = []
    }
    let box = Box()
    box.typed = typed
    let console = PasswdTool.Console(
        output: { box.output += $0 },
        error: { box.error += $0 },
        readSecret: { prompt in
            box.output += prompt + "\n"
            return box.typed.isEmpty ? nil : box.typed.removeFirst()
        }
    )
    let status = PasswdTool.run(arguments: arguments, console: console)
    return (status, box.output, box.error)
}

let mosquittoPasswdPath = "/usr/bin/mosquitto_passwd"
let mosquittoPath = "/usr/sbin/mosquitto"
let mosquittoPubPath = "/usr/bin/mosquitto_pub"
let haveMosquittoPasswd = FileManager.default.isExecutableFile(atPath: mosquittoPasswdPath)
let haveMosquittoBroker = FileManager.default.isExecutableFile(atPath: mosquittoPath)
    && FileManager.default.isExecutableFile(atPath: mosquittoPubPath)
