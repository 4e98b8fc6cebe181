// swift-tools-version:6.1
// Fuzz targets for Midge's parsers, built with libFuzzer and AddressSanitizer by `scripts/fuzz`. A package
// of its own: a target here has no `main` (libFuzzer brings it), so it cannot sit in the main package, whose
// plain `swift build` links every executable. Each target reads the parser's internals through
// `@testable import`, so it is built with `-enable-testing`.
import PackageDescription

let midge: [Target.Dependency] = [
    "FuzzSupport",
    .product(name: "Midge", package: "Midge"),
    .product(name: "MidgePlugins", package: "Midge"),
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOEmbedded", package: "swift-nio"),
    .product(name: "Logging", package: "swift-log"),
]

/// One executable per target: `fuzz-NAME` from `Sources/FuzzNAME`.
func fuzzTarget(_ name: String, _ folder: String) -> Target {
    .executableTarget(name: "fuzz-" + name, dependencies: midge, path: "Sources/" + folder)
}

let package = Package(
    name: "MidgeFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Midge", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // Input fields, a scratch directory.
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        // The MQTT codec: one stream, cut into pieces, through a decoder with its state; every packet it
        // returns must encode and decode back to itself.
        fuzzTarget("decoder", "FuzzDecoder"),
        // mosquitto.conf with include_dir, read from disk as at start-up.
        fuzzTarget("config", "FuzzConfig"),
        // mosquitto_passwd files and hashes.
        fuzzTarget("passwd", "FuzzPasswd"),
        // acl_file, and the decisions its rules make.
        fuzzTarget("acl", "FuzzACL"),
        // The sqlite plugin's rows, from a real database file.
        fuzzTarget("sqlite", "FuzzSQLite"),
        // The websockets decorator: HTTP upgrade and frames.
        fuzzTarget("websocket", "FuzzWebSocket"),
        // SCRAM-SHA-256 messages and credentials files.
        fuzzTarget("scram", "FuzzSCRAM"),
    ],
    swiftLanguageModes: [.v6]
)
