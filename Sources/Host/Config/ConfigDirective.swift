// What a directive is (ConfigDirective) and the ways of declaring one: a setting of the broker, of a listener
// or of a security scope, a directive accepted and ignored with a warning, a refused one, or one with lines
// of its own. The directives themselves are in ConfigDirectives.swift.

/// One directive line, split: `directive value`.
struct ConfigLine: Sendable {
    var directive: String
    var value: String
    var location: ConfigLocation
}

/// One directive of the configuration language, declared once in `ConfigDirectives.all`.
struct ConfigDirective: Sendable {
    /// Where its value lands.
    enum Scope: Sendable, Equatable {
        /// The broker (`BrokerConfig`).
        case global
        /// Mosquitto's default listener (`port`, `bind_address`).
        case defaultListener
        /// The latest listener of the file (before any `listener` line: the default listener).
        case listener
        /// The global security settings, or the latest listener's under `per_listener_settings true`.
        case security
        /// The latest `plugin` line of the file.
        case plugin
        /// A bridge (`connection`): Midge has none.
        case bridge
    }

    /// What Midge does with it.
    enum Status: Sendable {
        /// It does what Mosquitto's does.
        case honoured
        /// The value is checked, then ignored, with the warning
        /// "accepted but not implemented: 'NAME' (`why`)".
        case ignored(why: String)
        /// Always an error, with this message (given the directive and its value).
        case refused(@Sendable (_ directive: String, _ value: String) -> String)
        /// A boolean: `false` is accepted (it is what Midge does), `true` is an error with this message.
        case refusedIfTrue(@Sendable (_ directive: String) -> String)
    }

    /// After an error on its line, what the lines that depend on it must not be applied to.
    enum Recovery: Sendable {
        case none
        /// The listener it declared: its options are checked, then dropped.
        case discardListener
        /// The plugin it declared: its `plugin_opt_*` lines are dropped.
        case discardPlugin
    }

    /// The name, then its aliases; with `isPrefix`, the beginnings of the names it covers (`plugin_opt_`).
    var names: [String]
    var isPrefix = false
    var scope: Scope
    var value: ConfigValueKind
    var status: Status = .honoured
    /// Mosquitto refuses to set it twice in one scope ("duplicate 'NAME' (already set at FILE:LINE)").
    var setOnce = false
    var recovery: Recovery = .none
    /// Reads the value and puts it where it belongs (or warns, or throws the line's error).
    var apply: @Sendable (inout ConfigFileParser, ConfigLine, inout ConfigFileState) throws -> Void

    /// Whether this is the directive for `name`.
    func matches(_ name: String) -> Bool {
        isPrefix ? names.contains { name.hasPrefix($0) } : names.contains(name)
    }
}

// MARK: - Settings

/// Where a setting lands: the broker, the latest listener, or the security settings in force.
struct ConfigTarget<Root>: Sendable {
    let scope: ConfigDirective.Scope
    /// Finds the place for `line` (checking a set-once string against it when `once`), then `write`s there.
    let store: @Sendable (inout ConfigFileParser, ConfigLine, ConfigFileState, _ once: Bool,
                          _ write: (inout Root) -> Void) throws -> Void

    /// `locate` finds the place (a reference whose `key` names it for set-once strings); `write` changes it.
    init<Place>(scope: ConfigDirective.Scope,
                locate: @escaping @Sendable (inout ConfigFileParser, ConfigLine, ConfigFileState) -> Place,
                key: @escaping @Sendable (Place) -> String,
                write: @escaping @Sendable (inout ConfigFileParser, Place, (inout Root) -> Void) -> Void) {
        self.scope = scope
        store = { parser, line, state, once, body in
            let place = locate(&parser, line, state)
            if once { try parser.setOnceCheck(key(place), line.directive, line.location) }
            write(&parser, place, body)
        }
    }
}

extension ConfigTarget where Root == BrokerConfig {
    /// The broker's settings.
    static var broker: ConfigTarget<BrokerConfig> {
        ConfigTarget(scope: .global, locate: { _, _, _ in "global" }, key: { $0 }, write: { parser, _, body in body(&parser.config) })
    }
}

