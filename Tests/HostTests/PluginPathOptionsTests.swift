import Foundation
@testable import Host
import Logging
import NIOConcurrencyHelpers
import PluginAPI
import Testing

/// Keeps the options it was made with.
private final class OptionRecorder: HookPlugin, Sendable {
    let events: HookEvents = []
    let options: [String: String]
    init(_ options: [String: String]) { self.options = options }
}

/// A plugin declares which of its options are file paths; the host resolves those (and only those) against
/// the directory of the file holding the `plugin` line.
@Suite("plugin path options")
struct PluginPathOptionsTests {
    @Test("declared path options resolve against the plugin line's file; others reach the plugin as written")
    func declaredPathsResolve() throws {
        let config = try ConfigParser.parse(text: """
            listener 1883 127.0.0.1
            plugin recorder
            plugin_opt_rules_file rules.txt
            plugin_opt_cache_path cache
            plugin_opt_absolute_file /etc/rules
            """, file: "t.conf", baseDirectory: "/etc/midge/conf.d")
        let made = NIOLockedValueBox<[String: String]>([:])
        let registry = PluginRegistry([
            PluginDescriptor(name: "recorder", summary: "test", pathOptions: ["rules_file", "absolute_file"]) { options, _ in
                var seen: [String: String] = [:]
                for key in ["rules_file", "cache_path", "absolute_file"] { seen[key] = options.string(key) }
                try options.finish()
                made.withLockedValue { $0 = seen }
                return OptionRecorder(seen)
            },
        ])
        _ = try Broker.makeChain(config.security(for: config.effectiveListeners[0]), registry: registry) { name in
            PluginContext(logger: Logger(label: name), configDirectory: "/etc/midge")
        }
        #expect(made.withLockedValue { $0 } == [
            "rules_file": "/etc/midge/conf.d/rules.txt", "cache_path": "cache", "absolute_file": "/etc/rules",
        ])
    }
}
