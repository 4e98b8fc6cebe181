import NIOCore
import NIOEmbedded
import NIOHTTP1
import PluginAPI
import Testing
@testable import WebSocketPlugin

/// The WebSocket decorator on an `EmbeddedChannel`: the HTTP upgrade, the frame adapter, the timeout.
@Suite struct WebSocketMQTTTests {
    // MARK: Upgrade

    @Test func anUpgradeWithTheMQTTSubprotocolIsAnsweredAndStartsTheWrappedInitializer() throws {
        let harness = try WebSocketHarness()
        #expect(harness.initialized == nil)  // nothing MQTT before the upgrade
        let answer = try harness.upgrade()
        #expect(answer.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(answer)")
        #expect(headerValues(answer, "Sec-WebSocket-Accept") == [sampleAccept])
        #expect(headerValues(answer, "Sec-WebSocket-Protocol") == ["mqtt"])
        #expect(headerValues(answer, "Upgrade").map { $0.lowercased() } == ["websocket"])
        let recorder = try #require(harness.initialized)
        #expect(recorder.events == ["active"])
        #expect(harness.seenFacts.map(\.listener) == ["9001"])
        // Only the frame codec, the adapter and the wrapped initializer's handler are left.
        #expect(throws: (any Error).self) { try harness.channel.pipeline.syncOperations.handler(type: WebSocketHandshakeGate.self) }
        #expect(throws: (any Error).self) { try harness.channel.pipeline.syncOperations.handler(type: HTTPServerUpgradeHandler.self) }
        _ = try harness.channel.pipeline.syncOperations.handler(type: WebSocketFrameAdapter.self)
        #expect(harness.isOpen)
    }

    @Test func subprotocolNegotiationFollowsMosquitto() {
        func chosen(_ offered: [String]) -> String {
            guard let headers = WebSocketMQTT.upgradeHeaders(offered: offered) else { return "refused" }
            return headers["Sec-WebSocket-Protocol"].first ?? "accepted without a subprotocol"
        }
        #expect(chosen([]) == "accepted without a subprotocol")
        #expect(chosen([" "]) == "accepted without a subprotocol")
        #expect(chosen(["mqtt"]) == "mqtt")
        #expect(chosen(["mqttv3.1"]) == "mqttv3.1")
        #expect(chosen(["mqttv3.1, mqtt"]) == "mqttv3.1")      // the client's first acceptable offer
        #expect(chosen(["foo,  mqtt "]) == "mqtt")
        #expect(chosen(["foo", "mqtt"]) == "mqtt")              // several header fields
        #expect(chosen(["foo"]) == "refused")                   // only others: refused
        #expect(chosen(["MQTT"]) == "refused")                  // names are case-sensitive
    }

    @Test func anyPathAndNoSubprotocolAreAccepted() throws {
        let harness = try WebSocketHarness()
        let answer = try harness.upgrade(upgradeRequest(path: "/", protocols: nil))
        #expect(answer.hasPrefix("HTTP/1.1 101 "), "\(answer)")
        #expect(headerValues(answer, "Sec-WebSocket-Protocol").isEmpty)
        #expect(harness.initialized != nil)
    }

