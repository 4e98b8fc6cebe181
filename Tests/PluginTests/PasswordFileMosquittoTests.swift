import Foundation
@testable import PasswordFilePlugin
import Testing

/// Both directions against Debian's real Mosquitto 2.0: files from `mosquitto_passwd` verified by our code, and
/// files from `PasswdTool` accepted by `/usr/sbin/mosquitto` (checked with `mosquitto_pub -u -P`).
@Suite("passwd interoperability with Mosquitto", .serialized)
struct PasswordFileMosquittoTests {
    @Test("a file written now by mosquitto_passwd verifies with our code", .enabled(if: haveMosquittoPasswd))
    func mosquittoPasswdToUs() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.file("pw")
        #expect(try runProgram(mosquittoPasswdPath, ["-c", "-b", path, "alice", "a-pw"]).status == 0)
        #expect(try runProgram(mosquittoPasswdPath, ["-H", "sha512", "-b", path, "bob", "b:pw ü"]).status == 0)
        #expect(try runProgram(mosquittoPasswdPath, ["-I", "3000", "-b", path, "carol", "c"]).status == 0)
        let file = try PasswordFile(contentsOf: path)
        #expect(file.verify(username: "alice", password: "a-pw"))
        #expect(file.verify(username: "bob", password: "b:pw ü"))
        #expect(file.hash(for: "bob")?.algorithm == .sha512)
        #expect(file.hash(for: "carol")?.iterations == 3000)
        #expect(file.verify(username: "carol", password: "c"))
        #expect(!file.verify(username: "alice", password: "b:pw ü"))
    }

    @Test("a file written by PasswdTool is accepted by the real mosquitto broker", .enabled(if: haveMosquittoBroker))
    func usToMosquitto() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let pw = scratch.file("pw")
        #expect(try PasswdTool.run(arguments: ["-c", "-b", pw, "user", "pw"]) == 0)
        #expect(try PasswdTool.run(arguments: ["-H", "sha512", "-b", pw, "legacy", "old:style"]) == 0)
        #expect(try PasswdTool.run(arguments: ["-I", "2000", "-b", pw, "costly", "slow pw"]) == 0)
        // Run as root, mosquitto would switch to the `mosquitto` user, which cannot read a 0600 file in our 0700
        // scratch directory; `user root` keeps it as it is.
        let port = try freeLoopbackPort()
        let conf = try scratch.write("mosquitto.conf", """
            listener \(port) 127.0.0.1
            allow_anonymous false
            password_file \(pw)
            \(geteuid() == 0 ? "user root" : "")

            """)
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: mosquittoPath)
        broker.arguments = ["-c", conf]
        let log = FileHandle(forWritingAtPath: try scratch.write("broker.log", ""))
        broker.standardOutput = log
        broker.standardError = log
        broker.standardInput = FileHandle.nullDevice
        try broker.run()
        defer {
            if broker.isRunning {
                // Mosquitto 2.0 can take seconds to notice SIGTERM while idle; nothing of it is kept, so give it
                // a short grace and then kill it.
                kill(broker.processIdentifier, SIGTERM)
                let deadline = Date().addingTimeInterval(1)
                while broker.isRunning && Date() < deadline { usleep(10_000) }
                if broker.isRunning { kill(broker.processIdentifier, SIGKILL) }
            }
            broker.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(10)
        while !isListening(port: port) {
            try #require(broker.isRunning, "mosquitto exited: \((try? scratch.read("broker.log")) ?? "")")
            try #require(Date() < deadline, "mosquitto did not listen within 10 s")
            usleep(20_000)
        }

        func publish(_ user: String, _ password: String) throws -> Int32 {
            try runProgram(mosquittoPubPath, ["-h", "127.0.0.1", "-p", String(port), "-t", "t", "-m", "x",
                                              "-u", user, "-P", password]).status
        }
        #expect(try publish("user", "pw") == 0)
        #expect(try publish("legacy", "old:style") == 0)
        #expect(try publish("costly", "slow pw") == 0)
        #expect(try publish("user", "wrong") != 0)
        #expect(try publish("nobody", "pw") != 0)
        let brokerLog = (try? scratch.read("broker.log")) ?? ""
        #expect(!brokerLog.contains("removing entry"), "\(brokerLog)")
    }
}
