import Foundation
import Logging
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import PluginAPI
import Testing
@testable import Host

/// A plugin whose state is one file: counts prepares and commits; refuses to prepare while `broken` is set.
private final class FileBackedPlugin: AuthenticationPlugin, ReloadablePlugin, @unchecked Sendable {
    let path: String
    let broken = NIOLockedValueBox(false)
    let prepares = NIOLockedValueBox(0)
    let commits = NIOLockedValueBox(0)

    init(path: String) { self.path = path }

    var watchedFiles: [String] { [path] }

    func authenticate(client: ClientInfo, credentials: Credentials, on eventLoop: any EventLoop) -> PluginAnswer<Decision> {
        .now(.abstain)
    }

    func prepareReload() async throws -> PreparedReload {
        prepares.withLockedValue { $0 += 1 }
        if broken.withLockedValue({ $0 }) {
            throw PluginError(pluginName: "file-backed", message: "cannot read \(path)")
        }
        return PreparedReload { [commits] in commits.withLockedValue { $0 += 1 } }
    }
}

@Suite("Reload, all or nothing")
struct ReloadTests {
    private func start() async throws -> (TestBroker, FileBackedPlugin, FileBackedPlugin) {
        let directory = NSTemporaryDirectory() + "midge-reload-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let first = FileBackedPlugin(path: directory + "/first")
        let second = FileBackedPlugin(path: directory + "/second")
        try "1\n".write(toFile: first.path, atomically: true, encoding: .utf8)
        try "1\n".write(toFile: second.path, atomically: true, encoding: .utf8)
        let broker = try await TestBroker.start("allow_anonymous true\nwatch_interval 0\nplugin first\nplugin second\n",
                                                hooks: ["first": first, "second": second])
        return (broker, first, second)
    }

    @Test func oneFailureKeepsEveryPluginsState() async throws {
        let (broker, first, second) = try await start()
        defer { Task { await broker.stop() } }
        first.broken.withLockedValue { $0 = true }
        #expect(await broker.broker.reload() == false)
        #expect(second.prepares.withLockedValue { $0 } == 1)
        #expect(second.commits.withLockedValue { $0 } == 0, "a plugin committed although another failed")
        let statistics = try await broker.broker.services.statistics().get()
        #expect(statistics.reloads == 1 && statistics.reloadsFailed == 1)

        first.broken.withLockedValue { $0 = false }
        #expect(await broker.broker.reload() == true)
        #expect(first.commits.withLockedValue { $0 } == 1 && second.commits.withLockedValue { $0 } == 1)
    }

    @Test func aWatchedChangeReloadsOnlyThePluginsWhoseFilesChanged() async throws {
        let (broker, first, second) = try await start()
        defer { Task { await broker.stop() } }
        // `first` cannot read its (unchanged) file: that must not block `second`'s change.
        first.broken.withLockedValue { $0 = true }
        try "2\n".write(toFile: second.path, atomically: true, encoding: .utf8)
        #expect(await broker.broker.reload(reason: "files changed", onlyChanged: true) == true)
        #expect(first.prepares.withLockedValue { $0 } == 0)
        #expect(second.commits.withLockedValue { $0 } == 1)
        // Nothing changed since: nothing is reloaded.
        #expect(await broker.broker.reload(reason: "files changed", onlyChanged: true) == true)
        #expect(second.prepares.withLockedValue { $0 } == 1)
        // Both changed, one broken: neither commits.
        try "3\n".write(toFile: first.path, atomically: true, encoding: .utf8)
        try "3\n".write(toFile: second.path, atomically: true, encoding: .utf8)
        #expect(await broker.broker.reload(reason: "files changed", onlyChanged: true) == false)
        #expect(second.commits.withLockedValue { $0 } == 1)
    }
}

/// Allows, cannot answer, or refuses every user, as the test says; reloadable so that a reload re-checks clients.
private final class SwitchableAuthenticator: AuthenticationPlugin, ReloadablePlugin, @unchecked Sendable {
    enum Mode { case allow, unavailable, deny }
    let mode = NIOLockedValueBox(Mode.allow)

    func authenticate(client: ClientInfo, credentials: Credentials, on eventLoop: any EventLoop) -> PluginAnswer<Decision> {
        switch mode.withLockedValue({ $0 }) {
        case .allow: return .now(.allow)
        case .unavailable: return .now(.deny(.serverUnavailable))
        case .deny: return .now(.deny(.badUserNameOrPassword))
        }
    }

    func prepareReload() async throws -> PreparedReload { PreparedReload {} }
}

@Suite("Re-checking clients after a reload")
struct RevalidationTests {
    @Test func aCheckThatCannotBeAnsweredKeepsTheClientARefusalClosesIt() async throws {
        let plugin = SwitchableAuthenticator()
        let broker = try await TestBroker.start("allow_anonymous false\nwatch_interval 0\nplugin switch\n",
                                                hooks: ["switch": plugin])
        let client = try await TestClient.connect(port: broker.port, clientID: "kept", username: "u", password: "p")

        plugin.mode.withLockedValue { $0 = .unavailable }
        #expect(await broker.broker.reload() == true)
        try await client.subscribe("still/here")           // answered: the connection stayed
        try await client.subscribe("still/here", id: 2)

        plugin.mode.withLockedValue { $0 = .deny }
        #expect(await broker.broker.reload() == true)
        let last = await client.next()
        if case .disconnect(let packet)? = last {
            #expect(packet.reasonCode == .notAuthorized)
        } else {
            #expect(last == nil, "expected DISCONNECT or a closed connection, got \(String(describing: last))")
        }
        await client.close()
        await broker.stop()
    }
}
