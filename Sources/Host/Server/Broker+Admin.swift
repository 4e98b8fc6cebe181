import NIOCore
import PluginAPI

/// The admin HTTP listener (`admin_listener`).
extension Broker {
    /// `admin_listener`: serves `/healthz`, `/readyz` and the plugins' endpoints; `/readyz` says ready once
    /// `start()` has finished. Without it, plugins' endpoints are not served: one warning says so.
    func startAdminListener() async throws {
        let sources = zip(plugins, pluginConfigs).compactMap { plugin, origin -> AdminServer.EndpointSource? in
            guard let provider = plugin as? any HTTPEndpointProvider else { return nil }
            return AdminServer.EndpointSource(name: "plugin '\(origin.name)'", file: origin.file, line: origin.line,
                                              endpoints: provider.httpEndpoints)
        }
        guard let admin = config.adminListener else {
            let paths = sources.flatMap { $0.endpoints.map(\.path) }
            if !paths.isEmpty {
                logger.warning("Plugins publish HTTP endpoints (\(paths.joined(separator: ", "))) but no admin_listener is configured: they are not served.")
            }
            return
        }
        let server = try AdminServer(group: group, sources: sources, logger: logger)
        let port: Int
        do {
            port = try await server.bind(host: admin.bindAddress, port: admin.port)
        } catch {
            throw ConfigError(file: admin.file, line: admin.line,
                              message: "cannot listen on admin_listener port \(admin.port)\(admin.bindAddress.map { " at \($0)" } ?? ""): \(error)")
        }
        running.withLockedValue { running in
            running.adminServer = server
            running.adminPort = port
        }
        logger.notice("Admin HTTP listener on port \(port).")
    }
}
