import Foundation

// The directives that are more than one value stored somewhere: listeners and the default listener, the
// security switch, plugins and their options, includes, log destinations and types, the admin listener and the
// connection rate. ConfigDirectives.swift says which directive runs which of these.

extension ConfigFileParser {
    // MARK: Listeners

    /// `listener PORT [BIND_ADDRESS]`.
    mutating func listenerLine(_ line: ConfigLine, _ state: inout ConfigFileState) throws {
        let location = line.location
        let words = ConfigFileParser.words(line.value)
        guard let portWord = words.first, !portWord.hasPrefix("#") else {
            throw error(location, "missing value for 'listener' (expected: listener PORT [BIND_ADDRESS])")
        }
        guard let port = Int(portWord) else {
            throw error(location, "invalid port '\(portWord)' for 'listener': expected an integer")
        }
        var address: String?
        if words.count > 1 && !words[1].hasPrefix("#") {
            address = words[1]
            if words.count > 2 && !words[2].hasPrefix("#") {
                throw error(location, "unexpected '\(words[2])' after 'listener \(port) \(words[1])' "
                    + "(expected: listener PORT [BIND_ADDRESS])")
            }
        }
        if port == 0 {
            throw error(location, address.map { "Unix socket listeners ('listener 0 \($0)') are not supported yet" }
                ?? "listener port 0 means a Unix socket and needs a path; Unix socket listeners are not supported yet")
        }
        guard (1...65535).contains(port) else {
            throw error(location, "invalid port \(port) for 'listener': must be between 1 and 65535")
        }
        explicitListeners.append(ListenerConfig(
            port: port, bindAddress: address,
            security: config.perListenerSettings ? SecurityConfig() : nil,
            file: location.file, line: location.line))
        state.currentListener = .explicit(explicitListeners.count - 1)
    }

    /// `port N` (deprecated in mosquitto): the default listener's port.
    mutating func portLine(_ line: ConfigLine) throws {
        let port = try int(line.directive, line.value, line.location, 1...65535)
        warn(line.location, "'port' is deprecated in mosquitto; prefer 'listener \(port)'")
        if portSet {
            warn(line.location, "default listener port specified multiple times; only the latest is used")
        }
        portSet = true
        defaultListener.port = port
        declareDefaultListener(line.location)
    }

    /// `bind_address ADDRESS` (deprecated in mosquitto): the default listener's address.
    mutating func bindAddressLine(_ line: ConfigLine) throws {
        let address = try singleWord(line.directive, line.value, line.location)
        try setOnceCheck("default listener", line.directive, line.location)
        warn(line.location, "'bind_address' is deprecated in mosquitto; prefer 'listener PORT \(address)'")
        defaultListener.bindAddress = address
        declareDefaultListener(line.location)
    }

    /// `mount_point PREFIX`: only after a `listener` line, and without wildcards.
    mutating func mountPointLine(_ line: ConfigLine, _ state: ConfigFileState) throws {
        let location = line.location
        let mountPoint = try restOfLine(line.directive, line.value, location)
        if explicitListeners.isEmpty && !state.currentListener.isDiscarded {
            throw error(location, "'mount_point' must come after a 'listener' line "
                + "(mosquitto: you must create a listener before using mount_point)")
        }
        if mountPoint.contains("+") || mountPoint.contains("#") {
            throw error(location, "invalid mount_point '\(mountPoint)': it must not contain + or # wildcards")
        }
        let ref = listenerTarget(line.directive, location, state)
        try setOnceCheck(ref.key, line.directive, location)
        withListener(ref) { $0.mountPoint = mountPoint }
    }

    // MARK: Security and plugins

    /// `per_listener_settings BOOL`: before every other security setting, and never unset.
    mutating func perListenerSettingsLine(_ line: ConfigLine) throws {
        let flag = try bool(line.directive, line.value, line.location)
        if config.perListenerSettings {
            if !flag {
                warn(line.location, "per_listener_settings is already true and cannot be unset (mosquitto ignores this)")
            }
            return
        }
        if flag, let first = firstSecurityDirective {
            throw error(line.location, "per_listener_settings must be set before any other security setting "
                + "('\(first.directive)' at \(ConfigFileParser.describe(first.location)))")
        }
        config.perListenerSettings = flag
    }

