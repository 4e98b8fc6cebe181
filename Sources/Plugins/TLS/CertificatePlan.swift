import Foundation

/// What `generate_certificates true` would do for a TLS listener (`DefaultCertificates.ensure`), found out
/// without creating or writing anything: what `midge check-config` reports.
public enum CertificatePlan: Equatable, Sendable {
    /// The listener's certfile or keyfile exists (or is not set): nothing is generated.
    case none
    /// A complete `server.crt` and `server.key` pair from an earlier start is in this directory.
    case reuse(String)
    /// A CA and a server certificate would be written to this directory; `reason` says why it is the fallback.
    case generate(String, reason: String)
    /// Start-up would fail.
    case failure(String)

    /// The plan for a listener with this `certfile` and `keyfile`, with `MIDGE_STATE_DIR` (or `TMPDIR`) from
    /// `environment` for the fallback directory.
    public init(certfile: String, keyfile: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let manager = FileManager.default
        guard !manager.fileExists(atPath: certfile), !manager.fileExists(atPath: keyfile) else {
            self = .none
            return
        }
        let directory = parentDirectory(certfile)
        let fallback = DefaultCertificates.fallbackDirectory(environment: environment)
        if let found = Self.existing(in: directory) {
            self = found
            return
        }
        do {
            _ = try DefaultCertificates.serverNames(environment: environment)
        } catch {
            self = .failure("\(error)")
            return
        }
        if Self.writable(directory) {
            self = Self.caProblem(in: [directory]).map(Self.failure) ?? .generate(directory, reason: "")
        } else if let found = Self.existing(in: fallback) {
            self = found
        } else if Self.writable(fallback) {
            self = Self.caProblem(in: [fallback, directory]).map(Self.failure)
                ?? .generate(fallback, reason: " (\(directory) is not writable)")
        } else {
            self = .failure("neither \(directory) nor the fallback \(fallback) is writable")
        }
    }

    /// `.reuse` for a complete server pair in `directory`, `.failure` for half of one, nil for none.
    private static func existing(in directory: String) -> CertificatePlan? {
        let certificate = join(directory, DefaultCertificates.serverCertificateFile)
        let key = join(directory, DefaultCertificates.serverKeyFile)
        switch (FileManager.default.fileExists(atPath: certificate), FileManager.default.fileExists(atPath: key)) {
        case (true, true): return .reuse(directory)
        case (true, false): return .failure("\(certificate) exists but \(key) does not: supply both, or remove \(certificate) to generate new ones")
        case (false, true): return .failure("\(key) exists but \(certificate) does not: supply both, or remove \(key) to generate new ones")
        case (false, false): return nil
        }
    }

    /// The first of `directories` with a CA certificate but no CA key (which cannot sign), as an error message.
    private static func caProblem(in directories: [String]) -> String? {
        for directory in directories {
            let certificate = join(directory, DefaultCertificates.caCertificateFile)
            let key = join(directory, DefaultCertificates.caKeyFile)
            guard FileManager.default.fileExists(atPath: certificate) else { continue }
            return FileManager.default.fileExists(atPath: key) ? nil
                : "\(certificate) exists without \(key), so no server certificate can be signed"
        }
        return nil
    }

    /// Whether files could be created in `path`: it, or the nearest directory above it that exists, is
    /// writable (start-up would create the missing ones).
    private static func writable(_ path: String) -> Bool {
        var current = path
        while !FileManager.default.fileExists(atPath: current) {
            let parent = parentDirectory(current)
            if parent == current { return false }
            current = parent
        }
        return access(current, W_OK | X_OK) == 0
    }
}
