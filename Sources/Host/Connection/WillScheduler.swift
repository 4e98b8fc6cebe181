import Logging
import MQTT
import NIOCore
import PluginAPI

/// A client's will: kept from CONNECT, dropped by a normal DISCONNECT, and published when the connection
/// ends otherwise: at once, or after the 5.0 will delay (capped by the session expiry) unless a connection
/// took the session back meanwhile. A will passes the same publish policy as a PUBLISH (reserved topics,
/// authorization, the publish hooks, which may rewrite or reject it); the will hooks are then told what was
/// published.
struct WillScheduler {
    let state: ConnectionState
    var will: Will? { state.will }

    /// Keeps the CONNECT's will (its payload copied out of the read buffer).
    func keep(_ will: Will?) {
        guard var kept = will else {
            state.will = nil
            return
        }
        kept.payload = kept.payload.detached()
        state.will = kept
    }

    /// A normal DISCONNECT: no will.
    func cancel() { state.will = nil }

    /// Seconds to wait before publishing the will: the 5.0 will delay interval, capped by the session expiry
    /// (the will goes when the session ends, if that comes first); 0 for 3.x.
    var delay: UInt32 {
        guard state.version == .v5, let will, let delay = will.properties.willDelayInterval, delay > 0 else { return 0 }
        return min(delay, state.sessionExpiry ?? UInt32.max)
    }

    /// The connection ended abnormally, with no delay: publishes the will now.
    func publishNow() {
        guard let will, let client = state.client else { return }
        state.will = nil
        Self.publish(will, client: client, broker: state.broker, loop: state.eventLoop)
    }

    /// The connection ended abnormally and the session was detached: publishes the will after `delay`
    /// seconds unless another connection takes the session (or took it already, a takeover).
    func schedule(for session: Session) {
        guard let will, let client = state.client else { return }
        let delay = self.delay
        state.will = nil
        let since = session.detachedSince()
        let broker = state.broker
        let loop = state.eventLoop
        // nil: another connection has the session already (a takeover): no will, as for a reconnect.
        guard let since else { return }
        let timer = loop.scheduleTask(in: .seconds(Int64(delay))) {
            session.willFired()
            // Any connection with the client id since cancels it (Mosquitto does): the session cancels the
            // timer when one takes it back or replaces it; these checks cover one that came in between.
            guard session.detachedSince() == since, !session.isSuperseded else {
                broker.logger.debug("Will of \(session.clientID) cancelled: the client came back within its delay.")
                return
            }
            Self.publish(will, client: client, broker: broker, loop: loop)
        }
        session.holdWill(timer)
        // A connection that came between the detach and `holdWill` has not seen the timer: cancel it here.
        if session.detachedSince() != since || session.isSuperseded {
            session.willFired()
            timer.cancel()
        }
    }

    private static func publish(_ will: Will, client: ClientInfo, broker: BrokerContext, loop: any EventLoop) {
        let policy = broker.publishPolicy
        guard policy.permission(will.topic, qos: will.qos, retain: will.retain, client: { client }) == .allowed else {
            broker.logger.debug("Will of \(client.clientID) to \(will.topic) not published: not authorised.")
            return
        }
        let message = Message(topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain,
                              properties: will.properties, origin: client.clientID)
        let finish: @Sendable (PublishDecision) -> Void = { decision in
            guard case .route(let message) = decision else { return }
            if !broker.hooks.will.isEmpty {
                let event = WillEvent(client: client, message: HookMessage(message))
                broker.hooks.notify(broker.hooks.will, event: "will", on: loop) { try $0.willPublished(event, on: loop) }
            }
            broker.router.publish(message, batch: nil)
        }
        switch policy.runHooks(message, from: client, on: loop) {
        case .now(let decision): finish(decision)
        case .later(let future): future.whenSuccess(finish)
        }
    }
}
