import PluginAPI

/// Every directive Midge knows, each declared once: its name and aliases, where its value lands, how the
/// value is read, what it sets, and whether Midge honours it, ignores it with a warning or refuses it.
/// `ConfigFileParser` looks each line's directive up here (`named`); anything not here is an unknown directive.
///
/// ## Directive decisions
///
/// | Directive(s) | Midge |
/// |---|---|
/// | `listener PORT [ADDRESS]` | Supported. `listener 0 PATH` (Unix socket): **error**, not supported yet. |
/// | `port`, `bind_address` | Supported: configure mosquitto's default listener (deprecated in mosquitto; warning). |
/// | `protocol` (`mqtt`/`websockets`), `max_connections`, `mount_point`, `socket_domain`, `bind_interface`, `max_qos` (alias `maximum_qos`), `max_topic_alias`, `max_topic_alias_broker` (Mosquitto 2.1), `use_username_as_clientid` | Supported, per listener. |
/// | `certfile`, `keyfile`, `cafile`, `capath`, `crlfile`, `dhparamfile`, `ciphers`, `ciphers_tls1.3`, `tls_version`, `require_certificate`, `use_identity_as_username`, `use_subject_as_username`, `tls_engine`, `tls_engine_kpass_sha1`, `tls_keyform` | Kept per listener in `ListenerConfig.tls` (a `ListenerTLSConfig`), which the TLS plugin gets typed. |
/// | `per_listener_settings`, `allow_anonymous`, `allow_zero_length_clientid`, `auto_id_prefix`, `password_file`, `acl_file` | Supported (global, or per listener under `per_listener_settings true`). |
/// | `plugin NAME`, `plugin_opt_*`, `auth_opt_*`, `auth_plugin_deny_special_chars` | Supported with built-in plugin names. A `.so` / path value: **error** (shared-library plugins, including the Dynamic Security plugin, not supported yet). |
/// | `auth_plugin` | Alias of `plugin`, with a deprecation warning. |
/// | `include_dir` | Supported (main file only; in an included file it is ignored with a warning, as mosquitto ignores it). |
/// | `log_dest` (`stdout`, `stderr`, `syslog`, `topic`, `file PATH`, `none`), `log_type`, `log_timestamp`, `log_timestamp_format`, `connection_messages` | Supported. `log_dest dlt`: warning, not implemented. |
/// | `max_inflight_messages`, `max_inflight_bytes`, `max_queued_messages`, `max_queued_bytes`, `queue_qos0_messages`, `max_keepalive`, `max_packet_size`, `message_size_limit`, `persistent_client_expiration`, `retain_available`, `upgrade_outgoing_qos`, `set_tcp_nodelay`, `sys_interval`, `user`, `pid_file` | Supported. |
/// | `log_format text\|json` (Midge only) | Supported: `text` (default) writes Mosquitto's lines; `json` one object per line with `time`, `level`, `logger`, `message` and `metadata`. |
/// | `log_buffer_size BYTES` (Midge only) | Global. Log lines wait for a slow destination in a buffer of this many bytes (default 1048576), written by a thread of their own so that no client waits for the log; lines that do not fit are dropped, counted (`midge_log_lines_dropped_total`) and reported in one warning once the buffer drains. 0 = each line is written at once by the thread that logs it, as Mosquitto does (never dropped; a blocked destination then blocks the broker). |
/// | `generate_certificates true` (Midge only) | Generates a CA and a server certificate for TLS listeners whose `certfile` and `keyfile` are both missing. |
/// | `watch_interval SECONDS` (Midge only) | Global. How often the files plugins load (password file, ACL file, SQLite database, certificates, keys, CA, CRL) are checked for changes; a change (an edit, a replaced file, a Kubernetes `..data` symlink swap) reloads the plugins whose files changed, all or nothing, once the files have stayed the same for one more interval. Default 2; decimals allowed (`0.5`); 0 = not watched. |
/// | `max_connections_total N`, `max_connections_per_user N` (-1 = no limit), `max_connection_rate N [SECONDS]`, `max_publish_rate N`, `max_publish_bytes_rate N`, `max_queued_bytes_total N` (0 = no limit) (Midge only) | Global quotas; what each does per protocol version is in README, Quotas. |
/// | `admin_listener PORT [BIND_ADDRESS]` (Midge only) | Global, at most once. The admin HTTP listener: `/healthz`, `/readyz` and plugins' endpoints (such as `/metrics`). Port 0 picks an ephemeral port; no address means all interfaces. A port and address an MQTT listener also uses: **error**. |
/// | `persistence` / `retained_persistence` | `false`: accepted. `true`: **error**, persistence is not supported yet (data would silently be lost on restart). |
/// | `persistence_file`, `persistence_location`, `autosave_interval`, `autosave_on_changes` | Warning: accepted but not implemented (no effect without persistence). |
/// | `connection` and every bridge option (`address`, `addresses`, `topic`, `bridge_*`, `remote_clientid`, `remote_password`, `remote_username`, `local_cleansession`, `local_clientid`, `local_password`, `local_username`, `cleansession`, `keepalive_interval`, `notifications`, `notifications_local_only`, `notification_topic`, `restart_timeout`, `start_type`, `threshold`, `try_private`, `round_robin`, `idle_timeout`, `clientid`, `username`, `password`) | **Error**: bridges are not supported yet. |
/// | `psk_hint`, `psk_file` | **Error**: TLS-PSK is not supported yet. |
/// | `clientid_prefixes` | **Error**: not supported yet (ignoring it would admit every client id). |
/// | `check_retain_source`, `allow_duplicate_messages`, `memory_limit`, `http_dir`, `websockets_log_level`, `websockets_headers_size`, `log_facility`, `retry_interval` | Warning: accepted but not implemented. |
/// | Mosquitto 2.1-only options (`global_plugin`, `accept_protocol_versions`, `enable_control_api`, `global_max_clients`, `global_max_connections`, `disable_client_cert_date_checks`, `quic_log_level`) and anything else | **Error**: unknown directive. |
enum ConfigDirectives {
    /// The directive for `name`, or nil: an unknown directive.
    static func named(_ name: String) -> ConfigDirective? {
        byName[name] ?? prefixed.first { $0.matches(name) }
    }

