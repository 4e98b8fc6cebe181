import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import PluginAPI
import Testing
@testable import TLSPlugin

/// Real handshakes on loopback: an NIOSSL client against the `tls` transport.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct TLSTransportTests {
    @Test func handshakeWithTheRightCAReachesTheInitializer() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls())

        let outcome = await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM)
        #expect(outcome == .echoed("ping"))
        let facts = try #require(server.facts.first)
        #expect(facts.listener == "8883")
        #expect(facts.certificateSubject == nil)  // no client certificate is asked for
        #expect(facts.usernameFromCertificate == nil)
        #expect(server.initializerSawSSLHandler == [true])
        await server.stop()
    }

    @Test func aClientTrustingAnotherCAFails() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls())
        let outcome = await tlsRoundTrip(port: server.port, trust: fixture.stranger.certificatePEM)
        #expect(!outcome.succeeded)
        #expect(server.facts.isEmpty)
        await server.stop()
    }

    @Test func theServerNameMustBeInTheCertificate() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        // Only a DNS name: NIOSSL also accepts an IP address SAN that matches the connected address.
        let named = try fixture.authority.issueServerCertificate(names: ["localhost"])
        let server = try await EchoTLSServer(tls: fixture.tls { $0.certfile = fixture.directory.write("named.crt", named.certificatePEM); $0.keyfile = fixture.directory.write("named.key", named.privateKeyPEM) })
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   serverName: "elsewhere.example").succeeded == false)
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   serverName: "localhost") == .echoed("ping"))
        await server.stop()
    }

    @Test func requireCertificateAcceptsAClientOfTheCAAndGivesItsNames() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls { $0.cafile = fixture.caFile; $0.requireCertificate = true; $0.useIdentityAsUsername = true })
        let outcome = await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                         identity: fixture.alice)
        #expect(outcome == .echoed("ping"))
        let facts = try #require(server.facts.first)
        #expect(facts.certificateSubject == "CN=alice,O=Midge tests,C=GB")
        #expect(facts.certificateCommonName == "alice")
        #expect(facts.usernameFromCertificate == .commonName)
        #expect(facts.certificateUsername == "alice")
        await server.stop()
    }

    @Test func useSubjectAsUsernameGivesTheRFC2253Subject() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls { $0.cafile = fixture.caFile; $0.requireCertificate = true; $0.useSubjectAsUsername = true })
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.alice) == .echoed("ping"))
        let facts = try #require(server.facts.first)
        #expect(facts.usernameFromCertificate == .subject)
        #expect(facts.certificateUsername == "CN=alice,O=Midge tests,C=GB")
        await server.stop()
    }

    @Test func requireCertificateRefusesClientsWithoutOneOrFromAnotherCA() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls { $0.cafile = fixture.caFile; $0.requireCertificate = true })
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM).succeeded == false)
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.mallory).succeeded == false)
        #expect(server.facts.isEmpty)
        // The listener keeps serving good clients.
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.bob) == .echoed("ping"))
        await server.stop()
    }

    @Test func capathWorksLikeCafile() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let capath = fixture.directory.file("capath")
        try FileManager.default.createDirectory(atPath: capath, withIntermediateDirectories: true)
        let hash = runCommand(["openssl", "x509", "-noout", "-subject_hash", "-in", fixture.caFile])
        try #require(hash.status == 0)
        try fixture.authority.certificatePEM.write(
            toFile: capath + "/" + hash.output.trimmingCharacters(in: .whitespacesAndNewlines) + ".0",
            atomically: true, encoding: .utf8)
        let server = try await EchoTLSServer(tls: fixture.tls { $0.capath = capath; $0.requireCertificate = true })
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.alice) == .echoed("ping"))
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.mallory).succeeded == false)
        await server.stop()
    }

    @Test func aRevokedClientCertificateIsRefused() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let crl = fixture.directory.write("ca.crl", try fixture.authority.revocationList(revoking: [fixture.bob.certificatePEM]))
        let server = try await EchoTLSServer(tls: fixture.tls { $0.cafile = fixture.caFile; $0.requireCertificate = true; $0.crlfile = crl })
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.bob).succeeded == false)
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.alice) == .echoed("ping"))
        #expect(server.facts.map(\.certificateCommonName) == ["alice"])
        await server.stop()
    }

    @Test func aCRLMadeByTheOpenSSLCommandWorksToo() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let dir = fixture.directory
        dir.write("ca.key", fixture.authority.privateKeyPEM)
        dir.write("bob.crt", fixture.bob.certificatePEM)
        dir.write("index.txt", "")
        dir.write("crlnumber", "01\n")
        dir.write("openssl.cnf", """
            [ ca ]
            default_ca = test
            [ test ]
            database = \(dir.file("index.txt"))
            crlnumber = \(dir.file("crlnumber"))
            default_md = sha256
            default_crl_days = 30
            """)
        let revoke = runCommand(["openssl", "ca", "-config", dir.file("openssl.cnf"), "-cert", fixture.caFile,
                                 "-keyfile", dir.file("ca.key"), "-revoke", dir.file("bob.crt")])
        try #require(revoke.status == 0, "\(revoke.output)")
        let crl = runCommand(["openssl", "ca", "-config", dir.file("openssl.cnf"), "-cert", fixture.caFile,
                              "-keyfile", dir.file("ca.key"), "-gencrl", "-out", dir.file("openssl.crl")])
        try #require(crl.status == 0, "\(crl.output)")
        let server = try await EchoTLSServer(tls: fixture.tls { $0.cafile = fixture.caFile; $0.requireCertificate = true; $0.crlfile = dir.file("openssl.crl") })
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.bob).succeeded == false)
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   identity: fixture.alice) == .echoed("ping"))
        await server.stop()
    }

    @Test func tlsVersion13RefusesATLS12Client() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls { $0.tlsVersion = "tlsv1.3" })
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM,
                                   maximumVersion: .tlsv12).succeeded == false)
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM) == .echoed("ping"))
        await server.stop()
    }

    @Test func ciphersRestrictTLS12() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        // An ECDSA certificate cannot be used with RSA-authenticated suites: nothing is left for TLS 1.2.
        let rsaOnly = try await EchoTLSServer(tls: fixture.tls { $0.ciphers = "ECDHE-RSA-AES128-GCM-SHA256" })
        #expect(await tlsRoundTrip(port: rsaOnly.port, trust: fixture.authority.certificatePEM,
                                   maximumVersion: .tlsv12).succeeded == false)
        await rsaOnly.stop()
        let ecdsa = try await EchoTLSServer(tls: fixture.tls { $0.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384" })
        #expect(await tlsRoundTrip(port: ecdsa.port, trust: fixture.authority.certificatePEM,
                                   maximumVersion: .tlsv12) == .echoed("ping"))
        await ecdsa.stop()
    }

    @Test func aPlainClientIsRefusedAndTheListenerKeepsServing() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls())
        // An MQTT 3.1.1 CONNECT in clear text.
        let connect: [UInt8] = [0x10, 0x10, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C,
                                0x00, 0x04, 0x70, 0x6C, 0x61, 0x69]
        let reply = try plainExchange(port: server.port, bytes: connect)
        // The server answers with a TLS alert record (content type 21) or nothing, never MQTT, then closes.
        #expect(reply.first == nil || reply.first == 21, "\(reply)")
        #expect(server.facts.isEmpty)
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM) == .echoed("ping"))
        await server.stop()
    }

    @Test func aClientThatNeverHandshakesIsDisconnected() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls(), handshakeTimeout: .milliseconds(200))
        let started = Date()
        let reply = try plainExchange(port: server.port, bytes: [])
        #expect(reply.isEmpty)
        #expect(Date().timeIntervalSince(started) < 4)  // closed by the server, not by the 5 s read timeout
        #expect(server.facts.isEmpty)
        await server.stop()
    }

    @Test func anInitializerThatClosesTheConnectionIsHonoured() async throws {
        // The host's max_connections path: its initializer closes the channel instead of adding MQTT.
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let transport = try TLSDecorator(tls: fixture.tls(), name: "8883", origin: nil, logger: tlsTestLogger)
        let listener = plainListener()
        let port = try await listener.listen(on: MultiThreadedEventLoopGroup.singleton, initializer: transport.decorate { channel, _ in
            channel.close()
        })
        #expect(await tlsRoundTrip(port: port, trust: fixture.authority.certificatePEM) == .failed("closed"))
        await listener.close()
    }

    @Test func handshakeFailuresAreSummarised() {
        let error = BoringSSLError.sslError([])
        #expect(TLSHandshakeGate.summary(of: error) == "\(error)")
    }

    @Test func reloadSwapsCertificatesAndKeepsTheOldOnFailure() async throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let server = try await EchoTLSServer(tls: fixture.tls())
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM) == .echoed("ping"))

        // A broken key: reload fails, naming keyfile, and the old certificate keeps serving.
        fixture.directory.write("server.key", "not a key")
        await #expect(throws: PluginError.self) { try await server.transport.reload() }
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM) == .echoed("ping"))

        // A new CA and server certificate: new handshakes use them.
        let other = try CertificateAuthority.generate(commonName: "Rotated CA")
        let rotated = try other.issueServerCertificate(names: ["localhost"])
        fixture.directory.write("server.crt", rotated.certificatePEM)
        fixture.directory.write("server.key", rotated.privateKeyPEM)
        try await server.transport.reload()
        #expect(await tlsRoundTrip(port: server.port, trust: other.certificatePEM) == .echoed("ping"))
        #expect(await tlsRoundTrip(port: server.port, trust: fixture.authority.certificatePEM).succeeded == false)
        await server.stop()
    }

    @Test func theRegistryCreatesTheTransportFromTheListenersTLSDirectives() throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let listener = ListenerSettings(name: "8883", port: 8883, tls: fixture.tls())
        let context = PluginContext(logger: tlsTestLogger, configDirectory: ".", listener: listener)
        var options = PluginOptions(pluginName: "tls")
        let plugin = try TLSDecorator.descriptor.make(&options, context)
        #expect(plugin is TLSDecorator)
        #expect(TLSDecorator.descriptor.name == "tls")
        #expect(TLSDecorator.descriptor.kind == .connectionDecorator)
        // The directives come typed; as strings they are unknown options, and without them there is nothing to do.
        var strings = PluginOptions(pluginName: "tls", entries: [("certfile", fixture.certFile, nil)])
        #expect(throws: PluginError.self) { try TLSDecorator.descriptor.make(&strings, context) }
        var bare = PluginOptions(pluginName: "tls")
        #expect(throws: PluginError.self) {
            try TLSDecorator.descriptor.make(&bare, PluginContext(logger: tlsTestLogger, configDirectory: "."))
        }
    }
}

