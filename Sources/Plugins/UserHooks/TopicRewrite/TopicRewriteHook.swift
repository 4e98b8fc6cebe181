import NIOCore
import PluginAPI

/// An example hook: moves messages from one topic prefix to another before they are routed, for example to
/// put every device's `sensors/...` under `site-a/sensors/...` without changing the devices.
///
/// ```
/// plugin topic-rewrite
/// plugin_opt_from sensors/
/// plugin_opt_to site-a/sensors/
/// ```
///
/// The broker authorizes the new topic again (as a write by the same client), so a rewrite cannot carry a
/// message where its publisher may not write.
public final class TopicRewriteHook: HookPlugin {
    /// Registry entry: the name the config uses, and how to make the hook from its options.
    public static let descriptor = PluginDescriptor(name: "topic-rewrite", summary: "example: rewrite a topic prefix") {
        options, _ in try TopicRewriteHook(options: &options)
    }

    /// Only `publish`: no other event calls this hook.
    public let events: HookEvents = [.publish]
    let from: String
    let to: String

    /// Options: `from` and `to`, both required.
    public init(options: inout PluginOptions) throws {
        from = try options.requiredString("from")
        to = try options.requiredString("to")
        try options.finish()  // an unknown option is an error that names it
        guard !from.isEmpty else {
            throw PluginError(pluginName: "topic-rewrite", message: "option 'from' must not be empty")
        }
    }

    /// Fast, in-memory work: answer at once (`.now`). A hook that needed I/O would answer `.later`.
    public func publish(_ message: HookMessage, from client: ClientInfo, on eventLoop: any EventLoop) throws
        -> PluginAnswer<PublishVerdict> {
        guard message.topic.hasPrefix(from) else { return .now(.accept) }
        var moved = message
        moved.topic = to + message.topic.dropFirst(from.count)
        return .now(.rewrite(moved))
    }
}
