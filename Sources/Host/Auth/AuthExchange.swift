import Logging
import MQTT
import NIOCore
import PluginAPI

extension AccessControl {
    /// The first enhanced authentication plugin of the chain that handles `method`.
    func enhancedAuthenticator(for method: String) -> (any EnhancedAuthenticationPlugin)? {
        enhancedAuthenticators.first { $0.methods.contains(method) }
    }
}

/// One enhanced authentication exchange of a connection (MQTT 5.0 section 4.12): drives a plugin's
/// conversation step by step, each step bounded by the access-control deadline. An error or a missed deadline
/// ends it as a failure. Lives on the connection's event loop; the connection sends the packets.
final class AuthExchange {
    /// What the connection does next.
    enum Outcome {
        /// Send AUTH 0x18 with this data and wait for the client's AUTH 0x18.
        case challenge(ByteBuffer?)
        /// Authenticated.
        case success(data: ByteBuffer?, username: String?)
        /// Refused with this code (not yet mapped to what the packet can carry).
        case failure(ReasonCode, why: String)
    }

    let method: String
    /// False at CONNECT, true for a re-authentication (AUTH 0x19).
    let reauthentication: Bool
    /// True while a challenge waits for the client's answer.
    private(set) var awaitingClient = false
    private let plugin: any EnhancedAuthenticationPlugin
    private var conversation: (any AuthenticationConversation)?
    private let access: AccessControl
    private let loop: any EventLoop
    private let onOutcome: (Outcome) -> Void

    init(method: String, plugin: any EnhancedAuthenticationPlugin, reauthentication: Bool, access: AccessControl,
         loop: any EventLoop, onOutcome: @escaping (Outcome) -> Void) {
        self.method = method
        self.plugin = plugin
        self.reauthentication = reauthentication
        self.access = access
        self.loop = loop
        self.onOutcome = onOutcome
    }

    private var pluginName: String { String(describing: type(of: plugin)) }

    /// What an error or a missed deadline means: the server cannot decide (CONNACK 0x88), or, for a client
    /// already connected, that it is no longer authorized (0x88 is not a DISCONNECT code).
    private var errorCode: ReasonCode { reauthentication ? .notAuthorized : .serverUnavailable }

    /// Begins the conversation with the data of the CONNECT or AUTH 0x19.
    func start(client: ClientInfo, data: ByteBuffer?) {
        do {
            conversation = try plugin.begin(method: method, client: client, on: loop)
        } catch {
            onOutcome(.failure(errorCode, why: "\(pluginName) could not begin \(method): \(error)"))
            return
        }
        run(data, client: client.clientID)
    }

    /// The client answered the last challenge.
    func clientAnswered(_ data: ByteBuffer?, client: String) {
        guard awaitingClient else { return }
        awaitingClient = false
        run(data, client: client)
    }

    /// The connection closed while the exchange ran: no outcome follows.
    func cancel() {
        let ended = conversation
        conversation = nil
        ended?.end()
    }

    private func run(_ data: ByteBuffer?, client: String) {
        guard let conversation else { return }
        switch conversation.step(data: data, on: loop) {
        case .now(let step):
            handle(step)
        case .later(let future):
            let bound = NIOLoopBound(self, eventLoop: loop)
            access.bounded(future, on: loop, what: "\(pluginName) authenticating \(client) with \(method)")
                .whenComplete { result in
                    let exchange = bound.value
                    guard exchange.conversation != nil else { return }
                    switch result {
                    case .success(let step): exchange.handle(step)
                    case .failure(let error): exchange.finish(.failure(exchange.errorCode, why: "\(error)"))
                    }
                }
        }
    }

    private func handle(_ step: AuthenticationStep) {
        if step.isChallenge {
            awaitingClient = true
            onOutcome(.challenge(step.data))
        } else if step.isSuccess {
            finish(.success(data: step.data, username: step.username))
        } else {
            finish(.failure(step.failureReason ?? .notAuthorized, why: "refused by \(pluginName) (\(method))"))
        }
    }

    private func finish(_ outcome: Outcome) {
        cancel()
        onOutcome(outcome)
    }

    /// The reason codes a CONNACK may carry for a failure (MQTT 5.0 section 3.2.2.2).
    private static let connackFailures: Set<UInt8> = [0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                                                      0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
                                                      0x9F]
    /// The failure reason codes a DISCONNECT may carry (MQTT 5.0 section 3.14.2.1).
    private static let disconnectFailures: Set<UInt8> = [0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F,
                                                         0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B,
                                                         0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2]

    /// `code` if a CONNACK can carry it as a refusal, else 0x87 (not authorized).
    static func connackCode(_ code: ReasonCode) -> ReasonCode {
        connackFailures.contains(code.rawValue) ? code : .notAuthorized
    }

    /// `code` if a DISCONNECT can carry it as a failure, else 0x87 (not authorized).
    static func disconnectCode(_ code: ReasonCode) -> ReasonCode {
        disconnectFailures.contains(code.rawValue) ? code : .notAuthorized
    }
}

extension Properties {
    /// The Authentication Data (0x16), if present.
    var authData: ByteBuffer? {
        for item in items { if case .authenticationData(let data) = item { return data } }
        return nil
    }

    /// AUTH or CONNACK properties of an exchange: the method, then the data if any.
    static func authentication(method: String, data: ByteBuffer?) -> Properties {
        var properties = Properties()
        properties.append(.authenticationMethod(method))
        if let data { properties.append(.authenticationData(data)) }
        return properties
    }
}
