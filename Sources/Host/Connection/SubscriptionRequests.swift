import MQTT
import NIOCore
import PluginAPI

/// A client's SUBSCRIBE and UNSUBSCRIBE: each filter parsed (`$share/GROUP/...`), checked (5.0's no-local on
/// a shared subscription, the QoS the broker allows, authorization) and handed to the router, which keeps the
/// subscriptions and replays retained messages. Answers with the SUBACK / UNSUBACK to send, and tells the
/// hooks.
struct SubscriptionRequests {
    let state: ConnectionState

    /// Subscribes; the SUBACK to send before the retained messages queued through `batch` go out.
    func subscribe(_ subscribe: SubscribePacket, session: Session, batch: DeliveryBatch) -> Packet {
        let v5 = state.version == .v5
        let maximumQoS = state.broker.router.settings.maximumQoS
        var codes: [ReasonCode] = []
        var accepted: [Subscription] = []
        let identifier = subscribe.properties.subscriptionIdentifier
        for request in subscribe.subscriptions {
            var filter = request.filter
            var group: String?
            switch Topic.parseShared(request.filter) {
            case .none:
                codes.append(v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            case .some(.some(let shared)):
                if v5 && request.options.noLocal {
                    codes.append(.protocolError)
                    continue
                }
                group = shared.group
                filter = shared.filter
            case .some(.none):
                break
            }
            var options = request.options
            options.qos = min(options.qos, maximumQoS)
            if let client = state.client, !state.broker.access.authorize(
                client: client, access: .subscribe, topic: request.filter, qos: options.qos, retain: false) {
                codes.append(v5 ? .notAuthorized : .unspecifiedError)
                continue
            }
            accepted.append(Subscription(key: request.filter, filter: filter, group: group, options: options,
                                         identifier: identifier))
            codes.append(ReasonCode(options.qos.rawValue))
        }
        state.broker.router.subscribe(session, to: accepted, batch: batch)
        state.notify(state.broker.hooks.subscribe, "subscribe", { client in
            let results = zip(subscribe.subscriptions, codes).map {
                SubscriptionResult(filter: $0.0.filter, options: $0.0.options, reasonCode: $0.1)
            }
            return SubscribeEvent(client: client, subscriptions: results, subscriptionIdentifier: identifier)
        }) { try $0.subscribed($1, on: $2) }
        return .suback(SubAckPacket(packetID: subscribe.packetID, reasonCodes: codes))
    }

    /// Unsubscribes; the UNSUBACK to send.
    func unsubscribe(_ unsubscribe: UnsubscribePacket, session: Session) -> Packet {
        let existed = state.broker.router.unsubscribe(session, from: unsubscribe.filters)
        let codes = existed.map { $0 ? ReasonCode.success : .noSubscriptionExisted }
        state.notify(state.broker.hooks.unsubscribe, "unsubscribe", { client in
            UnsubscribeEvent(client: client, filters: zip(unsubscribe.filters, codes)
                .map { (filter: $0.0, reasonCode: $0.1) })
        }) { try $0.unsubscribed($1, on: $2) }
        return .unsuback(UnsubAckPacket(packetID: unsubscribe.packetID, reasonCodes: codes))
    }
}
