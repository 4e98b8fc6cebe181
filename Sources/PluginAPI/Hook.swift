public import Foundation
public import MQTT
public import NIOCore

/// The events a hook can handle. A hook lists the ones it wants in `HookPlugin.events`; the host calls it
/// for those and no others, and an event no hook wants costs nothing.
public struct HookEvents: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// A client was authenticated and accepted (after CONNACK was decided): `connected(_:on:)`.
    public static let connect = HookEvents(rawValue: 1 << 0)
    /// An accepted client's connection ended, for any reason: `disconnected(_:on:)`.
    public static let disconnect = HookEvents(rawValue: 1 << 1)
    /// A SUBSCRIBE was answered: `subscribed(_:on:)`.
    public static let subscribe = HookEvents(rawValue: 1 << 2)
    /// An UNSUBSCRIBE was answered: `unsubscribed(_:on:)`.
    public static let unsubscribe = HookEvents(rawValue: 1 << 3)
    /// A client published a message that passed authorization: `publish(_:from:on:)`, which may rewrite or
    /// reject it before it is routed.
    public static let publish = HookEvents(rawValue: 1 << 4)
    /// A PUBLISH is being sent to a subscriber: `delivered(_:on:)`. Runs once per message per subscriber:
    /// keep it cheap.
    public static let deliver = HookEvents(rawValue: 1 << 5)
    /// A client's will message is being published: `willPublished(_:on:)`.
    public static let will = HookEvents(rawValue: 1 << 6)
    /// Every `tickInterval`: `tick(on:)`.
    public static let tick = HookEvents(rawValue: 1 << 7)
    /// The broker reloaded its plugins (SIGHUP, or their files changed): `reloaded(on:)`.
    public static let reload = HookEvents(rawValue: 1 << 8)
    /// The broker is about to stop, while clients are still connected: `shuttingDown(on:)`.
    public static let shutdown = HookEvents(rawValue: 1 << 9)

    /// Every event.
    public static let all: HookEvents = [.connect, .disconnect, .subscribe, .unsubscribe, .publish, .deliver,
                                         .will, .tick, .reload, .shutdown]
}

/// An application message as hooks see it. A publish hook may return a changed copy.
public struct HookMessage: Hashable, Sendable {
    /// The topic name (after a client's topic alias was resolved).
    public var topic: String
    /// The payload bytes.
    public var payload: ByteBuffer
    /// The QoS it was published with.
    public var qos: QoS
    /// Whether it is to be retained.
    public var retain: Bool
    /// Its MQTT 5.0 properties (empty for 3.x clients): content type, response topic, correlation data,
    /// message expiry, payload format, user properties. Properties a PUBLISH may not carry, and topic aliases
    /// and subscription identifiers, are dropped by the host.
    public var properties: Properties

    public init(topic: String, payload: ByteBuffer, qos: QoS = .atMostOnce, retain: Bool = false,
                properties: Properties = []) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }

    /// The MQTT 5.0 user properties, in order. Setting it replaces them and keeps the other properties.
    public var userProperties: [(name: String, value: String)] {
        get {
            properties.items.compactMap {
                if case .userProperty(let name, let value) = $0 { return (name, value) }
                return nil
            }
        }
        set {
            properties.items.removeAll { if case .userProperty = $0 { return true }; return false }
            for (name, value) in newValue { properties.append(.userProperty(name, value)) }
        }
    }

    /// The payload as UTF-8 text, or nil when it is not valid UTF-8.
    public var payloadString: String? {
        String(validating: payload.readableBytesView, as: UTF8.self)
    }
}

/// What a publish hook decides about a message: `.accept`, `.rewrite(message)` or `.reject(code)`.
///
/// A struct rather than an enum so that a later minor version of the API can add verdicts without breaking
/// hooks (see `PluginAPIVersion`). Make one with the static members; inspect one with `==` or the accessors
/// (`isAccept`, `rewrittenMessage`, `isReject`, `rejectReason`).
public struct PublishVerdict: Hashable, Sendable {
    private enum Code: UInt8, Hashable, Sendable {
        case accept, rewrite, reject
    }

    private let code: Code
    private let message: HookMessage?
    private let reason: ReasonCode?

    private init(_ code: Code, message: HookMessage? = nil, reason: ReasonCode? = nil) {
        self.code = code
        self.message = message
        self.reason = reason
    }

    /// Route the message as it is (or as the previous hook left it).
    public static var accept: PublishVerdict { PublishVerdict(.accept) }

