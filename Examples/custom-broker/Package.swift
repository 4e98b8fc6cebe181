// swift-tools-version:6.1
// A broker of your own: Midge with its built-in plugins plus two plugins this package writes. Build it with
// `swift build`, run it with `.build/debug/custom-midge -c midge.conf -v`.
import PackageDescription

let package = Package(
    name: "custom-broker",
    platforms: [.macOS(.v14)],
    dependencies: [
        // In a package of your own, depend on Midge by URL and version instead:
        //   .package(url: "https://github.com/OWNER/midge.git", from: "0.1.0"),
        // (and `package: "midge"` below). Here it is the checkout this example sits in.
        .package(name: "Midge", path: "../.."),
    ],
    targets: [
        // A hook: moves messages from one topic prefix to another.
        .target(
            name: "PrefixRewrite",
            dependencies: [.product(name: "Midge", package: "Midge")]
        ),
        // An authentication plugin: refuses one named user, whatever the password.
        .target(
            name: "DenyUser",
            dependencies: [.product(name: "Midge", package: "Midge")]
        ),
        // The composition root: Midge's command line over the built-in plugins it wants plus these two.
        .executableTarget(
            name: "custom-midge",
            dependencies: [
                "PrefixRewrite", "DenyUser",
                .product(name: "Midge", package: "Midge"),
                .product(name: "MidgePlugins", package: "Midge"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
