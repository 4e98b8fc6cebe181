import Foundation
@testable import PasswordFilePlugin
import PluginAPI
import Testing

/// Lines written by Debian's `mosquitto_passwd` 2.0.11 (`-c -b`, `-b`, `-I 1000 -b`, `-H sha512 -b`), with the
/// passwords they were made from. Each was also checked with Python's hashlib.
let mosquittoGolden: [(line: String, username: String, password: String)] = [
    ("alice:$7$101$BMlLNuC+TUdR1YlD$9jqmdBFisGbjolZaZbOpxJxuTXFy0iktNBPmYy/YAoRP3YlkT5KgWH/Ga/L7b7U/xOoK1VjYCnunSOy6t2DBcQ==",
     "alice", "correct horse"),
    ("bob@example:$7$101$kcJ3YWkVPlJq9RDU$1GA04+VTpoEIVdw3/6U04914QwRoHDrLev0Po8X5RSgeyOK8qvM6UskBU6n3bAe1Hl0iqdBUV/8QOSOuBkKgdg==",
     "bob@example", "pä55:wörd"),
    ("carol:$7$1000$XEu9X47DsZBai9Ip$S31haHBx3c6Tx0P926gg3IYT/fL3OmXLqUPnQ3Ee/MtRC5N/UMPIwnA/f7a9+/oYqj9XZceKTEqa+cfRi4h2oQ==",
     "carol", "x"),
    ("dave:$6$j10/CdkLVAF/4R2N$8aQtZPuyRMSor8Em1jXuUl+gMaRuv9l6q1rYks0LmJLrJbFhTD9q55B+GcZY1Y4Jy6YMFJAS7Xeq8u8F1jFqUA==",
     "dave", "hunter2"),
]

/// Vectors computed independently with Python (`hashlib.sha512(password + salt)`, `hashlib.pbkdf2_hmac`) for
/// the password `swordfish` and the salt bytes 1…12.
let fixedSalt: [UInt8] = Array(1...12)
let independentVectors: [(algorithm: PasswordHash.Algorithm, iterations: Int, encoded: String)] = [
    (.sha512, 1,
     "$6$AQIDBAUGBwgJCgsM$+dBlHcAku+NwzF3vX6BHP5gEv7TfTIxwBXOvKwCLuJ3Umn1DwSqognfre3zXcewhyJPtIDGtXb4vynZpiJjmIQ=="),
    (.sha512PBKDF2, 101,
     "$7$101$AQIDBAUGBwgJCgsM$R9sOsytTJ1z9ScPxBLdXYP4BBNdKeyqljH0kytFvSkTlgzjFhuGfGPSNqqwDDuYHSMUc1Kjb6qJTMHGqkaIxkA=="),
    (.sha512PBKDF2, 1,
     "$7$1$AQIDBAUGBwgJCgsM$beoMYeKEmXrZnTm/hZzVjFn+U2lY+DPYWEnnW+FK0+qtd+Arhx93VUZ9dfQMQtryo4G/a9l/q06Xbm+3/Bte6Q=="),
]

@Suite("PasswordFile hashes")
struct PasswordFileHashTests {
    @Test("lines from the real mosquitto_passwd verify, wrong passwords do not", arguments: mosquittoGolden)
    func mosquittoGoldenLines(line: String, username: String, password: String) throws {
        let file = try PasswordFile(parsing: line + "\n", file: "golden")
        #expect(file.userCount == 1)
        #expect(file.verify(username: username, password: password))
        #expect(!file.verify(username: username, password: password + " "))
        #expect(!file.verify(username: username, password: ""))
        #expect(!file.verify(username: username.uppercased(), password: password))
        // Rendering gives back the same line, byte for byte.
        #expect(file.render() == line + "\n")
    }

    @Test("hashing with a fixed salt matches vectors computed with Python", arguments: independentVectors)
    func independentVector(algorithm: PasswordHash.Algorithm, iterations: Int, encoded: String) throws {
        let hash = try PasswordHash.make(password: "swordfish", algorithm: algorithm, iterations: iterations,
                                         salt: fixedSalt)
        #expect(hash.encoded == encoded)
        let parsed = try PasswordHash(parsing: encoded)
        #expect(parsed == hash)
        #expect(parsed.verify(password: "swordfish"))
        #expect(!parsed.verify(password: "swordfisH"))
    }