    @Test func aPlainHTTPRequestGets426AndIsClosed() throws {
        let harness = try WebSocketHarness()
        try harness.receive("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let answer = try harness.sentText()
        #expect(answer.hasPrefix("HTTP/1.1 426 Upgrade Required\r\n"), "\(answer)")
        #expect(headerValues(answer, "Upgrade") == ["websocket"])
        #expect(!harness.isOpen)
        #expect(harness.initialized == nil)
    }

    @Test(arguments: [
        upgradeRequest(protocols: "foo"),                      // no acceptable subprotocol
        upgradeRequest(key: nil),                              // no key
        upgradeRequest(version: "8"),                          // an old draft
        upgradeRequest(version: nil),
        upgradeRequest(method: "POST"),
    ])
    func aRefusedUpgradeGets400AndIsClosed(request: String) throws {
        let harness = try WebSocketHarness()
        try harness.receive(request)
        let answer = try harness.sentText()
        #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(answer)")
        #expect(!harness.isOpen)
        #expect(harness.initialized == nil)
    }

    @Test func bytesThatAreNotHTTPGet400AndAClose() throws {
        let harness = try WebSocketHarness()
        // An MQTT CONNECT sent to a websockets listener.
        try? harness.receive([0x10, 0x0C, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00])
        let answer = try harness.sentText()
        #expect(answer.hasPrefix("HTTP/1.1 400 "), "\(answer)")
        #expect(!harness.isOpen)
        #expect(harness.initialized == nil)
    }

    @Test func framesInTheSameReadAsTheRequestReachTheHandlerAfterItStarted() throws {
        let harness = try WebSocketHarness()
        try harness.receive(Array(upgradeRequest().utf8) + clientFrame(opcode: 2, [1, 2, 3]) + clientFrame(opcode: 2, [4]))
        let recorder = try #require(harness.initialized)
        #expect(recorder.events == ["active"])
        #expect(recorder.bytes == [1, 2, 3, 4])
    }

    // MARK: Timeout

    @Test func aClientThatNeverUpgradesIsClosedAfterTheTimeout() throws {
        let harness = try WebSocketHarness(handshakeTimeout: .seconds(30))
        try harness.receive("GET /mqtt HTTP/1.1\r\nHost: x\r\n")  // an unfinished request
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(harness.isOpen)
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!harness.isOpen)
        #expect(harness.initialized == nil)
    }

    @Test func theTimeoutNoLongerAppliesOnceUpgraded() throws {
        let harness = try WebSocketHarness(handshakeTimeout: .seconds(30))
        try harness.upgrade()
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(harness.isOpen)
    }

    // MARK: Frames in

    @Test func binaryAndContinuationPayloadsArePassedOnAsBytes() throws {
        let harness = try WebSocketHarness()
        try harness.upgrade()
        let recorder = try #require(harness.initialized)
        try harness.receive(clientFrame(opcode: 2, [1, 2], fin: false)
                            + clientFrame(opcode: 9, [7])                 // a ping between fragments
                            + clientFrame(opcode: 0, [3], fin: false)
                            + clientFrame(opcode: 0, [], fin: false)      // an empty fragment is no read
                            + clientFrame(opcode: 0, [4, 5]))
        try harness.receive(clientFrame(opcode: 2, Array(repeating: 6, count: 70_000)))
        #expect(recorder.bytes == [1, 2, 3, 4, 5] + Array(repeating: 6, count: 70_000))
        #expect(recorder.reads == 4)
        #expect(try harness.sentFrames() == [ServerFrame(fin: true, opcode: 10, payload: [7])])
        #expect(harness.isOpen)
    }

    @Test func aPingIsAnsweredWithAPongCarryingItsPayload() throws {
        let harness = try WebSocketHarness()
        try harness.upgrade()
        try harness.receive(clientFrame(opcode: 9, Array("hello".utf8)))
        #expect(try harness.sentFrames() == [ServerFrame(fin: true, opcode: 10, payload: Array("hello".utf8))])
        try harness.receive(clientFrame(opcode: 10, [1]))  // an unsolicited pong is ignored
        #expect(try harness.sent().isEmpty)
        #expect(harness.isOpen)
    }

    @Test func aCloseIsAnsweredWithItsStatusAndTheConnectionCloses() throws {
        let harness = try WebSocketHarness()
        try harness.upgrade()
        try harness.receive(clientFrame(opcode: 8, [0x03, 0xE8] + Array("bye".utf8)))
        #expect(try harness.sentFrames() == [ServerFrame(fin: true, opcode: 8, payload: [0x03, 0xE8])])
        #expect(!harness.isOpen)
        #expect(harness.initialized?.events == ["active", "inactive"])
    }

    @Test func aCloseWithoutStatusIsAnsweredWithout() throws {
        let harness = try WebSocketHarness()
        try harness.upgrade()
        try harness.receive(clientFrame(opcode: 8, []))
        #expect(try harness.sentFrames() == [ServerFrame(fin: true, opcode: 8, payload: [])])
        #expect(!harness.isOpen)
    }

