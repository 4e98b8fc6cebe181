import Foundation
import Logging
import MQTT
import NIOCore
import PluginAPI

/// CONNECT to CONNACK: the connection rate, the client id, the certificate's user name, keep alive, will
/// size, then authentication (the plugins' password check, or a 5.0 enhanced-authentication exchange driven
/// by AUTH packets), the authorization plugins' preparation, `max_connections_per_user`, the router's session
/// (taking over a connection with the same client id) and the CONNACK. Also AUTH after CONNACK
/// (re-authentication), and the check of a connected client after a reload.
final class ConnectAdmission {
    private let state: ConnectionState
    private let writer: OutboundWriter
    private var wills: WillScheduler { WillScheduler(state: state) }

    /// What the CONNECT asked for, kept while authentication runs (a class: a connected client holds no
    /// room for it).
    private final class Request {
        var connect: ConnectPacket
        var clientID: String
        var assigned: Bool
        var serverKeepAlive: UInt16?
        var keepAlive: Int64

        init(connect: ConnectPacket, clientID: String, assigned: Bool, serverKeepAlive: UInt16?, keepAlive: Int64) {
            self.connect = connect
            self.clientID = clientID
            self.assigned = assigned
            self.serverKeepAlive = serverKeepAlive
            self.keepAlive = keepAlive
        }
    }
    private var request: Request?
    /// Kept to check the client again after a reload (secret: never logged).
    private var credentials: Credentials?
    /// The enhanced authentication method the CONNECT named, and the exchange running, if any.
    private var authMethod: String?
    private var exchange: AuthExchange?
    /// Whether this connection holds a `max_connections_per_user` slot (for the client's user name and id).
    private var holdsUserSlot = false

    init(state: ConnectionState, writer: OutboundWriter) {
        self.state = state
        self.writer = writer
    }

    /// The keep alive the client was given, in seconds (0: none).
    private(set) var keepAlive: Int64 = 0

    // MARK: CONNECT

    func connect(_ connect: ConnectPacket) {
        state.version = connect.protocolVersion
        let version = state.version
        let broker = state.broker
        if let rate = broker.quotas.connectionRate, let address = writer.context?.channel.remoteAddress?.ipAddress,
           case .refused(let firstTime) = rate.admit(address) {
            broker.quotas.count(.maxConnectionRate)
            if firstTime {
                state.logger.notice("Connections from \(address) are refused: more than max_connection_rate \(rate.count) CONNECTs in \(rate.window.nanoseconds / 1_000_000_000) s (logged once while it lasts).")
            }
            refuse(.connectionRateExceeded, why: "max_connection_rate exceeded", log: false)
            return
        }
        let settings = broker.connect
        // use_identity_as_username / use_subject_as_username: the certificate names the user, and the CONNECT's
        // user name and password are ignored (as Mosquitto does).
        var username = connect.username
        var password = connect.password
        if state.facts.usernameFromCertificate != nil {
            guard let identity = state.facts.certificateUsername else {
                refuse(.badUserNameOrPassword, why: "the client certificate gives no user name")
                return
            }
            username = identity
            password = nil
        }
        var clientID = connect.clientID
        if settings.useUsernameAsClientID, let username { clientID = username }
        var assigned = false
        if clientID.isEmpty {
            let refused: Bool
            switch version {
            case .v3_1: refused = true
            case .v3_1_1: refused = !connect.cleanStart || !settings.allowZeroLengthClientID
            case .v5: refused = !settings.allowZeroLengthClientID
            }
            if refused {
                refuse(.clientIdentifierNotValid, why: "empty client id")
                return
            }
            clientID = settings.autoIDPrefix + UUID().uuidString
            assigned = true
        }
        var serverKeepAlive: UInt16?
        // A 5.0 client is told the keep alive to use; a 3.x client keeps its own (Mosquitto 2.0 accepts it).
        if version == .v5 && (Int(connect.keepAlive) > settings.maxKeepalive
                              || (connect.keepAlive == 0 && settings.maxKeepalive < 65535)) {
            serverKeepAlive = UInt16(settings.maxKeepalive)
        }
        if let will = connect.will, settings.messageSizeLimit > 0, will.payload.readableBytes > settings.messageSizeLimit {
            refuse(.packetTooLarge, why: "will payload larger than message_size_limit")
            return
        }
        var enhanced: (method: String, plugin: any EnhancedAuthenticationPlugin)?
        if version == .v5, let method = connect.properties.authenticationMethod {
            guard let plugin = broker.access.enhancedAuthenticator(for: method) else {
                refuse(.badAuthenticationMethod, why: "no plugin offers the authentication method \(method)")
                return
            }
            enhanced = (method, plugin)
        } else if version == .v5, connect.properties.authData != nil {
            refuse(.protocolError, why: "authentication data without an authentication method")
            return
        }
        keepAlive = Int64(serverKeepAlive ?? connect.keepAlive)
        let info = ClientInfo(clientID: clientID, username: username, protocolVersion: version,
                              listener: state.facts.listener, remoteAddress: state.remoteAddress,
                              certificateSubject: state.facts.certificateSubject)
        state.client = info
        state.phase = .authenticating
        request = Request(connect: connect, clientID: clientID, assigned: assigned, serverKeepAlive: serverKeepAlive,
                          keepAlive: keepAlive)
        if let enhanced {
            // The CONNECT's keep alive bounds each wait for the client during the exchange.
            if keepAlive > 0 { state.keepAliveWindow = .milliseconds(keepAlive * 1500) }
            authMethod = enhanced.method
            startExchange(enhanced.method, plugin: enhanced.plugin, reauthentication: false,
                          data: connect.properties.authData)
            return
        }
        let credentials = Credentials(username: username, password: password?.detached(),
                                      properties: connect.properties)
        if !broker.access.authenticators.isEmpty { self.credentials = credentials }
        let loop = state.eventLoop
        let verified = state.facts.usernameFromCertificate != nil
        admit(verified ? loop.makeSucceededFuture(Decision.allow)
                       : broker.access.authenticate(client: info, credentials: credentials, on: loop))
    }