    @Test("format: standard base64, 16-character salt, 88-character hash with == padding, field order")
    func encodingShape() throws {
        let seven = try PasswordHash.make(password: "p", iterations: 101)
        let fields = seven.encoded.split(separator: "$", omittingEmptySubsequences: false)
        #expect(fields.count == 5 && fields[0].isEmpty && fields[1] == "7" && fields[2] == "101")
        #expect(fields[3].count == 16 && fields[4].count == 88 && fields[4].hasSuffix("=="))
        let six = try PasswordHash.make(password: "p", algorithm: .sha512)
        #expect(six.encoded.hasPrefix("$6$"))
        #expect(six.encoded.split(separator: "$", omittingEmptySubsequences: false).count == 4)
        // Fresh salts differ.
        #expect(try PasswordHash.make(password: "p").salt != PasswordHash.make(password: "p").salt)
    }

    @Test("base64 matches RFC 4648's vectors, with and without padding")
    func base64Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=",
                       "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(Substring(encoded)) == Array(plain.utf8))
            #expect(Base64.decode(Substring(encoded.replacingOccurrences(of: "=", with: ""))) == Array(plain.utf8))
        }
        #expect(Base64.encode([0xFB, 0xFF, 0xBF]) == "+/+/")
        for bad in ["Zg=", "Z", "Zm9v!", "Zm-_", "Zg===", "Z===", "Zm9v Yg=="] {
            #expect(Base64.decode(Substring(bad)) == nil, "\(bad)")
        }
    }

    @Test("malformed hash strings are refused with a reason", arguments: [
        ("plain-text", PasswordHashError.notAHash),
        ("$5$AQIDBAUGBwgJCgsM$abc", .unknownAlgorithm),
        ("$7$AQIDBAUGBwgJCgsM$+dBlHcAku+NwzF3vX6BHP5gEv7TfTIxwBXOvKwCLuJ3Umn1DwSqognfre3zXcewhyJPtIDGtXb4vynZpiJjmIQ==",
         .wrongFieldCount(.sha512PBKDF2)),
        ("$6$101$AQIDBAUGBwgJCgsM$x", .wrongFieldCount(.sha512)),
        ("$7$0$AQIDBAUGBwgJCgsM$x", .badIterations),
        ("$7$-5$AQIDBAUGBwgJCgsM$x", .badIterations),
        ("$7$+5$AQIDBAUGBwgJCgsM$x", .badIterations),
        ("$7$99999999999$AQIDBAUGBwgJCgsM$x", .badIterations),
        ("$7$101$AQIDBAUGBwgJCg$x", .badSalt),
        ("$7$101$AQID*AUGBwgJCgsM$x", .badSalt),
        ("$7$101$AQIDBAUGBwgJCgsM$AQID", .badHash),
        ("$6$AQIDBAUGBwgJCgsM$", .badHash),
    ])
    func malformedHashes(text: String, expected: PasswordHashError) {
        #expect(throws: expected) { try PasswordHash(parsing: text) }
    }

    @Test("verification compares through the constant-time CRYPTO_memcmp path")
    func constantTimeCompareUsed() throws {
        let hash = try PasswordHash.make(password: "secret", salt: fixedSalt)
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var count = 0
            func bump() { lock.withLock { count += 1 } }
        }
        let counter = Counter()
        PasswordHash.$comparisonObserver.withValue({ counter.bump() }) {
            #expect(hash.verify(password: "secret"))
            #expect(!hash.verify(password: "wrong"))
            let file = try! PasswordFile(parsing: "u:\(hash.encoded)\n")
            #expect(file.verify(username: "u", password: "secret"))
        }
        #expect(counter.count == 3)
        #expect(PasswordHash.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!PasswordHash.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!PasswordHash.constantTimeEqual([1, 2, 3], [1, 2]))
    }

    @Test("descriptions never show the salt or the hash")
    func descriptionsHideSecrets() throws {
        let hash = try PasswordHash.make(password: "secret", salt: fixedSalt)
        #expect(String(describing: hash) == "PasswordHash(sha512-pbkdf2, 101 iterations)")
        #expect(!String(describing: hash).contains(Base64.encode(fixedSalt)))
    }
}

@Suite("PasswordFile parsing")
struct PasswordFileParseTests {
    let alice = mosquittoGolden[0]
    let dave = mosquittoGolden[3]

    @Test("comments, blank lines, blanks around fields and CRLF are handled as Mosquitto does")
    func commentsAndBlanks() throws {
        let text = "# users\n\n   \n\t\n\(alice.line)\r\n  # indented comment\n  dave  :  \(dave.line.dropFirst(5))  \n"
        let file = try PasswordFile(parsing: text, file: "users.pw")
        #expect(file.userCount == 2)
        #expect(file.entries.map(\.line) == [5, 7])
        #expect(file.verify(username: "alice", password: alice.password))
        #expect(file.verify(username: "dave", password: dave.password))
        #expect(try PasswordFile(parsing: "").userCount == 0)
        #expect(try PasswordFile(parsing: "\(alice.line)").userCount == 1)  // no final newline
    }