    /// `plugin NAME` (or the deprecated `auth_plugin NAME`): a built-in plugin, by its registry name.
    mutating func pluginLine(_ line: ConfigLine, _ state: inout ConfigFileState) throws {
        let (directive, location) = (line.directive, line.location)
        let name = try singleWord(directive, line.value, location)
        if directive == "auth_plugin" {
            warn(location, "'auth_plugin' is deprecated; treated as 'plugin \(name)'")
        }
        if name.contains("/") || name.hasSuffix(".so") || name.hasSuffix(".dylib") || name.hasSuffix(".dll") {
            let dynsec = name.contains("dynamic_security") ? " (the Dynamic Security plugin is not available)" : ""
            throw error(location, "loading shared-library plugins is not supported yet; "
                + "use a built-in plugin name ('\(directive) \(name)')\(dynsec)")
        }
        let ref = securityTarget(directive, location, state)
        var index = 0
        withSecurity(ref) { security in
            security.plugins.append(PluginConfig(name: name, file: location.file, line: location.line,
                                                 baseDirectory: location.baseDirectory))
            index = security.plugins.count - 1
        }
        state.currentPlugin = ConfigPluginRef(security: ref, index: index)
        state.pluginDiscarded = false
    }

    /// `plugin_opt_KEY VALUE` / `auth_opt_KEY VALUE`: an option of the latest plugin of the file.
    mutating func pluginOption(_ line: ConfigLine, _ state: ConfigFileState) throws {
        let directive = line.directive
        let prefix = ["plugin_opt_", "auth_opt_"].first { directive.hasPrefix($0) } ?? ""
        let key = String(directive.dropFirst(prefix.count))
        guard !key.isEmpty else {
            throw error(line.location, "invalid plugin option '\(directive)': the option name is missing")
        }
        if state.pluginDiscarded { return }
        guard let plugin = state.currentPlugin else {
            throw error(line.location, "'\(directive)' without a preceding 'plugin' line in this file")
        }
        // Kept as written: the plugin declares which options are paths (`PluginDescriptor.pathOptions`), and
        // those are resolved against this file's directory when it is made.
        let option = try restOfLine(directive, line.value, line.location)
        // The plugin's section may have been replaced since its line (a listener given up after an error, under
        // per_listener_settings): then the option has no plugin left to go to, as after a discarded one.
        withSecurity(plugin.security) { security in
            guard security.plugins.indices.contains(plugin.index) else { return }
            security.plugins[plugin.index].options.append((key: key, value: option))
        }
    }

    /// `auth_plugin_deny_special_chars BOOL`, for the latest plugin of the file.
    mutating func denySpecialCharsLine(_ line: ConfigLine, _ state: ConfigFileState) throws {
        let flag = try bool(line.directive, line.value, line.location)
        if state.pluginDiscarded { return }
        guard let plugin = state.currentPlugin else {
            throw error(line.location, "'auth_plugin_deny_special_chars' without a preceding 'plugin' line in this file")
        }
        withSecurity(plugin.security) { security in
            guard security.plugins.indices.contains(plugin.index) else { return }
            security.plugins[plugin.index].denySpecialChars = flag
        }
    }

    // MARK: Includes