    /// Frames a client must not send, by name (so that test reports stay short), with the close status.
    static let violations: [String: (bytes: [UInt8], code: Int)] = [
        "text frame": (clientFrame(opcode: 1, [0x10, 0x00]), 1003),                       // MQTT needs binary
        "unmasked": (clientFrame(opcode: 2, [0x10, 0x00], masked: false), 1002),          // clients must mask
        "reserved bit": (clientFrame(opcode: 2, [0x10], rsv: 0x40), 1002),                // no extension agreed
        "continuation of nothing": (clientFrame(opcode: 0, [0x10]), 1002),
        "binary inside a message": (clientFrame(opcode: 2, [1], fin: false) + clientFrame(opcode: 2, [2]), 1002),
        "reserved opcode": (clientFrame(opcode: 3, [1]), 1002),
        "fragmented ping": (clientFrame(opcode: 9, [1], fin: false), 1002),
        "ping over 125 bytes": (clientFrame(opcode: 9, Array(repeating: 0, count: 126)), 1002),
        "frame over maxFrameSize": (clientFrame(opcode: 2, Array(repeating: 0, count: 1025)), 1009),
    ]

    @Test(arguments: violations.keys.sorted())
    func protocolViolationsCloseWithAStatus(violation: String) throws {
        let (bytes, code) = try #require(Self.violations[violation])
        let harness = try WebSocketHarness(maxFrameSize: 1024)
        try harness.upgrade()
        try? harness.receive(bytes)
        let frames = try #require(try harness.sentFrames())
        #expect(frames.count == 1)
        #expect(frames.first?.closeCode == code, "\(frames)")
        #expect(!harness.isOpen)
    }

    @Test func aFrameOfExactlyMaxFrameSizeIsAccepted() throws {
        let harness = try WebSocketHarness(maxFrameSize: 1024)
        try harness.upgrade()
        try harness.receive(clientFrame(opcode: 2, Array(repeating: 9, count: 1024)))
        #expect(harness.initialized?.bytes.count == 1024)
        #expect(harness.isOpen)
    }

    // MARK: Frames out

    @Test func eachWrittenBufferIsOneFinalBinaryFrame() throws {
        let harness = try WebSocketHarness()
        try harness.upgrade()
        let recorder = try #require(harness.initialized)
        recorder.send([0x20, 0x02, 0x00, 0x00])
        recorder.send(Array(repeating: 5, count: 200_000))
        #expect(try harness.sentFrames() == [
            ServerFrame(fin: true, opcode: 2, payload: [0x20, 0x02, 0x00, 0x00]),
            ServerFrame(fin: true, opcode: 2, payload: Array(repeating: 5, count: 200_000)),
        ])
    }

    @Test func whenTheHandlerClosesACloseFrameGoesFirst() throws {
        let harness = try WebSocketHarness()
        try harness.upgrade()
        let recorder = try #require(harness.initialized)
        recorder.context?.close(promise: nil)
        #expect(try harness.sentFrames() == [ServerFrame(fin: true, opcode: 8, payload: [0x03, 0xE8])])
        #expect(!harness.isOpen)
    }

    // MARK: Sizes

    @Test func theFrameCapFollowsMaxPacketSize() {
        #expect(WebSocketMQTT.maxFrameSize(forMaxPacketSize: 0) == 268_435_460)
        #expect(WebSocketMQTT.maxFrameSize(forMaxPacketSize: 100) == 65_536)
        #expect(WebSocketMQTT.maxFrameSize(forMaxPacketSize: 1_000_000) == 1_000_000)
        #expect(WebSocketMQTT.maxFrameSize(forMaxPacketSize: 300_000_000) == 268_435_460)
    }

    @Test func timeoutsAreLoggedInSeconds() {
        #expect(WebSocketHandshakeGate.seconds(.seconds(30)) == "30")
        #expect(WebSocketHandshakeGate.seconds(.milliseconds(200)) == "0.2")
    }
}