    /// Route this message instead. A changed topic is authorized again (as a write by the same client)
    /// before routing; a topic the client may not write, or that is not a valid topic name, rejects it.
    public static func rewrite(_ message: HookMessage) -> PublishVerdict { PublishVerdict(.rewrite, message: message) }

    /// Drop the message. A 5.0 client publishing at QoS 1 or 2 sees the reason code in its PUBACK or PUBREC
    /// (default 0x87, not authorized); a 3.x client sees a normal acknowledgement, as for an ACL denial.
    public static func reject(_ reason: ReasonCode? = nil) -> PublishVerdict { PublishVerdict(.reject, reason: reason) }

    /// Whether this is `.accept`.
    public var isAccept: Bool { code == .accept }
    /// Whether this is a `.rewrite`.
    public var isRewrite: Bool { code == .rewrite }
    /// Whether this is a `.reject`, with or without a reason code.
    public var isReject: Bool { code == .reject }
    /// The message of a `.rewrite(message)`; nil for the other verdicts.
    public var rewrittenMessage: HookMessage? { code == .rewrite ? message : nil }
    /// The reason code of a `.reject(code)`; nil for a rejection without one, and for the other verdicts.
    public var rejectReason: ReasonCode? { code == .reject ? reason : nil }
}

/// A client the broker accepted.
public struct ConnectEvent: Sendable {
    /// Who connected.
    public var client: ClientInfo
    /// Whether the client asked for a clean start (3.x: clean session).
    public var cleanStart: Bool
    /// Whether an existing session was resumed.
    public var sessionPresent: Bool
    /// The keep alive in seconds in force for the connection (the server's, when it overrode the client's).
    public var keepAlive: Int
    /// The CONNECT's MQTT 5.0 properties (empty for 3.x clients).
    public var properties: Properties

    public init(client: ClientInfo, cleanStart: Bool, sessionPresent: Bool, keepAlive: Int, properties: Properties) {
        self.client = client
        self.cleanStart = cleanStart
        self.sessionPresent = sessionPresent
        self.keepAlive = keepAlive
        self.properties = properties
    }
}

/// Why an accepted client's connection ended.
///
/// A struct rather than an enum: the reasons are the broker's, not a list MQTT closes, and a later minor
/// version of the API can add one (a quota of its own, say) without breaking hooks (see `PluginAPIVersion`). Compare with `==` (`reason == .connectionLost`), use the accessors for the
/// reasons that carry details (`isClientDisconnected`, `isProtocolError`, `reasonCode`, `details`), and end
/// a `switch` over it with `default:`. Its `description` names the reason, e.g. `connectionLost` or
/// `clientDisconnected(0x0)`.
public struct DisconnectReason: Hashable, Sendable, CustomStringConvertible {
    private enum Code: UInt8, Hashable, Sendable {
        case clientDisconnected, connectionLost, keepAliveTimeout, takenOver, protocolError, notAuthorized,
             serverShutdown
    }

    private let code: Code
    /// The reason code of a `clientDisconnected` (the client's) or `protocolError` (the one the broker
    /// sent); nil for the other reasons.
    public let reasonCode: ReasonCode?
    /// What the client did wrong, for a `protocolError`; nil for the other reasons.
    public let details: String?

    private init(_ code: Code, reasonCode: ReasonCode? = nil, details: String? = nil) {
        self.code = code
        self.reasonCode = reasonCode
        self.details = details
    }

    /// The client sent DISCONNECT with this reason code (3.x: success).
    public static func clientDisconnected(_ code: ReasonCode) -> DisconnectReason {
        DisconnectReason(.clientDisconnected, reasonCode: code)
    }
    /// The socket closed without a DISCONNECT.
    public static var connectionLost: DisconnectReason { DisconnectReason(.connectionLost) }
    /// The client stayed silent longer than its keep alive allows.
    public static var keepAliveTimeout: DisconnectReason { DisconnectReason(.keepAliveTimeout) }
    /// Another connection took its client identifier.
    public static var takenOver: DisconnectReason { DisconnectReason(.takenOver) }
    /// The client broke the protocol or sent a malformed packet: the reason code the broker answered with,
    /// and what was wrong.
    public static func protocolError(_ code: ReasonCode, _ details: String) -> DisconnectReason {
        DisconnectReason(.protocolError, reasonCode: code, details: details)
    }
    /// Its credentials were no longer accepted after a reload.
    public static var notAuthorized: DisconnectReason { DisconnectReason(.notAuthorized) }
    /// The broker is shutting down.
    public static var serverShutdown: DisconnectReason { DisconnectReason(.serverShutdown) }