    /// `include_dir DIRECTORY`: its `.conf` files in Mosquitto's order, from the main file only.
    mutating func includeDirectoryLine(_ line: ConfigLine, _ state: ConfigFileState) throws {
        let directory = path(try restOfLine(line.directive, line.value, line.location), line.location)
        if state.level > 0 {
            warn(line.location, "include_dir in an included file is ignored (mosquitto only processes it in the main file)")
            return
        }
        let location = line.location
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue,
              let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw error(location, "unable to open include_dir '\(directory)'")
        }
        let confFiles = names.filter { $0.utf8.count > 5 && $0.hasSuffix(".conf") }
            .sorted(by: ConfigPathResolver.mosquittoOrder)
        for name in confFiles {
            let file = directory + "/" + name
            if file == mainFile {
                errors.append(error(location, "include_dir '\(directory)' contains the main configuration file"))
                continue
            }
            do {
                let text = try ConfigParser.readConfigFile(displayName: file, absolutePath: file)
                parseFile(text: text, file: file, baseDirectory: directory, level: 1)
            } catch {
                errors.append(ConfigParser.configError(error, file: file))
            }
        }
    }

    // MARK: Logging

    /// `log_dest stdout|stderr|syslog|topic|file PATH|none` (and `dlt`, warned).
    mutating func logDestination(_ line: ConfigLine) throws {
        let (value, location) = (line.value, line.location)
        let words = ConfigFileParser.words(value)
        guard let kind = words.first, !kind.hasPrefix("#") else {
            throw error(location, "missing value for 'log_dest'")
        }
        if kind != "file" && words.count > 1 && !words[1].hasPrefix("#") {
            throw error(location, "unexpected '\(words[1])' after 'log_dest \(kind)' (one destination per line)")
        }
        if kind == "dlt" {
            notImplemented("log_dest dlt", location, "no DLT support")
            return
        }
        if !logDestSet { config.logDest = []; logDestSet = true }
        switch kind {
        case "none":
            config.logDest = []
            config.logFile = nil
        case "stdout", "stderr", "syslog", "topic":
            if !config.logDest.contains(kind) { config.logDest.append(kind) }
        case "file":
            let rest = ConfigFileParser.trimmed(value.dropFirst(kind.count))
            guard !rest.isEmpty, !rest.hasPrefix("#") else {
                throw error(location, "missing file path for 'log_dest file'")
            }
            try setOnceCheck("global", "log_dest file", location)
            let file = path(try restOfLine("log_dest file", rest, location), location)
            config.logFile = file
            if !config.logDest.contains("file") { config.logDest.append("file") }
        default:
            throw error(location, "invalid value '\(kind)' for 'log_dest': expected stdout, stderr, syslog, "
                + "topic, file PATH or none")
        }
    }

    /// Every `log_type` there is (what `all` means).
    static let allLogTypes = ["error", "warning", "notice", "information", "debug", "subscribe", "unsubscribe",
                              "websockets", "internal"]

    /// `log_type TYPE|all|none`: the first line replaces the defaults, later ones add.
    mutating func logTypeLine(_ line: ConfigLine) throws {
        let all = ConfigFileParser.allLogTypes
        let type = try keyword(line.directive, line.value, line.location, all + ["none", "all"],
                               expected: "one of " + (all + ["none", "all"]).joined(separator: ", "))
        if !logTypeSet { config.logTypes = []; logTypeSet = true }
        switch type {
        case "none": config.logTypes = []
        case "all": config.logTypes = all
        default: if !config.logTypes.contains(type) { config.logTypes.append(type) }
        }
    }

    // MARK: Midge's own

    /// `max_connection_rate N [SECONDS]` (Midge only): N CONNECTs per source address in SECONDS (default 1).
    mutating func connectionRateLine(_ line: ConfigLine) throws {
        let location = line.location
        let words = ConfigFileParser.words(line.value).prefix { !$0.hasPrefix("#") }
        guard words.count <= 2 else {
            throw error(location, "unexpected '\(words[words.startIndex + 2])' after 'max_connection_rate' "
                + "(expected: max_connection_rate COUNT [SECONDS])")
        }
        config.maxConnectionRate = try int("max_connection_rate", words.first ?? "", location, 0...Int(Int32.max),
                                           "0 (no limit) or more")
        if words.count == 2 {
            config.connectionRateWindow = try int("max_connection_rate", words[words.startIndex + 1], location,
                                                  1...86_400, "a window between 1 and 86400 seconds")
        }
    }

    /// `admin_listener PORT [BIND_ADDRESS]` (Midge only): global, at most once; port 0 = ephemeral.
    mutating func adminListenerLine(_ line: ConfigLine) throws {
        let location = line.location
        let usage = "(expected: admin_listener PORT [BIND_ADDRESS])"
        let words = ConfigFileParser.words(line.value)
        guard let portWord = words.first, !portWord.hasPrefix("#") else {
            throw error(location, "missing value for 'admin_listener' \(usage)")
        }
        guard let port = Int(portWord) else {
            throw error(location, "invalid port '\(portWord)' for 'admin_listener': expected an integer")
        }
        guard (0...65535).contains(port) else {
            throw error(location, "invalid port \(port) for 'admin_listener': must be between 0 (any free port) and 65535")
        }
        var address: String?
        if words.count > 1 && !words[1].hasPrefix("#") {
            address = words[1]
            if words.count > 2 && !words[2].hasPrefix("#") {
                throw error(location, "unexpected '\(words[2])' after 'admin_listener \(port) \(words[1])' \(usage)")
            }
        }
        try setOnceCheck("global", "admin_listener", location)
        config.adminListener = AdminListenerConfig(port: port, bindAddress: address,
                                                   file: location.file, line: location.line)
    }
}
