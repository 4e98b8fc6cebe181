import CCrypto
import Logging
import NIOSSL
import PluginAPI
import TLSCipherCheck
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A TLS listener's directives, read and checked (files are read in `TLSServerState.load`).
struct TLSSettings: Sendable {
    var certfile: String
    var keyfile: String
    var cafile: String?
    var capath: String?
    var crlfile: String?
    var requireCertificate: Bool
    var usernameFromCertificate: CertificateUsername?
    var minimumVersion: TLSVersion
    var ciphers: String?
    /// Warnings to log once at start-up (directives Midge accepts but cannot honour fully).
    var warnings: [String] = []

    /// The TLS 1.3 suites BoringSSL offers; it has no way to choose among them.
    static let tls13Suites = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]

    /// Checks a listener's TLS directives; throws naming the directive at fault.
    init(_ tls: ListenerTLSConfig, pluginName plugin: String) throws {
        func fail(_ message: String) -> PluginError { PluginError(pluginName: plugin, message: message) }
        guard let certfile = tls.certfile, !certfile.isEmpty else {
            throw fail("certfile is required (the server certificate, PEM)")
        }
        guard let keyfile = tls.keyfile, !keyfile.isEmpty else {
            throw fail("keyfile is required (the server certificate's private key, PEM)")
        }
        self.certfile = certfile
        self.keyfile = keyfile
        cafile = tls.cafile.flatMap { $0.isEmpty ? nil : $0 }
        capath = tls.capath.flatMap { $0.isEmpty ? nil : $0 }
        crlfile = tls.crlfile.flatMap { $0.isEmpty ? nil : $0 }
        requireCertificate = tls.requireCertificate
        let identity = tls.useIdentityAsUsername
        let subject = tls.useSubjectAsUsername
        usernameFromCertificate = identity ? .commonName : subject ? .subject : nil
        if identity && subject {
            warnings.append("use_identity_as_username and use_subject_as_username are both set; the identity (CN) is used, as in Mosquitto")
        }
        if usernameFromCertificate != nil && !requireCertificate {
            warnings.append("\(identity ? "use_identity_as_username" : "use_subject_as_username") without require_certificate true: clients are not asked for a certificate, so every client is refused")
        }
        if requireCertificate && cafile == nil && capath == nil {
            throw fail("require_certificate true needs cafile or capath (the CAs that sign client certificates)")
        }
        if crlfile != nil && cafile == nil && capath == nil {
            throw fail("crlfile needs cafile or capath (the CA that signed the CRL)")
        }
        if crlfile != nil && !requireCertificate {
            warnings.append("crlfile has no effect without require_certificate true (clients are not asked for a certificate)")
        }

        switch tls.tlsVersion {
        case nil, "tlsv1.2": minimumVersion = .tlsv12
        case "tlsv1.3": minimumVersion = .tlsv13
        case "tlsv1.1": minimumVersion = .tlsv11
        case let other?:
            throw fail("tls_version '\(other)' is not one of tlsv1.3, tlsv1.2, tlsv1.1 (the lowest version allowed)")
        }

        if let ciphers = tls.ciphers {
            switch BoringSSLCipherCheck.check(ciphers) {
            case .accepted:
                break
            case .acceptedIgnoringUnknownNames:
                warnings.append("ciphers '\(ciphers)': BoringSSL does not know some of these names and ignores them")
            case .refused:
                throw fail("ciphers '\(ciphers)': BoringSSL accepts none of it (no known cipher suite left, or bad syntax)")
            }
            self.ciphers = ciphers
        }
        if let suites = tls.ciphersTLS13 {
            let names = suites.split(separator: ":").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
            if let unknown = names.first(where: { !Self.tls13Suites.contains($0) }) {
                throw fail("ciphers_tls1.3 '\(suites)': BoringSSL has no TLS 1.3 suite '\(unknown)' (it has \(Self.tls13Suites.joined(separator: ", ")))")
            }
            if Set(names) != Set(Self.tls13Suites) {
                throw fail("ciphers_tls1.3 '\(suites)': BoringSSL always offers all of \(Self.tls13Suites.joined(separator: ":")) and cannot leave any out; remove the directive, or list all three")
            }
        }
        if let form = tls.tlsKeyform, form != "pem" {
            throw fail("tls_keyform '\(form)' is not supported (keys are read from keyfile as PEM)")
        }
        if tls.tlsEngine != nil || tls.tlsEngineKpassSHA1 != nil {
            throw fail("tls_engine is not supported: BoringSSL has no OpenSSL engines")
        }
        if tls.dhparamfile != nil {
            warnings.append("dhparamfile is ignored: BoringSSL has no finite-field Diffie-Hellman; key exchange uses ECDHE")
        }
    }
}

