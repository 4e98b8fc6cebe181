import Foundation
import PluginAPI

/// The `midge` command line, over the plugins it is given: what the `midge` executable runs with its
/// built-in plugins, and what a package that composes its own broker runs with its own plugins added.
///
/// ```swift
/// // Sources/my-broker/main.swift
/// import Host
/// import PluginAPI
/// import TCPPlugin
/// await MidgeMain.run(registry: PluginRegistry([TCPTransport.descriptor, MyHook.descriptor]))
/// ```
public enum MidgeMain {
    /// Runs `midge ARGUMENTS` (Mosquitto's flags, or a subcommand: `check-config` and the plugins' own
    /// commands) until the broker stops, then exits the process with its status. Call it from `main.swift`:
    /// it is main-actor isolated so that `-d` forks on the main thread, before any other thread starts.
    @MainActor
    public static func run(registry: PluginRegistry,
                           arguments: [String] = Array(CommandLine.arguments.dropFirst())) async -> Never {
        if let status = AdminTools.run(arguments, registry: registry) {
            exit(status)
        }
        MidgeCommand.registry = registry
        do {
            let command = try MidgeCommand.parse(arguments)
            try command.detachIfAsked()
            try await command.execute()
        } catch {
            MidgeCommand.exit(withError: error)
        }
        exit(0)
    }
}