    private static let byName: [String: ConfigDirective] = Dictionary(
        all.filter { !$0.isPrefix }.flatMap { directive in directive.names.map { ($0, directive) } },
        uniquingKeysWith: { first, _ in first })
    private static let prefixed = all.filter(\.isPrefix)

    static let all: [ConfigDirective] = listeners + tls + security + logging + limits + quotas + process + notImplemented
        + unsupported

    // MARK: Listeners

    static let listeners: [ConfigDirective] = [
        ConfigDirective(names: ["listener"], scope: .global, value: ConfigValueKind(description: "PORT [BIND_ADDRESS]", example: "1884"),
                        recovery: .discardListener) { parser, line, state in
            try parser.listenerLine(line, &state)
        },
        ConfigDirective(names: ["port"], scope: .defaultListener, value: ConfigValue<Int>.int(1...65535).kind) { parser, line, _ in
            try parser.portLine(line)
        },
        ConfigDirective(names: ["bind_address"], scope: .defaultListener, value: ConfigValue<String>.word.kind,
                        setOnce: true) { parser, line, _ in
            try parser.bindAddressLine(line)
        },
        .setting("protocol", in: .listener, value: .oneOf(["mqtt", "websockets"], expected: "mqtt or websockets"), set: \.protocolName),
        .setting("max_connections", in: .listener, value: .int(-1...Int(Int32.max), "-1 (unlimited) or more"), set: \.maxConnections),
        ConfigDirective(names: ["mount_point"], scope: .listener, value: ConfigValue<String>.text.kind,
                        setOnce: true) { parser, line, state in
            try parser.mountPointLine(line, state)
        },
        .setting("socket_domain", in: .listener, value: .oneOf(["ipv4", "ipv6"], expected: "ipv4 or ipv6"), set: \.socketDomain),
        .setting("bind_interface", in: .listener, value: .word, set: \.bindInterface, once: true),
        .setting("max_qos", "maximum_qos", in: .listener, value: .int(0...2), set: \.maxQoS),
        .setting("max_topic_alias", in: .listener, value: .int(0...65535), set: \.maxTopicAlias),
        .setting("max_topic_alias_broker", in: .listener, value: .int(0...65535), set: \.maxTopicAliasBroker),
        .setting("use_username_as_clientid", in: .listener, value: .bool, set: \.useUsernameAsClientID),
    ]

