import Foundation
import Logging
import MQTT
import NIOCore
import NIOPosix
import PluginAPI
@testable import SCRAMPlugin
import Testing

@Suite("SCRAM-SHA-256") struct SCRAMTests {
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    private func plugin(_ text: String) throws -> (SCRAMPlugin, String) {
        let path = NSTemporaryDirectory() + "midge-scram-\(UUID().uuidString)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let plugin = try SCRAMPlugin(path: path, context: PluginContext(logger: Logger(label: "scram"),
                                                                        configDirectory: "/"))
        return (plugin, path)
    }

    private func step(_ conversation: any AuthenticationConversation, _ text: String?) -> AuthenticationStep? {
        guard case .now(let step) = conversation.step(data: text.map { ByteBuffer(string: $0) }, on: loop) else {
            return nil
        }
        return step
    }

    /// RFC 7677 section 3: user `user`, password `pencil`, the example's salt, nonces and messages.
    @Test func rfc7677ExampleExchange() throws {
        let credential = SCRAMCredential(password: "pencil", iterations: 4096,
                                         salt: Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!))
        let (plugin, path) = try plugin("# example\n" + credential.line(user: "user") + "\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        plugin.makeServerNonce = { "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
        #expect(plugin.methods == ["SCRAM-SHA-256"])
        let client = ClientInfo(clientID: "c", username: nil, protocolVersion: .v5, listener: "1883")
        let conversation = try plugin.begin(method: "SCRAM-SHA-256", client: client, on: loop)
        guard let challenge = step(conversation, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), challenge.isChallenge,
              let first = challenge.data else {
            Issue.record("no server-first message"); return
        }
        #expect(String(buffer: first)
                == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        let final = step(conversation, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                       + "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        guard let accepted = final, accepted.isSuccess, let data = accepted.data else { Issue.record("not accepted: \(String(describing: final))"); return }
        #expect(String(buffer: data) == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        #expect(accepted.username == "user")
    }

    @Test func wrongProofUnknownUserAndMalformedMessagesFail() throws {
        let (plugin, path) = try plugin(SCRAMCredential(password: "pencil", iterations: 16).line(user: "user") + "\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let client = ClientInfo(clientID: "c", username: nil, protocolVersion: .v5, listener: "1883")
        for first in ["n,,n=user,r=abc", "n,,n=ghost,r=abc"] {
            let conversation = try plugin.begin(method: "SCRAM-SHA-256", client: client, on: loop)
            guard let challenge = step(conversation, first), challenge.isChallenge, let serverFirst = challenge.data else {
                Issue.record("no challenge"); return
            }
            let nonce = String(buffer: serverFirst).split(separator: ",")[0].dropFirst(2)
            let proof = Data(repeating: 7, count: 32).base64EncodedString()
            guard let code = step(conversation, "c=biws,r=\(nonce),p=\(proof)")?.failureReason else {
                Issue.record("accepted a wrong proof"); return
            }
            #expect(code == .notAuthorized)
        }
        for bad in [nil, "", "p=tls-unique,,n=user,r=abc", "n,,m=ext,n=user,r=abc", "n,,n=us=er,r=abc",
                    "n,a=other,n=user,r=abc"] {
            let conversation = try plugin.begin(method: "SCRAM-SHA-256", client: client, on: loop)
            guard step(conversation, bad)?.isFailure == true else { Issue.record("accepted \(bad ?? "nil")"); return }
        }
    }

    /// An empty credentials file is no users, read without Foundation's 4 KB leak on empty files (a failure
    /// under `scripts/test-sanitizers address` before the plugin read with `FileIO`).
    @Test func emptyCredentialsFile() throws {
        let (plugin, path) = try plugin("")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let client = ClientInfo(clientID: "c", username: nil, protocolVersion: .v5, listener: "1883")
        let conversation = try plugin.begin(method: "SCRAM-SHA-256", client: client, on: loop)
        #expect(step(conversation, "n,,n=user,r=abc")?.isChallenge == true)  // an unknown user gets a made-up salt
    }

    /// Found by the scram fuzz target: each read of the nonce maker wrapped the stored closure in two more
    /// thunks, so every exchange got slower and about 100,000 of them overflowed the stack. Before the fix
    /// this test crashed (stack overflow).
    @Test func manyExchangesDoNotGrowTheNonceMaker() throws {
        let (plugin, path) = try plugin("")
        defer { try? FileManager.default.removeItem(atPath: path) }
        plugin.makeServerNonce = { "n" }
        for _ in 0..<300_000 { _ = plugin.makeServerNonce() }
        #expect(plugin.makeServerNonce() == "n")
    }

    @Test func credentialsFileErrorsNameFileAndLine() throws {
        #expect(throws: SCRAMCredentialsFile.ParseError.self) {
            try SCRAMCredentialsFile(parsing: "\nalice:0:AA==:AA==:AA==\n", file: "f")
        }
        do {
            _ = try SCRAMCredentialsFile(parsing: "# c\nalice:10:c2FsdA==:x:y\n", file: "creds")
        } catch let error as SCRAMCredentialsFile.ParseError {
            #expect(error.description == "creds:2: bad stored key")
        }
        var file = SCRAMCredentialsFile()
        file.set("a", SCRAMCredential(password: "p", iterations: 2))
        file.set("b", SCRAMCredential(password: "q", iterations: 2))
        let parsed = try SCRAMCredentialsFile(parsing: file.text, file: "x")
        #expect(parsed.order == ["a", "b"] && parsed.users == file.users)
    }
}
