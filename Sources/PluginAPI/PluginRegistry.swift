/// One built-in plugin: its stable registry name and how to create it from options.
public struct PluginDescriptor: Sendable {
    /// The name a config file uses (`plugin NAME`), e.g. `tcp`, `passwd`, `acl-file`.
    public var name: String
    /// A one-line summary for `--help` style listings.
    public var summary: String
    /// Creates the plugin; it reads its options and calls `options.finish()`.
    public var make: @Sendable (inout PluginOptions, PluginContext) throws -> any Plugin

    public init(name: String, summary: String,
                make: @escaping @Sendable (inout PluginOptions, PluginContext) throws -> any Plugin) {
        self.name = name
        self.summary = summary
        self.make = make
    }
}

/// The catalog of plugins the host can create, by registry name.
public struct PluginRegistry: Sendable {
    private var byName: [String: PluginDescriptor] = [:]

    public init(_ descriptors: [PluginDescriptor] = []) {
        for descriptor in descriptors { register(descriptor) }
    }

    /// Adds (or replaces) a plugin under its name.
    public mutating func register(_ descriptor: PluginDescriptor) {
        byName[descriptor.name] = descriptor
    }

    /// The plugin registered under `name`.
    public func descriptor(named name: String) -> PluginDescriptor? { byName[name] }

    /// Every registered name, sorted.
    public var names: [String] { byName.keys.sorted() }
}
