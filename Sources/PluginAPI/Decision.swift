public import MQTT
public import NIOCore

/// A plugin's answer to an authentication or authorization question.
public enum Decision: Hashable, Sendable {
    /// Let it through; later plugins in the chain are not asked.
    case allow
    /// Refuse it; later plugins are not asked. The reason code, if given, is what a 5.0 client sees.
    case deny(ReasonCode? = nil)
    /// No opinion; the next plugin in the chain decides.
    case abstain
}

/// An answer given at once or later. Fast plugins answer `.now`; plugins that do I/O answer `.later` with a
/// future, which the host bounds by a deadline. A plugin must never block the event loop it is called on.
public enum PluginAnswer<Value: Sendable>: Sendable {
    /// The answer is known now.
    case now(Value)
    /// The answer arrives on this future.
    case later(EventLoopFuture<Value>)
}
