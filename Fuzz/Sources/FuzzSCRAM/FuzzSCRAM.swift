import Foundation
import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
import PluginAPI
@testable import SCRAMPlugin

/// Fields: a client-first message, a client-final message, then a credentials file. The messages go through
/// one server-side SCRAM-SHA-256 exchange for a known user (`user`, password `pencil`) with a fixed server
/// nonce, so that a client-final message can get past the nonce check; the file goes through the
/// credentials-file parser. Checks: no crash; a step after the exchange ended is refused.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSCRAM(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var fields = FuzzFields(start, count, limit: 3)
    let first = fields.bytes(), final = fields.bytes(), file = fields.text()
    let loop = EmbeddedEventLoop()
    let client = ClientInfo(clientID: "fuzz", username: nil, protocolVersion: .v5, listener: "1883")
    let conversation = try! plugin.begin(method: SCRAMPlugin.method, client: client, on: loop)
    var ended = false
    for message in [first, final] where !ended {
        guard case .now(let step) = conversation.step(data: ByteBuffer(bytes: message), on: loop) else {
            preconditionFailure("SCRAM answered later")
        }
        ended = !step.isChallenge
    }
    if ended, case .now(let step) = conversation.step(data: ByteBuffer(bytes: first), on: loop) {
        precondition(!step.isChallenge, "a step after the end was answered with a challenge")
    }
    if let parsed = try? SCRAMCredentialsFile(parsing: file, file: "fuzz.scram") {
        let again = try? SCRAMCredentialsFile(parsing: parsed.text, file: "again.scram")
        precondition(again?.users == parsed.users, "credentials changed in a round trip")
    }
    return 0
}

private let plugin: SCRAMPlugin = {
    // RFC 7677's example: `user` / `pencil`, 4,096 iterations, its salt and server nonce, so that the seed
    // holding the RFC's client messages completes the exchange.
    let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
    let credential = SCRAMCredential(password: "pencil", iterations: 4_096, salt: salt)
    let path = FuzzScratch.write(Array((credential.line(user: "user") + "\n").utf8), to: "scram")
    let logger = Logger(label: "fuzz.scram", factory: { _ in SwiftLogNoOpLogHandler() })
    let plugin = try! SCRAMPlugin(path: path, context: PluginContext(logger: logger,
                                                                      configDirectory: FuzzScratch.directory))
    plugin.makeServerNonce = { "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
    return plugin
}()
