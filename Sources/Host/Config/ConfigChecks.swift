// The checks that need the whole configuration, once every line is read: a listener option above the first
// listener, duplicate listeners, the admin listener's port; then the settings moved to where they belong.

extension ConfigFileParser {
    /// The config, once the checks that need the whole file have added their errors.
    mutating func finish() -> BrokerConfig {
        if let use = defaultListenerFirstUse, defaultListenerDeclared == nil {
            let scope = config.perListenerSettings && ConfigDirectives.named(use.directive)?.scope == .security
                ? " (with per_listener_settings true it is a listener option)" : ""
            errors.append(error(use.location, "'\(use.directive)' must come after a 'listener' line in this file\(scope): "
                + "above the first listener it belongs to mosquitto's implicit default listener (port 1883 on "
                + "all interfaces), which only 'port' or 'bind_address' should create. Move it below a "
                + "'listener' line, or declare the default listener with 'port'"))
        }
        var listeners = explicitListeners
        if defaultListenerDeclared != nil { listeners.append(defaultListener) }

        for (index, listener) in listeners.enumerated() {
            if let earlier = listeners[..<index].first(where: { $0.sharesPort(with: listener) }) {
                let bind = listener.bindAddress.map { " on \($0)" } ?? ""
                // The default listener is always last; report at the `listener` line then.
                let (here, there) = listener.isDefaultListener ? (earlier, listener) : (listener, earlier)
                let what = there.isDefaultListener ? "the default listener ('port'/'bind_address')" : "a listener"
                errors.append(ConfigError(file: here.file, line: here.line,
                                          message: "duplicate listener for port \(listener.port)\(bind): "
                                              + "\(what) at \(there.file):\(there.line) already uses it"))
            }
        }

        if let admin = config.adminListener, let clash = listeners.first(where: admin.collides) {
            let what = clash.isDefaultListener ? "the default listener ('port'/'bind_address')" : "the listener"
            errors.append(ConfigError(file: admin.file, line: admin.line,
                                      message: "admin_listener port \(admin.port) is also used by \(what) at \(clash.file):\(clash.line)"))
        }

        if config.perListenerSettings {
            for index in listeners.indices where listeners[index].security == nil {
                listeners[index].security = SecurityConfig()
            }
        } else {
            for index in listeners.indices { listeners[index].security = nil }
        }
        config.listeners = listeners

        config.globalSecurity = global
        return config
    }
}
