import ArgumentParser
import Foundation
import Logging
import NIOConcurrencyHelpers
import PluginAPI

/// `midge check-config [-c FILE | --config-dir DIR] [-p PORT]...`: checks a configuration as start-up would,
/// without binding a port or writing a file, prints what would run and every error, and exits 0 when the
/// configuration is valid, 3 when it is not.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "midge check-config",
        abstract: "Check a configuration and every file it names, and print what would run.",
        discussion: """
            Reads the configuration (and its include_dir files), creates every plugin as start-up does (password \
            files, ACL files, databases, TLS certificates), binds no port and writes no file. Prints the \
            listeners, the plugin chains in order, the implicit hooks and the limits on stdout, and every error \
            as FILE:LINE: message on stderr. Exit status 0: valid; 3: not valid.
            """)

    @Option(name: [.customShort("c"), .customLong("config-file")], help: "The configuration to check.")
    var configFile: String?

    @Option(name: .customLong("config-dir"),
            help: "The directory of the default deployment: checks DIR/plugins.conf when -c is not given. Also MIDGE_CONFIG_DIR.")
    var configDirectory: String?

    @Option(name: [.customShort("p"), .customLong("port")], help: "A port as `midge -p` gives it. Repeatable.")
    var ports: [Int] = []
}

/// `midge check-config` and `midge --test-config`.
public enum CheckConfig {
    /// Runs `midge check-config ARGUMENTS` and returns its exit status.
    public static func run(arguments: [String], registry: PluginRegistry) -> Int32 {
        let command: CheckConfigCommand
        do {
            command = try CheckConfigCommand.parse(arguments)
        } catch {
            let code = CheckConfigCommand.exitCode(for: error)
            let message = CheckConfigCommand.fullMessage(for: error)
            let handle: FileHandle = code == .success ? .standardOutput : .standardError
            handle.write(Data((message + "\n").utf8))
            return code.rawValue
        }
        return run(configFile: command.configFile, configDirectory: command.configDirectory, ports: command.ports,
                   registry: registry)
    }

    /// Checks the configuration the main command's flags name, prints the report, and returns the exit status.
    /// Bootstraps logging (plugins' warnings become report warnings), so it runs once per process.
    static func run(configFile: String?, configDirectory: String?, ports: [Int], registry: PluginRegistry) -> Int32 {
        let collector = WarningCollector()
        LoggingSystem.bootstrap { label in WarningCollector.Handler(label: label, collector: collector) }
        let path = configFile ?? MidgeCommand.defaultConfigFile(directory: configDirectory)
        let report = ConfigCheck.run(path: path, ports: ports, registry: registry,
                                     pluginWarnings: { collector.lines })
        FileHandle.standardOutput.write(Data(report.text.utf8))
        for error in report.errors { FileHandle.standardError.write(Data("Error: \(error)\n".utf8)) }
        return report.errors.isEmpty ? 0 : 3
    }
}

/// Keeps the warnings and errors plugins log while they are created, for the report.
final class WarningCollector: Sendable {
    private let box = NIOLockedValueBox<[String]>([])

    /// Every line so far, in order.
    var lines: [String] { box.withLockedValue { $0 } }

    func append(_ line: String) { box.withLockedValue { $0.append(line) } }

    /// A log handler that hands warnings and worse to a `WarningCollector`.
    struct Handler: LogHandler {
        let label: String
        let collector: WarningCollector
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            guard event.level >= .warning else { return }
            collector.append(event.message.description)
        }
    }
}