    /// Whether the client sent DISCONNECT (with any reason code).
    public var isClientDisconnected: Bool { code == .clientDisconnected }
    /// Whether the client broke the protocol (with any reason code and details).
    public var isProtocolError: Bool { code == .protocolError }

    /// The reason's name, with its details: `connectionLost`, `clientDisconnected(0x0)`,
    /// `protocolError(0x82, "second CONNECT")`.
    public var description: String {
        switch code {
        case .clientDisconnected: return "clientDisconnected(\(reasonCode.map(String.init(describing:)) ?? "?"))"
        case .connectionLost: return "connectionLost"
        case .keepAliveTimeout: return "keepAliveTimeout"
        case .takenOver: return "takenOver"
        case .protocolError:
            return "protocolError(\(reasonCode.map(String.init(describing:)) ?? "?"), \(String(reflecting: details ?? "")))"
        case .notAuthorized: return "notAuthorized"
        case .serverShutdown: return "serverShutdown"
        }
    }
}

/// An accepted client's connection ended.
public struct DisconnectEvent: Sendable {
    /// Who it was.
    public var client: ClientInfo
    /// Why it ended.
    public var reason: DisconnectReason
    /// Whether its will is to be published (now or after its delay).
    public var willPending: Bool

    public init(client: ClientInfo, reason: DisconnectReason, willPending: Bool) {
        self.client = client
        self.reason = reason
        self.willPending = willPending
    }
}

/// One topic filter of a SUBSCRIBE and its answer.
public struct SubscriptionResult: Sendable {
    /// The filter as the client sent it (with `$share/GROUP/` when shared).
    public var filter: String
    /// The options asked for.
    public var options: SubscriptionOptions
    /// The answer: the granted QoS (0x00-0x02) or a failure code.
    public var reasonCode: ReasonCode

    public init(filter: String, options: SubscriptionOptions, reasonCode: ReasonCode) {
        self.filter = filter
        self.options = options
        self.reasonCode = reasonCode
    }
}

/// A SUBSCRIBE the broker answered.
public struct SubscribeEvent: Sendable {
    public var client: ClientInfo
    public var subscriptions: [SubscriptionResult]
    /// The 5.0 subscription identifier, if the SUBSCRIBE carried one.
    public var subscriptionIdentifier: Int?

    public init(client: ClientInfo, subscriptions: [SubscriptionResult], subscriptionIdentifier: Int?) {
        self.client = client
        self.subscriptions = subscriptions
        self.subscriptionIdentifier = subscriptionIdentifier
    }
}

/// An UNSUBSCRIBE the broker answered.
public struct UnsubscribeEvent: Sendable {
    public var client: ClientInfo
    /// Each filter and its answer (0x00 success or 0x11 no subscription existed).
    public var filters: [(filter: String, reasonCode: ReasonCode)]

    public init(client: ClientInfo, filters: [(filter: String, reasonCode: ReasonCode)]) {
        self.client = client
        self.filters = filters
    }
}

/// A message being sent to one subscriber.
public struct DeliverEvent: Sendable {
    /// The subscriber.
    public var client: ClientInfo
    /// The message as it goes out (QoS and retain flag are the delivery's).
    public var message: HookMessage
    /// Whether this is a resend of an unacknowledged message.
    public var duplicate: Bool

    public init(client: ClientInfo, message: HookMessage, duplicate: Bool) {
        self.client = client
        self.message = message
        self.duplicate = duplicate
    }
}

/// A will message being published.
public struct WillEvent: Sendable {
    /// The client whose will it is.
    public var client: ClientInfo
    /// The will message.
    public var message: HookMessage

    public init(client: ClientInfo, message: HookMessage) {
        self.client = client
        self.message = message
    }
}

/// How an observing hook answers: `.now(())` when its work is done, or `.later(future)` when it goes on
/// off the event loop. The host bounds a future by the hook deadline and logs an error or a missed deadline;
/// the broker never waits for an observing hook before going on.
public typealias HookAnswer = PluginAnswer<Void>