    /// Per listener, into `ListenerConfig.tls`.
    static let tls: [ConfigDirective] = [
        .setting("certfile", in: .listener, value: .path, set: \.tlsDirectives.certfile, once: true),
        .setting("keyfile", in: .listener, value: .path, set: \.tlsDirectives.keyfile, once: true),
        .setting("cafile", in: .listener, value: .path, set: \.tlsDirectives.cafile, once: true),
        .setting("capath", in: .listener, value: .path, set: \.tlsDirectives.capath, once: true),
        .setting("crlfile", in: .listener, value: .path, set: \.tlsDirectives.crlfile, once: true),
        .setting("dhparamfile", in: .listener, value: .path, set: \.tlsDirectives.dhparamfile, once: true),
        .setting("ciphers", in: .listener, value: .text, set: \.tlsDirectives.ciphers, once: true),
        .setting("ciphers_tls1.3", in: .listener, value: .text, set: \.tlsDirectives.ciphersTLS13, once: true),
        .setting("tls_version", in: .listener, value: .text, set: \.tlsDirectives.tlsVersion, once: true),
        .setting("tls_engine", in: .listener, value: .text, set: \.tlsDirectives.tlsEngine, once: true),
        .setting("tls_engine_kpass_sha1", in: .listener, value: .text, set: \.tlsDirectives.tlsEngineKpassSHA1, once: true),
        .setting("require_certificate", in: .listener, value: .bool, set: \.tlsDirectives.requireCertificate),
        .setting("use_identity_as_username", in: .listener, value: .bool, set: \.tlsDirectives.useIdentityAsUsername),
        .setting("use_subject_as_username", in: .listener, value: .bool, set: \.tlsDirectives.useSubjectAsUsername),
        .setting("tls_keyform", in: .listener, value: .oneOf(["pem", "engine"], expected: "pem or engine"), set: \.tlsDirectives.tlsKeyform),
        .refused(["psk_hint", "psk_file"], scope: .listener) { directive, _ in
            "'\(directive)' is not supported yet: Midge has no TLS-PSK support"
        },
    ]

    // MARK: Security

    static let security: [ConfigDirective] = [
        ConfigDirective(names: ["per_listener_settings"], scope: .global, value: ConfigValue<Bool>.bool.kind) { parser, line, _ in
            try parser.perListenerSettingsLine(line)
        },
        .setting("allow_anonymous", in: .security, value: .bool, set: \.allowAnonymous),
        .setting("allow_zero_length_clientid", in: .security, value: .bool, set: \.allowZeroLengthClientID),
        .setting("auto_id_prefix", in: .security, value: .text, set: \.autoIDPrefix, once: true),
        .setting("password_file", in: .security, value: .path, set: \.passwordFile, once: true),
        .setting("acl_file", in: .security, value: .path, set: \.aclFile, once: true),
        ConfigDirective(names: ["plugin", "auth_plugin"], scope: .security, value: ConfigValue<String>.word.kind,
                        recovery: .discardPlugin) { parser, line, state in
            try parser.pluginLine(line, &state)
        },
        ConfigDirective(names: ["plugin_opt_", "auth_opt_"], isPrefix: true, scope: .plugin,
                        value: ConfigValue<String>.text.kind) { parser, line, state in
            try parser.pluginOption(line, state)
        },
        ConfigDirective(names: ["auth_plugin_deny_special_chars"], scope: .plugin, value: ConfigValue<Bool>.bool.kind) { parser, line, state in
            try parser.denySpecialCharsLine(line, state)
        },
        .ignored("check_retain_source", scope: .security, value: .bool,
                 why: "retained messages are not re-checked against the publisher's access"),
        .refused(["clientid_prefixes"], scope: .security) { _, _ in
            "'clientid_prefixes' is not supported yet (ignoring it would let clients with any client id connect)"
        },
    ]

