// Where a directive's value lands: the latest listener of the file (or mosquitto's default listener), the
// global or per-listener security settings, the latest plugin; and the strings that may be set only once.

/// A listener a listener option applies to.
enum ConfigListenerRef: Equatable, Sendable {
    case defaultListener
    case explicit(Int)
    /// After a `listener` line with an error (at "FILE:LINE"): its options are checked, then dropped, so
    /// they neither land on another listener nor cause errors of their own.
    case discarded(String)

    var key: String {
        switch self {
        case .defaultListener: return "default listener"
        case .explicit(let index): return "listener \(index)"
        case .discarded(let place): return "discarded listener at \(place)"
        }
    }

    var isDiscarded: Bool {
        if case .discarded = self { return true }
        return false
    }
}

/// The security settings a security directive applies to.
enum ConfigSecurityRef: Sendable {
    case global
    case listener(ConfigListenerRef)

    var key: String {
        switch self {
        case .global: return "global"
        case .listener(let ref): return ref.key
        }
    }
}

/// A `plugin` line, for its `plugin_opt_*` lines.
struct ConfigPluginRef: Sendable {
    var security: ConfigSecurityRef
    var index: Int
}

/// State that mosquitto resets for every file it reads.
struct ConfigFileState: Sendable {
    var level: Int
    var currentListener: ConfigListenerRef = .defaultListener
    var currentPlugin: ConfigPluginRef?
    /// After a `plugin` line with an error: its `plugin_opt_*` lines are dropped without errors of their own.
    var pluginDiscarded = false
}

extension ConfigFileParser {
    /// Mosquitto refuses to set these strings twice in the same scope.
    mutating func setOnceCheck(_ scope: String, _ directive: String, _ location: ConfigLocation) throws {
        let key = scope + "/" + directive
        if let first = setOnce[key] {
            throw error(location, "duplicate '\(directive)' (already set at \(ConfigFileParser.describe(first)))")
        }
        setOnce[key] = location
    }

    /// `port` or `bind_address` declared the default listener (at its first such line).
    mutating func declareDefaultListener(_ location: ConfigLocation) {
        if defaultListenerDeclared == nil {
            defaultListenerDeclared = location
            defaultListener.file = location.file
            defaultListener.line = location.line
        }
    }

    /// The listener a listener option applies to. Before any `listener` line in the
    /// file that is mosquitto's default listener; see `finish()` for the check.
    mutating func listenerTarget(_ directive: String, _ location: ConfigLocation, _ state: ConfigFileState) -> ConfigListenerRef {
        if state.currentListener == .defaultListener && defaultListenerFirstUse == nil {
            defaultListenerFirstUse = (location, directive)
        }
        return state.currentListener
    }

    mutating func withListener(_ ref: ConfigListenerRef, _ body: (inout ListenerConfig) throws -> Void) rethrows {
        switch ref {
        case .defaultListener: try body(&defaultListener)
        case .explicit(let index): try body(&explicitListeners[index])
        case .discarded: try body(&discardedListener)
        }
    }

    /// A security directive was seen: `per_listener_settings true` may no longer follow.
    mutating func noteSecurityDirective(_ directive: String, _ location: ConfigLocation) {
        if firstSecurityDirective == nil { firstSecurityDirective = (location, directive) }
    }

    mutating func securityTarget(_ directive: String, _ location: ConfigLocation, _ state: ConfigFileState) -> ConfigSecurityRef {
        noteSecurityDirective(directive, location)
        guard config.perListenerSettings else { return .global }
        let ref = listenerTarget(directive, location, state)
        withListener(ref) { listener in
            if listener.security == nil { listener.security = SecurityConfig() }
        }
        return .listener(ref)
    }

    mutating func withSecurity(_ ref: ConfigSecurityRef, _ body: (inout SecurityConfig) throws -> Void) rethrows {
        switch ref {
        case .global:
            try body(&global)
        case .listener(let listenerRef):
            try withListener(listenerRef) { listener in
                var security = listener.security ?? SecurityConfig()
                try body(&security)
                listener.security = security
            }
        }
    }
}
