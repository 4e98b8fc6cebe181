import NIOCore

/// What the router asks of a connection attached to a session. Called on the connection's event loop only
/// (`ConnectionHandle` hops there). The router knows connections by this protocol, never by their type.
protocol SessionConnection: AnyObject {
    /// Write what the session has ready, while the socket takes it.
    func drainSession()
    /// A subscriber this connection publishes to has drained its backlog: read from the client again.
    func resumeReading()
    /// The configuration was reloaded: check the client's credentials again.
    func revalidate()
    /// Another connection took this client id over: close (5.0 clients are told why).
    func closeForTakeover()
}

/// The router's reference to one connection: a box bound to the connection's event loop holding the
/// connection, reachable only on that loop (`NIOLoopBoundBox` checks it). Sessions, the delivery batch and
/// takeovers hold this, never the connection; the connection detaches itself (`release`) when its channel
/// closes, so a handle kept by a session or a paused-publisher list does not keep the connection alive.
typealias ConnectionHandle = NIOLoopBoundBox<(any SessionConnection)?>

extension NIOLoopBoundBox where Value == (any SessionConnection)? {
    /// A handle that reaches nothing until `attach` (callable from any thread).
    static func unattached(on eventLoop: any EventLoop) -> ConnectionHandle {
        .makeEmptyBox(valueType: (any SessionConnection).self, eventLoop: eventLoop)
    }

    /// Makes the handle reach `connection` (on `eventLoop`).
    func attach(_ connection: any SessionConnection) {
        value = connection
    }

    /// Forgets the connection (on `eventLoop`), when the channel closes.
    func release() {
        value = nil
    }

    /// Drains the session into the channel; must be called on `eventLoop`.
    func drainNow() {
        value?.drainSession()
    }

    /// Drains soon, from any thread.
    func wakeSoon() {
        eventLoop.execute { self.value?.drainSession() }
    }

    /// Checks the client's credentials again (after a reload), from any thread.
    func revalidate() {
        eventLoop.execute { self.value?.revalidate() }
    }

    /// Lets a paused publisher read again, from any thread.
    func resumeReading() {
        eventLoop.execute { self.value?.resumeReading() }
    }

    /// Closes the connection because another one took its client id over, from any thread.
    func takeOver() {
        eventLoop.execute { self.value?.closeForTakeover() }
    }
}

/// Connections to wake at the end of a read batch: those on this event loop are drained in place, others are
/// handed to their event loop in one task per loop. Used on its event loop only.
final class DeliveryBatch {
    private let eventLoop: any EventLoop
    /// The connection whose packets are being routed, so a congested session can ask it to pause.
    var publisher: ConnectionHandle?
    /// Set when a target session is congested: the publisher should stop reading for a while.
    var congested = false
    private var local: [ConnectionHandle] = []
    private var remote: [ObjectIdentifier: (loop: any EventLoop, handles: [ConnectionHandle])] = [:]

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    var isEmpty: Bool { local.isEmpty && remote.isEmpty }

    func wake(_ handle: ConnectionHandle) {
        if handle.eventLoop === eventLoop {
            local.append(handle)
        } else {
            let key = ObjectIdentifier(handle.eventLoop)
            remote[key, default: (handle.eventLoop, [])].handles.append(handle)
        }
    }

    /// Drains every woken connection. Call on `eventLoop`.
    func flush() {
        if !local.isEmpty {
            let handles = local
            local.removeAll(keepingCapacity: true)
            for handle in handles { handle.drainNow() }
        }
        if !remote.isEmpty {
            for (_, entry) in remote {
                let handles = entry.handles
                entry.loop.execute {
                    for handle in handles { handle.drainNow() }
                }
            }
            remote.removeAll(keepingCapacity: true)
        }
    }
}
