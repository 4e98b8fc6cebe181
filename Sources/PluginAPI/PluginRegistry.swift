/// One plugin the host can create: its stable registry name, what kind of place it takes, how to create it
/// from options, and the command-line tools that come with it.
public struct PluginDescriptor: Sendable {
    /// The name a config file uses (`plugin NAME`), e.g. `tcp`, `passwd`, `acl-file`.
    public var name: String
    /// A one-line summary for `--help` style listings.
    public var summary: String
    /// Where the host puts the plugin: in a `plugin` chain, as a listener, or around a listener's connections.
    public var kind: PluginKind
    /// Subcommands of `midge` that come with the plugin (`midge passwd ...` with the password file plugin).
    public var commands: [PluginCommand]
    /// The options whose values are file paths: the host makes a relative one absolute against the directory
    /// of the config file that gave it before the plugin sees it (`plugin_opt_password_file passwd` in
    /// `/etc/midge/conf.d/users.conf` is `/etc/midge/conf.d/passwd`).
    public var pathOptions: Set<String>
    /// Creates the plugin; it reads its options and calls `options.finish()`.
    public var make: @Sendable (inout PluginOptions, PluginContext) throws -> any Plugin

    /// - Parameters:
    ///   - name: The registry name.
    ///   - summary: One line for listings.
    ///   - kind: Where the host puts it; `.plugin` (a `plugin NAME` line) unless it is a listener or a
    ///     connection decorator.
    ///   - commands: The `midge` subcommands it brings.
    ///   - pathOptions: The options whose values are file paths.
    ///   - make: Creates the plugin from its options.
    public init(name: String, summary: String, kind: PluginKind = .plugin, commands: [PluginCommand] = [],
                pathOptions: Set<String> = [],
                make: @escaping @Sendable (inout PluginOptions, PluginContext) throws -> any Plugin) {
        self.name = name
        self.summary = summary
        self.kind = kind
        self.commands = commands
        self.pathOptions = pathOptions
        self.make = make
    }
}

/// Where the host puts a plugin. A struct rather than an enum, so that later API versions can add kinds
/// without breaking a plugin's code.
public struct PluginKind: Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable { case plugin, listener, connectionDecorator }
    private let code: Code

    /// Loaded by a `plugin NAME` line (or by a Mosquitto directive that stands for one, such as
    /// `password_file`): authentication, authorization, hooks, HTTP endpoints.
    public static let plugin = PluginKind(code: .plugin)
    /// A `TransportPlugin`, made once per `listener` line (the registry's `tcp`).
    public static let listener = PluginKind(code: .listener)
    /// A `ConnectionDecoratorPlugin` a listener line asks for (`tls` for `certfile`/`keyfile`, `websockets`
    /// for `protocol websockets`).
    public static let connectionDecorator = PluginKind(code: .connectionDecorator)

    public var description: String {
        switch code {
        case .plugin: return "plugin"
        case .listener: return "listener"
        case .connectionDecorator: return "connection decorator"
        }
    }
}

/// A subcommand of `midge` that a plugin brings: `midge NAME ARGUMENTS...` runs it instead of the broker.
public struct PluginCommand: Sendable {
    /// The word after `midge`, e.g. `passwd`.
    public var name: String
    /// One usage line for `midge --help`, without the leading `midge `, e.g. `passwd [-c | -D] FILE USER`.
    public var usage: String
    /// Runs the command with the arguments after its name and returns the process's exit status. An error
    /// thrown is printed as `Error: ...` and exits 1.
    public var run: @Sendable (_ arguments: [String]) throws -> Int32

    /// - Parameters:
    ///   - name: The word after `midge`.
    ///   - usage: One line for `midge --help`.
    ///   - run: Runs the command and returns its exit status.
    public init(name: String, usage: String, run: @escaping @Sendable (_ arguments: [String]) throws -> Int32) {
        self.name = name
        self.usage = usage
        self.run = run
    }
}

/// The catalog of plugins the host can create, by registry name: the one truth about what a configuration
/// can load. The `midge` executable builds it from its list of built-in plugins; a package that composes its
/// own broker adds its plugins to it.
public struct PluginRegistry: Sendable {
    private var byName: [String: PluginDescriptor] = [:]

    /// A registry of `descriptors`; a later one replaces an earlier one of the same name.
    public init(_ descriptors: [PluginDescriptor] = []) {
        for descriptor in descriptors { register(descriptor) }
    }

    /// Adds (or replaces) a plugin under its name.
    public mutating func register(_ descriptor: PluginDescriptor) {
        byName[descriptor.name] = descriptor
    }

    /// A copy with `descriptors` added (replacing plugins of the same names).
    public func adding(_ descriptors: [PluginDescriptor]) -> PluginRegistry {
        var copy = self
        for descriptor in descriptors { copy.register(descriptor) }
        return copy
    }

    /// The plugin registered under `name`.
    public func descriptor(named name: String) -> PluginDescriptor? { byName[name] }

    /// Every registered name, sorted.
    public var names: [String] { byName.keys.sorted() }

    /// The registered names of one kind, sorted.
    public func names(of kind: PluginKind) -> [String] {
        byName.values.filter { $0.kind == kind }.map(\.name).sorted()
    }

    /// Every plugin's commands, sorted by command name.
    public var commands: [PluginCommand] {
        byName.values.flatMap(\.commands).sorted { $0.name < $1.name }
    }
}
