import MQTT
import NIOCore
import PluginAPI

/// A client's PUBLISH, from the packet to the router, in one pass: topic alias, the protocol's and the
/// broker's limits, the publish rate (charged to the read gate), the publish policy (reserved topics,
/// authorization, publish hooks), then routing (QoS 0 and 1) or storing until PUBREL (QoS 2), and the
/// acknowledgement, written through the `OutboundWriter`. When a publish hook answers later, the pass stops
/// there and the handler calls `finish` with the decision.
final class InboundPublish {
    private let state: ConnectionState
    private let gate: ReadGate
    private let writer: OutboundWriter
    private let policy: PublishPolicy
    private let router: Router
    // Settings this connection keeps for its life, read once here rather than through the broker context
    // for every message.
    private let messageSizeLimit: Int
    private let maxTopicAlias: UInt16
    private let maximumQoS: QoS
    private let retainAvailable: Bool
    /// The Receive Maximum CONNACK announces to a 5.0 client (65,535 when it announces none): more QoS 2
    /// PUBLISH packets than this waiting for PUBREL is a protocol violation (0x93).
    private let receiveMaximum: UInt16
    /// Topic aliases the client set (5.0), by alias.
    private var aliases: [UInt16: String] = [:]

    init(state: ConnectionState, gate: ReadGate, writer: OutboundWriter) {
        self.state = state
        self.gate = gate
        self.writer = writer
        let broker = state.broker
        policy = broker.publishPolicy
        router = broker.router
        maxTopicAlias = UInt16(clamping: broker.connect.maxTopicAlias)
        maximumQoS = broker.router.settings.maximumQoS
        retainAvailable = broker.router.settings.retainAvailable
        messageSizeLimit = broker.connect.messageSizeLimit
        let inflight = broker.connect.maxInflightMessages
        receiveMaximum = inflight > 0 && inflight < 65535 ? UInt16(inflight) : 65535
    }

    /// Handles a PUBLISH: routes or refuses it and acknowledges it, through `batch` (the read batch that
    /// wakes the subscribers; nil to wake them at once). Returns the future of the publish hooks' decision
    /// when they answer later (nothing is routed or acknowledged yet); nil when the pass is done. Throws
    /// for a protocol violation (the connection closes).
    func receive(_ publish: PublishPacket, batch: DeliveryBatch?) throws -> EventLoopFuture<PublishDecision>? {
        let v5 = state.version == .v5
        var topic = publish.topic
        if v5 {
            if let alias = publish.properties.topicAlias {
                guard alias <= maxTopicAlias else {
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
        if publish.qos > maximumQoS {
            throw ProtocolViolation(code: .qosNotSupported, message: "QoS \(publish.qos.rawValue) not supported")
        }
        if publish.retain && !retainAvailable {
            throw ProtocolViolation(code: .retainNotSupported, message: "retain not supported")
        }
        if v5, publish.qos == .exactlyOnce, let session = state.session,
           !session.canStoreIncoming(publish.packetID!, limit: Int(receiveMaximum)) {
            throw ProtocolViolation(code: .receiveMaximumExceeded,
                                    message: "more than Receive Maximum (\(receiveMaximum)) QoS 2 PUBLISH unacknowledged")
        }
        var refusal: ReasonCode?
        if messageSizeLimit > 0 && publish.payload.readableBytes > messageSizeLimit {
            state.logger.notice("Dropped too large PUBLISH from \(state.clientName) (\(publish.payload.readableBytes) bytes).")
            refusal = .packetTooLarge
        } else {
            switch policy.permission(topic, qos: publish.qos, retain: publish.retain, client: { state.client }) {
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
        if let refusal {
            finish(publish, .refuse(refusal), batch: batch)
            return nil
        }
        let message = Message(topic: topic, payload: publish.payload, qos: publish.qos, retain: publish.retain,
                              properties: v5 ? publish.properties : [], origin: state.clientID)
        if !policy.hooks.publish.isEmpty, let client = state.client {
            switch policy.runHooks(message, from: client, on: state.eventLoop) {
            case .now(let decision):
                finish(publish, decision, batch: batch)
            case .later(let future):
                return future
            }
            return nil
        }
        finish(publish, .route(message), batch: batch)
        return nil
    }

    /// Routes (or, for QoS 2, stores) an accepted message and acknowledges the PUBLISH.
    func finish(_ publish: PublishPacket, _ decision: PublishDecision, batch: DeliveryBatch?) {
        let v5 = state.version == .v5
        var reason = ReasonCode.success
        var accepted: Message?
        switch decision {
        case .route(let message): accepted = message
        case .refuse(let code): reason = code
        }
        switch publish.qos {
        case .atMostOnce:
            if let accepted { router.route(accepted, batch: batch) }
        case .atLeastOnce:
            if let accepted {
                let routed = router.route(accepted, batch: batch)
                if v5 && routed.matched == 0 {
                    reason = .noMatchingSubscribers  // a match skipped for No Local is still a match
                } else if v5 && routed.delivered == 0 && routed.overQuota > 0 {
                    reason = .quotaExceeded  // every match refused it for max_queued_bytes_total
                }
            }
            writer.send(.ack(AckPacket(type: .puback, packetID: publish.packetID!, reasonCode: v5 ? reason : .success)))
        case .exactlyOnce:
            if let accepted, let session = state.session {
                if v5 && router.refusesForQuota(accepted) {
                    reason = .quotaExceeded
                } else {
                    _ = session.storeIncoming(publish.packetID!, accepted)
                }
            }
            writer.send(.ack(AckPacket(type: .pubrec, packetID: publish.packetID!, reasonCode: v5 ? reason : .success)))
        }
    }

    /// PUBREL: routes the QoS 2 message stored under `packetID` (if it was not released before), and
    /// answers PUBCOMP.
    func release(_ packetID: UInt16, batch: DeliveryBatch?) {
        if let message = state.session?.releaseIncoming(packetID) {
            router.route(message, batch: batch)
        }
        writer.send(.ack(AckPacket(type: .pubcomp, packetID: packetID)))
    }
}
