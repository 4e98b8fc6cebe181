public import Logging
import NIOCore
public import PluginAPI

/// The `websockets` decorator, Mosquitto's `protocol websockets`: MQTT over WebSocket on any listener's
/// connections (`ws://` on a plain listener, `wss://` after the `tls` decorator). See `WebSocketMQTT` for
/// what it accepts and answers.
///
/// Options: `max_packet_size` (the broker's, in bytes; 0 or absent: none), from which the largest frame
/// accepted follows (`WebSocketMQTT.maxFrameSize(forMaxPacketSize:)`).
public final class WebSocketDecorator: ConnectionDecoratorPlugin {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "websockets", summary: "MQTT over WebSocket on a listener's connections",
                                                    kind: .connectionDecorator) { options, context in
        try WebSocketDecorator(options: &options, logger: context.logger)
    }

    /// The largest frame payload accepted from a client, in bytes.
    public let maxFrameSize: Int
    let logger: Logger

    public init(options: inout PluginOptions, logger: Logger) throws {
        let maxPacketSize = try options.int("max_packet_size") ?? 0
        guard maxPacketSize >= 0 else {
            throw PluginError(pluginName: options.pluginName, message: "option 'max_packet_size' must not be negative",
                              origin: options.origin(of: "max_packet_size"))
        }
        try options.finish()
        maxFrameSize = WebSocketMQTT.maxFrameSize(forMaxPacketSize: maxPacketSize)
        self.logger = logger
    }

    public func decorate(_ next: @escaping ConnectionInitializer) -> ConnectionInitializer {
        WebSocketMQTT.wrap(next, maxFrameSize: maxFrameSize, logger: logger)
    }
}
