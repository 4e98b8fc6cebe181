/// A plugin's options, in config order, as `plugin_opt_KEY VALUE` lines (or a listener's directives) gave
/// them. A plugin reads what it knows and then calls `finish()`, which names every option it did not read, so
/// a typo stops start-up instead of being ignored.
public struct PluginOptions: Sendable {
    /// Where an option came from, for error messages.
    public struct Origin: Sendable, Hashable {
        public var file: String
        public var line: Int
        public init(file: String, line: Int) {
            self.file = file
            self.line = line
        }
    }

    private var entries: [(key: String, value: String, origin: Origin?)]
    private var read: Set<String> = []
    /// The plugin these options belong to, for error messages.
    public let pluginName: String

    public init(pluginName: String, entries: [(key: String, value: String, origin: Origin?)] = []) {
        self.pluginName = pluginName
        self.entries = entries
    }

    /// The last value given for `key`, or nil.
    public mutating func string(_ key: String) -> String? {
        read.insert(key)
        return entries.last(where: { $0.key == key })?.value
    }

    /// The value for `key`, or an error naming it when it is missing.
    public mutating func requiredString(_ key: String) throws -> String {
        guard let value = string(key) else {
            throw PluginError(pluginName: pluginName, message: "missing required option '\(key)'")
        }
        return value
    }

    /// An integer option; an error names a value that is not one.
    public mutating func int(_ key: String) throws -> Int? {
        guard let raw = string(key) else { return nil }
        guard let value = Int(raw) else {
            throw PluginError(pluginName: pluginName, message: "option '\(key)' must be an integer, not '\(raw)'",
                              origin: origin(of: key))
        }
        return value
    }

    /// A boolean option (`true` or `false`).
    public mutating func bool(_ key: String) throws -> Bool? {
        guard let raw = string(key) else { return nil }
        switch raw {
        case "true": return true
        case "false": return false
        default:
            throw PluginError(pluginName: pluginName, message: "option '\(key)' must be true or false, not '\(raw)'",
                              origin: origin(of: key))
        }
    }

    /// Throws naming every option that was given but never read.
    public func finish() throws {
        let unknown = entries.filter { !read.contains($0.key) }
        guard let first = unknown.first else { return }
        let names = unknown.map { "'\($0.key)'" }.joined(separator: ", ")
        throw PluginError(pluginName: pluginName, message: "unknown option \(names)", origin: first.origin)
    }

    /// Where the value of `key` came from (its config line), or nil.
    public func origin(of key: String) -> Origin? { entries.last(where: { $0.key == key })?.origin }
}

/// An error a plugin reports at creation or start: it stops start-up with this message.
public struct PluginError: Error, CustomStringConvertible, Sendable {
    public var pluginName: String
    public var message: String
    public var origin: PluginOptions.Origin?

    public init(pluginName: String, message: String, origin: PluginOptions.Origin? = nil) {
        self.pluginName = pluginName
        self.message = message
        self.origin = origin
    }

    public var description: String {
        let place = origin.map { "\($0.file):\($0.line): " } ?? ""
        return "\(place)plugin '\(pluginName)': \(message)"
    }
}
