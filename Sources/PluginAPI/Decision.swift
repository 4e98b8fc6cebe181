public import MQTT
public import NIOCore

/// A plugin's answer to an authentication or authorization question: `.allow`, `.deny(code)` or `.abstain`.
///
/// A struct rather than an enum so that a later minor version of the API can add kinds of answer without
/// breaking plugins (see `PluginAPIVersion`). Make one with the static members; inspect one with `==`
/// (`decision == .allow`) or the accessors (`isDeny`, `denyReason`). A `switch` over a decision lists the
/// cases it cares about and ends with `default:`.
///
/// It is a small value (a byte for the kind, two for the optional reason code): `authorize` returns one for
/// every PUBLISH and every delivery.
public struct Decision: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    enum Code: UInt8, Hashable, Sendable {
        case allow, deny, abstain
    }

    @usableFromInline let code: Code
    @usableFromInline let reason: ReasonCode?

    @inlinable
    init(_ code: Code, reason: ReasonCode? = nil) {
        self.code = code
        self.reason = reason
    }

    /// Let it through; later plugins in the chain are not asked.
    @inlinable public static var allow: Decision { Decision(.allow) }

    /// Refuse it; later plugins are not asked. The reason code, if given, is what a 5.0 client sees.
    @inlinable public static func deny(_ reason: ReasonCode? = nil) -> Decision { Decision(.deny, reason: reason) }

    /// No opinion; the next plugin in the chain decides.
    @inlinable public static var abstain: Decision { Decision(.abstain) }

    /// Whether this is `.allow`.
    @inlinable public var isAllow: Bool { code == .allow }

    /// Whether this is a `.deny`, with or without a reason code.
    @inlinable public var isDeny: Bool { code == .deny }

    /// Whether this is `.abstain`.
    @inlinable public var isAbstain: Bool { code == .abstain }

    /// The reason code of a `.deny(code)`; nil for a deny without one, and for every other decision.
    @inlinable public var denyReason: ReasonCode? { code == .deny ? reason : nil }

    /// `allow`, `deny`, `deny(0x87)` or `abstain`.
    public var description: String {
        switch code {
        case .allow: return "allow"
        case .deny: return reason.map { "deny(\($0))" } ?? "deny"
        case .abstain: return "abstain"
        }
    }
}

/// An answer given at once or later. Fast plugins answer `.now`; plugins that do I/O answer `.later` with a
/// future, which the host bounds by a deadline. A plugin must never block the event loop it is called on.
///
/// An enum, and a closed one: an answer is either known now or arrives later, and there is no third way. It
/// will not gain cases within a major version of the API, so a `switch` over it needs no `default:`.
public enum PluginAnswer<Value: Sendable>: Sendable {
    /// The answer is known now.
    case now(Value)
    /// The answer arrives on this future.
    case later(EventLoopFuture<Value>)
}
