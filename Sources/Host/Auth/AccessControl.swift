import Logging
import MQTT
import NIOCore
import PluginAPI

/// The authentication and authorization chains, in config order.
struct AccessControl: Sendable {
    var authenticators: [any AuthenticationPlugin] = []
    var authorizers: [any AuthorizationPlugin] = []
    /// For each of `authorizers` (same order; missing entries count as false): its `plugin` line's
    /// `auth_plugin_deny_special_chars` (default true). Reaching such a plugin for a client whose user name or
    /// client id contains `+` or `#` denies the access before the plugin is asked, as Mosquitto does, so that
    /// pattern-based rules (`%u`, `%c`) cannot be abused.
    var authorizersDenySpecialChars: [Bool] = []
    /// The enhanced authentication (MQTT 5.0 AUTH) methods, in config order.
    var enhancedAuthenticators: [any EnhancedAuthenticationPlugin] = []
    /// Admit clients that send no user name.
    var allowAnonymous: Bool
    /// How long a plugin may take to answer before its answer counts as deny.
    var deadline: TimeAmount = .seconds(5)
    var logger = Logger(label: "midge.auth")
    /// Plugin calls that failed or missed the deadline: counted, logged without flooding (shared by every
    /// listener's chains, for the statistics).
    var failures = FailureLog()

    /// Runs the authentication chain. A client without a user name is decided by `allowAnonymous`; so is
    /// everyone when there is no authentication plugin (Mosquitto's behaviour). Otherwise each plugin is asked
    /// until one does not abstain; all abstaining means deny. An error or a missed deadline is logged and
    /// counts as deny for this client only.
    func authenticate(client: ClientInfo, credentials: Credentials, on loop: any EventLoop) -> EventLoopFuture<Decision> {
        if credentials.username == nil || authenticators.isEmpty {
            if !allowAnonymous {
                logger.notice("Client \(client.clientID) on listener \(client.listener) refused: anonymous access is not allowed (allow_anonymous false\(authenticators.isEmpty ? " and no password_file or authentication plugin" : "")).")
            }
            return loop.makeSucceededFuture(allowAnonymous ? .allow : .deny(.notAuthorized))
        }
        return ask(authenticators[...], client: client, credentials: credentials, on: loop)
    }

    private func ask(_ plugins: ArraySlice<any AuthenticationPlugin>, client: ClientInfo, credentials: Credentials,
                     on loop: any EventLoop) -> EventLoopFuture<Decision> {
        guard let plugin = plugins.first else {
            logger.notice("Client \(client.clientID) refused: user \(client.username ?? "") is not known to any authentication plugin.")
            return loop.makeSucceededFuture(.deny(.badUserNameOrPassword))
        }
        let rest = plugins.dropFirst()
        let name = String(describing: type(of: plugin))
        switch plugin.authenticate(client: client, credentials: credentials, on: loop) {
        case .now(let decision) where decision.isAbstain:
            return ask(rest, client: client, credentials: credentials, on: loop)
        case .now(let decision):
            if decision.isDeny { logger.notice("Client \(client.clientID) refused by \(name): bad user name or password.") }
            return loop.makeSucceededFuture(decision)
        case .later(let future):
            return bounded(future, on: loop, what: "\(name) authenticating \(client.clientID)")
                .flatMap { decision in
                    if decision.isAbstain { return self.ask(rest, client: client, credentials: credentials, on: loop) }
                    if decision.isDeny { self.logger.notice("Client \(client.clientID) refused by \(name).") }
                    return loop.makeSucceededFuture(decision)
                }
                .flatMapErrorThrowing { error in
                    self.failures.record("\(name) authenticate", logger: self.logger,
                                         "\(name) failed to authenticate \(client.clientID): \(error). Refusing the client.")
                    return .deny(.serverUnavailable)
                }
        }
    }

    /// Lets each authorization plugin load what it needs for the client. Failures are logged; the plugin then
    /// answers from whatever it has (typically deny).
    func prepare(client: ClientInfo, on loop: any EventLoop) -> EventLoopFuture<Void> {
        var futures: [EventLoopFuture<Void>] = []
        for plugin in authorizers {
            switch plugin.prepare(client: client, on: loop) {
            case .now: continue
            case .later(let future):
                let name = String(describing: type(of: plugin))
                futures.append(bounded(future, on: loop, what: "\(name) preparing \(client.clientID)")
                    .flatMapErrorThrowing { error in
                        self.failures.record("\(name) prepare", logger: self.logger,
                                             "\(name) could not load the rules of \(client.clientID): \(error).")
                    })
            }
        }
        if futures.isEmpty { return loop.makeSucceededVoidFuture() }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }

    func forget(client: ClientInfo) {
        for plugin in authorizers { plugin.forget(client: client) }
    }

    /// Runs the authorization chain; with no plugin everything is allowed; all abstaining means deny. The first
    /// answer that is not `.abstain` decides, and only `.allow` allows.
    @inline(__always)
    func authorize(client: ClientInfo, access: Access, topic: String, qos: QoS, retain: Bool) -> Bool {
        if authorizers.isEmpty { return true }
        for (index, plugin) in authorizers.enumerated() {
            if index < authorizersDenySpecialChars.count, authorizersDenySpecialChars[index],
               let what = Self.specialCharacters(in: client) {
                logger.notice("ACL denying access to client with dangerous \(what)")
                return false
            }
            let decision = plugin.authorize(client: client, access: access, topic: topic, qos: qos, retain: retain)
            if decision.isAbstain { continue }
            return decision.isAllow
        }
        return false
    }

    /// `username "a+b"` or `client id "c#"` when the client's user name or client id contains `+` or `#`.
    static func specialCharacters(in client: ClientInfo) -> String? {
        func special(_ text: String) -> Bool { text.utf8.contains { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") } }
        if let username = client.username, special(username) { return "username \"\(username)\"" }
        if special(client.clientID) { return "client id \"\(client.clientID)\"" }
        return nil
    }

    /// `future` on `loop`, failed with `PluginTimeout` if it has not completed within `deadline`.
    func bounded<Value: Sendable>(_ future: EventLoopFuture<Value>, on loop: any EventLoop,
                                          what: String) -> EventLoopFuture<Value> {
        future.bounded(by: deadline, on: loop, what: what)
    }
}
