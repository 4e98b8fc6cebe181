import Foundation
import Testing
import TLSPlugin

/// Generated per-instance certificates: properties checked with the openssl command, never overwritten.
@Suite(.serialized) struct TLSCertificateTests {
    private func text(_ path: String) -> String {
        runCommand(["openssl", "x509", "-noout", "-text", "-in", path]).output
    }

    private func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? NSNumber)?.intValue ?? -1
    }

    @Test func firstStartGeneratesACAAndAServerCertificate() throws {
        let dir = TLSTempDirectory()
        defer { dir.remove() }
        let started = Date()
        let files = try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil,
                                                   extraNames: ["broker.internal"], environment: [:])
        let elapsed = Date().timeIntervalSince(started)
        print("DefaultCertificates.ensure generated CA + server certificate in \(Int(elapsed * 1000)) ms")
        #expect(files.generated)
        #expect(!files.usedFallback)
        #expect(files.directory == dir.path)
        #expect(files.caCertificate == dir.file("ca.crt"))
        #expect(files.serverCertificate == dir.file("server.crt"))
        #expect(files.serverKey == dir.file("server.key"))
        #expect(elapsed < 2)  // about a millisecond; generous for a loaded machine

        // Keys private, certificates readable.
        #expect(mode(dir.file("server.key")) == 0o600)
        #expect(mode(dir.file("ca.key")) == 0o600)
        #expect(mode(dir.file("server.crt")) == 0o644)
        #expect(mode(dir.file("ca.crt")) == 0o644)
        // No temporary files left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(names == ["ca.crt", "ca.key", "server.crt", "server.key"])

        let ca = text(dir.file("ca.crt"))
        #expect(ca.contains("CA:TRUE"))
        #expect(ca.contains("Certificate Sign, CRL Sign"))
        #expect(ca.contains("id-ecPublicKey"))
        #expect(ca.contains("prime256v1"))

        let server = text(dir.file("server.crt"))
        #expect(server.contains("id-ecPublicKey"))
        #expect(server.contains("prime256v1"))
        #expect(server.contains("ecdsa-with-SHA256"))
        #expect(server.contains("CA:FALSE"))
        #expect(server.contains("TLS Web Server Authentication"))
        #expect(server.contains("DNS:localhost"))
        #expect(server.contains("IP Address:127.0.0.1"))
        #expect(server.contains("IP Address:0:0:0:0:0:0:0:1"))
        #expect(server.contains("DNS:broker.internal"))
        let host = runCommand(["hostname"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        if !host.isEmpty && host != "localhost" {
            #expect(server.contains("DNS:\(host.lowercased())"), "\(host)")
        }
        #expect(files.names.contains("localhost"))

        // The server certificate chains to the CA, for TLS server use.
        let verify = runCommand(["openssl", "verify", "-purpose", "sslserver", "-CAfile", dir.file("ca.crt"),
                                 dir.file("server.crt")])
        #expect(verify.status == 0, "\(verify.output)")
        // The key is the certificate's.
        let certificateKey = runCommand(["openssl", "x509", "-noout", "-pubkey", "-in", dir.file("server.crt")]).output
        let keyKey = runCommand(["openssl", "pkey", "-pubout", "-in", dir.file("server.key")]).output
        #expect(certificateKey == keyKey)
    }

    @Test func namesFromTheEnvironment() throws {
        let dir = TLSTempDirectory()
        defer { dir.remove() }
        _ = try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil, environment: [
            "MIDGE_TLS_SANS": " mqtt.example.com,10.1.2.3 , *.apps.example.com,fd00::17,,MQTT.example.com",
        ])
        let server = text(dir.file("server.crt"))
        #expect(server.contains("DNS:mqtt.example.com"))
        #expect(server.contains("IP Address:10.1.2.3"))
        #expect(server.contains("DNS:*.apps.example.com"))
        #expect(server.contains("IP Address:FD00:0:0:0:0:0:0:17"))
        #expect(server.components(separatedBy: "mqtt.example.com").count == 2)  // duplicates dropped

        let bad = TLSTempDirectory()
        defer { bad.remove() }
        #expect {
            try DefaultCertificates.ensure(directory: bad.path, writableFallback: nil,
                                           environment: ["MIDGE_TLS_SANS": "good.example,not a name"])
        } throws: { error in
            "\(error)".contains("MIDGE_TLS_SANS") && "\(error)".contains("'not a name'")
        }
        #expect(!FileManager.default.fileExists(atPath: bad.file("ca.crt")))
    }

    @Test func existingFilesAreNeverOverwritten() throws {
        let dir = TLSTempDirectory()
        defer { dir.remove() }
        _ = try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil, environment: [:])
        let before = ["ca.crt", "ca.key", "server.crt", "server.key"].map { dir.read($0) }
        let again = try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil,
                                                   extraNames: ["new.example"], environment: [:])
        #expect(!again.generated)
        #expect(again.caCertificate == dir.file("ca.crt"))
        #expect(["ca.crt", "ca.key", "server.crt", "server.key"].map { dir.read($0) } == before)
    }

    @Test func deletingTheServerCertificateRegeneratesItFromTheSameCA() throws {
        let dir = TLSTempDirectory()
        defer { dir.remove() }
        _ = try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil, environment: [:])
        let ca = dir.read("ca.crt")
        let oldServer = dir.read("server.crt")
        try FileManager.default.removeItem(atPath: dir.file("server.crt"))
        try FileManager.default.removeItem(atPath: dir.file("server.key"))
        let files = try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil,
                                                   environment: ["MIDGE_TLS_SANS": "added.example"])
        #expect(files.generated)
        #expect(dir.read("ca.crt") == ca)
        #expect(dir.read("server.crt") != oldServer)
        #expect(text(dir.file("server.crt")).contains("DNS:added.example"))
        #expect(runCommand(["openssl", "verify", "-CAfile", dir.file("ca.crt"), dir.file("server.crt")]).status == 0)

        // Deleting everything makes a new CA.
        for name in ["ca.crt", "ca.key", "server.crt", "server.key"] {
            try FileManager.default.removeItem(atPath: dir.file(name))
        }
        _ = try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil, environment: [:])
        #expect(dir.read("ca.crt") != ca)
    }

    @Test func incompleteSetsAreErrorsNotOverwrites() throws {
        let dir = TLSTempDirectory()
        defer { dir.remove() }
        dir.write("server.crt", "mine")
        #expect {
            try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil, environment: [:])
        } throws: { "\($0)".contains("server.key") && "\($0)".contains("does not") }
        #expect(dir.read("server.crt") == "mine")

        let caOnly = TLSTempDirectory()
        defer { caOnly.remove() }
        let authority = try CertificateAuthority.generate(commonName: "Supplied CA")
        caOnly.write("ca.crt", authority.certificatePEM)
        #expect {
            try DefaultCertificates.ensure(directory: caOnly.path, writableFallback: nil, environment: [:])
        } throws: { "\($0)".contains("ca.key") }
        #expect(caOnly.read("ca.crt") == authority.certificatePEM)

        // A supplied CA with its key signs the generated server certificate.
        caOnly.write("ca.key", authority.privateKeyPEM)
        let files = try DefaultCertificates.ensure(directory: caOnly.path, writableFallback: nil, environment: [:])
        #expect(files.generated)
        #expect(caOnly.read("ca.crt") == authority.certificatePEM)
        #expect(runCommand(["openssl", "verify", "-CAfile", caOnly.file("ca.crt"), caOnly.file("server.crt")]).status == 0)
    }

    @Test func suppliedServerCertificatesAreUsedAsTheyAre() throws {
        let dir = TLSTempDirectory()
        defer { dir.remove() }
        dir.write("server.crt", "supplied certificate")
        dir.write("server.key", "supplied key")
        let files = try DefaultCertificates.ensure(directory: dir.path, writableFallback: nil, environment: [:])
        #expect(!files.generated)
        #expect(files.caCertificate == nil)  // certificates from elsewhere, no ca.crt
        #expect(dir.read("server.crt") == "supplied certificate")
        #expect(!FileManager.default.fileExists(atPath: dir.file("ca.crt")))
    }

    @Test func anUnwritableDirectoryFallsBackAndSaysWhere() throws {
        let base = TLSTempDirectory()
        defer { base.remove() }
        // A directory that cannot be created (its parent is a file): unwritable even for root.
        base.write("file", "x")
        let unwritable = base.file("file/config")
        let fallback = base.file("state/certs")
        let files = try DefaultCertificates.ensure(directory: unwritable, writableFallback: fallback, environment: [:])
        #expect(files.usedFallback)
        #expect(files.generated)
        #expect(files.directory == fallback)
        #expect(files.caCertificate == fallback + "/ca.crt")
        #expect(mode(fallback) == 0o700)
        #expect(mode(fallback + "/server.key") == 0o600)
        // The next start finds them there.
        let again = try DefaultCertificates.ensure(directory: unwritable, writableFallback: fallback, environment: [:])
        #expect(!again.generated)
        #expect(again.usedFallback)
        #expect(again.serverCertificate == files.serverCertificate)
        // Without a fallback it is an error that names the directory.
        #expect {
            try DefaultCertificates.ensure(directory: unwritable, writableFallback: nil, environment: [:])
        } throws: { "\($0)".contains(unwritable) }
    }

    @Test func aMissingDirectoryIsCreated() throws {
        let base = TLSTempDirectory()
        defer { base.remove() }
        let files = try DefaultCertificates.ensure(directory: base.file("a/b"), writableFallback: nil, environment: [:])
        #expect(files.generated)
        #expect(mode(base.file("a/b")) == 0o700)
    }

    @Test func concurrentFirstStartsShareOneCA() async throws {
        let dir = TLSTempDirectory()
        defer { dir.remove() }
        let path = dir.path
        let results = try await withThrowingTaskGroup(of: DefaultCertificates.Files.self) { group in
            for _ in 0..<4 {
                group.addTask { try DefaultCertificates.ensure(directory: path, writableFallback: nil, environment: [:]) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter(\.generated).count == 1)
        #expect(runCommand(["openssl", "verify", "-CAfile", dir.file("ca.crt"), dir.file("server.crt")]).status == 0)
    }

    @Test func clientCertificatesAndCRLsFromTheAuthority() throws {
        let dir = TLSTempDirectory()
        defer { dir.remove() }
        let authority = try CertificateAuthority.generate(commonName: "Test CA")
        let client = try authority.issueClientCertificate(subject: [("O", "Example"), ("CN", "alice")])
        dir.write("ca.crt", authority.certificatePEM)
        dir.write("client.crt", client.certificatePEM)
        dir.write("ca.crl", try authority.revocationList(revoking: [client.certificatePEM]))
        let certificate = text(dir.file("client.crt"))
        #expect(certificate.contains("TLS Web Client Authentication"))
        #expect(certificate.contains("Subject: O = Example, CN = alice"))
        #expect(runCommand(["openssl", "verify", "-purpose", "sslclient", "-CAfile", dir.file("ca.crt"),
                            dir.file("client.crt")]).status == 0)
        let revoked = runCommand(["openssl", "verify", "-crl_check", "-CAfile", dir.file("ca.crt"),
                                  "-CRLfile", dir.file("ca.crl"), dir.file("client.crt")])
        #expect(revoked.status != 0)
        #expect(revoked.output.contains("certificate revoked"))
        // A loaded CA round-trips; a key that is not the CA's is refused.
        let loaded = try CertificateAuthority(certificatePEM: authority.certificatePEM, privateKeyPEM: authority.privateKeyPEM)
        #expect(loaded.certificatePEM == authority.certificatePEM)
        #expect(throws: CertificateError.self) {
            try CertificateAuthority(certificatePEM: authority.certificatePEM, privateKeyPEM: client.privateKeyPEM)
        }
    }
}
