import NIOCore
import NIOPosix
import PluginAPI
import Testing
import UserHooks

@Suite("topic-rewrite example hook") struct TopicRewriteHookTests {
    func makeHook(_ entries: [(String, String)]) throws -> TopicRewriteHook {
        var options = PluginOptions(pluginName: "topic-rewrite", entries: entries.map { ($0.0, $0.1, nil) })
        return try TopicRewriteHook(options: &options)
    }

    let client = ClientInfo(clientID: "c", username: nil, protocolVersion: .v5, listener: "1883")
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    @Test func movesTopicsUnderThePrefix() throws {
        let hook = try makeHook([("from", "sensors/"), ("to", "site-a/sensors/")])
        guard case .now(let verdict) = try hook.publish(HookMessage(topic: "sensors/t1", payload: ByteBuffer(string: "21.5")),
                                                        from: client, on: loop),
              let moved = verdict.rewrittenMessage else {
            Issue.record("expected a rewrite")
            return
        }
        #expect(moved.topic == "site-a/sensors/t1")
        #expect(moved.payload == ByteBuffer(string: "21.5"))
    }

    @Test func leavesOtherTopicsAlone() throws {
        let hook = try makeHook([("from", "sensors/"), ("to", "x/")])
        guard case .now(.accept) = try hook.publish(HookMessage(topic: "other/sensors/t1", payload: ByteBuffer()),
                                                    from: client, on: loop) else {
            Issue.record("expected accept")
            return
        }
        #expect(hook.events == [.publish])
    }

    @Test func rejectsMissingAndUnknownOptions() {
        #expect(throws: PluginError.self) { try makeHook([("from", "a/")]) }
        #expect(throws: PluginError.self) { try makeHook([("from", "a/"), ("to", "b/"), ("colour", "red")]) }
    }
}
