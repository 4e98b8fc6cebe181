/// The version of the plugin API (this module, `PluginAPI`), a semantic version independent of the broker's.
///
/// What a change of each part means for plugin authors:
/// - **major**: a breaking change. Something a plugin may use was removed or changed: a plugin built against
///   another major version must be changed (or at least rebuilt and checked) before it works with this one.
/// - **minor**: additions only: new types, new protocol requirements that come with a default, new static
///   members of the open value types (`Decision`, `Access`, `PublishVerdict`, `AuthenticationStep`,
///   `DisconnectReason`, `CertificateUsername`), new conformances. A plugin built against an earlier minor
///   version of the same major version keeps compiling and keeps working unchanged.
/// - **patch**: no change to any declaration: documentation, or a host behaviour brought in line with what
///   the API already documents.
///
/// This is why the types a plugin inspects are structs with static members rather than enums: a new kind of
/// decision, access or disconnect reason is then a minor change, since it cannot break a plugin's `switch`
/// (which needs a `default:` over such a struct). The enums that remain (`PluginAnswer`) are closed sets and
/// will not gain cases within a major version.
public struct PluginAPIVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Incremented for a breaking change; then `minor` and `patch` start again at 0.
    public var major: Int
    /// Incremented for additions; then `patch` starts again at 0.
    public var minor: Int
    /// Incremented for changes that touch no declaration.
    public var patch: Int

    /// The version `major.minor.patch`.
    public init(major: Int, minor: Int, patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// The version of the plugin API this build of the broker provides.
    ///
    /// 2.0.0: listener and connection-decorator plugins get their listener's settings typed
    /// (`PluginContext.listener`: `ListenerSettings`, with `ListenerTLSConfig` for TLS) instead of option
    /// strings; a will passes the publish hooks.
    public static let current = PluginAPIVersion(major: 2, minor: 0, patch: 0)

    /// Whether a host providing this version can run a plugin built against `version`: the same major
    /// version, and no newer minor version than this one (a newer one may use additions this host lacks).
    public func isCompatible(withPluginBuiltAgainst version: PluginAPIVersion) -> Bool {
        version.major == major && version.minor <= minor
    }

    /// Orders by major, then minor, then patch.
    public static func < (lhs: PluginAPIVersion, rhs: PluginAPIVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    /// `major.minor.patch`, for example `1.0.0`.
    public var description: String { "\(major).\(minor).\(patch)" }
}
