import PluginAPI

extension ConfigCheck {
    /// The report's "Statistics:" section: when plugins that publish the broker's statistics
    /// (`StatisticsPublisher`: the `sys` hook, an implicit hook of `config`; the `prometheus` hook, one of
    /// `plugins`) would run, each statistic of `BrokerStatistics.all` they publish, and where. Empty when none
    /// would.
    static func statisticsLines(config: BrokerConfig, registry: PluginRegistry, plugins: [any Plugin]) -> [String] {
        let implicit = (try? Broker.implicitHooks(config: config, registry: registry) { name in
            Broker.pluginContext(name, config: config, checkOnly: true)
        }) ?? []
        return statisticsLines(plugins: implicit.map { $0.hook as any Plugin } + plugins)
    }

    /// The "Statistics:" section for the `StatisticsPublisher`s among `plugins`.
    static func statisticsLines(plugins: [any Plugin]) -> [String] {
        var publishers: [(form: StatisticsForm, place: String)] = []
        for case let publisher as any StatisticsPublisher in plugins
            where !publishers.contains(where: { $0 == (publisher.statisticsForm, publisher.statisticsPlace) }) {
            publishers.append((publisher.statisticsForm, publisher.statisticsPlace))
        }
        guard !publishers.isEmpty else { return [] }
        let sys = publishers.contains { $0.form == .sys }
        let metric = publishers.contains { $0.form == .metric }
        var lines = ["", "Statistics (\(publishers.map(\.place).joined(separator: ", "))):"]
        for statistic in BrokerStatistics.all {
            var places: [String] = []
            if sys, let topics = statistic.sys { places += topics.described(label: statistic.label) }
            if metric, let name = statistic.describedMetric { places.append(name) }
            guard !places.isEmpty else { continue }
            lines.append("  \(statistic.name) (\(statistic.kind)): \(places.joined(separator: ", "))")
        }
        return lines
    }
}