    /// Once authentication decided: prepares the authorization plugins for the client, then accepts it (or
    /// refuses it).
    private func admit(_ decided: EventLoopFuture<Decision>, authResponse: ByteBuffer? = nil) {
        guard let info = state.client else { return }
        let access = state.broker.access
        let loop = state.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        decided
            .flatMap { decision -> EventLoopFuture<Decision> in
                guard decision.isAllow else { return loop.makeSucceededFuture(decision) }
                return access.prepare(client: info, on: loop).map { decision }
            }
            .whenComplete { result in
                let admission = bound.value
                guard admission.state.phase == .authenticating else {
                    // Closed while the plugins worked: let them drop what they prepared.
                    access.forget(client: info)
                    return
                }
                switch result {
                case .success(let decision) where decision.isAllow:
                    admission.accept(authResponse: authResponse)
                case .success(let decision) where decision.isDeny:
                    admission.refuse(decision.denyReason ?? .notAuthorized, why: "not authorised")
                default:
                    admission.refuse(.notAuthorized, why: "not authorised")
                }
            }
    }

    private func accept(authResponse: ByteBuffer?) {
        guard let request else { return }
        self.request = nil
        let connect = request.connect
        let clientID = request.clientID
        let version = state.version
        let broker = state.broker
        let settings = broker.connect
        let expiry: UInt32? = version == .v5 ? connect.properties.sessionExpiryInterval ?? 0
                                             : (connect.cleanStart ? 0 : nil)
        state.sessionExpiry = expiry
        if version == .v5 {
            writer.aliasLimit = UInt16(min(Int(connect.properties.topicAliasMaximum ?? 0), settings.maxTopicAliasBroker))
            writer.maximumPacketSize = connect.properties.maximumPacketSize ?? 0
        }
        if let users = broker.quotas.userConnections, let username = state.client?.username {
            guard users.acquire(user: username, clientID: clientID) else {
                broker.quotas.count(.maxConnectionsPerUser)
                if let client = state.client { broker.access.forget(client: client) }
                refuse(.quotaExceeded, why: "max_connections_per_user (\(users.maximum)) reached for user \(username)")
                return
            }
            holdsUserSlot = true
        }
        wills.keep(connect.will)
        let result = broker.router.connect(
            clientID: clientID, cleanStart: connect.cleanStart, version: version, expiry: expiry,
            handle: state.handle, receiveMaximum: Int(connect.properties.receiveMaximum ?? UInt16.max),
            maximumPacketSize: Int(connect.properties.maximumPacketSize ?? 0))
        state.session = result.session
        if let replaced = result.replaced {
            state.logger.notice("Client \(clientID) already connected, closing old connection.")
            replaced.takeOver()
        }
        state.phase = .connected
        state.notify(broker.hooks.connect, "connect", {
            ConnectEvent(client: $0, cleanStart: connect.cleanStart, sessionPresent: result.sessionPresent,
                         keepAlive: Int(request.keepAlive), properties: connect.properties)
        }) { try $0.connected($1, on: $2) }
        var properties = Properties()
        if version == .v5 {
            // Mosquitto's order, so the bytes match.
            if settings.maxTopicAlias > 0 { properties.append(.topicAliasMaximum(UInt16(settings.maxTopicAlias))) }
            if let serverKeepAlive = request.serverKeepAlive { properties.append(.serverKeepAlive(serverKeepAlive)) }
            if request.assigned { properties.append(.assignedClientIdentifier(clientID)) }
            let router = broker.router.settings
            if !router.retainAvailable { properties.append(.retainAvailable(0)) }
            if settings.maxPacketSize > 0 { properties.append(.maximumPacketSize(UInt32(settings.maxPacketSize))) }
            if settings.maxInflightMessages > 0 && settings.maxInflightMessages < 65535 {
                properties.append(.receiveMaximum(UInt16(settings.maxInflightMessages)))
            }
            if router.maximumQoS != .exactlyOnce { properties.append(.maximumQoS(router.maximumQoS.rawValue)) }
            if let authMethod {
                for item in Properties.authentication(method: authMethod, data: authResponse).items {
                    properties.append(item)
                }
            }
        }
        // MQTT 3.1 has no session-present flag: that byte is reserved and 0.
        let present = version != .v3_1 && result.sessionPresent
        writer.send(.connack(ConnAckPacket(sessionPresent: present, code: 0, properties: properties)))
        guard state.phase == .connected else { return }  // the CONNACK was larger than the client takes
        state.keepAliveWindow = keepAlive > 0 ? .milliseconds(keepAlive * 1500) : nil
        state.control?.admitted()
    }

