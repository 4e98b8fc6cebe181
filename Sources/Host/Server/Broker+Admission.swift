import Logging
import NIOConcurrencyHelpers
import NIOCore
import PluginAPI

/// What runs on each accepted connection: the listener's decorators, the connection limits, MQTT.
extension Broker {
    /// What a listener runs on each accepted channel: its decorators around MQTT, with the listener's
    /// `max_connections` and the broker's `max_connections_total` checked after the TLS handshake and before
    /// a WebSocket upgrade (`ListenerStack.initializer`). A connection over either is closed at once, as
    /// Mosquitto does for `max_connections`: no CONNACK.
    static func initializer(context: BrokerContext, limit: ConnectionLimit?, stack: ListenerStack,
                                    logger: Logger) -> ConnectionInitializer {
        let mqtt: ConnectionInitializer = { channel, facts in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(MQTTConnectionHandler(broker: context, facts: facts,
                                                                                      eventLoop: channel.eventLoop))
            }
        }
        return stack.initializer(admission: { next in admission(context: context, limit: limit, logger: logger, next) },
                                 around: mqtt)
    }

    /// Closes a connection over the listener's or the broker's connection limit; runs `next` on the others.
    private static func admission(context: BrokerContext, limit: ConnectionLimit?, logger: Logger,
                                  _ next: @escaping ConnectionInitializer) -> ConnectionInitializer {
        { channel, facts in
            if let limit {
                guard limit.acquire() else {
                    context.quotas.count(.maxConnections)
                    logger.notice("Client connection from \(channel.remoteAddress?.description ?? "?") denied: max_connections (\(limit.maximum)) reached on \(facts.listener).")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in limit.release() }
            }
            if let total = context.quotas.connectionsTotal {
                guard total.acquire() else {
                    context.quotas.count(.maxConnectionsTotal)
                    logger.notice("Client connection from \(channel.remoteAddress?.description ?? "?") denied: max_connections_total (\(total.maximum)) reached.")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in total.release() }
            }
            return next(channel, facts)
        }
    }
}

/// A listener's `max_connections`: a counter shared by its event loops.
final class ConnectionLimit: Sendable {
    let maximum: Int
    private let count = NIOLockedValueBox(0)

    init?(_ maximum: Int) {
        guard maximum >= 0 else { return nil }
        self.maximum = maximum
    }

    func acquire() -> Bool {
        count.withLockedValue { value in
            guard value < maximum else { return false }
            value += 1
            return true
        }
    }

    func release() { count.withLockedValue { $0 -= 1 } }
}
