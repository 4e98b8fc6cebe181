import Foundation
import PluginAPI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `midge passwd`: manages Mosquitto password files with `mosquitto_passwd`'s flags and messages.
///
///     midge passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username
///     midge passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password
///     midge passwd [-H …] [-I …] -U passwordfile
///
/// Differences from `mosquitto_passwd` 2.0: the file is replaced atomically (a temporary file in the same
/// directory, flushed, then renamed) keeping its mode and owner, and new files are created 0600; comment and
/// blank lines are kept instead of being reported as corrupt; `-U` leaves lines that already hold a valid
/// `$6$`/`$7$` hash alone instead of hashing the hash, and honours `-H` and `-I`; extra arguments are a usage
/// error; an empty user name is refused.
public enum PasswdTool {
    /// Runs with the arguments that follow `passwd` (no program name) and returns the exit status. Prompts
    /// for the password twice, without echo, unless `-b` is given. Errors are printed to standard error with
    /// `mosquitto_passwd`'s wording and give status 1; nothing is thrown today.
    public static func run(arguments: [String]) throws -> Int32 {
        run(arguments: arguments, console: .standard)
    }

    /// Where the tool talks: standard output, standard error, and a password prompt.
    struct Console: Sendable {
        var output: @Sendable (String) -> Void
        var error: @Sendable (String) -> Void
        /// Shows the prompt and reads one line without echo; nil at end of input.
        var readSecret: @Sendable (String) -> String?

        static let standard = Console(
            output: { text in FileHandle.standardOutput.write(Data(text.utf8)) },
            error: { text in FileHandle.standardError.write(Data(text.utf8)) },
            readSecret: { prompt in Terminal.readSecret(prompt: prompt) }
        )
    }

    static let usage = """
        midge passwd is a tool for managing password files for Mosquitto and Midge.

        Usage: midge passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username
               midge passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password
               midge passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] -U passwordfile
         -b : run in batch mode to allow passing passwords on the command line.
         -c : create a new password file. This will overwrite existing files.
         -D : delete the username rather than adding/updating its password.
         -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.
              Mosquitto 1.6 and earlier defaulted to sha512.
         -I : the number of PBKDF2 iterations (default 101).
         -U : update a plain text password file to use hashed passwords.

        See https://mosquitto.org/man/mosquitto_passwd-1.html for the file format.


        """

    private struct Failure: Error {
        var status: Int32 = 1
    }

    static func run(arguments: [String], console: Console) -> Int32 {
        do {
            try execute(arguments: arguments, console: console)
            return 0
        } catch let failure as Failure {
            return failure.status
        } catch {
            console.error("Error: \(error)\n")
            return 1
        }
    }

