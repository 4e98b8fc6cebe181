import Foundation
import PluginAPI
import PasswordFilePlugin

/// `midge scram [-c] [-D] [-I ITERATIONS] FILE USER [PASSWORD]`: adds or updates a user of a SCRAM-SHA-256
/// credentials file (`-c` creates the file anew, `-D` deletes the user). Without PASSWORD the password is
/// the first line of standard input. The file is replaced atomically, mode 0600.
public enum SCRAMTool {
    /// A usage or input error, printed as `Error: ...`.
    public struct Failure: Error, CustomStringConvertible {
        /// The message.
        public var description: String
    }

    static let usage = "usage: midge scram [-c] [-D] [-I ITERATIONS] FILE USER [PASSWORD]"

    /// Runs the tool; returns the exit status.
    public static func run(arguments: [String]) throws -> Int32 {
        var create = false
        var delete = false
        var iterations = SCRAMCredential.defaultIterations
        var positional: [String] = []
        var words = arguments[...]
        while let word = words.popFirst() {
            switch word {
            case "-c": create = true
            case "-D": delete = true
            case "-I":
                guard let value = words.popFirst(), let count = Int(value), count >= 1, count <= Int(Int32.max) else {
                    throw Failure(description: "-I needs a positive number of iterations\n\(usage)")
                }
                iterations = count
            case "-h", "--help":
                print(usage)
                return 0
            default:
                if word.hasPrefix("-") && word.count > 1 { throw Failure(description: "unknown option \(word)\n\(usage)") }
                positional.append(word)
            }
        }
        guard positional.count == 2 || (positional.count == 3 && !delete) else { throw Failure(description: usage) }
        if create && delete { throw Failure(description: "-c and -D cannot be combined\n\(usage)") }
        let (path, user) = (positional[0], positional[1])
        guard !user.isEmpty, !user.contains(":"), !user.contains("\n") else {
            throw Failure(description: "the user name must be non-empty and contain no ':'")
        }
        var file = SCRAMCredentialsFile()
        if !create && FileManager.default.fileExists(atPath: path) {
            guard let text = try FileIO.text(path: path) else { throw Failure(description: "\(path) is not UTF-8") }
            file = try SCRAMCredentialsFile(parsing: text, file: path)
        } else if !create {
            throw Failure(description: "\(path) does not exist (use -c to create it)")
        }
        if delete {
            guard file.remove(user) else { throw Failure(description: "user \(user) not found in \(path)") }
        } else {
            let password: String
            if positional.count == 3 {
                password = positional[2]
            } else if let line = readLine(strippingNewline: true) {
                password = line
            } else {
                throw Failure(description: "no password given (argument or first line of standard input)")
            }
            guard !password.isEmpty else { throw Failure(description: "empty password") }
            file.set(user, SCRAMCredential(password: password, iterations: iterations))
        }
        do {
            // Atomically, as `midge passwd` does: a temporary file in the same directory, flushed, renamed
            // over the target (a symbolic link's target, so a mounted file stays linked).
            try FileIO.replace(path: FileIO.resolve(path), with: Array(file.text.utf8), mode: 0o600)
        } catch {
            throw Failure(description: "cannot write \(path): \(error)")
        }
        return 0
    }
}
