public import Logging
import NIOCore
public import PluginAPI

/// The `websockets` decorator, Mosquitto's `protocol websockets`: MQTT over WebSocket on any listener's
/// connections (`ws://` on a plain listener, `wss://` after the `tls` decorator). See `WebSocketMQTT` for
/// what it accepts and answers.
///
/// No options: the largest frame accepted follows from the broker's `max_packet_size` (0: none), which the
/// host gives in `PluginContext.listener` (`WebSocketMQTT.maxFrameSize(forMaxPacketSize:)`).
public final class WebSocketDecorator: ConnectionDecoratorPlugin {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "websockets", summary: "MQTT over WebSocket on a listener's connections",
                                                    kind: .connectionDecorator) { options, context in
        try options.finish()
        return try WebSocketDecorator(maxPacketSize: context.listener?.maxPacketSize ?? 0, logger: context.logger)
    }

    /// The largest frame payload accepted from a client, in bytes.
    public let maxFrameSize: Int
    let logger: Logger

    /// `maxPacketSize`: the broker's, in bytes; 0 means none.
    public init(maxPacketSize: Int, logger: Logger) throws {
        guard maxPacketSize >= 0 else {
            throw PluginError(pluginName: "websockets", message: "max_packet_size must not be negative")
        }
        maxFrameSize = WebSocketMQTT.maxFrameSize(forMaxPacketSize: maxPacketSize)
        self.logger = logger
    }

    public func decorate(_ next: @escaping ConnectionInitializer) -> ConnectionInitializer {
        WebSocketMQTT.wrap(next, maxFrameSize: maxFrameSize, logger: logger)
    }
}
