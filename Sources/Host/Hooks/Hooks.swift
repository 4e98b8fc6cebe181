import Logging
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import PluginAPI

/// The hooks the config chose, sorted by event, and the rules for calling them: config order, a deadline on
/// every future, errors logged and counted, the broker never waiting for an observing hook.
///
/// Call sites check the event's list first (`hooks.publish.isEmpty`), so an event no hook wants costs one
/// branch.
final class Hooks: Sendable {
    struct Entry: Sendable {
        let hook: any HookPlugin
        let name: String
        /// For `publish`: what a failure (an error or a missed deadline) means. true: reject (the default);
        /// false: as if this hook were absent (`plugin_opt_on_error accept`).
        let rejectOnError: Bool
    }

    let all: [Entry]
    let connect: [Entry]
    let disconnect: [Entry]
    let subscribe: [Entry]
    let unsubscribe: [Entry]
    let publish: [Entry]
    let deliver: [Entry]
    let will: [Entry]
    let tick: [Entry]
    let reload: [Entry]
    let shutdown: [Entry]
    /// How long a hook's future may take.
    let deadline: TimeAmount
    let logger: Logger
    /// Hook calls that failed or ran out of time, counted and logged without flooding; shared with the
    /// statistics, which must not hold the hooks (a hook holds the statistics' provider: the two would keep
    /// each other, and the broker, alive).
    let failureLog = FailureLog()

    init(_ entries: [Entry], deadline: TimeAmount = .seconds(5), logger: Logger) {
        all = entries
        func with(_ event: HookEvents) -> [Entry] { entries.filter { $0.hook.events.contains(event) } }
        connect = with(.connect)
        disconnect = with(.disconnect)
        subscribe = with(.subscribe)
        unsubscribe = with(.unsubscribe)
        publish = with(.publish)
        deliver = with(.deliver)
        will = with(.will)
        tick = with(.tick)
        reload = with(.reload)
        shutdown = with(.shutdown)
        self.deadline = deadline
        self.logger = logger
    }

    /// No hooks at all.
    static func none(logger: Logger) -> Hooks { Hooks([], logger: logger) }

    /// Hook calls that failed since start.
    var failures: Int { failureLog.count }

    // MARK: Observing events

    /// Calls each hook of `entries` in order; failures are logged and counted, futures are bounded but not
    /// awaited.
    func notify(_ entries: [Entry], event: String, on loop: any EventLoop,
                _ call: (any HookPlugin) throws -> HookAnswer) {
        for entry in entries {
            do {
                switch try call(entry.hook) {
                case .now:
                    break
                case .later(let future):
                    bounded(future, entry: entry, event: event, on: loop).whenFailure { _ in }
                }
            } catch {
                failed(entry, event: event, error)
            }
        }
    }

    /// Like `notify`, but the returned future completes when every hook has answered (or failed, or missed
    /// its deadline). For events the broker waits on: reload, shutdown.
    func notifyAll(_ entries: [Entry], event: String, on loop: any EventLoop,
                   _ call: (any HookPlugin) throws -> HookAnswer) -> EventLoopFuture<Void> {
        var futures: [EventLoopFuture<Void>] = []
        for entry in entries {
            do {
                if case .later(let future) = try call(entry.hook) {
                    futures.append(bounded(future, entry: entry, event: event, on: loop).recover { _ in })
                }
            } catch {
                failed(entry, event: event, error)
            }
        }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }

    // MARK: Publish

    /// What the publish hooks decided.
    enum PublishOutcome {
        /// Route it; with a message when a hook rewrote it.
        case accept(HookMessage?)
        /// Drop it and answer with this code.
        case reject(ReasonCode)
    }

    /// Runs the publish hooks in order, each seeing the message as the previous one left it. Answers at
    /// once when every hook did; otherwise with a future on `loop`.
    func runPublish(_ message: HookMessage, from client: ClientInfo, on loop: any EventLoop)
        -> PluginAnswer<PublishOutcome> {
        runPublish(from: 0, message: message, changed: false, client: client, loop: loop)
    }

    private func runPublish(from start: Int, message: HookMessage, changed: Bool, client: ClientInfo,
                            loop: any EventLoop) -> PluginAnswer<PublishOutcome> {
        var current = message
        var changed = changed
        var index = start
        while index < publish.count {
            let entry = publish[index]
            index += 1
            let answer: PluginAnswer<PublishVerdict>
            do {
                answer = try entry.hook.publish(current, from: client, on: loop)
            } catch {
                failed(entry, event: "publish", error)
                answer = .now(failureVerdict(entry))
            }
            switch answer {
            case .now(let verdict):
                if let outcome = apply(verdict, to: &current, changed: &changed) { return .now(outcome) }
            case .later(let future):
                // The chain so far, as the rest of it goes on from when this hook answers.
                let (next, sofar, changedSoFar) = (index, current, changed)
                let result = bounded(future, entry: entry, event: "publish", on: loop)
                    .recover { _ in self.failureVerdict(entry) }
                    .flatMap { verdict -> EventLoopFuture<PublishOutcome> in
                        var message = sofar
                        var changed = changedSoFar
                        if let outcome = self.apply(verdict, to: &message, changed: &changed) {
                            return loop.makeSucceededFuture(outcome)
                        }
                        switch self.runPublish(from: next, message: message, changed: changed, client: client,
                                               loop: loop) {
                        case .now(let outcome): return loop.makeSucceededFuture(outcome)
                        case .later(let future): return future
                        }
                    }
                return .later(result)
            }
        }
        return .now(.accept(changed ? current : nil))
    }

    /// Applies one verdict; returns the final outcome when it ends the chain (a rejection).
    private func apply(_ verdict: PublishVerdict, to message: inout HookMessage, changed: inout Bool)
        -> PublishOutcome? {
        if verdict.isAccept { return nil }
        if let rewritten = verdict.rewrittenMessage {
            message = rewritten
            changed = true
            return nil
        }
        return .reject(verdict.rejectReason ?? .notAuthorized)
    }

    private func failureVerdict(_ entry: Entry) -> PublishVerdict {
        entry.rejectOnError ? .reject(.implementationSpecificError) : .accept
    }

    // MARK: Deadlines and failures

    /// `future` on `loop`, failed when it takes longer than the deadline; a failure is logged and counted.
    private func bounded<Value: Sendable>(_ future: EventLoopFuture<Value>, entry: Entry, event: String,
                                          on loop: any EventLoop) -> EventLoopFuture<Value> {
        future.bounded(by: deadline, on: loop, what: "the answer").flatMapErrorThrowing { error in
            self.failed(entry, event: event, error)
            throw error
        }
    }

    private func failed(_ entry: Entry, event: String, _ error: any Error) {
        let consequence = event != "publish" ? "going on without it"
            : entry.rejectOnError ? "the message is rejected (plugin_opt_on_error accept would let it through)"
            : "the message goes on as if the hook were absent"
        failureLog.record("\(entry.name) \(event)", logger: logger,
                          "Hook \(entry.name) failed on \(event): \(error); \(consequence).")
    }
}

extension HookMessage {
    /// The message as hooks see it.
    init(_ message: Message) {
        self.init(topic: message.topic, payload: message.payload, qos: message.qos, retain: message.retain,
                  properties: message.properties)
    }
}
