import Logging
import PluginAPI

/// Making the plugins a config asks for: the implicit hooks, and each security section's chain.
extension Broker {
    /// The hooks Mosquitto's own directives ask for: `log` (from `log_type` and `connection_messages`) and
    /// `sys` (the `$SYS` tree every `sys_interval` seconds, unless it is 0).
    static func implicitHooks(config: BrokerConfig, registry: PluginRegistry,
                              context: (String) -> PluginContext) throws -> [Hooks.Entry] {
        var entries: [Hooks.Entry] = []
        var made: [(String, [(String, String)])] = [
            ("log", [("log_type", config.logTypes.joined(separator: ",")),
                     ("connection_messages", config.connectionMessages ? "true" : "false")]),
        ]
        if config.sysInterval > 0 { made.append(("sys", [("sys_interval", String(config.sysInterval))])) }
        for (name, values) in made {
            guard let descriptor = registry.descriptor(named: name) else { continue }
            var options = PluginOptions(pluginName: name, entries: values.map { ($0.0, $0.1, nil) })
            let plugin = try descriptor.make(&options, context(name))
            guard let hook = plugin as? any HookPlugin else { continue }
            if !hook.events.isEmpty { entries.append(Hooks.Entry(hook: hook, name: name, rejectOnError: true)) }
        }
        return entries
    }

    enum SecurityKey: Hashable {
        case global
        case listener(String, Int, Int)
    }

    /// The plugins of one security section in chain order: `password_file` (the `passwd` plugin), then
    /// `plugin` lines in config order, then `acl_file` (the `acl-file` plugin).
    static func chainConfigs(_ security: SecurityConfig) -> [PluginConfig] {
        var pluginConfigs: [PluginConfig] = []
        if let path = security.passwordFile {
            pluginConfigs.append(PluginConfig(name: "passwd", options: [(key: "password_file", value: path)],
                                              file: "password_file", line: 0))
        }
        pluginConfigs += security.plugins
        if let path = security.aclFile {
            pluginConfigs.append(PluginConfig(name: "acl-file", options: [(key: "acl_file", value: path)],
                                              file: "acl_file", line: 0))
        }
        return pluginConfigs
    }

    /// Creates the plugins of one security section, in `chainConfigs` order.
    static func makeChain(_ security: SecurityConfig, registry: PluginRegistry, context: (String) -> PluginContext) throws
        -> (plugins: [any Plugin], configs: [PluginConfig], authenticators: [any AuthenticationPlugin],
            authorizers: [any AuthorizationPlugin], authorizersDenySpecialChars: [Bool], hooks: [Hooks.Entry]) {
        let pluginConfigs = chainConfigs(security)
        var plugins: [any Plugin] = []
        var configs: [PluginConfig] = []
        var authenticators: [any AuthenticationPlugin] = []
        var authorizers: [any AuthorizationPlugin] = []
        var denySpecialChars: [Bool] = []
        var hooks: [Hooks.Entry] = []
        for pluginConfig in pluginConfigs {
            guard let descriptor = registry.descriptor(named: pluginConfig.name) else {
                throw ConfigError(file: pluginConfig.file, line: pluginConfig.line,
                                  message: "unknown plugin '\(pluginConfig.name)'; built-in plugins: \(registry.names(of: .plugin).joined(separator: ", "))")
            }
            guard descriptor.kind == .plugin else {
                throw ConfigError(file: pluginConfig.file, line: pluginConfig.line,
                                  message: "plugin '\(pluginConfig.name)' is a \(descriptor.kind), which `listener` lines make (tls: certfile and keyfile; websockets: protocol websockets), not a `plugin` line")
            }
            let origin = pluginConfig.line > 0 ? PluginOptions.Origin(file: pluginConfig.file, line: pluginConfig.line) : nil
            var options = PluginOptions(pluginName: pluginConfig.name,
                                        entries: pluginConfig.resolvedOptions(paths: descriptor.pathOptions)
                                            .map { ($0.key, $0.value, origin) })
            // Every hook's own option: what a failure of its publish answer means.
            let onError = options.string("on_error")
            let plugin: any Plugin
            do {
                plugin = try descriptor.make(&options, context(pluginConfig.name))
            } catch var error as PluginError where error.origin == nil {
                // A missing option has no line of its own: name the `plugin` line.
                error.origin = origin
                throw error
            }
            let authentication = plugin as? any AuthenticationPlugin
            let authorization = plugin as? any AuthorizationPlugin
            let hook = plugin as? any HookPlugin
            if authentication == nil && authorization == nil && hook == nil && !(plugin is any HTTPEndpointProvider)
                && !(plugin is any EnhancedAuthenticationPlugin) {
                throw ConfigError(file: pluginConfig.file, line: pluginConfig.line,
                                  message: "plugin '\(pluginConfig.name)' is not an authentication, authorization, enhanced authentication, hook or HTTP endpoint plugin")
            }
            if let onError {
                guard hook != nil, onError == "reject" || onError == "accept" else {
                    throw ConfigError(file: pluginConfig.file, line: pluginConfig.line, message: hook == nil
                        ? "plugin '\(pluginConfig.name)': plugin_opt_on_error applies to hook plugins only"
                        : "plugin '\(pluginConfig.name)': plugin_opt_on_error must be reject or accept, not '\(onError)'")
                }
            }
            if let hook {
                hooks.append(Hooks.Entry(hook: hook, name: pluginConfig.name, rejectOnError: onError != "accept"))
            }
            if let authentication { authenticators.append(authentication) }
            if let authorization {
                authorizers.append(authorization)
                // `auth_plugin_deny_special_chars` belongs to `plugin` lines (acl_file applies its own rule).
                denySpecialChars.append(pluginConfig.line > 0 && pluginConfig.denySpecialChars)
            }
            plugins.append(plugin)
            configs.append(pluginConfig)
        }
        return (plugins, configs, authenticators, authorizers, denySpecialChars, hooks)
    }

    /// What a plugin gets at creation: a logger labelled with its name, the config file's directory.
    static func pluginContext(_ name: String, config: BrokerConfig, checkOnly: Bool) -> PluginContext {
        PluginContext(logger: Logger(label: "midge.plugin.\(name)"),
                      configDirectory: config.loadedFiles.first.map(directoryOf) ?? ".", checkOnly: checkOnly)
    }
}
