import Logging
import MQTT
import NIOCore
import PluginAPI

/// What the stages of one connection share: where it is in the protocol, who the client is, and the session
/// it owns. Made by `MQTTConnectionHandler`; lives on the channel's event loop, like every stage.
final class ConnectionState {
    enum Phase {
        /// Nothing but CONNECT is accepted.
        case awaitingConnect
        /// CONNECT arrived; authentication (or an enhanced-authentication exchange) runs.
        case authenticating
        /// CONNACK sent.
        case connected
        case closed
    }

    let broker: BrokerContext
    let facts: ConnectionFacts
    /// What the connections of this event loop share (batch, scratch space, counters).
    let loop: LoopContext
    var eventLoop: any EventLoop { loop.eventLoop }
    /// How the router reaches this connection.
    let handle: ConnectionHandle
    let logger: Logger

    var phase = Phase.awaitingConnect
    var version = ProtocolVersion.v3_1_1
    var client: ClientInfo? {
        didSet { clientID = client?.clientID }
    }
    /// `client?.clientID`, kept apart: read for every message, without copying `ClientInfo`.
    private(set) var clientID: String?
    var session: Session?
    var remoteAddress: String?
    /// The session expiry the client asked for (5.0), or 0 / nil for a 3.x clean / persistent session.
    var sessionExpiry: UInt32?
    /// How long the connection may stay silent (1.5 times the keep alive; a grace period before CONNECT);
    /// nil for none.
    var keepAliveWindow: TimeAmount? = .seconds(90) {
        didSet { control?.keepAliveChanged() }
    }
    /// Why the connection ends, for the disconnect hooks (set where the broker decides to close).
    var disconnectReason = DisconnectReason.connectionLost
    /// The client's will while it is connected (`WillScheduler`).
    var will: Will?
    /// The handler, for the stages to call back; set while the handler is in the pipeline (a strong
    /// reference, cleared in `handlerRemoved`, so no weak reference costs the handler a side table).
    var control: (any ConnectionControl)?

    init(broker: BrokerContext, facts: ConnectionFacts, eventLoop: any EventLoop) {
        self.broker = broker
        self.facts = facts
        self.loop = broker.loops.context(for: eventLoop)
        self.handle = ConnectionHandle.unattached(on: eventLoop)
        self.logger = broker.logger
    }

    /// The client id once known, else its address: for logs.
    var clientName: String { client?.clientID ?? remoteAddress ?? "unknown" }

    /// Tells the hooks of `entries` about an event of this client; the event is made only when a hook wants
    /// it. Hook failures are logged and counted by `Hooks`, never seen here.
    func notify<Event>(_ entries: [Hooks.Entry], _ name: String, _ event: (ClientInfo) -> Event,
                       _ call: (any HookPlugin, Event, any EventLoop) throws -> HookAnswer) {
        guard !entries.isEmpty, let client else { return }
        let made = event(client)
        let loop = eventLoop
        broker.hooks.notify(entries, event: name, on: loop) { try call($0, made, loop) }
    }
}

/// What the stages ask of the connection they belong to (`MQTTConnectionHandler`), on its event loop.
protocol ConnectionControl: AnyObject {
    /// CONNACK was sent: start the keep alive, resend what was in flight, handle the packets that waited.
    func admitted()
    /// Close the connection (the will goes unless the client disconnected normally).
    func close()
    /// Nothing holds reading any more: go on with what waited, then read from the socket.
    func readAgain()
    /// The publish-rate wait ended: the keep-alive window starts again, then reading goes on.
    func rateWaitEnded()
    /// `keepAliveWindow` changed: the keep-alive deadline moves.
    func keepAliveChanged()
}

/// A protocol rule broken with a specific 5.0 reason code.
struct ProtocolViolation: Error {
    var code: ReasonCode
    var message: String
}
