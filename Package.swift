// swift-tools-version:6.1
import PackageDescription

let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Midge",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "midge", targets: ["midge"]),
        // The broker as a library, for a package that composes its own `midge` with plugins of its own
        // (Examples/custom-broker): `import Host` (MidgeMain, Broker) and `import PluginAPI`.
        .library(name: "Midge", targets: ["Host", "PluginAPI", "MQTT"]),
        // The built-in plugins, one module each, for such a package to add to its registry.
        .library(name: "MidgePlugins", targets: [
            "TCPPlugin", "TLSPlugin", "WebSocketPlugin", "PasswordFilePlugin", "ACLFilePlugin", "SQLitePlugin",
            "SCRAMPlugin", "LogPlugin", "SysPlugin", "PrometheusPlugin", "UserHooks",
        ]),
        .library(name: "PluginAPI", targets: ["PluginAPI"]),
        .executable(name: "midge-bench", targets: ["midge-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.2.0"),
    ],
    targets: [
        // The wire protocol only: packets, properties, reason codes, codec, topic rules.
        .target(
            name: "MQTT",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: upcoming
        ),
        // The contracts every plugin implements, and the values plugins see.
        .target(
            name: "PluginAPI",
            dependencies: [
                "MQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        // Built-in plugins, one target each.
        .target(
            name: "TCPPlugin",
            dependencies: [
                "PluginAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/Plugins/TCP",
            swiftSettings: upcoming
        ),
        // System libraries: OpenSSL's libcrypto (password hashing, certificates) and SQLite.
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", providers: [.apt(["libssl-dev"])]),
        // The `tls` transport (NIOSSL, i.e. BoringSSL) and per-instance certificate generation (libcrypto).
        .target(
            name: "TLSCipherCheck",
            dependencies: [.product(name: "NIOSSL", package: "swift-nio-ssl")],
            path: "Sources/Plugins/TLS/CipherCheck",
            swiftSettings: upcoming
        ),
        .target(
            name: "TLSPlugin",
            dependencies: [
                "PluginAPI", "CCrypto", "TLSCipherCheck",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Plugins/TLS",
            exclude: ["CipherCheck"],
            swiftSettings: upcoming
        ),
        // The `protocol websockets` decorator: MQTT over WebSocket on a tcp or tls transport's connections.
        .target(
            name: "WebSocketPlugin",
            dependencies: [
                "PluginAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Plugins/WebSocket",
            swiftSettings: upcoming
        ),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "PasswordFilePlugin",
            dependencies: ["PluginAPI", "CCrypto", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            path: "Sources/Plugins/PasswordFile",
            swiftSettings: upcoming
        ),
        // MQTT 5.0 enhanced authentication: the SCRAM-SHA-256 method (libcrypto).
        .target(
            name: "SCRAMPlugin",
            dependencies: [
                "PluginAPI", "MQTT", "CCrypto", "PasswordFilePlugin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Sources/Plugins/SCRAM",
            swiftSettings: upcoming
        ),
        .target(
            name: "ACLFilePlugin",
            dependencies: ["PluginAPI", .product(name: "NIOCore", package: "swift-nio")],
            path: "Sources/Plugins/ACLFile",
            swiftSettings: upcoming
        ),
        .target(
            name: "SQLitePlugin",
            dependencies: [
                "PluginAPI", "CSQLite", "PasswordFilePlugin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/Plugins/SQLite",
            swiftSettings: upcoming
        ),
        // Hooks: `log` and `sys` (loaded from Mosquitto's own directives).
        .target(
            name: "LogPlugin",
            dependencies: ["PluginAPI", "MQTT", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            path: "Sources/Plugins/Log",
            swiftSettings: upcoming
        ),
        .target(
            name: "SysPlugin",
            dependencies: ["PluginAPI", "MQTT", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            path: "Sources/Plugins/Sys",
            swiftSettings: upcoming
        ),
        // The `prometheus` hook: /metrics on the admin listener (swift-metrics backed by swift-prometheus).
        .target(
            name: "PrometheusPlugin",
            dependencies: [
                "PluginAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/Plugins/Prometheus",
            swiftSettings: upcoming
        ),
        // Hooks users add: one folder each under Sources/Plugins/UserHooks (see README, "Write your own hook").
        .target(
            name: "UserHooks",
            dependencies: ["PluginAPI", "MQTT", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            path: "Sources/Plugins/UserHooks",
            swiftSettings: upcoming
        ),
        // The broker: config, plugin loading from a registry it is given, router, sessions, services, the
        // `midge` command line. It imports no plugin.
        .target(
            name: "Host",
            dependencies: [
                "MQTT", "PluginAPI", "CCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        // The composition root: the one list of built-in plugins, handed to Host's command line.
        .executableTarget(
            name: "midge",
            dependencies: [
                "Host", "PluginAPI", "TCPPlugin", "TLSPlugin", "WebSocketPlugin", "PasswordFilePlugin", "ACLFilePlugin",
                "SQLitePlugin", "SCRAMPlugin", "LogPlugin", "SysPlugin", "PrometheusPlugin", "UserHooks",
            ],
            swiftSettings: upcoming
        ),
        // The load generator and comparison client (scripts/bench-compare).
        .executableTarget(
            name: "midge-bench",
            dependencies: [
                "MQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "MQTTTests",
            dependencies: [
                "MQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "PluginTests",
            dependencies: [
                "PluginAPI", "PasswordFilePlugin", "ACLFilePlugin", "SQLitePlugin", "TLSPlugin", "MQTT", "UserHooks",
                "SCRAMPlugin", "TCPPlugin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "WebSocketPluginTests",
            dependencies: [
                "WebSocketPlugin", "PluginAPI", "TCPPlugin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "HostTests",
            dependencies: [
                "Host", "MQTT", "PluginAPI", "midge", "TCPPlugin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
    ],
    swiftLanguageModes: [.v6]
)