    /// Answers CONNECT with a refusal and closes.
    func refuse(_ reason: ReasonCode, why: String, log: Bool = true) {
        if log { state.logger.notice("Client \(state.clientName) from \(state.remoteAddress ?? "?") refused: \(why).") }
        let code = state.version == .v5 ? reason.rawValue : ConnectReturnCode(reason).rawValue
        writer.send(.connack(ConnAckPacket(sessionPresent: false, code: code)))
        state.control?.close()
    }

    /// The connection ends: a running exchange ends with it; the user's connection slot is given back.
    func end() {
        exchange?.cancel()
        exchange = nil
        request = nil
        if holdsUserSlot, let client = state.client, let user = client.username {
            holdsUserSlot = false
            state.broker.quotas.userConnections?.release(user: user, clientID: client.clientID)
        }
    }

    // MARK: AUTH (MQTT 5.0 enhanced authentication)

    /// AUTH from the client: an answer to a challenge (0x18) or the start of a re-authentication (0x19).
    /// Protocol errors: AUTH when the CONNECT named no method, another method, an answer nobody asked for,
    /// any other reason code. Before CONNACK they are answered with CONNACK 0x82, afterwards DISCONNECT 0x82.
    func auth(_ auth: AuthPacket) throws {
        let connecting = state.phase == .authenticating
        let problem: String
        if let method = authMethod {
            if auth.properties.authenticationMethod != method {
                problem = "AUTH with another authentication method than CONNECT's \(method)"
            } else if auth.reasonCode == .continueAuthentication, let exchange, exchange.awaitingClient {
                exchange.clientAnswered(auth.properties.authData, client: state.clientName)
                return
            } else if auth.reasonCode == .reAuthenticate && !connecting && exchange == nil {
                guard let plugin = state.broker.access.enhancedAuthenticator(for: method) else { return }
                startExchange(method, plugin: plugin, reauthentication: true, data: auth.properties.authData)
                return
            } else {
                problem = "unexpected AUTH with reason code \(auth.reasonCode)"
            }
        } else {
            problem = "AUTH without an authentication method in CONNECT"
        }
        if connecting {
            refuse(.protocolError, why: problem)
        } else {
            throw ProtocolViolation(code: .protocolError, message: problem)
        }
    }

