import Foundation
import Testing
@testable import Host
import PluginAPI

/// A scratch directory under the system temp directory, removed by `remove()`.
private struct ConfigScratchDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("midge-config-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.standardizedFileURL.path
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        let parent = (file as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

private func parseConfig(_ text: String, base: String = "/etc/midge") throws -> BrokerConfig {
    try ConfigParser.parse(text: text, file: "test.conf", baseDirectory: base)
}

/// The ConfigError thrown by parsing `text`, or nil when it parses.
private func configParseError(_ text: String, base: String = "/etc/midge") -> ConfigError? {
    do {
        _ = try parseConfig(text, base: base)
        return nil
    } catch let error as ConfigError {
        return error
    } catch {
        Issue.record("unexpected error type: \(error)")
        return nil
    }
}

@Suite("Config parser")
struct ConfigTests {
    @Test("an empty file gives Mosquitto 2.0 defaults and local-only mode")
    func defaults() throws {
        let config = try parseConfig("")
        #expect(config.listeners.isEmpty)
        #expect(config.localOnlyMode)
        #expect(config.allowAnonymous == nil)
        #expect(config.allowZeroLengthClientID == true)
        #expect(config.autoIDPrefix == "auto-")
        #expect(config.maxKeepalive == 65535)
        #expect(config.maxPacketSize == 0)
        #expect(config.messageSizeLimit == 0)
        #expect(config.maxInflightMessages == 20)
        #expect(config.maxInflightBytes == 0)
        #expect(config.maxQueuedMessages == 1000)
        #expect(config.maxQueuedBytes == 0)
        #expect(config.queueQoS0Messages == false)
        #expect(config.persistentClientExpiration == nil)
        #expect(config.retainAvailable == true)
        #expect(config.maxQoS == 2)
        #expect(config.upgradeOutgoingQoS == false)
        #expect(config.setTCPNoDelay == false)
        #expect(config.user == nil)
        #expect(config.pidFile == nil)
        #expect(config.logDest == ["stderr"])
        #expect(config.logTypes == ["error", "warning", "notice", "information"])
        #expect(config.connectionMessages == true)
        #expect(config.logTimestamp == true)
        #expect(config.perListenerSettings == false)
        #expect(config.passwordFile == nil)
        #expect(config.aclFile == nil)
        #expect(config.plugins.isEmpty)
        #expect(config.sysInterval == 10)
        #expect(config.maxConnections == -1)
        #expect(config.warnings.isEmpty)

        // Local-only mode opens loopback on 1883, as mosquitto 2.0 does.
        let open = config.effectiveListeners.map { "\($0.bindAddress ?? "*"):\($0.port)" }
        #expect(open == ["127.0.0.1:1883", "::1:1883"])
    }

    @Test("listener lines with and without a bind address")
    func listenersWithBindAddress() throws {
        let config = try parseConfig("""
            listener 1883
            listener 8883 127.0.0.1
            listener 9001 ::1 # loopback only
            """)
        #expect(config.localOnlyMode == false)
        #expect(config.listeners.map(\.port) == [1883, 8883, 9001])
        #expect(config.listeners.map(\.bindAddress) == [nil, "127.0.0.1", "::1"])
        #expect(config.listeners.map(\.line) == [1, 2, 3])
        #expect(config.listeners.allSatisfy { $0.file == "test.conf" && !$0.isDefaultListener })
        #expect(config.listeners.allSatisfy { $0.protocolName == "mqtt" && $0.maxConnections == -1 })
        #expect(config.effectiveListeners == config.listeners)
    }

    @Test("listener options apply to the latest listener")
    func perListenerScoping() throws {
        let config = try parseConfig("""
            listener 1883
            max_connections 100
            mount_point tenant-a/
            listener 8080 0.0.0.0
            protocol websockets
            socket_domain ipv4
            max_qos 1
            listener 8883
            certfile server.pem
            keyfile /etc/ssl/server.key
            require_certificate true
            tls_version tlsv1.2
            """)
        let (plain, ws, tls) = (config.listeners[0], config.listeners[1], config.listeners[2])
        #expect(plain.maxConnections == 100)
        #expect(plain.mountPoint == "tenant-a/")
        #expect(plain.protocolName == "mqtt")
        #expect(plain.tls == nil)
        #expect(ws.protocolName == "websockets")
        #expect(ws.socketDomain == "ipv4")
        #expect(ws.maxQoS == 1)
        #expect(ws.maxConnections == -1)
        #expect(ws.mountPoint == nil)
        #expect(tls.tls == ListenerTLSConfig(certfile: "/etc/midge/server.pem", keyfile: "/etc/ssl/server.key",
                                             tlsVersion: "tlsv1.2", requireCertificate: true))
        #expect(config.maxQoS == 2)
        // Without per_listener_settings, security is global.
        #expect(config.listeners.allSatisfy { $0.security == nil })
    }

    @Test("per_listener_settings moves security options onto the current listener")
    func perListenerSecurity() throws {
        let config = try parseConfig("""
            per_listener_settings true
            listener 1883 127.0.0.1
            allow_anonymous true
            listener 8883
            password_file passwords
            acl_file /etc/midge/acl
            auto_id_prefix guest-
            allow_zero_length_clientid false
            """)
        #expect(config.perListenerSettings)
        let local = try #require(config.listeners[0].security)
        let remote = try #require(config.listeners[1].security)
        #expect(local == SecurityConfig(allowAnonymous: true))
        #expect(remote.allowAnonymous == nil)
        #expect(remote.passwordFile == "/etc/midge/passwords")
        #expect(remote.aclFile == "/etc/midge/acl")
        #expect(remote.autoIDPrefix == "guest-")
        #expect(remote.allowZeroLengthClientID == false)
        #expect(config.security(for: config.listeners[1]) == remote)
        // The global settings are untouched.
        #expect(config.allowAnonymous == nil)
        #expect(config.passwordFile == nil)
    }

    @Test("without per_listener_settings, security options after a listener stay global")
    func globalSecurityAfterListener() throws {
        let config = try parseConfig("""
            listener 1883
            allow_anonymous false
            password_file /etc/midge/passwd
            """)
        #expect(config.allowAnonymous == false)
        #expect(config.passwordFile == "/etc/midge/passwd")
        #expect(config.listeners[0].security == nil)
        #expect(config.security(for: config.listeners[0]).passwordFile == "/etc/midge/passwd")
    }

    @Test("per_listener_settings must come before other security settings")
    func perListenerSettingsOrder() throws {
        let error = try #require(configParseError("""
            allow_anonymous true
            per_listener_settings true
            """))
        #expect(error.line == 2)
        #expect(error.message.contains("per_listener_settings must be set before"))
        #expect(error.message.contains("allow_anonymous"))
    }

    @Test("port and bind_address configure mosquitto's default listener")
    func defaultListener() throws {
        let config = try parseConfig("""
            port 1884
            bind_address 127.0.0.1
            max_connections 5
            listener 8883
            max_connections 50
            """)
        #expect(config.localOnlyMode == false)
        #expect(config.listeners.count == 2)
        let explicit = config.listeners[0]
        #expect(explicit.port == 8883)
        #expect(explicit.maxConnections == 50)
        let byPort = config.listeners[1]  // mosquitto adds the default listener last
        #expect(byPort.isDefaultListener)
        #expect(byPort.port == 1884)
        #expect(byPort.bindAddress == "127.0.0.1")
        #expect(byPort.maxConnections == 5)
        #expect(byPort.line == 1)
        #expect(config.warnings.contains { $0.line == 1 && $0.message.contains("'port' is deprecated") })

        let bindOnly = try parseConfig("bind_address 127.0.0.1")
        #expect(bindOnly.listeners.map(\.port) == [1883])
        #expect(bindOnly.listeners.map(\.bindAddress) == ["127.0.0.1"])
    }

    @Test("listener options above the first listener need a declared default listener")
    func listenerOptionBeforeListener() throws {
        let error = try #require(configParseError("""
            # no port line
            max_connections 10
            listener 1883
            """))
        #expect(error.line == 2)
        #expect(error.message.contains("'max_connections' must come after a 'listener' line"))
        #expect(error.message.contains("default listener"))

        let mountPoint = try #require(configParseError("mount_point tenant/"))
        #expect(mountPoint.line == 1)
        #expect(mountPoint.message.contains("'mount_point' must come after a 'listener' line"))

        let duplicate = try #require(configParseError("port 1883\nlistener 1883"))
        #expect(duplicate.line == 2)
        #expect(duplicate.message.contains("duplicate listener for port 1883"))
    }

    @Test("include_dir loads *.conf files in mosquitto's order")
    func includeDirectory() throws {
        let dir = try ConfigScratchDirectory()
        defer { dir.remove() }
        try dir.write("conf.d/b.conf", "listener 1885\n")
        try dir.write("conf.d/A.conf", "listener 1884\nmax_connections 7\n")
        try dir.write("conf.d/a.conf", "log_type debug\n")
        try dir.write("conf.d/notes.txt", "this is not config\n")
        let main = try dir.write("mosquitto.conf", "listener 1883\ninclude_dir conf.d\nsys_interval 30\n")

        let config = try ConfigParser.load(path: main)
        #expect(config.loadedFiles == [main, dir.path + "/conf.d/A.conf", dir.path + "/conf.d/a.conf",
                                       dir.path + "/conf.d/b.conf"])
        #expect(config.listeners.map(\.port) == [1883, 1884, 1885])
        #expect(config.listeners[1].maxConnections == 7)
        #expect(config.listeners[1].file == dir.path + "/conf.d/A.conf")
        #expect(config.logTypes == ["debug"])
        #expect(config.sysInterval == 30)
    }

    /// Found by the config fuzz target: Foundation's file readers leaked 4 KB for every empty file, on each
    /// start and reload. The parser reads with `FileIO` now; under `scripts/test-sanitizers address` this test
    /// failed (LeakSanitizer) before that change.
    @Test("an empty main or included file is read without a leak")
    func emptyFiles() throws {
        let dir = try ConfigScratchDirectory()
        defer { dir.remove() }
        try dir.write("conf.d/empty.conf", "")
        let empty = try dir.write("empty.conf", "")
        let main = try dir.write("main.conf", "include_dir conf.d\n")
        #expect(try ConfigParser.load(path: empty).listeners.isEmpty)
        #expect(try ConfigParser.load(path: main).loadedFiles == [main, dir.path + "/conf.d/empty.conf"])
    }

    @Test("an error in an included file names that file and line")
    func includeDirectoryError() throws {
        let dir = try ConfigScratchDirectory()
        defer { dir.remove() }
        try dir.write("conf.d/10-ok.conf", "listener 1884\n")
        try dir.write("conf.d/20-bad.conf", "# comment\nlistener 1885\nallow_anonymous maybe\n")
        let main = try dir.write("main.conf", "include_dir conf.d\n")

        do {
            _ = try ConfigParser.load(path: main)
            Issue.record("expected an error")
        } catch let error as ConfigError {
            #expect(error.file == dir.path + "/conf.d/20-bad.conf")
            #expect(error.line == 3)
            #expect(error.message.contains("allow_anonymous"))
            #expect(error.description == "\(dir.path)/conf.d/20-bad.conf:3: \(error.message)")
        }
    }

    @Test("relative paths resolve against the directory of the file that names them")
    func relativePaths() throws {
        let dir = try ConfigScratchDirectory()
        defer { dir.remove() }
        try dir.write("conf.d/tls.conf", "listener 8883\ncafile ../ca/ca.pem\ncapath certs\n")
        let main = try dir.write("etc/midge.conf", """
            password_file passwd
            acl_file ./acl/../acl.txt
            pid_file /run/midge.pid
            log_dest file logs/midge.log
            plugin passwd
            plugin_opt_password_file users.txt
            plugin_opt_cache_path cache
            plugin_opt_database db.sqlite
            plugin_opt_greeting hello world
            include_dir ../conf.d
            """)
        let etc = dir.path + "/etc"
        let config = try ConfigParser.load(path: main)
        #expect(config.passwordFile == etc + "/passwd")
        #expect(config.aclFile == etc + "/acl.txt")
        #expect(config.pidFile == "/run/midge.pid")
        #expect(config.logFile == etc + "/logs/midge.log")
        #expect(config.logDest == ["file"])
        // plugin_opt values are kept as written, with the directory of their file; the options the plugin
        // declares as paths (PluginDescriptor.pathOptions) resolve against it when the plugin is made.
        let plugin = config.plugins[0]
        #expect(plugin.options.map(\.key) == ["password_file", "cache_path", "database", "greeting"])
        #expect(plugin.options.map(\.value) == ["users.txt", "cache", "db.sqlite", "hello world"])
        #expect(plugin.baseDirectory == etc)
        let options = plugin.resolvedOptions(paths: ["password_file", "cache_path", "database"])
        #expect(options.map(\.value) == [etc + "/users.txt", etc + "/cache", etc + "/db.sqlite", "hello world"])
        #expect(config.listeners[0].tls?.cafile == dir.path + "/ca/ca.pem")
        #expect(config.listeners[0].tls?.capath == dir.path + "/conf.d/certs")
    }

    @Test("booleans must be true or false (or mosquitto's 1/0)")
    func badBoolean() throws {
        let error = try #require(configParseError("listener 1883\nallow_anonymous yes"))
        #expect(error.file == "test.conf")
        #expect(error.line == 2)
        #expect(error.message == "invalid value 'yes' for 'allow_anonymous': expected true or false")

        let config = try parseConfig("retain_available 0\nset_tcp_nodelay 1\nconnection_messages false")
        #expect(config.retainAvailable == false)
        #expect(config.setTCPNoDelay == true)
        #expect(config.connectionMessages == false)
    }

    @Test("integers reject garbage, negatives and out-of-range values", arguments: [
        ("max_keepalive 10abc", "expected an integer"),
        ("max_keepalive 5", "between 10 and 65535"),
        ("max_queued_messages -1", "0 (no limit) or more"),
        ("listener 70000", "between 1 and 65535"),
        ("listener http", "expected an integer"),
        ("port 0", "between 1 and 65535"),
        ("max_packet_size 10", "at least 20"),
        ("sys_interval 70000", "between 0 and 65535"),
        ("listener 1883\nmax_qos 3", "between 0 and 2"),
        ("listener 1883\nmax_connections -5", "-1 (unlimited) or more"),
    ])
    func badInteger(line: String, expected: String) throws {
        let error = try #require(configParseError(line))
        #expect(error.message.contains(expected), "\(error)")
        #expect(error.line == line.split(separator: "\n").count)
    }

    @Test("valid numbers are stored")
    func numbers() throws {
        let config = try parseConfig("""
            max_keepalive 60
            max_packet_size 1048576
            message_size_limit 1000
            max_inflight_messages 65535
            max_inflight_bytes 4096
            max_queued_messages 0
            max_queued_bytes 8192
            sys_interval 0
            """)
        #expect(config.maxKeepalive == 60)
        #expect(config.maxPacketSize == 1_048_576)
        #expect(config.messageSizeLimit == 1000)
        #expect(config.maxInflightMessages == 0)  // mosquitto treats 65535 as "no limit"
        #expect(config.maxInflightBytes == 4096)
        #expect(config.maxQueuedMessages == 0)
        #expect(config.maxQueuedBytes == 8192)
        #expect(config.sysInterval == 0)
    }

    @Test("unknown directives and missing values are errors")
    func unknownDirective() throws {
        let unknown = try #require(configParseError("# header\n\nlistener 1883\nfoo bar"))
        #expect(unknown.line == 4)
        #expect(unknown.message == "unknown directive 'foo'")
        #expect(unknown.description == "test.conf:4: unknown directive 'foo'")

        let newer = try #require(configParseError("global_plugin passwd"))
        #expect(newer.message.contains("unknown directive 'global_plugin'"))

        let missing = try #require(configParseError("listener 1883\npassword_file"))
        #expect(missing.line == 2)
        #expect(missing.message == "missing value for 'password_file'")
    }

    @Test("plugin_opt lines attach, in order, to the plugin above them")
    func pluginOptions() throws {
        let config = try parseConfig("""
            plugin passwd
            plugin_opt_b 2
            plugin_opt_a 1
            auth_plugin_deny_special_chars false
            auth_plugin acl
            auth_opt_rules first
            plugin_opt_rules second
            """)
        #expect(config.plugins.map(\.name) == ["passwd", "acl"])
        #expect(config.plugins[0].options.map(\.key) == ["b", "a"])
        #expect(config.plugins[0].options.map(\.value) == ["2", "1"])
        #expect(config.plugins[0].denySpecialChars == false)
        #expect(config.plugins[0].line == 1)
        #expect(config.plugins[1].options.map(\.value) == ["first", "second"])
        #expect(config.plugins[1].option("rules") == "second")
        #expect(config.plugins[1].denySpecialChars == true)
        #expect(config.warnings.contains { $0.line == 5 && $0.message.contains("'auth_plugin' is deprecated") })

        let orphan = try #require(configParseError("plugin_opt_x 1"))
        #expect(orphan.message.contains("without a preceding 'plugin' line"))
    }

    @Test("per-listener plugins under per_listener_settings")
    func perListenerPlugins() throws {
        let config = try parseConfig("""
            per_listener_settings true
            listener 1883
            plugin passwd
            plugin_opt_password_file pw
            listener 8883
            """)
        #expect(config.plugins.isEmpty)
        #expect(config.listeners[0].security?.plugins.map(\.name) == ["passwd"])
        // The passwd plugin declares password_file a path: it resolves against the file's directory.
        #expect(config.listeners[0].security?.plugins.first?.resolvedOptions(paths: ["password_file"]).first?.value
            == "/etc/midge/pw")
        #expect(config.listeners[1].security?.plugins.isEmpty == true)
    }

    @Test("shared-library plugins are refused", arguments: [
        "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
        "plugin libauth.so",
        "auth_plugin ./plugins/auth",
    ])
    func sharedLibraryPlugin(line: String) throws {
        let error = try #require(configParseError(line))
        #expect(error.line == 1)
        #expect(error.message.contains("loading shared-library plugins is not supported yet; use a built-in plugin name"))
    }

    @Test("unsupported directives: errors where they matter, warnings where they don't")
    func unsupportedDirectives() throws {
        for (text, fragment) in [
            ("persistence true", "not supported yet"),
            ("retained_persistence true", "not supported yet"),
            ("connection upstream", "bridges are not supported yet"),
            ("address 10.0.0.1:1883", "bridge option"),
            ("bridge_protocol_version mqttv311", "bridge option"),
            ("listener 8883\npsk_hint hint", "TLS-PSK"),
            ("psk_file psk.txt", "TLS-PSK"),
            ("clientid_prefixes secure-", "not supported yet"),
            ("listener 0 /run/midge.sock", "Unix socket"),
        ] {
            let error = try #require(configParseError(text), "\(text)")
            #expect(error.message.contains(fragment), "\(error)")
        }

        let config = try parseConfig("""
            persistence false
            listener 1883
            autosave_interval 60
            persistence_location /var/lib/midge/
            memory_limit 1000000
            check_retain_source true
            allow_duplicate_messages false
            """)
        #expect(config.warnings.map(\.line) == [3, 4, 5, 6, 7])
        #expect(config.warnings.allSatisfy { $0.file == "test.conf" })
        #expect(config.warnings.allSatisfy { $0.message.hasPrefix("accepted but not implemented: ") })
        #expect(config.warnings[0].message.contains("'autosave_interval'"))
        #expect(config.warnings[0].description.hasPrefix("test.conf:3: accepted but not implemented"))
    }

    @Test("persistent_client_expiration units", arguments: [
        ("1h", 3600), ("2d", 172_800), ("1w", 604_800), ("2m", 5_184_000), ("1y", 31_536_000),
    ])
    func expirationUnits(value: String, seconds: Int) throws {
        let config = try parseConfig("persistent_client_expiration \(value)")
        #expect(config.persistentClientExpiration == seconds)
    }

    @Test("persistent_client_expiration rejects bad durations", arguments: ["10", "0d", "-2d", "1.5h", "3x", "d"])
    func badExpiration(value: String) throws {
        let error = try #require(configParseError("persistent_client_expiration \(value)"))
        #expect(error.message.contains("persistent_client_expiration"))
    }

    @Test("comments: whole lines only; trailing words are never silently dropped")
    func comments() throws {
        let config = try parseConfig("""
            # a comment
               # an indented comment
            \t# a tab-indented comment

            listener 1883 # comment after a listener
            allow_anonymous true # comment after a single-word value
            password_file /etc/midge/pw # not a comment
            """)
        #expect(config.listeners.map(\.port) == [1883])
        #expect(config.listeners[0].bindAddress == nil)
        #expect(config.allowAnonymous == true)
        // mosquitto has no trailing comments: a path runs to the end of the line.
        #expect(config.passwordFile == "/etc/midge/pw # not a comment")
        #expect(config.warnings.contains { $0.line == 7 && $0.message.contains("contains '#'") })

        let junk = try #require(configParseError("allow_anonymous true false"))
        #expect(junk.message.contains("unexpected 'false'"))
        let listenerJunk = try #require(configParseError("listener 1883 0.0.0.0 extra"))
        #expect(listenerJunk.message.contains("unexpected 'extra'"))
    }

    @Test("CRLF line endings and tabs are accepted")
    func lineEndings() throws {
        let config = try parseConfig("listener 1883\r\nprotocol\twebsockets\r\n  max_connections   3  \r\n")
        #expect(config.listeners[0].protocolName == "websockets")
        #expect(config.listeners[0].maxConnections == 3)
    }

    @Test("set-once values may not be repeated")
    func duplicates() throws {
        let error = try #require(configParseError("password_file a\npassword_file b"))
        #expect(error.line == 2)
        #expect(error.message == "duplicate 'password_file' (already set at test.conf:1)")
    }

    @Test("admin_listener PORT [BIND_ADDRESS]: global, once, port 0 allowed, all interfaces by default")
    func adminListener() throws {
        #expect(try parseConfig("").adminListener == nil)
        let plain = try parseConfig("listener 1883\nadmin_listener 9090")
        #expect(plain.adminListener == AdminListenerConfig(port: 9090, bindAddress: nil, file: "test.conf", line: 2))
        #expect(plain.listeners.count == 1)
        let bound = try parseConfig("admin_listener 0 127.0.0.1 # ephemeral, loopback")
        #expect(bound.adminListener?.port == 0)
        #expect(bound.adminListener?.bindAddress == "127.0.0.1")
        #expect(bound.localOnlyMode, "the admin listener is not an MQTT listener")
        // Global: a listener line above it does not take it over.
        let after = try parseConfig("listener 1883 127.0.0.1\nadmin_listener 8080 ::1\nmax_connections 5")
        #expect(after.adminListener?.bindAddress == "::1")
        #expect(after.listeners[0].maxConnections == 5)

        for (text, line, message) in [
            ("admin_listener 9090\nadmin_listener 9091", 2, "duplicate 'admin_listener' (already set at test.conf:1)"),
            ("admin_listener 70000", 1, "invalid port 70000 for 'admin_listener': must be between 0 (any free port) and 65535"),
            ("admin_listener -1", 1, "invalid port -1 for 'admin_listener': must be between 0 (any free port) and 65535"),
            ("admin_listener http", 1, "invalid port 'http' for 'admin_listener': expected an integer"),
            ("admin_listener # none", 1, "missing value for 'admin_listener' (expected: admin_listener PORT [BIND_ADDRESS])"),
            ("admin_listener 9090 0.0.0.0 extra", 1, "unexpected 'extra' after 'admin_listener 9090 0.0.0.0' (expected: admin_listener PORT [BIND_ADDRESS])"),
            ("listener 1883\nadmin_listener 1883", 2, "admin_listener port 1883 is also used by the listener at test.conf:1"),
            ("listener 1883 127.0.0.1\n\nadmin_listener 1883", 3, "admin_listener port 1883 is also used by the listener at test.conf:1"),
            ("port 8080\nadmin_listener 8080 127.0.0.1", 2, "admin_listener port 8080 is also used by the default listener ('port'/'bind_address') at test.conf:1"),
        ] {
            let error = try #require(configParseError(text), "\(text)")
            #expect(error.file == "test.conf")
            #expect(error.line == line, "\(text)")
            #expect(error.message == message, "\(text)")
        }
        // The same port on another address is fine.
        #expect(try parseConfig("listener 1883 127.0.0.1\nadmin_listener 1883 127.0.0.2").adminListener?.port == 1883)
        #expect(try parseConfig("listener 1883\nadmin_listener 0").adminListener?.port == 0)
    }

    @Test("log_dest and log_type accumulate; none resets")
    func logging() throws {
        let config = try parseConfig("""
            log_dest stdout
            log_dest syslog
            log_type error
            log_type none
            log_type warning
            log_timestamp false
            """)
        #expect(config.logDest == ["stdout", "syslog"])
        #expect(config.logTypes == ["warning"])
        #expect(config.logTimestamp == false)
        #expect(try parseConfig("log_dest stderr\nlog_dest none").logDest == [])
        #expect(try parseConfig("log_type all").logTypes.contains("debug"))
    }

    @Test("log_format: text (the default) or json, one word")
    func logFormat() throws {
        #expect(try parseConfig("").logFormat == .text)
        #expect(try parseConfig("log_format json").logFormat == .json)
        #expect(try parseConfig("log_format json\nlog_format text").logFormat == .text)
        #expect(try parseConfig("log_format json # collectors").logFormat == .json)
        #expect(configParseError("log_format xml")?.description
            == "test.conf:1: invalid value 'xml' for 'log_format': expected text or json")
        #expect(configParseError("log_format json text")?.line == 1)
        #expect(configParseError("log_format")?.message == "missing value for 'log_format'")
    }

    @Test("every error is collected: parsing goes on after a bad line, then the whole-file checks run")
    func collectsEveryError() throws {
        let result = ConfigParser.parseCollectingErrors(text: """
            listener 1883
            max_keepalive 5
            bogus_directive 1
            log_type loud
            listener 1883
            allow_anonymous true
            """, file: "test.conf", baseDirectory: "/etc/midge")
        #expect(result.errors.map(\.description) == [
            "test.conf:2: invalid value 5 for 'max_keepalive': must be between 10 and 65535",
            "test.conf:3: unknown directive 'bogus_directive'",
            "test.conf:4: invalid value 'loud' for 'log_type': expected one of error, warning, notice, information, debug, subscribe, unsubscribe, websockets, internal, none, all",
            "test.conf:5: duplicate listener for port 1883: a listener at test.conf:1 already uses it",
        ])
        // The good lines still count; `parse` throws the first error.
        #expect(result.config.allowAnonymous == true)
        #expect(configParseError("max_keepalive 5\nbogus 1")?.line == 1)
        #expect(throws: ConfigError.self) { try result.get() }
    }

    @Test("a bad listener or plugin line does not make errors of the lines that belong to it")
    func noCascades() throws {
        let result = ConfigParser.parseCollectingErrors(text: """
            listener 99999
            max_connections 10
            protocol websockets
            plugin /usr/lib/auth.so
            plugin_opt_database users.db
            auth_plugin_deny_special_chars false
            listener 1884
            max_connections 20
            """, file: "test.conf", baseDirectory: "/etc/midge")
        #expect(result.errors.map(\.line) == [1, 4])
        // The options of the bad listener land nowhere; those of the next one on it.
        #expect(result.config.listeners.map(\.port) == [1884])
        #expect(result.config.listeners.first?.maxConnections == 20)
        #expect(result.config.plugins.isEmpty)
    }

    /// Found by the config fuzz target: under per_listener_settings, a plugin of one bad listener and an
    /// option after a second bad listener crashed the parser (index out of range) instead of reporting the
    /// two listener lines.
    @Test("a plugin option after a second bad listener is dropped with it, not a crash")
    func pluginOfADiscardedListener() throws {
        let result = ConfigParser.parseCollectingErrors(text: """
            per_listener_settings true
            listener 8x
            plugin a
            listener 9y
            plugin_opt_x 1
            auth_plugin_deny_special_chars false
            listener 1884
            plugin b
            plugin_opt_y 2
            """, file: "test.conf", baseDirectory: "/etc/midge")
        #expect(result.errors.map(\.line) == [2, 4])
        #expect(result.config.listeners.map(\.port) == [1884])
        #expect(result.config.listeners.first?.security?.plugins.map(\.name) == ["b"])
        #expect(result.config.listeners.first?.security?.plugins.first?.options.map(\.key) == ["y"])
    }

    @Test("errors in several included files are all reported, each with its file")
    func collectsAcrossIncludes() throws {
        let dir = try ConfigScratchDirectory()
        defer { dir.remove() }
        try dir.write("conf.d/a.conf", "max_qos 7\n")
        try dir.write("conf.d/b.conf", "\nretain_available maybe\n")
        let main = try dir.write("main.conf", "listener 1883\ninclude_dir conf.d\nmax_inflight_messages -1\n")
        let errors = ConfigParser.loadCollectingErrors(path: main).errors
        #expect(errors.map { "\(($0.file as NSString).lastPathComponent):\($0.line)" } == ["a.conf:1", "b.conf:2", "main.conf:3"])
    }

    @Test("-p ports: loopback-only in local-only mode, ignored when listeners are configured")
    func commandLinePorts() throws {
        var local = try parseConfig("allow_anonymous true")
        try local.addCommandLinePort(1999)
        try local.addCommandLinePort(2000)
        try local.addCommandLinePort(1999)
        #expect(local.localOnlyMode)
        #expect(local.commandLinePorts == [1999, 2000])
        let open = local.effectiveListeners.map { "\($0.bindAddress ?? "*"):\($0.port)" }
        #expect(open == ["127.0.0.1:1999", "::1:1999", "127.0.0.1:2000", "::1:2000"])

        var configured = try parseConfig("listener 1883")
        try configured.addCommandLinePort(1999)
        #expect(configured.commandLinePorts.isEmpty)
        #expect(configured.effectiveListeners.map(\.port) == [1883])
        #expect(configured.warnings.contains { $0.message.contains("-p 1999 ignored") })

        var bad = BrokerConfig()
        #expect(throws: ConfigError.self) { try bad.addCommandLinePort(0) }
        #expect(throws: ConfigError.self) { try bad.addCommandLinePort(65536) }
    }

    @Test("a missing config file is an error naming it")
    func missingFile() throws {
        let dir = try ConfigScratchDirectory()
        defer { dir.remove() }
        let path = dir.path + "/nope.conf"
        do {
            _ = try ConfigParser.load(path: path)
            Issue.record("expected an error")
        } catch let error as ConfigError {
            #expect(error.file == path)
            #expect(error.line == 0)
            #expect(error.description.hasPrefix(path + ": "))
        }
    }
}