    private static func execute(arguments: [String], console: Console) throws {
        func fail(_ message: String, status: Int32 = 1) -> Failure {
            console.error(message + "\n")
            return Failure(status: status)
        }
        if arguments.isEmpty {
            console.output(usage)
            throw Failure()
        }

        var algorithm = PasswordHash.Algorithm.sha512PBKDF2
        var iterations = PasswordHash.defaultIterations
        var batch = false, create = false, delete = false, upgrade = false
        var index = 0
        flags: while index < arguments.count {
            switch arguments[index] {
            case "-H":
                guard index + 1 < arguments.count else {
                    throw fail("Error: -H argument given but not enough other arguments.")
                }
                guard let chosen = PasswordHash.Algorithm(rawValue: arguments[index + 1]) else {
                    throw fail("Error: Unknown hash type '\(arguments[index + 1])'")
                }
                algorithm = chosen
                index += 1
            case "-I":
                guard index + 1 < arguments.count else {
                    throw fail("Error: -I argument given but not enough other arguments.")
                }
                guard let count = Int(arguments[index + 1]), count >= 1 else {
                    throw fail("Error: Number of iterations must be > 0.")
                }
                guard count <= Int(Int32.max) else {
                    throw fail("Error: Number of iterations must be at most 2147483647.")
                }
                iterations = count
                index += 1
            case "-b": batch = true
            case "-c": create = true
            case "-D": delete = true
            case "-U": upgrade = true
            case "-h", "--help":
                console.output(usage)
                return
            default:
                break flags
            }
            index += 1
        }

        if create && delete { throw fail("Error: -c and -D cannot be used together.") }
        if create && upgrade { throw fail("Error: -c and -U cannot be used together.") }
        if delete && upgrade { throw fail("Error: -D and -U cannot be used together.") }
        if delete && batch { throw fail("Error: -b and -D cannot be used together.") }

        let rest = Array(arguments[index...])
        let expected: Int
        if create {
            expected = batch ? 3 : 2
            if rest.count < expected {
                throw fail(batch ? "Error: -c argument given but password file, username, or password missing."
                                 : "Error: -c argument given but password file or username missing.")
            }
        } else if delete {
            expected = 2
            if rest.count < expected { throw fail("Error: -D argument given but password file or username missing.") }
        } else if upgrade {
            expected = 1
            if rest.count < expected { throw fail("Error: -U argument given but password file missing.") }
        } else {
            expected = batch ? 3 : 2
        }
        guard rest.count == expected else {
            console.output(usage)
            throw Failure()
        }
        let givenPath = rest[0]
        let username: String? = expected >= 2 ? rest[1] : nil
        let batchPassword: String? = expected == 3 ? rest[2] : nil

        if let username, let problem = PasswordFile.problem(withUsername: username) {
            throw fail("Error: \(problem)")
        }
        if let batchPassword, batchPassword.utf8.count > 65535 {
            throw fail("Error: Password must be less than 65536 characters long.")
        }

        let path: String
        do {
            path = try FileIO.resolve(givenPath)
        } catch {
            throw fail("Error reading password file: \(error)")
        }

        func obtainPassword() throws -> String {
            if let batchPassword { return batchPassword }
            guard let first = console.readSecret("Password: "), !first.isEmpty else {
                throw fail("Error: Empty password.")
            }
            guard let second = console.readSecret("Reenter password: "), !second.isEmpty else {
                throw fail("Error: Empty password.")
            }
            guard first == second else { throw fail("Error: Passwords do not match.") }
            guard first.utf8.count <= 65535 else {
                throw fail("Error: Password must be less than 65536 characters long.")
            }
            return first
        }

        func line(for user: String, password: String) throws -> [UInt8] {
            do {
                let hash = try PasswordHash.make(password: password, algorithm: algorithm, iterations: iterations)
                return Array("\(user):\(hash.encoded)".utf8)
            } catch {
                throw fail("Error: Unable to hash password.")
            }
        }

        if create, let username {
            let password = try obtainPassword()
            let newLine = try line(for: username, password: password)
            let existing = try? FileIO.read(path: path)
            do {
                try FileIO.replace(path: path, with: newLine + [UInt8(ascii: "\n")],
                                   mode: existing?.mode ?? 0o600,
                                   owner: existing.map { ($0.uid, $0.gid) })
            } catch {
                throw fail("Error: Unable to open file \(path) for writing. \(error).")
            }
            return
        }

        let contents: FileIO.Contents
        do {
            contents = try FileIO.read(path: path)
        } catch {
            throw fail("Error: Unable to open password file \(path). \(error).")
        }

        // Lines as they are (without "\n"); user lines are rewritten, everything else is kept byte for byte.
        var lines = contents.bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map(Array.init)
        if lines.last?.isEmpty == true { lines.removeLast() }
        var users: [(user: [UInt8], field: [UInt8])?] = []
        for (number, raw) in lines.enumerated() {
            do {
                if let (user, field) = try PasswordFile.split(line: raw[...], file: path, lineNumber: number + 1) {
                    users.append((Array(user), Array(field)))
                } else {
                    users.append(nil)
                }
            } catch {
                throw fail("Error: Corrupt password file at line \(number + 1).")
            }
        }

        var output: [[UInt8]] = []
        if delete, let username {
            let key = Array(username.utf8)
            var found = false
            for (raw, user) in zip(lines, users) {
                if let user, user.user == key {
                    found = true
                } else {
                    output.append(raw)
                }
            }
            guard found else { throw fail("Warning: User \(username) not found in password file.") }
        } else if upgrade {
            for (raw, user) in zip(lines, users) {
                guard let user else { output.append(raw); continue }
                let field = String(decoding: user.field, as: UTF8.self)
                if (try? PasswordHash(parsing: field)) != nil {
                    output.append(raw)
                } else {
                    output.append(try line(for: String(decoding: user.user, as: UTF8.self), password: field))
                }
            }
        } else if let username {
            let password = try obtainPassword()
            let key = Array(username.utf8)
            let newLine = try line(for: username, password: password)
            var found = false
            for (raw, user) in zip(lines, users) {
                if let user, user.user == key {
                    found = true
                    output.append(newLine)
                } else {
                    output.append(raw)
                }
            }
            if !found { output.append(newLine) }
        }

        var bytes: [UInt8] = []
        for line in output {
            bytes += line
            bytes.append(UInt8(ascii: "\n"))
        }
        do {
            try FileIO.replace(path: path, with: bytes, mode: contents.mode, owner: (contents.uid, contents.gid))
        } catch {
            throw fail("Error occurred updating password file \(path): \(error).")
        }
    }
}

/// Reading a password from a terminal without echo.
enum Terminal {
    /// The terminal settings to restore if the user interrupts a prompt.
    nonisolated(unsafe) private static var saved = termios()
    nonisolated(unsafe) private static var echoOff = false

    /// Prints `prompt` to standard output, reads a line from standard input with echo off (when it is a
    /// terminal), restores the terminal and ends the prompt line. Nil at end of input.
    static func readSecret(prompt: String) -> String? {
        FileHandle.standardOutput.write(Data(prompt.utf8))
        let interactive = isatty(STDIN_FILENO) == 1
        if interactive, tcgetattr(STDIN_FILENO, &saved) == 0 {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            echoOff = true
            signal(SIGINT) { _ in Terminal.restoreAndExit() }
            signal(SIGTERM) { _ in Terminal.restoreAndExit() }
            _ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        }
        let line = readLine(strippingNewline: true)
        if echoOff {
            _ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            echoOff = false
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
        guard var line else { return nil }
        while line.hasSuffix("\r") { line.removeLast() }
        return line
    }

    private static func restoreAndExit() {
        if echoOff { _ = tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
        _exit(130)
    }
}
