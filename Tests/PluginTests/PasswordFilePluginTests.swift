import Foundation
import MQTT
import NIOCore
import NIOPosix
@testable import PasswordFilePlugin
import PluginAPI
import Testing

@Suite("passwd plugin")
struct PasswordFilePluginTests {
    static let client = ClientInfo(clientID: "c1", username: "alice", protocolVersion: .v5, listener: "1883")

    /// The decision for one CONNECT, waiting (bounded) for a `.later` answer.
    static func decide(_ plugin: PasswordFilePlugin, username: String?, password: String?,
                       on loop: any EventLoop) throws -> Decision {
        let credentials = Credentials(username: username, password: password.map { ByteBuffer(string: $0) })
        switch plugin.authenticate(client: client, credentials: credentials, on: loop) {
        case .now(let decision): return decision
        case .later(let future):
            return try future.wait()
        }
    }

    func makePlugin(_ scratch: ScratchDirectory, text: String, mode: Int = 0o600,
                    log: RecordingLog = RecordingLog()) throws -> PasswordFilePlugin {
        let path = try scratch.write("pw", text, mode: mode)
        return try PasswordFilePlugin(path: path, context: log.context)
    }

    @Test("descriptor: name passwd, option password_file relative to the config directory, typos refused")
    func descriptor() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        _ = try scratch.write("pw", mosquittoGolden[0].line + "\n")
        #expect(PasswordFilePlugin.descriptor.name == "passwd")
        let log = RecordingLog()
        var options = PluginOptions(pluginName: "passwd", entries: [(key: "password_file", value: "pw", origin: nil)])
        let plugin = try PasswordFilePlugin.descriptor.make(&options, log.context(directory: scratch.path))
        let passwd = try #require(plugin as? PasswordFilePlugin)
        #expect(passwd.path == scratch.file("pw"))
        #expect(passwd.passwordFile.userCount == 1)

