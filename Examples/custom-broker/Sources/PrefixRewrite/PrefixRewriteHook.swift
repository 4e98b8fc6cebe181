import NIOCore
import PluginAPI

/// `plugin prefix-rewrite`: messages published under `plugin_opt_from` (say `legacy/`) are routed under
/// `plugin_opt_to` instead (say `site-a/`), so old devices keep publishing where they always did. The broker
/// checks the new topic against the ACLs again, as a write by the same client.
public final class PrefixRewriteHook: HookPlugin {
    /// The registry entry: the name a config file uses, and how to make the hook from its options.
    public static let descriptor = PluginDescriptor(name: "prefix-rewrite", summary: "move one topic prefix to another") {
        options, _ in try PrefixRewriteHook(options: &options)
    }

    /// Only PUBLISH: the broker calls this hook for nothing else.
    public let events: HookEvents = [.publish]
    private let from: String
    private let to: String

    init(options: inout PluginOptions) throws {
        from = try options.requiredString("from")
        to = try options.requiredString("to")
        try options.finish()  // an option this hook does not know stops start-up, naming it
        guard !from.isEmpty else {
            throw PluginError(pluginName: "prefix-rewrite", message: "option 'from' must not be empty")
        }
    }

    /// In-memory work answers at once; a hook that needed I/O would answer `.later` with a future.
    public func publish(_ message: HookMessage, from client: ClientInfo, on eventLoop: any EventLoop) throws
        -> PluginAnswer<PublishVerdict> {
        guard message.topic.hasPrefix(from) else { return .now(.accept) }
        var moved = message
        moved.topic = to + message.topic.dropFirst(from.count)
        return .now(.rewrite(moved))
    }
}