    // MARK: Includes and logging

    static let logging: [ConfigDirective] = [
        ConfigDirective(names: ["include_dir"], scope: .global,
                        value: ConfigValueKind(description: "a directory", example: ".")) { parser, line, state in
            try parser.includeDirectoryLine(line, state)
        },
        ConfigDirective(names: ["log_dest"], scope: .global, value: ConfigValueKind(description: "a destination, or file PATH",
                                                                             example: "stdout")) { parser, line, _ in
            try parser.logDestination(line)
        },
        ConfigDirective(names: ["log_type"], scope: .global, value: ConfigValueKind(description: "a log type, all or none",
                                                                             example: "all")) { parser, line, _ in
            try parser.logTypeLine(line)
        },
        .setting("log_timestamp", in: .broker, value: .bool, set: \.logTimestamp),
        .setting("log_timestamp_format", in: .broker, value: .text, set: \.logTimestampFormat, once: true),
        .setting("log_format", in: .broker, value: .logFormat, set: \.logFormat),
        .setting("log_buffer_size", in: .broker, value: .int(0...Int.max, "0 (write at once) or more"),
                 set: \.logBufferSize),
        .setting("connection_messages", in: .broker, value: .bool, set: \.connectionMessages),
    ]

    // MARK: Limits and behaviour

    static let limits: [ConfigDirective] = [
        // Mosquitto also reads 65535 as no limit.
        .setting("max_inflight_messages", in: .broker, value: ConfigValue<Int>.int(0...65535, "between 0 (no limit) and 65535")
                    .map { $0 == 65535 ? 0 : $0 }, set: \.maxInflightMessages),
        .setting("max_inflight_bytes", in: .broker, value: .int(0...Int(Int32.max), "0 (no limit) or more"), set: \.maxInflightBytes),
        .setting("max_queued_messages", in: .broker, value: .int(0...Int(Int32.max), "0 (no limit) or more"), set: \.maxQueuedMessages),
        .setting("max_queued_bytes", in: .broker, value: .int(0...Int(Int32.max), "0 (no limit) or more"), set: \.maxQueuedBytes),
        .setting("queue_qos0_messages", in: .broker, value: .bool, set: \.queueQoS0Messages),
        .setting("max_keepalive", in: .broker, value: .int(10...65535), set: \.maxKeepalive),
        .setting("max_packet_size", in: .broker, value: .int(20...Int(Int32.max), "at least 20 bytes"), set: \.maxPacketSize),
        .setting("message_size_limit", in: .broker, value: .int(0...268_435_455, "between 0 (no limit) and 268435455"),
                set: \.messageSizeLimit),
        .setting("persistent_client_expiration", in: .broker, value: .expiration, set: \.persistentClientExpiration),
        .setting("retain_available", in: .broker, value: .bool, set: \.retainAvailable),
        .setting("upgrade_outgoing_qos", in: .broker, value: .bool, set: \.upgradeOutgoingQoS),
        .setting("set_tcp_nodelay", in: .broker, value: .bool, set: \.setTCPNoDelay),
        // Midge only: create a CA and a server certificate for TLS listeners whose certfile and keyfile do not
        // exist yet (the default deployment). Never overwrites.
        .setting("generate_certificates", in: .broker, value: .bool, set: \.generateCertificates),
        ConfigDirective(names: ["admin_listener"], scope: .global, value: ConfigValueKind(description: "PORT [BIND_ADDRESS]", example: "0"),
                        setOnce: true) { parser, line, _ in
            try parser.adminListenerLine(line)
        },
        .setting("watch_interval", in: .broker, value: .milliseconds(maximum: 3600), set: \.watchIntervalMilliseconds),
        .setting("sys_interval", in: .broker, value: .int(0...65535), set: \.sysInterval),
    ]

    // MARK: Quotas (Midge only)

