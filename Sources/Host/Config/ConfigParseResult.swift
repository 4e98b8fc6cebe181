/// A configuration read to the end (`ConfigParser.loadCollectingErrors`): every error found, and the settings of
/// the lines that had none.
public struct ConfigParseResult: Sendable {
    /// The settings read; incomplete when `errors` is not empty, so only for reporting then.
    public var config: BrokerConfig
    /// Every error, in the order found: lines in file order (included files where `include_dir` names them),
    /// then the checks that need the whole configuration.
    public var errors: [ConfigError]

    /// A result with these settings and errors.
    public init(config: BrokerConfig, errors: [ConfigError]) {
        self.config = config
        self.errors = errors
    }

    /// The config, or the first error.
    public func get() throws -> BrokerConfig {
        if let first = errors.first { throw first }
        return config
    }
}