/// What a TLS listener serves with: the SSL context and the CRLs, made together from the files so that a
/// reload replaces both at once.
final class TLSServerState: Sendable {
    let context: NIOSSLContext
    let revocation: RevocationList?
    /// The server certificate's notAfter has passed (logged at start-up and on reload).
    let serverCertificateExpired: Bool

    private init(context: NIOSSLContext, revocation: RevocationList?, serverCertificateExpired: Bool) {
        self.context = context
        self.revocation = revocation
        self.serverCertificateExpired = serverCertificateExpired
    }

    /// Reads and checks every file, then builds the context. Throws `DirectiveError` naming the directive,
    /// the file and what is wrong with it.
    static func load(_ settings: TLSSettings) throws(DirectiveError) -> TLSServerState {
        // The certificate chain, read by libcrypto first for clear errors and the key check.
        let certificateBytes: [UInt8]
        do { certificateBytes = try readFileBytes(settings.certfile) } catch {
            throw DirectiveError("certfile", settings.certfile, error.reason)
        }
        let chain = (try? X509Certificate.allFromPEM(certificateBytes)) ?? []
        guard let leaf = chain.first else {
            throw DirectiveError("certfile", settings.certfile, "holds no PEM certificate")
        }
        let keyBytes: [UInt8]
        do { keyBytes = try readFileBytes(settings.keyfile) } catch {
            throw DirectiveError("keyfile", settings.keyfile, error.reason)
        }
        guard let key = try? PrivateKey.fromPEM(keyBytes) else {
            let text = String(decoding: keyBytes, as: UTF8.self)
            throw DirectiveError("keyfile", settings.keyfile, text.contains("ENCRYPTED")
                                    ? "is encrypted; give an unencrypted key"
                                    : "holds no PEM private key")
        }
        guard leaf.matches(key) else {
            throw DirectiveError("keyfile", settings.keyfile, "does not match the certificate in certfile \(settings.certfile)")
        }
        let nioChain: [NIOSSLCertificate]
        let nioKey: NIOSSLPrivateKey
        do {
            nioChain = try NIOSSLCertificate.fromPEMBytes(certificateBytes)
        } catch {
            throw DirectiveError("certfile", settings.certfile, "BoringSSL cannot read it: \(error)")
        }
        do {
            nioKey = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw DirectiveError("keyfile", settings.keyfile, "BoringSSL cannot read it: \(error)")
        }

        // Client CAs.
        var authorities: [X509Certificate] = []
        var cafileCertificates: [NIOSSLCertificate] = []
        if let cafile = settings.cafile {
            let bytes: [UInt8]
            do { bytes = try readFileBytes(cafile) } catch { throw DirectiveError("cafile", cafile, error.reason) }
            authorities += (try? X509Certificate.allFromPEM(bytes)) ?? []
            cafileCertificates = (try? NIOSSLCertificate.fromPEMBytes(bytes)) ?? []
            guard !authorities.isEmpty, !cafileCertificates.isEmpty else {
                throw DirectiveError("cafile", cafile, "holds no PEM certificate")
            }
        }
        if let capath = settings.capath {
            guard isDirectory(capath) else {
                throw DirectiveError("capath", capath, exists(capath) ? "is not a directory" : "no such directory")
            }
            guard access(capath, R_OK | X_OK) == 0 else { throw DirectiveError("capath", capath, errnoText()) }
            // BoringSSL looks CAs up by hashed name (`openssl rehash`); the CRL check needs them all in memory.
            for name in directoryEntries(capath) {
                if let bytes = try? readFileBytes(join(capath, name)) {
                    authorities += (try? X509Certificate.allFromPEM(bytes)) ?? []
                }
            }
        }
        let revocation: RevocationList?
        if let crlfile = settings.crlfile {
            revocation = try RevocationList(path: crlfile, authorities: authorities)
        } else {
            revocation = nil
        }

        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: nioChain.map { .certificate($0) }, privateKey: .privateKey(nioKey))
        configuration.minimumTLSVersion = settings.minimumVersion
        if let ciphers = settings.ciphers { configuration.cipherSuites = ciphers }
        if settings.requireCertificate {
            // Servers do not check a client's host name; this is SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT.
            configuration.certificateVerification = .noHostnameVerification
            if let capath = settings.capath {
                configuration.trustRoots = .file(capath)
                if !cafileCertificates.isEmpty { configuration.additionalTrustRoots = [.certificates(cafileCertificates)] }
            } else {
                configuration.trustRoots = .certificates(cafileCertificates)
            }
        } else {
            // As Mosquitto: without require_certificate no client certificate is asked for.
            configuration.certificateVerification = .none
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw DirectiveError("certfile", settings.certfile, "BoringSSL refuses the certificate, key or CAs: \(error)")
        }
        return TLSServerState(context: context, revocation: revocation, serverCertificateExpired: leaf.expired)
    }
}

private func directoryEntries(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}
