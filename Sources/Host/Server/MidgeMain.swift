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
        // A log destination whose reader went away (`midge | head`) is an error to write to, not the end of
        // the broker (Mosquitto ignores SIGPIPE too); sockets have their own guard (NIO's).
        signal(SIGPIPE, SIG_IGN)
        do {
            let command = try MidgeCommand.parse(arguments)
            try command.detachIfAsked()
            try await command.execute()
        } catch {
            flushLog()
            MidgeCommand.exit(withError: error)
        }
        flushLog()
        exit(0)
    }

    /// Writes what the log still holds before the process exits, waiting at most two seconds for a destination
    /// that does not take it (SIGTERM must end the broker even when nobody reads its stderr).
    private static func flushLog() {
        MidgeLogHandler.Sink.installed.withLockedValue { $0 }?.flush(timeout: 2)
    }
}