/// Start-up errors name the directive, the file and what is wrong.
@Suite struct TLSStartupErrorTests {
    private func error(_ tls: ListenerTLSConfig) -> String? {
        do {
            _ = try TLSDecorator(tls: tls, name: "8883",
                                 origin: PluginOptions.Origin(file: "/etc/midge/midge.conf", line: 7),
                                 logger: tlsTestLogger)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func missingFiles() throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let missing = fixture.directory.file("nope.crt")
        let message = try #require(error(fixture.tls { $0.certfile = missing }))
        #expect(message.contains("/etc/midge/midge.conf:7:"))
        #expect(message.contains("certfile \(missing): no such file or directory"))
        #expect(try #require(error(fixture.tls { $0.keyfile = fixture.directory.file("nope.key") }))
            .contains("keyfile \(fixture.directory.file("nope.key")): no such file"))
        #expect(try #require(error(ListenerTLSConfig(keyfile: fixture.keyFile))).contains("certfile is required"))
        #expect(try #require(error(ListenerTLSConfig(certfile: fixture.certFile))).contains("keyfile is required"))
        #expect(try #require(error(fixture.tls { $0.cafile = fixture.directory.file("nope-ca.crt"); $0.requireCertificate = true }))
            .contains("cafile"))
        #expect(try #require(error(fixture.tls { $0.capath = fixture.directory.file("nope"); $0.requireCertificate = true }))
            .contains("capath"))
    }

    @Test func unreadableAndGarbageFiles() throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let garbage = fixture.directory.write("garbage.pem", "hello\n")
        #expect(try #require(error(fixture.tls { $0.certfile = garbage })).contains("certfile \(garbage): holds no PEM certificate"))
        #expect(try #require(error(fixture.tls { $0.keyfile = garbage })).contains("keyfile \(garbage): holds no PEM private key"))
        #expect(try #require(error(fixture.tls { $0.certfile = fixture.directory.path }))
            .contains("is a directory"))
        let crl = try #require(error(fixture.tls { $0.cafile = fixture.caFile; $0.requireCertificate = true; $0.crlfile = garbage }))
        #expect(crl.contains("crlfile \(garbage): holds no certificate revocation list"))
    }

    @Test func anEncryptedKeyIsNamed() throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let encrypted = fixture.directory.file("encrypted.key")
        let result = runCommand(["openssl", "pkey", "-in", fixture.keyFile, "-aes256", "-passout", "pass:secret",
                                 "-out", encrypted])
        try #require(result.status == 0, "\(result.output)")
        #expect(try #require(error(fixture.tls { $0.keyfile = encrypted })).contains("is encrypted"))
    }

    @Test func aKeyThatIsNotTheCertificatesIsNamed() throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let otherKey = fixture.directory.write("other.key", fixture.alice.privateKeyPEM)
        let message = try #require(error(fixture.tls { $0.keyfile = otherKey }))
        #expect(message.contains("keyfile \(otherKey): does not match the certificate in certfile \(fixture.certFile)"))
    }

    @Test func ciphersBoringSSLRefuses() throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        #expect(try #require(error(fixture.tls { $0.ciphers = "NO-SUCH-CIPHER" })).contains("ciphers 'NO-SUCH-CIPHER'"))
        #expect(try #require(error(fixture.tls { $0.ciphers = "!!!" })).contains("ciphers"))
        // Known but unusual names are fine; unknown ones next to known ones only warn.
        #expect(error(fixture.tls { $0.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256" }) == nil)
        #expect(error(fixture.tls { $0.ciphers = "HIGH:!aNULL:!MD5" }) == nil)
        #expect(try #require(error(fixture.tls { $0.ciphersTLS13 = "TLS_AES_128_CCM_SHA256" }))
            .contains("ciphers_tls1.3"))
        #expect(try #require(error(fixture.tls { $0.ciphersTLS13 = "TLS_AES_256_GCM_SHA384" }))
            .contains("cannot leave any out"))
        #expect(error(fixture.tls { $0.ciphersTLS13 = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256" }) == nil)
    }

    @Test func otherDirectives() throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        #expect(try #require(error(fixture.tls { $0.tlsVersion = "tlsv1.0" })).contains("tls_version 'tlsv1.0'"))
        #expect(try #require(error(fixture.tls { $0.requireCertificate = true }))
            .contains("require_certificate true needs cafile or capath"))
        #expect(try #require(error(fixture.tls { $0.tlsEngine = "pkcs11" })).contains("tls_engine"))
        #expect(error(fixture.tls { $0.dhparamfile = "/nonexistent" }) == nil)  // ignored, with a warning
        for version in ["tlsv1.1", "tlsv1.2", "tlsv1.3"] {
            #expect(error(fixture.tls { $0.tlsVersion = version }) == nil)
        }
    }

    @Test func aCRLFromAnotherCAIsRefused() throws {
        let fixture = try TLSFixture()
        defer { fixture.directory.remove() }
        let foreign = fixture.directory.write("foreign.crl", try fixture.stranger.revocationList(revoking: []))
        let message = try #require(error(fixture.tls { $0.cafile = fixture.caFile; $0.requireCertificate = true; $0.crlfile = foreign }))
        #expect(message.contains("CN=Stranger CA,O=Midge"))
        #expect(message.contains("no matching CA"))
    }
}

/// Sends `bytes` over plain TCP and returns what comes back before the server closes (at most 5 s).
func plainExchange(port: Int, bytes: [UInt8]) throws -> [UInt8] {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1024)
    while true {
        let count = recv(fd, &chunk, chunk.count, 0)
        if count <= 0 { break }
        received += chunk[0..<count]
    }
    return received
}
