import Foundation
import MQTT
import NIOConcurrencyHelpers
import NIOCore
import PluginAPI

/// Counters one event loop keeps for its connections: plain integers, touched only on that loop, summed
/// across loops when someone asks (`BrokerServices.statistics()`), so counting costs an add per event.
struct LoopCounters: Sendable {
    var messagesReceived = 0
    var messagesSent = 0
    var publishReceived = 0
    var publishSent = 0
    var publishDropped = 0
    var bytesReceived = 0
    var bytesSent = 0
    var connectionsAccepted = 0
    var connectionsByListener: [String: Int] = [:]

    mutating func add(_ other: LoopCounters) {
        messagesReceived += other.messagesReceived
        messagesSent += other.messagesSent
        publishReceived += other.publishReceived
        publishSent += other.publishSent
        publishDropped += other.publishDropped
        bytesReceived += other.bytesReceived
        bytesSent += other.bytesSent
        connectionsAccepted += other.connectionsAccepted
        connectionsByListener.merge(other.connectionsByListener, uniquingKeysWith: +)
    }
}

/// What hooks may ask of the broker (`BrokerServices`), answered from the router and the loops' counters.
final class BrokerServicesProvider: BrokerServices, Sendable {
    let version: String
    let startedAt = Date()
    let eventLoopGroup: any EventLoopGroup
    private let router: Router
    private let loops: LoopContexts
    /// The hooks' failures (`Hooks.failureLog`; not the hooks, which hold this provider).
    private let hookFailures: FailureLog
    /// The authentication and authorization plugins' failures, all listeners'.
    private let authFailures: FailureLog
    /// The broker's quotas, for their counts.
    private let quotas: Quotas
    /// Reloads so far, and how many failed.
    private let reloadCounts = NIOLockedValueBox((all: 0, failed: 0))

    init(version: String, group: any EventLoopGroup, router: Router, loops: LoopContexts, hooks: Hooks,
         quotas: Quotas, authFailures: FailureLog) {
        self.version = version
        self.eventLoopGroup = group
        self.router = router
        self.loops = loops
        self.hookFailures = hooks.failureLog
        self.authFailures = authFailures
        self.quotas = quotas
    }

    func publish(_ message: HookMessage) {
        router.publish(Message(topic: message.topic, payload: message.payload, qos: message.qos,
                               retain: message.retain, properties: message.properties.allowed(in: .publish)),
                       batch: nil)
    }

    func countReload(failed: Bool) {
        reloadCounts.withLockedValue { counts in
            counts.all += 1
            if failed { counts.failed += 1 }
        }
    }

    func statistics() -> EventLoopFuture<BrokerStatistics> {
        let loop = eventLoopGroup.next()
        let perLoop = loops.all.map { context in
            context.eventLoop.submit { context.value.counters }
        }
        return EventLoopFuture.whenAllSucceed(perLoop, on: loop).map { [self] all in
            var total = LoopCounters()
            for counters in all { total.add(counters) }
            var statistics = BrokerStatistics()
            statistics.uptime = Int(Date().timeIntervalSince(startedAt))
            let clients = router.clientCounts()
            statistics.clientsConnected = clients.connected
            statistics.clientsMaximum = clients.maximum
            statistics.clientsDisconnected = clients.disconnected
            let counters = router.counters.withLockedValue { $0 }
            statistics.clientsExpired = counters.expired
            statistics.publishDropped = counters.dropped + total.publishDropped
                + (quotas.queuedBytes?.refusals ?? 0)
            statistics.connectionsAccepted = total.connectionsAccepted
            statistics.connectionsByListener = total.connectionsByListener
            statistics.messagesReceived = total.messagesReceived
            statistics.messagesSent = total.messagesSent
            statistics.publishReceived = total.publishReceived
            statistics.publishSent = total.publishSent
            statistics.bytesReceived = total.bytesReceived
            statistics.bytesSent = total.bytesSent
            statistics.subscriptions = router.index.subscriptionCount
            statistics.retainedMessages = router.retained.messageCount
            (statistics.reloads, statistics.reloadsFailed) = reloadCounts.withLockedValue { ($0.all, $0.failed) }
            statistics.hookFailures = hookFailures.count
            statistics.authFailures = authFailures.count
            statistics.quotaEvents = quotas.eventCounts()
            statistics.publishRateDisconnects = quotas.rateDisconnectCount
            statistics.queuedBytes = quotas.queuedBytes?.current ?? 0
            statistics.logLinesDropped = MidgeLogHandler.Sink.installed.withLockedValue { $0 }?.droppedLines ?? 0
            return statistics
        }
    }
}
