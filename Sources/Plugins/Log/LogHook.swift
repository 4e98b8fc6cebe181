public import Logging
public import NIOCore
public import PluginAPI
import MQTT

/// The `log` hook: connection, subscription and message events as Mosquitto logs them, chosen by
/// Mosquitto's `log_type` and `connection_messages`. The broker loads it by itself from those directives;
/// it handles only the events the chosen types print, so with the default types (no `debug`) the publish
/// path does not call it at all. Passwords never reach it (hooks do not see them).
///
/// Options: `log_type` (comma-separated Mosquitto log types; default `error,warning,notice,information`),
/// `connection_messages` (default true).
public final class LogHook: HookPlugin, Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "log", summary: "log connection, subscription and message events") {
        options, context in try LogHook(options: &options, logger: Logger(label: "midge"))
    }

    public let events: HookEvents
    private let logger: Logger
    private let debug: Bool

    public init(options: inout PluginOptions, logger: Logger) throws {
        let types = Set((options.string("log_type") ?? "error,warning,notice,information")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let connectionMessages = try options.bool("connection_messages") ?? true
        try options.finish()
        self.logger = logger
        let all = types.contains("all")
        debug = all || types.contains("debug")
        var events: HookEvents = []
        if connectionMessages { events.formUnion([.connect, .disconnect]) }
        if all || types.contains("subscribe") || debug { events.insert(.subscribe) }
        if all || types.contains("unsubscribe") || debug { events.insert(.unsubscribe) }
        if debug { events.formUnion([.publish, .deliver, .will]) }
        self.events = events
    }

    public func connected(_ event: ConnectEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        let client = event.client
        let level: Int
        switch client.protocolVersion {
        case .v3_1: level = 1
        case .v3_1_1: level = 2
        case .v5: level = 5
        }
        let user = client.username.map { ", u'\($0)'" } ?? ""
        logger.notice("New client connected from \(client.remoteAddress ?? "?") as \(client.clientID) (p\(level), c\(event.cleanStart ? 1 : 0), k\(event.keepAlive)\(user)).")
        return .now(())
    }

    public func disconnected(_ event: DisconnectEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        // The broker logs timeouts, takeovers and protocol errors itself, with their details.
        if event.reason.isClientDisconnected {
            logger.notice("Client \(event.client.clientID) disconnected.")
        } else if event.reason == .connectionLost {
            logger.notice("Client \(event.client.clientID) closed its connection.")
        }
        return .now(())
    }

    public func subscribed(_ event: SubscribeEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        if debug { logger.debug("Received SUBSCRIBE from \(event.client.clientID)") }
        for subscription in event.subscriptions {
            if debug { logger.debug("\t\(subscription.filter) (QoS \(subscription.options.qos.rawValue))") }
            if subscription.reasonCode.rawValue <= 2 {
                logger.debug("\(event.client.clientID) \(subscription.reasonCode.rawValue) \(subscription.filter)")
            }
        }
        if debug { logger.debug("Sending SUBACK to \(event.client.clientID)") }
        return .now(())
    }

    public func unsubscribed(_ event: UnsubscribeEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        if debug { logger.debug("Received UNSUBSCRIBE from \(event.client.clientID)") }
        for (filter, _) in event.filters {
            logger.debug("\(event.client.clientID) \(filter)")
        }
        if debug { logger.debug("Sending UNSUBACK to \(event.client.clientID)") }
        return .now(())
    }

    public func publish(_ message: HookMessage, from client: ClientInfo, on eventLoop: any EventLoop) throws
        -> PluginAnswer<PublishVerdict> {
        logger.debug("Received PUBLISH from \(client.clientID) (d0, q\(message.qos.rawValue), r\(message.retain ? 1 : 0), '\(message.topic)', ... (\(message.payload.readableBytes) bytes))")
        return .now(.accept)
    }

    public func delivered(_ event: DeliverEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        let message = event.message
        logger.debug("Sending PUBLISH to \(event.client.clientID) (d\(event.duplicate ? 1 : 0), q\(message.qos.rawValue), r\(message.retain ? 1 : 0), '\(message.topic)', ... (\(message.payload.readableBytes) bytes))")
        return .now(())
    }

    public func willPublished(_ event: WillEvent, on eventLoop: any EventLoop) throws -> HookAnswer {
        logger.debug("Sending will of \(event.client.clientID) to \(event.message.topic).")
        return .now(())
    }
}
