import Foundation
import Testing
import TLSPlugin

/// What `midge check-config` says `generate_certificates true` would do, found without writing anything.
@Suite("Certificate plan (check-config)")
struct CertificatePlanTests {
    private func listener(_ directory: String) -> (certfile: String, keyfile: String) {
        (directory + "/certs/tls.crt", directory + "/certs/tls.key")
    }

    private func plan(_ files: (certfile: String, keyfile: String), environment: [String: String]) -> CertificatePlan {
        CertificatePlan(certfile: files.certfile, keyfile: files.keyfile, environment: environment)
    }

    @Test("missing files: would generate in the certfile's directory, which is not created")
    func generates() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("midge-plan-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let environment = ["MIDGE_STATE_DIR": directory + "/state"]

        #expect(plan(listener(directory), environment: environment) == .generate(directory + "/certs", reason: ""))
        #expect(!FileManager.default.fileExists(atPath: directory + "/certs"))

        // A pair from an earlier start is reused; half a pair is an error; the listener's own files win.
        try FileManager.default.createDirectory(atPath: directory + "/certs", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: directory + "/certs/server.crt", contents: Data()))
        guard case .failure(let message) = plan(listener(directory), environment: environment) else {
            Issue.record("half a pair must be an error")
            return
        }
        #expect(message.contains("server.key does not"))
        #expect(FileManager.default.createFile(atPath: directory + "/certs/server.key", contents: Data()))
        #expect(plan(listener(directory), environment: environment) == .reuse(directory + "/certs"))
        #expect(FileManager.default.createFile(atPath: directory + "/certs/tls.crt", contents: Data()))
        #expect(plan(listener(directory), environment: environment) == CertificatePlan.none)
        #expect(!FileManager.default.fileExists(atPath: directory + "/state"))
    }
}
