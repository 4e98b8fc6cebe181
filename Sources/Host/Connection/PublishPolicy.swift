import Logging
import MQTT
import NIOCore
import PluginAPI

/// What happens to a message once the checks and the publish hooks are done.
enum PublishDecision: Sendable {
    case route(Message)
    case refuse(ReasonCode)
}

/// The rules every message a client sends passes before it is routed, a PUBLISH and a will alike: topics the
/// broker keeps for itself, the authorization plugins, then the publish hooks (which may rewrite the
/// message, checked and authorized again, or reject it).
///
/// One per listener (`BrokerContext.publishPolicy`), shared by its connections.
final class PublishPolicy: Sendable {
    let access: AccessControl
    let hooks: Hooks
    let settings: RouterSettings
    let logger: Logger

    init(access: AccessControl, hooks: Hooks, settings: RouterSettings, logger: Logger) {
        self.access = access
        self.hooks = hooks
        self.settings = settings
        self.logger = logger
    }

    enum Permission {
        case allowed
        /// `$SYS/...` or `$share/...`.
        case reserved
        /// An authorization plugin (or the ACL) said no.
        case denied
    }

    /// Whether the client may publish to `topic`. `client` is asked only when an authorization plugin is
    /// there to see it (a copy of `ClientInfo` is not free on the per-message path).
    func permission(_ topic: String, qos: QoS, retain: Bool, client: () -> ClientInfo?) -> Permission {
        if topic.utf8.first == UInt8(ascii: "$") && Self.isReservedForBroker(topic) { return .reserved }
        guard !access.authorizers.isEmpty, let client = client() else { return .allowed }
        return access.authorize(client: client, access: .write, topic: topic, qos: qos, retain: retain)
            ? .allowed : .denied
    }

    /// `$SYS/...` is written by the broker only, and `$share/...` is a subscription prefix, not a topic
    /// (Mosquitto refuses both before any ACL is asked).
    static func isReservedForBroker(_ topic: String) -> Bool {
        topic.hasPrefix("$SYS") || topic.hasPrefix("$share")
    }

    /// Runs the publish hooks on an authorized message: what to route, at once when every hook answered at
    /// once, else later on `loop`.
    func runHooks(_ message: Message, from client: ClientInfo, on loop: any EventLoop)
        -> PluginAnswer<PublishDecision> {
        if hooks.publish.isEmpty { return .now(.route(message)) }
        switch hooks.runPublish(HookMessage(message), from: client, on: loop) {
        case .now(let outcome):
            return .now(decide(outcome, message: message, client: client))
        case .later(let future):
            return .later(future.map { self.decide($0, message: message, client: client) }
                .recover { _ in .refuse(.implementationSpecificError) })
        }
    }

    /// The message to route after the publish hooks, or the reason it is refused. A rewritten topic is
    /// checked and authorized again.
    private func decide(_ outcome: Hooks.PublishOutcome, message: Message, client: ClientInfo) -> PublishDecision {
        let topic = message.topic
        switch outcome {
        case .reject(let code):
            logger.debug("A hook rejected PUBLISH from \(client.clientID) to \(topic).")
            return .refuse(code)
        case .accept(nil):
            return .route(message)
        case .accept(let rewritten?):
            if rewritten.topic != topic {
                guard Topic.isValidName(rewritten.topic) else {
                    logger.notice("A hook rewrote PUBLISH from \(client.clientID) to the invalid topic '\(rewritten.topic)'; dropped.")
                    return .refuse(.topicNameInvalid)
                }
                if Self.isReservedForBroker(rewritten.topic)
                    || !access.authorize(client: client, access: .write, topic: rewritten.topic, qos: rewritten.qos,
                                         retain: rewritten.retain) {
                    logger.notice("Denied PUBLISH from \(client.clientID) to \(rewritten.topic) (rewritten by a hook from \(topic)).")
                    return .refuse(.notAuthorized)
                }
            }
            let v5 = client.protocolVersion == .v5
            return .route(Message(topic: rewritten.topic, payload: rewritten.payload,
                                  qos: min(rewritten.qos, settings.maximumQoS),
                                  retain: rewritten.retain && settings.retainAvailable,
                                  properties: v5 ? rewritten.properties.allowed(in: .publish) : [],
                                  origin: client.clientID))
        }
    }
}