extension ConfigTarget where Root == ListenerConfig {
    /// The latest listener of the file (before any `listener` line: mosquitto's default listener).
    static var listener: ConfigTarget<ListenerConfig> {
        ConfigTarget(scope: .listener, locate: { $0.listenerTarget($1.directive, $1.location, $2) }, key: { $0.key },
                     write: { parser, ref, body in parser.withListener(ref, body) })
    }
}

extension ConfigTarget where Root == SecurityConfig {
    /// The global security settings, or the latest listener's under `per_listener_settings true`.
    static var security: ConfigTarget<SecurityConfig> {
        ConfigTarget(scope: .security, locate: { $0.securityTarget($1.directive, $1.location, $2) }, key: { $0.key },
                     write: { parser, ref, body in parser.withSecurity(ref, body) })
    }
}

extension ConfigDirective {
    /// A setting: `value` read, then stored at `set` in `target`. With `once`, Mosquitto refuses to set it
    /// twice in one scope.
    static func setting<Root, T>(_ names: String..., in target: ConfigTarget<Root>, value: ConfigValue<T>,
                                 set: any WritableKeyPath<Root, T> & Sendable, once: Bool = false) -> ConfigDirective {
        setting(names, target, value, once) { $0[keyPath: set] = $1 }
    }

    /// A setting whose place is optional (nil: not set).
    static func setting<Root, T>(_ names: String..., in target: ConfigTarget<Root>, value: ConfigValue<T>,
                                 set: any WritableKeyPath<Root, T?> & Sendable, once: Bool = false) -> ConfigDirective {
        setting(names, target, value, once) { $0[keyPath: set] = $1 }
    }

    private static func setting<Root, T>(_ names: [String], _ target: ConfigTarget<Root>, _ value: ConfigValue<T>,
                                         _ once: Bool, _ write: @escaping @Sendable (inout Root, T) -> Void)
        -> ConfigDirective {
        ConfigDirective(names: names, scope: target.scope, value: value.kind, setOnce: once) { parser, line, state in
            let read = try value.read(&parser, line)
            try target.store(&parser, line, state, once) { write(&$0, read) }
        }
    }
}

// MARK: - Ignored and refused

extension ConfigDirective {
    /// Accepted, its value checked, and ignored with a warning saying `why`. A `.security` one still counts as
    /// a security setting (`per_listener_settings` must come before it).
    static func ignored<T>(_ names: String..., scope: Scope = .global, value: ConfigValue<T>,
                           why: String) -> ConfigDirective {
        ConfigDirective(names: names, scope: scope, value: value.kind, status: .ignored(why: why)) { parser, line, _ in
            _ = try value.read(&parser, line)
            if scope == .security { parser.noteSecurityDirective(line.directive, line.location) }
            parser.notImplemented(line.directive, line.location, why)
        }
    }

    /// Always an error: `message` given the directive and its value.
    static func refused(_ names: [String], isPrefix: Bool = false, scope: Scope = .global,
                        _ message: @escaping @Sendable (_ directive: String, _ value: String) -> String) -> ConfigDirective {
        ConfigDirective(names: names, isPrefix: isPrefix, scope: scope, value: ConfigValue<String>.anything.kind,
                        status: .refused(message)) { parser, line, _ in
            throw parser.error(line.location, message(line.directive, line.value))
        }
    }

    /// A boolean whose `true` is an error (`message` given the directive); `false` is accepted.
    static func refusedIfTrue(_ names: String..., message: @escaping @Sendable (_ directive: String) -> String)
        -> ConfigDirective {
        ConfigDirective(names: names, scope: .global, value: ConfigValue<Bool>.bool.kind,
                        status: .refusedIfTrue(message)) { parser, line, _ in
            if try parser.bool(line.directive, line.value, line.location) {
                throw parser.error(line.location, message(line.directive))
            }
        }
    }
}
