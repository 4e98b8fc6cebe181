import Foundation
@testable import Host
import Logging
import MQTT
import NIOCore
import PluginAPI
import Testing

/// Allows every access, and counts how often it was asked.
private final class AllowEverything: AuthorizationPlugin, @unchecked Sendable {
    var asked = 0
    func authorize(client: ClientInfo, access: Access, topic: String, qos: QoS, retain: Bool) -> Decision {
        asked += 1
        return .allow
    }
}

/// `auth_plugin_deny_special_chars` (Mosquitto's default true): a client whose user name or client id holds
/// `+` or `#` is denied before a `plugin` line's authorization plugin is asked.
@Suite("auth_plugin_deny_special_chars")
struct DenySpecialCharsTests {
    private func client(_ id: String, user: String? = nil) -> ClientInfo {
        ClientInfo(clientID: id, username: user, protocolVersion: .v5, listener: "1883")
    }

    private func access(_ plugin: AllowEverything, deny: Bool) -> AccessControl {
        AccessControl(authorizers: [plugin], authorizersDenySpecialChars: [deny], allowAnonymous: true,
                      logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    @Test("on (the default): a + or # in the user name or client id denies without asking the plugin")
    func deniesDangerousNames() {
        let plugin = AllowEverything()
        let control = access(plugin, deny: true)
        #expect(control.authorize(client: client("plain", user: "alice"), access: .write, topic: "t", qos: .atMostOnce, retain: false))
        #expect(plugin.asked == 1)
        #expect(!control.authorize(client: client("a+b"), access: .write, topic: "t", qos: .atMostOnce, retain: false))
        #expect(!control.authorize(client: client("ok", user: "al#ce"), access: .read, topic: "t", qos: .atMostOnce, retain: false))
        #expect(plugin.asked == 1)
    }

    @Test("off: the plugin decides for every client")
    func offAsksThePlugin() {
        let plugin = AllowEverything()
        let control = access(plugin, deny: false)
        #expect(control.authorize(client: client("a+b", user: "al#ce"), access: .write, topic: "t", qos: .atMostOnce, retain: false))
        #expect(plugin.asked == 1)
    }

    @Test("the parser's flag reaches the chain, per plugin line")
    func brokerWiresTheFlag() throws {
        let config = try ConfigParser.parse(text: """
            listener 1883 127.0.0.1
            plugin grant-all
            plugin grant-none-special
            auth_plugin_deny_special_chars false
            """, file: "t.conf", baseDirectory: "/tmp")
        let registry = PluginRegistry([
            PluginDescriptor(name: "grant-all", summary: "test") { options, _ in try options.finish(); return AllowEverything() },
            PluginDescriptor(name: "grant-none-special", summary: "test") { options, _ in try options.finish(); return AllowEverything() },
        ])
        let made = try Broker.makeChain(config.security(for: config.effectiveListeners[0]), registry: registry) { name in
            PluginContext(logger: Logger(label: name), configDirectory: "/tmp")
        }
        #expect(made.authorizersDenySpecialChars == [true, false])
    }
}
