import ArgumentParser
import Foundation
import Logging
import NIOConcurrencyHelpers
import PluginAPI
import ServiceLifecycle

/// `midge`: an MQTT broker that reads mosquitto.conf and takes Mosquitto's flags.
@available(macOS 10.15, *)
public struct MidgeCommand: AsyncParsableCommand {
    public static let version = "0.1.0"

    /// The plugins this `midge` was composed with (`MidgeMain.run(registry:)` sets them before parsing).
    static let registryBox = NIOLockedValueBox(PluginRegistry())
    static var registry: PluginRegistry {
        get { registryBox.withLockedValue { $0 } }
        set { registryBox.withLockedValue { $0 = newValue } }
    }

    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "midge",
            abstract: "Midge, an MQTT 3.1, 3.1.1 and 5.0 broker.",
            discussion: """
                Reads Mosquitto's configuration syntax. Without -c it starts in local only mode: listening on \
                127.0.0.1 and ::1, port 1883 (or the -p ports), anonymous clients allowed. SIGHUP reloads \
                password files, ACL files and databases; SIGTERM and SIGINT stop gracefully.

                Administration:

                """ + AdminTools.commands(in: registry).map { "  midge \($0.usage)" }.joined(separator: "\n") + """


                Plugins: \(registry.names.joined(separator: ", "))

                Environment (precedence: flags, then these, then the config file, then defaults):

                """ + EnvironmentOverrides.documented.map { "  \($0.name): \($0.meaning)" }.joined(separator: "\n"),
            version: version
        )
    }

    @Option(name: [.customShort("c"), .customLong("config-file")], help: "Load the configuration from FILE.")
    var configFile: String?

    @Option(name: .customLong("config-dir"),
            help: "The directory of the default deployment: loads DIR/plugins.conf when -c is not given. Also MIDGE_CONFIG_DIR.")
    var configDirectory: String?

    @Option(name: [.customShort("p"), .customLong("port")],
            help: "Listen on PORT (local only mode; ignored when the configuration defines listeners). Repeatable.")
    var ports: [Int] = []

    @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Log everything (log_type all).")
    var verbose = false

    @Flag(name: [.customShort("d"), .customLong("daemon")], help: "Run in the background.")
    var daemon = false

    @Flag(name: .customLong("test-config"), help: "Check the configuration and exit (as midge check-config).")
    var testConfig = false

    public init() {}

    public mutating func run() async throws {
        try await execute()
    }

    /// Loads the config and runs the broker until SIGTERM or SIGINT.
    public func execute() async throws {
        if testConfig {
            let status = CheckConfig.run(configFile: configFile, configDirectory: configDirectory, ports: ports,
                                         registry: Self.registry)
            if status != 0 { throw ExitCode(status) }
            return
        }
        var (config, sources) = try loadConfigAndSources()
        // -v: every log type, for the broker's own lines and for the `log` hook's.
        if verbose { config.logTypes = ["all"] }
        let logger = Self.makeLogger(config: config, verbose: verbose)
        for warning in config.warnings { logger.warning("\(warning)") }
        for note in Self.notYetHonoured(config) { logger.warning("\(note)") }
        let broker: Broker
        do {
            broker = try Broker(config: config, logger: logger, registry: Self.registry)
        } catch {
            logger.error("\(error)")
            throw ExitCode(3)
        }
        logger.notice("midge version \(Self.version) starting")
        for line in sources { logger.notice("\(line)") }
        let service = BrokerService(broker: broker, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "midge.lifecycle", factory: { _ in SwiftLogNoOpLogHandler() })))
        do {
            try await group.run()
        } catch let error as ConfigError {
            logger.error("\(error)")
            throw ExitCode(1)
        }
        logger.notice("midge version \(Self.version) terminating")
    }

    /// The configuration the flags name; a bad one is reported on stderr, every error on a line of its own
    /// (exit status 3).
    public func loadConfig() throws -> BrokerConfig {
        try loadConfigAndSources().config
    }

    /// The configuration, and one line per source that set something: the config file (and how it was
    /// found), each environment variable that replaced a value, `-v`. Never a secret. Precedence, highest
    /// first: command-line flags, environment variables, the config file, built-in defaults. A bad one is
    /// reported on stderr, every error on a line of its own (exit status 3).
    public func loadConfigAndSources() throws -> (config: BrokerConfig, sources: [String]) {
        var errors: [ConfigError] = []
        var config = BrokerConfig()
        var sources: [String] = []
        if let path = configFile ?? Self.defaultConfigFile(directory: configDirectory) {
            let result = ConfigParser.loadCollectingErrors(path: path)
            config = result.config
            errors = result.errors
            let how = configFile != nil ? "-c" : configDirectory != nil ? "--config-dir" : "MIDGE_CONFIG_DIR"
            sources.append("Config loaded from \(path) (\(how)).")
        } else {
            sources.append("No config file (neither -c, --config-dir nor MIDGE_CONFIG_DIR): local only mode.")
        }
        do {
            for note in try EnvironmentOverrides().apply(to: &config) { sources.append("Setting \(note).") }
        } catch let error as ConfigError {
            errors.append(error)
        }
        for port in ports {
            do { try config.addCommandLinePort(port) } catch let error as ConfigError { errors.append(error) }
        }
        if verbose { sources.append("Setting log_type all from -v.") }
        guard errors.isEmpty else {
            for error in errors { FileHandle.standardError.write(Data("Error: \(error)\n".utf8)) }
            throw ExitCode(3)
        }
        return (config, sources)
    }

    /// `-d`: checks the configuration in the foreground, then detaches. Must run before any thread starts
    /// (fork keeps only the calling thread), so `main` calls it first.
    public func detachIfAsked() throws {
        guard daemon, !testConfig else { return }
        _ = try loadConfig()
        guard Glibc.daemon(1, 0) == 0 else {
            FileHandle.standardError.write(Data("Error: cannot run in the background: errno \(errno)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// `DIR/plugins.conf` for `--config-dir DIR` or `MIDGE_CONFIG_DIR=DIR`; nil when neither is set.
    static func defaultConfigFile(directory: String?) -> String? {
        guard let directory = directory ?? ProcessInfo.processInfo.environment["MIDGE_CONFIG_DIR"],
              !directory.isEmpty else { return nil }
        return (directory as NSString).appendingPathComponent("plugins.conf")
    }

    /// Settings the config accepts that this build does not act on yet: said at start-up, never ignored
    /// silently.
    static func notYetHonoured(_ config: BrokerConfig) -> [String] {
        var notes: [String] = []
        if config.maxInflightBytes > 0 { notes.append("max_inflight_bytes is not implemented yet; max_inflight_messages applies.") }
        for destination in config.logDest where destination == "syslog" || destination == "topic" {
            notes.append("log_dest \(destination) is not implemented yet.")
        }
        if config.logTimestampFormat != nil { notes.append("log_timestamp_format is not implemented yet; seconds since the epoch are logged.") }
        return notes
    }

    static func makeLogger(config: BrokerConfig, verbose: Bool) -> Logger {
        var handles: [FileHandle] = []
        for destination in config.logDest {
            switch destination {
            case "stdout": handles.append(.standardOutput)
            case "stderr": handles.append(.standardError)
            case "file":
                if let path = config.logFile {
                    if !FileManager.default.fileExists(atPath: path) {
                        _ = FileManager.default.createFile(atPath: path, contents: nil)  // opened (or reported) below
                    }
                    if let handle = FileHandle(forWritingAtPath: path) {
                        handle.seekToEndOfFile()
                        handles.append(handle)
                    } else {
                        FileHandle.standardError.write(Data("Error: cannot open log file \(path)\n".utf8))
                    }
                }
            default: break
            }
        }
        let sink = MidgeLogHandler.Sink(handles: handles, timestamps: config.logTimestamp, format: config.logFormat,
                                        bufferBytes: config.logBufferSize)
        MidgeLogHandler.Sink.installed.withLockedValue { $0 = sink }
        let levels = MidgeLogHandler.levels(for: config.logTypes, verbose: verbose)
        // Every logger of the process (plugins' included) writes the same way.
        LoggingSystem.bootstrap { label in MidgeLogHandler(label: label, sink: sink, enabled: levels) }
        return Logger(label: "midge")
    }
}

/// Runs the broker until a graceful shutdown is requested.
struct BrokerService: Service {
    let broker: Broker
    let logger: Logger

    func run() async throws {
        // SIGHUP is ignored from before the listeners open (its default action ends the process: a SIGHUP
        // that came between the first accepted client and the handler below killed the broker once in CI);
        // one that comes before the handler is ready finds nothing newer to reload than what start() read.
        signal(SIGHUP, SIG_IGN)
        try await broker.start()
        if let user = broker.config.user { try dropPrivileges(to: user) }
        // SIGHUP reloads password files, ACL files and databases, as in Mosquitto.
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { [broker, logger] in
            logger.notice("Received SIGHUP: reloading.")
            Task { await broker.reload() }
        }
        hangup.resume()
        defer { hangup.cancel() }
        if let path = broker.config.pidFile {
            try? "\(getpid())\n".write(toFile: path, atomically: true, encoding: .utf8)
        }
        try? await gracefulShutdown()
        await broker.shutdown()
        if let path = broker.config.pidFile { try? FileManager.default.removeItem(atPath: path) }
    }
}

/// Mosquitto's `user`: when started as root, switch to this user once the listeners are bound. Midge never
/// needs root (it binds no port below 1024 unless told to), so it does nothing for other users.
func dropPrivileges(to user: String) throws {
    guard getuid() == 0 || geteuid() == 0 else { return }
    guard let entry = getpwnam(user) else {
        throw ConfigError(file: "<config>", line: 0, message: "user \(user): no such user to drop privileges to")
    }
    let uid = entry.pointee.pw_uid
    let gid = entry.pointee.pw_gid
    guard initgroups(user, gid) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
        throw ConfigError(file: "<config>", line: 0, message: "user \(user): cannot switch to it (errno \(errno))")
    }
}
