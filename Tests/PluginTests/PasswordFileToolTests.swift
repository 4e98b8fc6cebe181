import Foundation
@testable import PasswordFilePlugin
import Testing

@Suite("midge passwd (PasswdTool)")
struct PasswordFileToolTests {
    @Test("-c -b creates a 0600 file our parser and verifier accept; -c overwrites")
    func createBatch() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.file("pw")
        #expect(try PasswdTool.run(arguments: ["-c", "-b", path, "alice", "s3cret"]) == 0)
        #expect(try scratch.mode("pw") == 0o600)
        let file = try PasswordFile(contentsOf: path)
        #expect(file.userCount == 1)
        #expect(file.verify(username: "alice", password: "s3cret"))
        #expect(file.hash(for: "alice")?.algorithm == .sha512PBKDF2)
        #expect(file.hash(for: "alice")?.iterations == 101)

        #expect(runPasswd(["-c", "-b", path, "bob", "pw2"]).status == 0)
        let again = try PasswordFile(contentsOf: path)
        #expect(again.entries.map(\.username) == ["bob"])
        #expect(try scratch.names() == ["pw"])  // no temporary file left behind
    }

    @Test("-b adds and updates users, keeping comments, blank lines and other users byte for byte")
    func batchUpdate() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let header = "# managed by hand\n\n"
        let dave = mosquittoGolden[3].line
        _ = try scratch.write("pw", header + "\(mosquittoGolden[0].line)\n\(dave)\n", mode: 0o640)
        let path = scratch.file("pw")
        #expect(runPasswd(["-b", path, "alice", "changed"]).status == 0)
        #expect(runPasswd(["-H", "sha512", "-b", path, "erin", "e-pw"]).status == 0)
        #expect(runPasswd(["-I", "2000", "-b", path, "frank", "f-pw"]).status == 0)
        let text = try scratch.read("pw")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(text.hasPrefix(header))
        #expect(lines[3] == dave)
        #expect(lines.last == "")
        let file = try PasswordFile(parsing: text)
        #expect(file.entries.map(\.username) == ["alice", "dave", "erin", "frank"])
        #expect(file.verify(username: "alice", password: "changed"))
        #expect(file.verify(username: "dave", password: mosquittoGolden[3].password))
        #expect(file.hash(for: "erin")?.algorithm == .sha512)
        #expect(file.verify(username: "erin", password: "e-pw"))
        #expect(file.hash(for: "frank")?.iterations == 2000)
        #expect(try scratch.mode("pw") == 0o640)  // mode kept
    }

    @Test("-D deletes a user; a missing user is a warning and status 1, the file untouched")
    func delete() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let original = mosquittoGolden.map(\.line).joined(separator: "\n") + "\n"
        _ = try scratch.write("pw", original)
        let path = scratch.file("pw")
        #expect(runPasswd(["-D", path, "bob@example"]).status == 0)
        #expect(try PasswordFile(contentsOf: path).entries.map(\.username) == ["alice", "carol", "dave"])
        let missing = runPasswd(["-D", path, "nobody"])
        #expect(missing.status == 1)
        #expect(missing.error == "Warning: User nobody not found in password file.\n")
    }

    @Test("-U hashes plain-text passwords and leaves lines already hashed alone")
    func upgrade() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let dave = mosquittoGolden[3].line
        _ = try scratch.write("pw", "# plain\nu1:plain one\n\(dave)\n  u2 : pw:with:colons \n")
        let path = scratch.file("pw")
        #expect(runPasswd(["-U", path]).status == 0)
        let text = try scratch.read("pw")
        #expect(!text.contains("plain one") && !text.contains("with:colons"))
        #expect(text.contains("\n\(dave)\n"))
        let file = try PasswordFile(parsing: text)
        #expect(file.verify(username: "u1", password: "plain one"))
        #expect(file.verify(username: "u2", password: "pw:with:colons"))
        #expect(file.verify(username: "dave", password: mosquittoGolden[3].password))
    }

    @Test("interactive: the password is asked twice; mismatch and empty input are errors")
    func interactive() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.file("pw")
        let ok = runPasswd(["-c", path, "alice"], typed: ["typed pw", "typed pw"])
        #expect(ok.status == 0)
        #expect(ok.output == "Password: \nReenter password: \n")
        #expect(try PasswordFile(contentsOf: path).verify(username: "alice", password: "typed pw"))

        let mismatch = runPasswd([path, "bob"], typed: ["one", "two"])
        #expect(mismatch.status == 1)
        #expect(mismatch.error == "Error: Passwords do not match.\n")
        let empty = runPasswd([path, "bob"], typed: [""])
        #expect(empty.error == "Error: Empty password.\n")
        let eof = runPasswd([path, "bob"], typed: [])
        #expect(eof.error == "Error: Empty password.\n")
        #expect(try PasswordFile(contentsOf: path).entries.map(\.username) == ["alice"])

        #expect(runPasswd([path, "bob"], typed: ["b", "b"]).status == 0)
        #expect(try PasswordFile(contentsOf: path).verify(username: "bob", password: "b"))
    }

    @Test("argument and input errors use mosquitto_passwd's messages", arguments: [
        (["-c", "-D", "f", "u"], "Error: -c and -D cannot be used together.\n"),
        (["-c", "-U", "f"], "Error: -c and -U cannot be used together.\n"),
        (["-D", "-U", "f"], "Error: -D and -U cannot be used together.\n"),
        (["-b", "-D", "f", "u"], "Error: -b and -D cannot be used together.\n"),
        (["-H", "md5", "-b", "f", "u", "p"], "Error: Unknown hash type 'md5'\n"),
        (["-H"], "Error: -H argument given but not enough other arguments.\n"),
        (["-I", "0", "-b", "f", "u", "p"], "Error: Number of iterations must be > 0.\n"),
        (["-I", "many", "-b", "f", "u", "p"], "Error: Number of iterations must be > 0.\n"),
        (["-I"], "Error: -I argument given but not enough other arguments.\n"),
        (["-c", "f"], "Error: -c argument given but password file or username missing.\n"),
        (["-c", "-b", "f", "u"], "Error: -c argument given but password file, username, or password missing.\n"),
        (["-D", "f"], "Error: -D argument given but password file or username missing.\n"),
        (["-U"], "Error: -U argument given but password file missing.\n"),
        (["-b", "f", "a:b", "p"], "Error: Username must not contain the ':' character.\n"),
        (["-b", "f", "a\nb", "p"], "Error: Username must not contain control characters.\n"),
        (["-b", "f", "", "p"], "Error: Username must not be empty.\n"),
    ])
    func argumentErrors(arguments: [String], message: String) {
        let result = runPasswd(arguments)
        #expect(result.status == 1)
        #expect(result.error == message)
    }

    @Test("no arguments, or the wrong number, print the usage; -h prints it and succeeds")
    func usage() {
        for arguments in [[], ["only-a-file"], ["-b", "f", "u"], ["f", "u", "extra"], ["-U", "f", "extra"]] {
            let result = runPasswd(arguments)
            #expect(result.status == 1, "\(arguments)")
            #expect(result.output.contains("Usage: midge passwd"), "\(arguments)")
        }
        #expect(runPasswd(["-h"]).status == 0)
    }

    @Test("missing and corrupt files are reported with mosquitto_passwd's wording")
    func fileErrors() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let absent = scratch.file("absent")
        let missing = runPasswd(["-b", absent, "u", "p"])
        #expect(missing.status == 1)
        #expect(missing.error == "Error: Unable to open password file \(absent). No such file or directory.\n")
        _ = try scratch.write("pw", "\(mosquittoGolden[0].line)\nno colon here\n")
        let corrupt = runPasswd(["-b", scratch.file("pw"), "u", "p"])
        #expect(corrupt.status == 1)
        #expect(corrupt.error == "Error: Corrupt password file at line 2.\n")
        #expect(try scratch.read("pw") == "\(mosquittoGolden[0].line)\nno colon here\n")
    }

    @Test("a symbolic link is followed: its target is replaced, the link stays")
    func symlink() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        _ = try scratch.write("real", mosquittoGolden[0].line + "\n", mode: 0o640)
        try FileManager.default.createSymbolicLink(atPath: scratch.file("link"), withDestinationPath: scratch.file("real"))
        #expect(runPasswd(["-b", scratch.file("link"), "zed", "z"]).status == 0)
        let attributes = try FileManager.default.attributesOfItem(atPath: scratch.file("link"))
        #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink)
        #expect(try PasswordFile(contentsOf: scratch.file("real")).verify(username: "zed", password: "z"))
        #expect(try scratch.mode("real") == 0o640)
    }
}
