public import Logging
public import NIOCore
import NIOHTTP1
import NIOWebSocket
public import PluginAPI

/// MQTT over WebSocket (MQTT 3.1.1 and 5.0, section 6), Mosquitto's `protocol websockets`, as a decorator for
/// any transport's `ConnectionInitializer`: the `tcp` transport gives `ws://`, the `tls` transport `wss://`.
///
/// On each connection the wrapped initializer first speaks HTTP/1.1: a `GET` with `Upgrade: websocket` (any
/// request path) is answered `101 Switching Protocols`; anything else gets a 4xx answer and is closed. Once
/// upgraded, the HTTP handlers leave the pipeline, a frame adapter takes their place (binary and continuation
/// frames in, one binary frame per written buffer out; pings answered, close answered and the connection
/// closed), and then the wrapped initializer runs, so the handlers it adds see a plain byte stream that starts
/// (`channelActive`) when the upgrade is done. MQTT packets may be split across frames or share one: the MQTT
/// handler frames the byte stream itself.
///
/// Subprotocols (`Sec-WebSocket-Protocol`): the first of the client's offers that is `mqtt` or `mqttv3.1` is
/// answered; a client that offers none is accepted without the header, and one that offers only others is
/// refused, as Mosquitto (libwebsockets) does.
///
/// Unlike Mosquitto, which takes text frames as MQTT data and unmasked client frames as they are, this follows
/// the standards: a text frame closes the connection with status 1003 (MQTT: "if any other type of data frame
/// is received the recipient MUST close the Network Connection"), an unmasked frame with 1002 (RFC 6455 5.1).
public enum WebSocketMQTT {
    /// The subprotocols MQTT clients offer: `mqtt` (MQTT 3.1.1 and 5.0) and `mqttv3.1` (MQTT 3.1).
    public static let subprotocols = ["mqtt", "mqttv3.1"]

    /// How long a client has by default to complete the HTTP upgrade (as the `tls` transport's handshake).
    public static let defaultHandshakeTimeout: TimeAmount = .seconds(30)

    /// The largest MQTT packet: a fixed header byte, a four-byte remaining length and 268,435,455 bytes.
    public static let largestMQTTPacket = 1 + 4 + 268_435_455

    /// The frame-size cap for a broker whose `max_packet_size` is `maxPacketSize` (0 when not set): that size,
    /// but at least 64 KiB so that a frame can still carry several small packets; without it, the largest MQTT
    /// packet. A larger frame closes the connection with status 1009 before its payload is read.
    public static func maxFrameSize(forMaxPacketSize maxPacketSize: Int) -> Int {
        maxPacketSize > 0 ? min(max(maxPacketSize, 65_536), largestMQTTPacket) : largestMQTTPacket
    }

    /// Wraps `initializer` so that it runs after a WebSocket upgrade instead of on the accepted connection.
    ///
    /// - Parameters:
    ///   - initializer: What puts MQTT on the channel (the host's MQTT handler); it sees `ByteBuffer`s.
    ///   - maxFrameSize: The largest frame payload accepted from a client, in bytes (at most `UInt32.max`).
    ///   - handshakeTimeout: A connection that has not completed the upgrade by then is closed.
    ///   - logger: Where refused requests, timeouts and protocol errors are logged.
    /// - Returns: An initializer for a transport to run on each accepted (or TLS-handshaken) channel.
    public static func wrap(_ initializer: @escaping ConnectionInitializer, maxFrameSize: Int,
                            handshakeTimeout: TimeAmount = defaultHandshakeTimeout,
                            logger: Logger) -> ConnectionInitializer {
        precondition(maxFrameSize > 0 && maxFrameSize <= Int(UInt32.max), "maxFrameSize out of range")
        return { channel, facts in
            channel.eventLoop.makeCompletedFuture {
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: maxFrameSize,
                    automaticErrorHandling: false,  // the frame adapter answers protocol errors itself
                    shouldUpgrade: { channel, head in
                        channel.eventLoop.makeSucceededFuture(
                            head.method == .GET ? upgradeHeaders(offered: head.headers["Sec-WebSocket-Protocol"]) : nil)
                    },
                    upgradePipelineHandler: { channel, _ in
                        startMQTT(on: channel, facts: facts, initializer: initializer, maxFrameSize: maxFrameSize,
                                  logger: logger)
                    })
                let sync = channel.pipeline.syncOperations
                try sync.configureHTTPServerPipeline(withPipeliningAssistance: false,
                                                     withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
                                                     withErrorHandling: true)
                try sync.addHandler(WebSocketHandshakeGate(listener: facts.listener, timeout: handshakeTimeout,
                                                           logger: logger))
            }
        }
    }

    /// The extra headers of the 101 answer for a client that offered `offered` (the values of its
    /// `Sec-WebSocket-Protocol` fields, each a comma-separated list), or nil to refuse the upgrade.
    static func upgradeHeaders(offered: [String]) -> HTTPHeaders? {
        let names = offered.flatMap { $0.split(separator: ",") }.map(trimmed).filter { !$0.isEmpty }
        if names.isEmpty { return HTTPHeaders() }
        guard let chosen = names.first(where: { subprotocols.contains($0) }) else { return nil }
        return HTTPHeaders([("Sec-WebSocket-Protocol", chosen)])
    }

    private static func trimmed(_ text: Substring) -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(text.drop(while: blank).reversed().drop(while: blank).reversed())
    }

    /// Runs once the 101 answer is sent and the frame codec is in place: swaps the handshake gate for the frame
    /// adapter, runs the wrapped initializer, then starts the connection for the handlers it added.
    private static func startMQTT(on channel: any Channel, facts: ConnectionFacts,
                                  initializer: @escaping ConnectionInitializer, maxFrameSize: Int,
                                  logger: Logger) -> EventLoopFuture<Void> {
        let adapter: WebSocketFrameAdapter
        do {
            let sync = channel.pipeline.syncOperations
            let gate = try sync.handler(type: WebSocketHandshakeGate.self)
            let peer = gate.peer
            _ = sync.removeHandler(gate)
            adapter = WebSocketFrameAdapter(listener: facts.listener, peer: peer, maxFrameSize: maxFrameSize,
                                            logger: logger)
            try sync.addHandler(adapter)
        } catch {
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
        let started = initializer(channel, facts).assumeIsolated()
        started.whenComplete { result in
            switch result {
            case .success:
                adapter.start()
            case .failure(let error):
                logger.error("Client connection from \(adapter.peer) on port \(facts.listener): cannot set up the connection: \(error)")
                channel.close(promise: nil)
            }
        }
        return started.nonisolated()
    }
}
