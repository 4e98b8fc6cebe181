// How a directive's value is read: one word, the rest of the line, a boolean, a number in a range, a keyword,
// a path, a duration. Each reader throws the error the line gets; `ConfigValue` names the readers the
// directive table (ConfigDirectives.swift) uses.

/// How one directive's value is read, and into what type.
struct ConfigValue<T>: Sendable {
    /// What the value looks like, for the table and its tests.
    let kind: ConfigValueKind
    let read: @Sendable (inout ConfigFileParser, ConfigLine) throws -> T

    init(_ kind: ConfigValueKind, read: @escaping @Sendable (inout ConfigFileParser, ConfigLine) throws -> T) {
        self.kind = kind
        self.read = read
    }

    /// The value read, then changed by `transform`.
    func map<U>(_ transform: @escaping @Sendable (T) -> U) -> ConfigValue<U> {
        let read = self.read
        return ConfigValue<U>(kind) { parser, line in transform(try read(&parser, line)) }
    }
}

/// What a directive's value looks like: a description and one valid example (the table's tests use it).
struct ConfigValueKind: Sendable, Equatable {
    var description: String
    var example: String
}

extension ConfigValue where T == Bool {
    /// `true` / `false` (or `1` / `0`).
    static var bool: ConfigValue<Bool> {
        ConfigValue(ConfigValueKind(description: "true or false", example: "true")) { parser, line in
            try parser.bool(line.directive, line.value, line.location)
        }
    }
}

extension ConfigValue where T == Int {
    /// A whole number in `range`; `rangeText` says what is allowed when it is out of range.
    static func int(_ range: ClosedRange<Int>, _ rangeText: String? = nil) -> ConfigValue<Int> {
        ConfigValue(ConfigValueKind(description: "an integer, \(rangeText ?? "\(range.lowerBound)...\(range.upperBound)")",
                                    example: String(range.lowerBound))) { parser, line in
            try parser.int(line.directive, line.value, line.location, range, rangeText)
        }
    }

    /// Seconds with up to three decimals, in 0...`maximum`, as milliseconds.
    static func milliseconds(maximum: Int) -> ConfigValue<Int> {
        ConfigValue(ConfigValueKind(description: "seconds (0.5 allowed), 0...\(maximum)", example: "2")) { parser, line in
            try parser.milliseconds(line.directive, line.value, line.location, maximum: maximum)
        }
    }

    /// `<n><h|d|w|m|y>`, as seconds.
    static var expiration: ConfigValue<Int> {
        ConfigValue(ConfigValueKind(description: "a duration such as 14d", example: "14d")) { parser, line in
            try parser.expiration(line.directive, line.value, line.location)
        }
    }
}

extension ConfigValue where T == String {
    /// One word.
    static var word: ConfigValue<String> {
        ConfigValue(ConfigValueKind(description: "one word", example: "x")) { parser, line in
            try parser.singleWord(line.directive, line.value, line.location)
        }
    }

    /// Free text to the end of the line.
    static var text: ConfigValue<String> {
        ConfigValue(ConfigValueKind(description: "text to the end of the line", example: "x")) { parser, line in
            try parser.restOfLine(line.directive, line.value, line.location)
        }
    }

    /// A path to the end of the line, made absolute against the directory of the file that names it.
    static var path: ConfigValue<String> {
        ConfigValue(ConfigValueKind(description: "a path", example: "x")) { parser, line in
            parser.path(try parser.restOfLine(line.directive, line.value, line.location), line.location)
        }
    }

    /// One of `words`; `expected` lists them for the error.
    static func oneOf(_ words: [String], expected: String) -> ConfigValue<String> {
        ConfigValue(ConfigValueKind(description: expected, example: words[0])) { parser, line in
            try parser.keyword(line.directive, line.value, line.location, words, expected: expected)
        }
    }

    /// Anything at all: the value is not looked at.
    static var anything: ConfigValue<String> {
        ConfigValue(ConfigValueKind(description: "anything (not read)", example: "x")) { _, line in line.value }
    }
}

extension ConfigValue where T == LogFormat {
    /// `text` or `json`.
    static var logFormat: ConfigValue<LogFormat> {
        ConfigValue<String>.oneOf(LogFormat.allCases.map(\.rawValue), expected: "text or json")
            .map { LogFormat(rawValue: $0) ?? .text }
    }
}

// MARK: - Readers

