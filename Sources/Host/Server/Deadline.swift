import NIOCore

/// A plugin (or any other party the broker waits for) did not answer in time.
struct PluginTimeout: Error, CustomStringConvertible {
    var what: String
    var deadline: TimeAmount
    var description: String { "\(what) took longer than \(deadline.nanoseconds / 1_000_000) ms" }
}

extension EventLoopFuture where Value: Sendable {
    /// This future's result on `loop`, or a `PluginTimeout` failure when it has not completed within
    /// `deadline`. A late result is dropped (a promise keeps its first completion).
    func bounded(by deadline: TimeAmount, on loop: any EventLoop, what: String) -> EventLoopFuture<Value> {
        let promise = loop.makePromise(of: Value.self)
        let timeout = loop.scheduleTask(in: deadline) {
            promise.fail(PluginTimeout(what: what, deadline: deadline))
        }
        hop(to: loop).whenComplete { result in
            timeout.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}