    @Test("a user given twice: the last line wins, with a warning naming both lines")
    func duplicates() throws {
        let second = try PasswordHash.make(password: "second")
        let text = "\(alice.line)\nalice:\(second.encoded)\n"
        let file = try PasswordFile(parsing: text, file: "dup.pw")
        #expect(file.userCount == 1)
        #expect(file.verify(username: "alice", password: "second"))
        #expect(!file.verify(username: "alice", password: alice.password))
        #expect(file.warnings == ["dup.pw:2: user 'alice' also appears on line 1; the last line is used, as in Mosquitto"])
    }

    @Test("a line that cannot be parsed names file:line and a reason, never the secret", arguments: [
        ("junk-without-colon", "expected 'username:password-hash'"),
        (":$7$101$x$y", "empty user name"),
        ("alice:", "user 'alice' has no password hash"),
        ("alice:s3cr3t-plain", "user 'alice': not a password hash"),
        ("alice:$7$0$AQIDBAUGBwgJCgsM$x", "user 'alice': invalid hash iterations"),
        ("alice:$7$101$AQIDBAUGBwgJCg$x", "user 'alice': invalid password salt"),
        ("alice:$6$AQIDBAUGBwgJCgsM$AQID", "user 'alice': invalid password hash"),
        ("alice:$2y$10$abcdefghijklmnopqrstuv", "user 'alice': unknown password hash type"),
    ])
    func malformedLine(line: String, reason: String) throws {
        let text = "# header\n\(alice.line)\n\(line)\n\(dave.line)\n"
        do {
            _ = try PasswordFile(parsing: text, file: "/etc/midge/pw")
            Issue.record("parsed: \(line)")
        } catch {
            #expect(error.file == "/etc/midge/pw")
            #expect(error.line == 3)
            #expect(error.reason.hasPrefix(reason), "\(error.reason)")
            #expect(error.description.hasPrefix("/etc/midge/pw:3: \(reason)"))
            #expect(!error.description.contains("s3cr3t"))
            let plugin = error.pluginError()
            #expect(plugin.origin == PluginOptions.Origin(file: "/etc/midge/pw", line: 3))
            #expect(plugin.description.hasPrefix("/etc/midge/pw:3: plugin 'passwd': \(reason)"))
        }
    }

    @Test("invalid UTF-8 in a user name is an error")
    func invalidUTF8() {
        var bytes: [UInt8] = [0x61, 0xFF, 0x3A]
        bytes += Array(alice.line.dropFirst(6).utf8)
        #expect(throws: PasswordFileError.self) { try PasswordFile(parsing: bytes, file: "x") }
    }

    @Test("user names compare byte for byte, not by Unicode equivalence")
    func bytewiseUsernames() throws {
        let hash = try PasswordHash.make(password: "pw")
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(composed == decomposed)  // Swift says equal…
        let file = try PasswordFile(parsing: "\(composed):\(hash.encoded)\n")
        #expect(file.verify(username: composed, password: "pw"))
        #expect(file.hash(for: decomposed) == nil)  // …Mosquitto and Midge do not.
    }

    @Test("set, remove and render")
    func editing() throws {
        var file = try PasswordFile(parsing: "\(alice.line)\n\(dave.line)\n\(alice.line)\n")
        let fresh = try PasswordHash.make(password: "new")
        try file.set(username: "alice", hash: fresh)
        #expect(file.entries.map(\.username) == ["alice", "dave"])
        #expect(file.verify(username: "alice", password: "new"))
        try file.set(username: "erin", hash: fresh)
        let removed = file.remove(username: "dave")
        let removedAgain = file.remove(username: "dave")
        #expect(removed && !removedAgain)
        let again = try PasswordFile(parsing: file.render())
        #expect(again.entries.map(\.username) == ["alice", "erin"])
        #expect(again.verify(username: "erin", password: "new"))
        #expect(throws: PasswordFileError.self) { try file.set(username: "a:b", hash: fresh) }
        #expect(PasswordFile.problem(withUsername: "") != nil)
        #expect(PasswordFile.problem(withUsername: "tab\there") == "Username must not contain control characters.")
        #expect(PasswordFile.problem(withUsername: "ok user") == nil)
    }
}
