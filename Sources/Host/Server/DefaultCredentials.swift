import Logging
import NIOCore
import PluginAPI

/// admin / admin, as the default deployment ships them: start-up and `check-config` warn while they work.
enum DefaultCredentials {
    static let warning = "The user admin still has the default password admin. Change it: midge passwd <password_file> admin (taken up within seconds), set MIDGE_ADMIN_PASSWORD, or mount your own password file."

    /// Whether the chain `authenticators` accepts admin / admin (asked without logging).
    static func accepted(by authenticators: [any AuthenticationPlugin], on loop: any EventLoop) -> EventLoopFuture<Bool> {
        let probe = ClientInfo(clientID: "midge-default-credentials-check", username: "admin",
                               protocolVersion: .v3_1_1, listener: "self-check")
        let credentials = Credentials(username: "admin", password: ByteBuffer(string: "admin"))
        let quiet = AccessControl(authenticators: authenticators, authorizers: [], allowAnonymous: false,
                                  logger: Logger(label: "midge.self-check", factory: { _ in SwiftLogNoOpLogHandler() }))
        return quiet.authenticate(client: probe, credentials: credentials, on: loop).map { $0 == .allow }
    }
}

extension Broker {
    /// The default deployment ships the user admin with the password admin: say so loudly while it works.
    func warnAboutDefaultCredentials() async {
        let loop = group.next()
        var seen = Set<ObjectIdentifier>()
        for context in contexts where !context.access.authenticators.isEmpty {
            guard let first = context.access.authenticators.first, seen.insert(ObjectIdentifier(first)).inserted else { continue }
            if (try? await DefaultCredentials.accepted(by: context.access.authenticators, on: loop).get()) == true {
                logger.warning("\(DefaultCredentials.warning)")
                return
            }
        }
    }
}
