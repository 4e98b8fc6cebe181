import Foundation
import PasswordFilePlugin
import SCRAMPlugin
import SQLitePlugin

/// The administration subcommands, which take their own flags (Mosquitto's for `passwd`):
/// `midge passwd ...` (as `mosquitto_passwd`), `midge scram ...` (SCRAM-SHA-256 credentials), `midge users --db FILE ...`,
/// `midge acl --db FILE ...` and `midge check-config [-c FILE | --config-dir DIR]`.
public enum AdminTools {
    /// Runs the subcommand named by `arguments[0]` if it is one, returning its exit status; nil otherwise.
    public static func run(_ arguments: [String]) -> Int32? {
        guard let name = arguments.first else { return nil }
        let rest = Array(arguments.dropFirst())
        do {
            switch name {
            case "passwd": return try PasswdTool.run(arguments: rest)
            case "scram": return try SCRAMTool.run(arguments: rest)
            case "check-config": return CheckConfig.run(arguments: rest)
            case "users": return try SQLiteAdmin.run(arguments: rest)
            case "acl":
                // `midge acl --db FILE add ...` is `midge users --db FILE acl add ...`.
                var options: [String] = []
                var words = rest[...]
                while let first = words.first, first.hasPrefix("--"), first != "--anonymous" {
                    options.append(first)
                    words = words.dropFirst()
                    if first == "--db", let value = words.first {
                        options.append(value)
                        words = words.dropFirst()
                    }
                }
                return try SQLiteAdmin.run(arguments: options + ["acl"] + words)
            default: return nil
            }
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            return 1
        }
    }
}
