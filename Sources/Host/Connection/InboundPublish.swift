import MQTT
import NIOCore
import PluginAPI

/// A client's PUBLISH, from the packet to the router, in one pass: topic alias, the protocol's and the
/// broker's limits, the publish rate (charged to the read gate), the publish policy (reserved topics,
/// authorization, publish hooks), then routing (QoS 0 and 1) or storing until PUBREL (QoS 2), and the
/// acknowledgement to send. `check` runs up to the hooks, whose answer may come later; `finish` routes.
final class InboundPublish {
    private let state: ConnectionState
    private let gate: ReadGate
    private let policy: PublishPolicy
    /// Topic aliases the client set (5.0), by alias.
    private var aliases: [UInt16: String] = [:]

    init(state: ConnectionState, gate: ReadGate) {
        self.state = state
        self.gate = gate
        self.policy = PublishPolicy(broker: state.broker)
    }

    /// Checks a PUBLISH and runs the publish hooks. Throws for a protocol violation (the connection closes);
    /// otherwise says what to do with the message, at once or later.
    func check(_ publish: PublishPacket) throws -> PluginAnswer<PublishDecision> {
        let v5 = state.version == .v5
        var topic = publish.topic
        if v5 {
            if let alias = publish.properties.topicAlias {
                guard Int(alias) <= state.broker.connect.maxTopicAlias else {
                    throw ProtocolViolation(code: .topicAliasInvalid, message: "topic alias \(alias) above maximum")
                }
                if topic.isEmpty {
                    guard let known = aliases[alias] else {
                        throw MQTTError.protocolError("unknown topic alias \(alias)")
                    }
                    topic = known
                } else {
                    aliases[alias] = topic
                }
            }
            if publish.properties.subscriptionIdentifier != nil {
                throw MQTTError.protocolError("subscription identifier in PUBLISH from a client")
            }
        }
        let settings = state.broker.router.settings
        if publish.qos > settings.maximumQoS {
            throw ProtocolViolation(code: .qosNotSupported, message: "QoS \(publish.qos.rawValue) not supported")
        }
        if publish.retain && !settings.retainAvailable {
            throw ProtocolViolation(code: .retainNotSupported, message: "retain not supported")
        }
        var refusal: ReasonCode?
        let limit = state.broker.connect.messageSizeLimit
        if limit > 0 && publish.payload.readableBytes > limit {
            state.logger.notice("Dropped too large PUBLISH from \(state.clientName) (\(publish.payload.readableBytes) bytes).")
            refusal = .packetTooLarge
        } else if let client = state.client {
            switch policy.permission(topic, qos: publish.qos, retain: publish.retain, client: client) {
            case .allowed:
                break
            case .reserved:
                state.logger.notice("Denied PUBLISH from \(state.clientName) to \(topic): reserved for the broker.")
                refusal = .notAuthorized
            case .denied:
                state.logger.notice("Denied PUBLISH from \(state.clientName) to \(topic).")
                refusal = .notAuthorized
            }
        }
        state.loop.counters.publishReceived += 1
        gate.chargePublish(size: topic.utf8.count + publish.payload.readableBytes)
        if let refusal { return .now(.refuse(refusal)) }
        let message = Message(topic: topic, payload: publish.payload, qos: publish.qos, retain: publish.retain,
                              properties: v5 ? publish.properties : [], origin: state.client?.clientID)
        guard let client = state.client, !state.broker.hooks.publish.isEmpty else { return .now(.route(message)) }
        return policy.runHooks(message, from: client, on: state.eventLoop)
    }

    /// Routes (or, for QoS 2, stores) an accepted message; the acknowledgement to send, if any. `batch`: the
    /// read batch that wakes the subscribers, nil to wake them at once.
    func finish(_ publish: PublishPacket, _ decision: PublishDecision, batch: DeliveryBatch?) -> Packet? {
        let v5 = state.version == .v5
        var reason = ReasonCode.success
        var accepted: Message?
        switch decision {
        case .route(let message): accepted = message
        case .refuse(let code): reason = code
        }
        let router = state.broker.router
        switch publish.qos {
        case .atMostOnce:
            if let accepted { router.route(accepted, batch: batch) }
            return nil
        case .atLeastOnce:
            if let accepted {
                let routed = router.route(accepted, batch: batch)
                if routed.delivered == 0 && v5 {
                    // Matching subscribers that all refused it for max_queued_bytes_total: 0x97.
                    reason = routed.overQuota > 0 ? .quotaExceeded : .noMatchingSubscribers
                }
            }
            return .ack(AckPacket(type: .puback, packetID: publish.packetID!, reasonCode: v5 ? reason : .success))
        case .exactlyOnce:
            if let accepted, let session = state.session {
                if v5 && router.refusesForQuota(accepted) {
                    reason = .quotaExceeded
                } else {
                    _ = session.storeIncoming(publish.packetID!, accepted)
                }
            }
            return .ack(AckPacket(type: .pubrec, packetID: publish.packetID!, reasonCode: v5 ? reason : .success))
        }
    }

    /// PUBREL: routes the QoS 2 message stored under `packetID` (if it was not released before); the PUBCOMP
    /// to send.
    func release(_ packetID: UInt16, batch: DeliveryBatch?) -> Packet {
        if let message = state.session?.releaseIncoming(packetID) {
            state.broker.router.route(message, batch: batch)
        }
        return .ack(AckPacket(type: .pubcomp, packetID: packetID))
    }
}
