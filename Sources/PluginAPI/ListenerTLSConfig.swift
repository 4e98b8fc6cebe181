/// A listener's TLS directives, as the config parser read them (Mosquitto's names in the comments): what the
/// host gives the `tls` connection decorator it makes for that listener (`PluginContext.listener`'s `tls`).
///
/// The parser has checked the syntax (one word, a boolean, `pem` or `engine`) and made every path absolute;
/// the plugin decides what it can honour (which `tls_version`s, cipher strings, engines) and reads the files.
public struct ListenerTLSConfig: Sendable, Equatable {
    /// `certfile`: the server certificate chain (PEM), an absolute path.
    public var certfile: String?
    /// `keyfile`: the server certificate's private key (PEM), an absolute path.
    public var keyfile: String?
    /// `cafile`: the CAs client certificates are checked against (PEM), an absolute path.
    public var cafile: String?
    /// `capath`: a directory of such CAs, an absolute path.
    public var capath: String?
    /// `crlfile`: a certificate revocation list, an absolute path.
    public var crlfile: String?
    /// `dhparamfile`: Diffie-Hellman parameters, an absolute path.
    public var dhparamfile: String?
    /// `ciphers`: the TLS 1.2 cipher list, as written.
    public var ciphers: String?
    /// `ciphers_tls1.3`: the TLS 1.3 suites, as written.
    public var ciphersTLS13: String?
    /// `tls_version`: the lowest version allowed, as written (`tlsv1.3`, `tlsv1.2`, `tlsv1.1`).
    public var tlsVersion: String?
    /// `require_certificate`: clients must present a certificate a CA in `cafile` / `capath` signed.
    public var requireCertificate: Bool
    /// `use_identity_as_username`: the client certificate's common name is the user name.
    public var useIdentityAsUsername: Bool
    /// `use_subject_as_username`: the client certificate's subject is the user name.
    public var useSubjectAsUsername: Bool
    /// `tls_engine`: an OpenSSL engine, as written.
    public var tlsEngine: String?
    /// `tls_engine_kpass_sha1`: the engine's key password hash, as written.
    public var tlsEngineKpassSHA1: String?
    /// `tls_keyform`: `pem` or `engine`.
    public var tlsKeyform: String?
    /// Midge's global `generate_certificates`, which the host copies onto every TLS listener's settings: make a
    /// CA and a server certificate when `certfile` and `keyfile` are both missing.
    public var generateCertificates: Bool

    public init(certfile: String? = nil, keyfile: String? = nil, cafile: String? = nil, capath: String? = nil,
                crlfile: String? = nil, dhparamfile: String? = nil, ciphers: String? = nil,
                ciphersTLS13: String? = nil, tlsVersion: String? = nil, requireCertificate: Bool = false,
                useIdentityAsUsername: Bool = false, useSubjectAsUsername: Bool = false, tlsEngine: String? = nil,
                tlsEngineKpassSHA1: String? = nil, tlsKeyform: String? = nil, generateCertificates: Bool = false) {
        self.certfile = certfile
        self.keyfile = keyfile
        self.cafile = cafile
        self.capath = capath
        self.crlfile = crlfile
        self.dhparamfile = dhparamfile
        self.ciphers = ciphers
        self.ciphersTLS13 = ciphersTLS13
        self.tlsVersion = tlsVersion
        self.requireCertificate = requireCertificate
        self.useIdentityAsUsername = useIdentityAsUsername
        self.useSubjectAsUsername = useSubjectAsUsername
        self.tlsEngine = tlsEngine
        self.tlsEngineKpassSHA1 = tlsEngineKpassSHA1
        self.tlsKeyform = tlsKeyform
        self.generateCertificates = generateCertificates
    }
}