    private func startExchange(_ method: String, plugin: any EnhancedAuthenticationPlugin, reauthentication: Bool,
                               data: ByteBuffer?) {
        guard let client = state.client else { return }
        let exchange = AuthExchange(method: method, plugin: plugin, reauthentication: reauthentication,
                                    access: state.broker.access, loop: state.eventLoop) { [weak self] outcome in
            self?.exchangeStepped(outcome)
        }
        self.exchange = exchange
        exchange.start(client: client, data: data)
    }

    private func exchangeStepped(_ outcome: AuthExchange.Outcome) {
        guard state.phase != .closed, let exchange else { return }
        let method = exchange.method
        if case .challenge(let data) = outcome {
            writer.send(.auth(AuthPacket(reasonCode: .continueAuthentication,
                                         properties: .authentication(method: method, data: data))))
            writer.flushIfOutsideRead()
            return
        }
        self.exchange = nil
        if !exchange.reauthentication {
            switch outcome {
            case .success(let data, let username):
                if let username { state.client?.username = username }
                admit(state.eventLoop.makeSucceededFuture(.allow), authResponse: data)
            case .failure(let code, let why):
                refuse(AuthExchange.connackCode(code), why: "authentication with \(method) failed: \(why)")
            case .challenge:
                break
            }
            return
        }
        var failure: (code: ReasonCode, why: String)?
        switch outcome {
        case .success(let data, let username):
            if let username, username != state.client?.username {
                failure = (.notAuthorized, "re-authentication as another user (\(username))")
            } else {
                state.logger.debug("Client \(state.clientName) re-authenticated with \(method).")
                writer.send(.auth(AuthPacket(reasonCode: .success,
                                             properties: .authentication(method: method, data: data))))
                writer.flushIfOutsideRead()
            }
        case .failure(let code, let why):
            failure = (code, why)
        case .challenge:
            break
        }
        if let failure {
            state.logger.notice("Client \(state.clientName) disconnected: re-authentication with \(method) failed: \(failure.why).")
            disconnect(.notAuthorized, code: AuthExchange.disconnectCode(failure.code))
        }
    }

    /// Ends a connected client: a 5.0 client is told why with DISCONNECT `code`.
    private func disconnect(_ reason: DisconnectReason, code: ReasonCode) {
        state.disconnectReason = reason
        if state.version == .v5 { writer.send(.disconnect(DisconnectPacket(reasonCode: code))) }
        state.control?.close()
    }

    // MARK: After a reload

    /// Authenticates the client again with the credentials it connected with, and closes the connection if
    /// they are no longer accepted (as Mosquitto does); reloads its authorization rules.
    func revalidate() {
        guard state.phase == .connected, let client = state.client else { return }
        let credentials = self.credentials ?? Credentials(username: client.username, password: nil)
        let access = state.broker.access
        let loop = state.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        // An enhanced authentication method needs the client to run again (it may re-authenticate itself):
        // only its authorization rules are reloaded.
        (authMethod != nil ? loop.makeSucceededFuture(Decision.allow)
                           : access.authenticate(client: client, credentials: credentials, on: loop))
            .flatMap { decision -> EventLoopFuture<Decision> in
                guard decision.isAllow else { return loop.makeSucceededFuture(decision) }
                return access.prepare(client: client, on: loop).map { decision }
            }
            .whenComplete { result in
                let admission = bound.value
                guard admission.state.phase == .connected else { return }
                let decision = try? result.get()
                if decision?.isAllow == true { return }
                let logger = admission.state.logger
                if decision == nil || decision == .deny(.serverUnavailable) {
                    // The check itself failed (a database that did not answer in time): that says nothing
                    // about the credentials, so the client stays.
                    logger.warning("Client \(client.clientID) could not be checked again after a reload; it stays connected.")
                    return
                }
                logger.notice("Client \(client.clientID) disconnected: its credentials are no longer accepted after a reload.")
                admission.disconnect(.notAuthorized, code: .notAuthorized)
            }
    }
}