/// A plugin that extends the broker by handling events. Hooks run in config order.
///
/// Rules every hook follows:
/// - **Never block.** Every method is called on a broker event loop (`on eventLoop`) that serves many
///   clients. Blocking calls (file or network I/O, `sleep`, waiting on a lock someone else holds for long,
///   `Thread.sleep`, synchronous database calls) are forbidden: do slow work elsewhere (a `NIOThreadPool`, a
///   `Task`) and answer `.later` with a future on `eventLoop`.
/// - **Throw, do not trap.** An error thrown, a failed future or a future that misses the deadline is logged
///   and the event goes on as if the hook were absent; for `publish`, the hook's failure answer applies
///   (default: reject; `plugin_opt_on_error accept` lets the message through). A Swift trap (a force unwrap
///   of nil, an out-of-range index, a `fatalError`) ends the whole process like any trap: nothing in this
///   API needs one.
/// - Hooks see value types only, never connections or the router.
///
/// Every method has a default that does nothing, so a hook implements only the events it lists in `events`.
/// The `.shutdown` event (`shuttingDown`) comes before listeners close; `Plugin.shutdown()` comes after
/// every client is gone.
public protocol HookPlugin: Plugin {
    /// The events this hook handles. Read once, at start-up.
    var events: HookEvents { get }
    /// How often `tick(on:)` is called when `events` has `.tick`. Read once, at start-up. Default 1 s.
    var tickInterval: TimeAmount { get }
    /// Gives the hook what it may ask of the broker. Called once, before `start()`.
    func attach(_ broker: any BrokerServices)

    /// A client was accepted.
    func connected(_ event: ConnectEvent, on eventLoop: any EventLoop) throws -> HookAnswer
    /// An accepted client's connection ended.
    func disconnected(_ event: DisconnectEvent, on eventLoop: any EventLoop) throws -> HookAnswer
    /// A SUBSCRIBE was answered.
    func subscribed(_ event: SubscribeEvent, on eventLoop: any EventLoop) throws -> HookAnswer
    /// An UNSUBSCRIBE was answered.
    func unsubscribed(_ event: UnsubscribeEvent, on eventLoop: any EventLoop) throws -> HookAnswer
    /// A client's message passed authorization and is about to be routed. Answer `.now` with a verdict, or
    /// `.later` with a future on `eventLoop`: the client's later packets wait for the answer (order is kept),
    /// other clients do not.
    func publish(_ message: HookMessage, from client: ClientInfo, on eventLoop: any EventLoop) throws
        -> PluginAnswer<PublishVerdict>
    /// A PUBLISH is being written to a subscriber.
    func delivered(_ event: DeliverEvent, on eventLoop: any EventLoop) throws -> HookAnswer
    /// A will is being published.
    func willPublished(_ event: WillEvent, on eventLoop: any EventLoop) throws -> HookAnswer
    /// Called every `tickInterval`.
    func tick(on eventLoop: any EventLoop) throws -> HookAnswer
    /// The broker reloaded its plugins (SIGHUP, or their files changed).
    func reloaded(on eventLoop: any EventLoop) throws -> HookAnswer
    /// The broker is stopping; clients are still connected.
    func shuttingDown(on eventLoop: any EventLoop) throws -> HookAnswer
}

extension HookPlugin {
    public var tickInterval: TimeAmount { .seconds(1) }
    public func attach(_ broker: any BrokerServices) {}
    public func connected(_ event: ConnectEvent, on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
    public func disconnected(_ event: DisconnectEvent, on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
    public func subscribed(_ event: SubscribeEvent, on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
    public func unsubscribed(_ event: UnsubscribeEvent, on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
    public func publish(_ message: HookMessage, from client: ClientInfo, on eventLoop: any EventLoop) throws
        -> PluginAnswer<PublishVerdict> { .now(.accept) }
    public func delivered(_ event: DeliverEvent, on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
    public func willPublished(_ event: WillEvent, on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
    public func tick(on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
    public func reloaded(on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
    public func shuttingDown(on eventLoop: any EventLoop) throws -> HookAnswer { .now(()) }
}

/// What a hook may ask of the broker. Safe to use from any thread.
public protocol BrokerServices: Sendable {
    /// The broker's version, for example `midge version 0.1.0`.
    var version: String { get }
    /// When the broker started.
    var startedAt: Date { get }
    /// The event loops of the broker, for timers and futures.
    var eventLoopGroup: any EventLoopGroup { get }
    /// Publishes a message as the broker itself: no client, no authorization, no publish hooks; `$SYS/...`
    /// topics are allowed. Retained messages replace the retained message of their topic as usual.
    func publish(_ message: HookMessage)
    /// The broker's counters and gauges right now (collected from every event loop).
    func statistics() -> EventLoopFuture<BrokerStatistics>
}