extension ConfigFileParser {
    /// A value that is one word (bool, number, keyword). A trailing `# comment` is
    /// allowed; any other extra word is an error (mosquitto would silently drop it).
    func singleWord(_ directive: String, _ value: String, _ location: ConfigLocation) throws -> String {
        let words = ConfigFileParser.words(value)
        guard let first = words.first, !first.hasPrefix("#") else {
            throw error(location, "missing value for '\(directive)'")
        }
        if words.count > 1 && !words[1].hasPrefix("#") {
            throw error(location, "unexpected '\(words[1])' after the value of '\(directive)' "
                + "(one value per line; comments must be on their own line)")
        }
        return first
    }

    /// A value that runs to the end of the line (paths, free text), as in mosquitto.
    mutating func restOfLine(_ directive: String, _ value: String, _ location: ConfigLocation) throws -> String {
        guard !value.isEmpty else { throw error(location, "missing value for '\(directive)'") }
        if value.hasPrefix("#") { throw error(location, "missing value for '\(directive)'") }
        if value.contains(" #") || value.contains("\t#") {
            warn(location, "the value of '\(directive)' contains '#': there are no trailing comments, "
                + "so it is part of the value ('\(value)')")
        }
        return value
    }

    func bool(_ directive: String, _ value: String, _ location: ConfigLocation) throws -> Bool {
        let word = try singleWord(directive, value, location)
        switch word {
        case "true", "1": return true
        case "false", "0": return false
        default: throw error(location, "invalid value '\(word)' for '\(directive)': expected true or false")
        }
    }

    func int(_ directive: String, _ value: String, _ location: ConfigLocation, _ range: ClosedRange<Int>,
             _ rangeText: String? = nil) throws -> Int {
        let word = try singleWord(directive, value, location)
        guard let number = Int(word) else {
            throw error(location, "invalid value '\(word)' for '\(directive)': expected an integer")
        }
        guard range.contains(number) else {
            let expected = rangeText ?? "between \(range.lowerBound) and \(range.upperBound)"
            throw error(location, "invalid value \(number) for '\(directive)': must be \(expected)")
        }
        return number
    }

    /// One word out of `words`.
    func keyword(_ directive: String, _ value: String, _ location: ConfigLocation, _ words: [String],
                 expected: String) throws -> String {
        let word = try singleWord(directive, value, location)
        guard words.contains(word) else {
            throw error(location, "invalid value '\(word)' for '\(directive)': expected \(expected)")
        }
        return word
    }

    /// A number of seconds, with up to three decimals (`0.25`), in 0...`maximum`, as milliseconds.
    func milliseconds(_ directive: String, _ value: String, _ location: ConfigLocation, maximum: Int) throws -> Int {
        let word = try singleWord(directive, value, location)
        let parts = word.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let isDigits = { (text: String) in !text.isEmpty && text.allSatisfy { ("0"..."9").contains($0) } }
        guard isDigits(parts[0]), parts.count == 1 || isDigits(parts[1]) && parts[1].count <= 3,
              let whole = Int(parts[0]) else {
            throw error(location, "invalid value '\(word)' for '\(directive)': expected a number of seconds such as 2 or 0.5")
        }
        let fraction = parts.count == 2 ? Int(parts[1].padding(toLength: 3, withPad: "0", startingAt: 0))! : 0
        guard whole <= maximum, whole < maximum || fraction == 0 else {
            throw error(location, "invalid value \(word) for '\(directive)': must be between 0 and \(maximum) seconds")
        }
        return whole * 1000 + fraction
    }

    /// `<n><h|d|w|m|y>`: hours, days, weeks, months (30 days), years (365 days).
    func expiration(_ directive: String, _ value: String, _ location: ConfigLocation) throws -> Int {
        let word = try singleWord(directive, value, location)
        let multipliers: [Character: Int] = ["h": 3600, "d": 86400, "w": 86400 * 7, "m": 86400 * 30, "y": 86400 * 365]
        guard let unit = word.last, let multiplier = multipliers[unit],
              let count = Int(word.dropLast()), count > 0 else {
            throw error(location, "invalid value '\(word)' for '\(directive)': expected a positive whole number "
                + "followed by h, d, w, m or y (e.g. 14d)")
        }
        let (seconds, overflow) = count.multipliedReportingOverflow(by: multiplier)
        guard !overflow else {
            throw error(location, "invalid value '\(word)' for '\(directive)': too large")
        }
        return seconds
    }

    func path(_ value: String, _ location: ConfigLocation) -> String {
        ConfigPathResolver.absolute(value, relativeTo: location.baseDirectory)
    }
}