    static let quotas: [ConfigDirective] = [
        .setting("max_connections_total", in: .broker, value: .int(-1...Int(Int32.max), "-1 (unlimited) or more"), set: \.maxConnectionsTotal),
        .setting("max_connections_per_user", in: .broker, value: .int(-1...Int(Int32.max), "-1 (unlimited) or more"),
                set: \.maxConnectionsPerUser),
        ConfigDirective(names: ["max_connection_rate"], scope: .global,
                        value: ConfigValueKind(description: "COUNT [SECONDS]", example: "10")) { parser, line, _ in
            try parser.connectionRateLine(line)
        },
        .setting("max_publish_rate", in: .broker, value: .int(0...Int(Int32.max), "0 (no limit) or more"), set: \.maxPublishRate),
        .setting("max_publish_bytes_rate", in: .broker, value: .int(0...Int(Int32.max), "0 (no limit) or more"), set: \.maxPublishBytesRate),
        .setting("max_queued_bytes_total", in: .broker, value: .int(0...Int.max, "0 (no limit) or more"), set: \.maxQueuedBytesTotal),
    ]

    // MARK: Process

    static let process: [ConfigDirective] = [
        .setting("user", in: .broker, value: .text, set: \.user, once: true),
        .setting("pid_file", in: .broker, value: .path, set: \.pidFile, once: true),
    ]

    // MARK: Accepted, not implemented

    static let notImplemented: [ConfigDirective] = [
        .refusedIfTrue("persistence", "retained_persistence") { directive in
            "'\(directive) true' is not supported yet: Midge keeps sessions and "
                + "retained messages in memory only, so they would be lost on restart"
        },
        .ignored("persistence_file", "persistence_location", value: .text, why: "persistence is not supported yet"),
        .ignored("autosave_interval", value: .int(Int(Int32.min)...Int(Int32.max)), why: "persistence is not supported yet"),
        .ignored("autosave_on_changes", value: .bool, why: "persistence is not supported yet"),
        .ignored("allow_duplicate_messages", value: .bool, why: "deprecated in mosquitto; duplicates are always allowed"),
        .ignored("memory_limit", value: .int(0...Int.max, "0 (no limit) or more"), why: "there is no heap limit"),
        .ignored("http_dir", value: .text, why: "websockets listeners do not serve HTTP files"),
        .ignored("websockets_log_level", "websockets_headers_size", value: .int(Int(Int32.min)...Int(Int32.max)),
                 why: "libwebsockets-specific"),
        .ignored("log_facility", value: .int(0...7), why: "syslog messages use the default facility"),
        .ignored("retry_interval", value: .anything, why: "removed in mosquitto 2.0"),
    ]

    // MARK: Not supported

    /// Mosquitto's bridge options; a missing value says bridges are not supported either.
    static let bridgeOptions = [
        "address", "addresses", "cleansession", "clientid", "remote_clientid", "local_cleansession",
        "local_clientid", "local_password", "local_username", "idle_timeout", "keepalive_interval",
        "notifications", "notifications_local_only", "notification_topic", "password", "remote_password",
        "username", "remote_username", "restart_timeout", "round_robin", "start_type", "threshold", "topic",
        "try_private",
    ]

    static let unsupported: [ConfigDirective] = [
        .refused(["connection"]) { _, value in "bridges are not supported yet ('connection \(value)')" },
        .refused(bridgeOptions, scope: .bridge) { directive, _ in
            "'\(directive)' is a bridge option, and bridges are not supported yet"
        },
        .refused(["bridge_"], isPrefix: true, scope: .bridge) { directive, _ in
            "'\(directive)' is a bridge option, and bridges are not supported yet"
        },
        .refused(["global_plugin", "accept_protocol_versions", "enable_control_api", "global_max_clients",
                  "disable_client_cert_date_checks", "quic_log_level"]) { directive, _ in
            "unknown directive '\(directive)' (a Mosquitto 2.1 option; Midge follows Mosquitto 2.0)"
        },
        .refused(["global_max_connections"]) { directive, _ in
            "unknown directive '\(directive)' (a Mosquitto 2.1 option; Midge follows Mosquitto 2.0; "
                + "Midge's max_connections_total limits connections across all listeners)"
        },
    ]
}

extension ListenerConfig {
    /// `tls`, made when a first TLS directive sets one of its fields (so any TLS directive makes a TLS listener).
    var tlsDirectives: ListenerTLSConfig {
        get { tls ?? ListenerTLSConfig() }
        set { tls = newValue }
    }
}
