import Foundation
import PluginAPI

/// The administration subcommands, which take their own flags: `midge check-config [-c FILE | --config-dir
/// DIR]`, the broker's own, and every command a registered plugin brings (`midge passwd ...` with the password
/// file plugin, `midge users` and `midge acl` with SQLite, `midge scram` with SCRAM).
public enum AdminTools {
    /// Every subcommand: the broker's own `check-config` first, then the plugins' in name order.
    static func commands(in registry: PluginRegistry) -> [PluginCommand] {
        let checkConfig = PluginCommand(name: "check-config",
                                        usage: "check-config [-c FILE | --config-dir DIR]   (check a configuration, print what would run)") { arguments in
            CheckConfig.run(arguments: arguments, registry: registry)
        }
        return [checkConfig] + registry.commands.filter { $0.name != checkConfig.name }
    }

    /// Runs the subcommand named by `arguments[0]` if it is one, returning its exit status; nil otherwise.
    public static func run(_ arguments: [String], registry: PluginRegistry) -> Int32? {
        guard let name = arguments.first,
              let command = commands(in: registry).first(where: { $0.name == name }) else { return nil }
        do {
            return try command.run(Array(arguments.dropFirst()))
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            return 1
        }
    }
}
