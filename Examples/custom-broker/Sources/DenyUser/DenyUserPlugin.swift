import NIOCore
import PluginAPI

/// `plugin deny-user` with `plugin_opt_user NAME`: the client that logs in as NAME is refused, whatever its
/// password; for every other client it abstains, so the next plugin of the chain (a password file) decides.
/// Put it before that plugin in the config: the chain asks plugins in config order and the first answer that
/// is not "abstain" wins.
public final class DenyUserPlugin: AuthenticationPlugin {
    /// The registry entry.
    public static let descriptor = PluginDescriptor(name: "deny-user", summary: "refuse one named user") {
        options, context in try DenyUserPlugin(options: &options, context: context)
    }

    private let user: String

    init(options: inout PluginOptions, context: PluginContext) throws {
        user = try options.requiredString("user")
        try options.finish()
        context.logger.notice("deny-user: refusing the user \(user).")
    }

    public func authenticate(client: ClientInfo, credentials: Credentials, on eventLoop: any EventLoop)
        -> PluginAnswer<Decision> {
        .now(credentials.username == user ? .deny(.notAuthorized) : .abstain)
    }
}
