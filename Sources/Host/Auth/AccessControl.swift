import MQTT
import NIOCore
import PluginAPI

/// The authentication and authorization chains, in config order.
struct AccessControl: Sendable {
    var authenticators: [any AuthenticationPlugin] = []
    var authorizers: [any AuthorizationPlugin] = []
    /// Admit clients that send no user name.
    var allowAnonymous: Bool

    /// Runs the authentication chain: a client without a user name is decided by `allowAnonymous`; a client
    /// with one is asked of each plugin until one does not abstain; all abstaining means deny. With no
    /// authentication plugin, `allowAnonymous` decides for everyone (Mosquitto's behaviour).
    func authenticate(client: ClientInfo, credentials: Credentials, on loop: any EventLoop) -> EventLoopFuture<Decision> {
        if credentials.username == nil || authenticators.isEmpty {
            return loop.makeSucceededFuture(allowAnonymous ? .allow : .deny(.notAuthorized))
        }
        return ask(authenticators[...], client: client, credentials: credentials, on: loop)
    }

    private func ask(_ plugins: ArraySlice<any AuthenticationPlugin>, client: ClientInfo, credentials: Credentials,
                     on loop: any EventLoop) -> EventLoopFuture<Decision> {
        guard let plugin = plugins.first else { return loop.makeSucceededFuture(.deny(.badUserNameOrPassword)) }
        let rest = plugins.dropFirst()
        switch plugin.authenticate(client: client, credentials: credentials) {
        case .now(.abstain):
            return ask(rest, client: client, credentials: credentials, on: loop)
        case .now(let decision):
            return loop.makeSucceededFuture(decision)
        case .later(let future):
            return future.hop(to: loop).flatMap { decision in
                if case .abstain = decision { return self.ask(rest, client: client, credentials: credentials, on: loop) }
                return loop.makeSucceededFuture(decision)
            }.flatMapErrorThrowing { _ in .deny(.unspecifiedError) }
        }
    }

    /// Runs the authorization chain; with no plugin everything is allowed.
    func authorize(client: ClientInfo, access: Access, topic: String, qos: QoS, retain: Bool) -> Bool {
        if authorizers.isEmpty { return true }
        for plugin in authorizers {
            switch plugin.authorize(client: client, access: access, topic: topic, qos: qos, retain: retain) {
            case .allow: return true
            case .deny: return false
            case .abstain: continue
            }
        }
        return false
    }
}