        var typo = PluginOptions(pluginName: "passwd", entries: [(key: "password_file", value: scratch.file("pw"), origin: nil),
                                                                 (key: "pasword_file", value: "x", origin: nil)])
        #expect(throws: PluginError.self) { try PasswordFilePlugin.descriptor.make(&typo, log.context) }
        var missing = PluginOptions(pluginName: "passwd")
        do {
            _ = try PasswordFilePlugin.descriptor.make(&missing, log.context)
            Issue.record("made without password_file")
        } catch let error as PluginError {
            #expect(error.message.contains("password_file"))
        }
    }

    @Test("answers: right password allow, wrong deny, unknown user and no user name abstain")
    func answers() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let log = RecordingLog()
        let plugin = try makePlugin(scratch, text: mosquittoGolden.map(\.line).joined(separator: "\n") + "\n", log: log)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        for golden in mosquittoGolden {
            #expect(try Self.decide(plugin, username: golden.username, password: golden.password, on: loop) == .allow)
            #expect(try Self.decide(plugin, username: golden.username, password: "nope", on: loop)
                    == .deny(.badUserNameOrPassword))
        }
        #expect(try Self.decide(plugin, username: "alice", password: nil, on: loop) == .deny(.badUserNameOrPassword))
        #expect(try Self.decide(plugin, username: "mallory", password: "x", on: loop) == .abstain)
        #expect(try Self.decide(plugin, username: nil, password: nil, on: loop) == .abstain)
        #expect(try Self.decide(plugin, username: nil, password: "x", on: loop) == .abstain)
        // Nothing secret reaches the log.
        // (A one-letter password would match the random temporary directory name: check the longer ones.)
        for golden in mosquittoGolden where golden.password.count >= 4 {
            #expect(!log.allText.contains(golden.password))
            #expect(!log.allText.contains(String(golden.line.split(separator: "$").last!)))
        }
    }

    @Test("costly hashes are checked off the event loop and answered later")
    func costlyHashesAnswerLater() throws {
        let hash = try PasswordHash.make(password: "slow", iterations: PasswordFilePlugin.inlineIterationLimit + 1)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let plugin = try makePlugin(scratch, text: "slowpoke:\(hash.encoded)\n")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let credentials = Credentials(username: "slowpoke", password: ByteBuffer(string: "slow"))
        guard case .later = plugin.authenticate(client: Self.client, credentials: credentials, on: loop) else {
            Issue.record("expected .later")
            return
        }
        #expect(try Self.decide(plugin, username: "slowpoke", password: "slow", on: loop) == .allow)
        #expect(try Self.decide(plugin, username: "slowpoke", password: "fast", on: loop) == .deny(.badUserNameOrPassword))
    }

    @Test("costly hashes in flight are bounded (max_pending_hashes): the next CONNECT is told the server is busy")
    func pendingHashesAreBounded() async throws {
        let hash = try PasswordHash.make(password: "slow", iterations: 200_000)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = try scratch.write("pw", "slowpoke:\(hash.encoded)\n", mode: 0o600)
        let log = RecordingLog()
        let plugin = try PasswordFilePlugin(path: path, context: log.context, maxPendingHashes: 3)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        let loop = group.next()
        let wrong = Credentials(username: "slowpoke", password: ByteBuffer(string: "guess"))
        var later: [EventLoopFuture<Decision>] = []
        var refused = 0
        for _ in 0..<10 {
            switch plugin.authenticate(client: Self.client, credentials: wrong, on: loop) {
            case .later(let future): later.append(future)
            case .now(let decision):
                #expect(decision == .deny(.serverUnavailable))
                refused += 1
            }
        }
        // 200,000 iterations take milliseconds each: the three admitted are still running while the loop asks.
        #expect(later.count <= 3 && later.count + refused == 10 && refused >= 7)
        // Awaited, not waited on: the checks run on Swift's cooperative pool, which a blocked thread would starve.
        for future in later { #expect(try await future.get() == .deny(.badUserNameOrPassword)) }
        #expect(plugin.pendingHashes == 0)
        let right = Credentials(username: "slowpoke", password: ByteBuffer(string: "slow"))
        guard case .later(let allowed) = plugin.authenticate(client: Self.client, credentials: right, on: loop) else {
            Issue.record("expected .later")
            return
        }
        #expect(try await allowed.get() == .allow)
        #expect(log.warnings.filter { $0.contains("max_pending_hashes") }.count == 1)
    }

    @Test("start-up: a missing file is an error naming it; a corrupt line names file:line")
    func startupErrors() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let log = RecordingLog()
        do {
            _ = try PasswordFilePlugin(path: scratch.file("absent"), context: log.context)
            Issue.record("loaded a missing file")
        } catch let error as PluginError {
            #expect(error.pluginName == "passwd")
            #expect(error.message.contains(scratch.file("absent")))
            #expect(error.message.contains("No such file or directory"))
        }
        let path = try scratch.write("bad", "# ok\n\(mosquittoGolden[0].line)\nbob:plaintext\n")
        do {
            _ = try PasswordFilePlugin(path: path, context: log.context)
            Issue.record("loaded a corrupt file")
        } catch let error as PluginError {
            #expect(error.origin == PluginOptions.Origin(file: path, line: 3))
            #expect(error.description.hasPrefix("\(path):3: plugin 'passwd': user 'bob': not a password hash"))
            #expect(!error.description.contains("plaintext"))
        }
    }

    @Test("reload swaps in a good file and keeps the last good users when the new file is corrupt or missing")
    func reloadKeepsLastGoodState() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let alice = mosquittoGolden[0], dave = mosquittoGolden[3]
        let plugin = try makePlugin(scratch, text: alice.line + "\n")
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        #expect(try Self.decide(plugin, username: "alice", password: alice.password, on: loop) == .allow)

        _ = try scratch.write("pw", "\(alice.line)\nthis line is broken\n\(dave.line)\n")
        do {
            try await plugin.reload()
            Issue.record("reloaded a corrupt file")
        } catch let error as PluginError {
            #expect(error.origin?.line == 2)
        }
        #expect(try Self.decide(plugin, username: "alice", password: alice.password, on: loop) == .allow)
        #expect(try Self.decide(plugin, username: "dave", password: dave.password, on: loop) == .abstain)

        try FileManager.default.removeItem(atPath: scratch.file("pw"))
        await #expect(throws: PluginError.self) { try await plugin.reload() }
        #expect(try Self.decide(plugin, username: "alice", password: alice.password, on: loop) == .allow)

        _ = try scratch.write("pw", dave.line + "\n")
        try await plugin.reload()
        #expect(try Self.decide(plugin, username: "dave", password: dave.password, on: loop) == .allow)
        #expect(try Self.decide(plugin, username: "alice", password: alice.password, on: loop) == .abstain)
    }

    @Test("permissions: warn with the exact chmod only when others may read or write", arguments: [
        (0o600, nil), (0o640, nil), (0o660, nil), (0o400, nil), (0o440, nil),
        (0o644, "world-readable (mode 0644); to fix this, run `chmod 0640 PATH`."),
        (0o604, "world-readable (mode 0604); to fix this, run `chmod 0600 PATH`."),
        (0o666, "world-readable and world-writable (mode 0666); to fix this, run `chmod 0660 PATH`."),
        (0o602, "world-writable (mode 0602); to fix this, run `chmod 0600 PATH`."),
    ] as [(Int, String?)])
    func permissionWarning(mode: Int, expected: String?) throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let log = RecordingLog()
        _ = try makePlugin(scratch, text: mosquittoGolden[0].line + "\n", mode: mode, log: log)
        let path = scratch.file("pw")
        if let expected {
            #expect(log.warnings == ["Password file \(path) is " + expected.replacingOccurrences(of: "PATH", with: path)])
        } else {
            #expect(log.warnings.isEmpty)
        }
    }
}
