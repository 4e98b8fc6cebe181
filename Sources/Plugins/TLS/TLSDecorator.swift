public import Logging
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix
import NIOSSL
public import PluginAPI

/// The `tls` decorator: the connections of any listener speak TLS (BoringSSL, through NIOSSL) before what
/// comes next (MQTT, or WebSocket for `wss://`).
///
/// Configured by Mosquitto's listener directives, which the host gives it typed (`PluginContext.listener`):
/// `certfile` and `keyfile` (required), `cafile`, `capath`, `crlfile`, `require_certificate`,
/// `use_identity_as_username`, `use_subject_as_username`, `tls_version`, `ciphers`, `ciphers_tls1.3` (and
/// `dhparamfile`, accepted and ignored), and `generate_certificates` (when certfile and keyfile are both
/// missing, a CA and a server certificate are made for this instance, see `DefaultCertificates`); it has no
/// options (the listener's name, for logs, is in `PluginContext.listener` too). Every file is read and checked
/// when the decorator is created, so a missing, unreadable or mismatched certificate or key, or a cipher
/// string BoringSSL refuses, stops start-up with a message naming the directive and the file.
///
/// Each accepted connection gets `NIOSSLServerHandler` first; once the handshake is done, the next layer's
/// initializer runs with `ConnectionFacts` that carry the client certificate's subject and common name. A
/// client that does not finish the handshake within 30 s is disconnected.
///
/// `reload()` (SIGHUP) reads certificate, key, CAs and CRL again: new handshakes use them, connected clients
/// keep their session, and a failure keeps the previous state.
public final class TLSDecorator: ConnectionDecoratorPlugin, ReloadablePlugin, ConfigCheckDescribing, Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "tls", summary: "TLS on a listener's connections (BoringSSL)",
                                                    kind: .connectionDecorator) { options, context in
        try TLSDecorator(options: &options, context: context)
    }

    /// How long a client has by default to complete the TLS handshake.
    public static let defaultHandshakeTimeout: TimeAmount = .seconds(30)
    /// How long a client has to complete the TLS handshake.
    public let handshakeTimeout: TimeAmount

    let name: String
    let settings: TLSSettings
    let logger: Logger
    let origin: PluginOptions.Origin?
    /// Nil only under `midge check-config` when start-up would generate the certificates.
    private let current: NIOLockedValueBox<TLSServerState?>
    /// What `midge check-config` reports.
    public let checkReport: [String]

    /// A decorator made from a listener's TLS directives: `name` names the listener in logs, `origin` is its
    /// `listener` line for error messages.
    public convenience init(tls: ListenerTLSConfig, name: String, origin: PluginOptions.Origin?,
                            logger: Logger, handshakeTimeout: TimeAmount = TLSDecorator.defaultHandshakeTimeout) throws {
        var options = PluginOptions(pluginName: "tls")
        let listener = ListenerSettings(name: name, port: 0, tls: tls, origin: origin)
        try self.init(options: &options, context: PluginContext(logger: logger, configDirectory: ".", listener: listener),
                      checkOnly: false, handshakeTimeout: handshakeTimeout)
    }

    /// The TLS directives come in `context.listener`; there are no options. Under `context.checkOnly`
    /// nothing is written: what start-up would generate is reported in `checkReport` instead.
    public convenience init(options: inout PluginOptions, context: PluginContext) throws {
        try self.init(options: &options, context: context, checkOnly: context.checkOnly,
                      handshakeTimeout: Self.defaultHandshakeTimeout)
    }

    /// `checkOnly` (`midge check-config`): nothing is written, and what start-up would generate is reported
    /// instead.
    private init(options: inout PluginOptions, context: PluginContext, checkOnly: Bool,
                 handshakeTimeout: TimeAmount) throws {
        let origin = context.listener?.origin
        func located(_ error: PluginError) -> PluginError {
            var error = error
            if error.origin == nil { error.origin = origin }
            return error
        }
        let logger = context.logger
        let name: String
        var settings: TLSSettings
        let generate: Bool
        do {
            name = context.listener?.name ?? "tls"
            try options.finish()
            guard let tls = context.listener?.tls else {
                throw PluginError(pluginName: options.pluginName, message: "made without a listener's TLS directives "
                    + "(the host makes it for a listener with certfile / keyfile)")
            }
            generate = tls.generateCertificates
            settings = try TLSSettings(tls, pluginName: options.pluginName)
        } catch let error as PluginError {
            throw located(error)
        }
        var report: [String] = []
        var loadState = true
        if generate {
            if checkOnly {
                switch CertificatePlan(certfile: settings.certfile, keyfile: settings.keyfile) {
                case .none:
                    break
                case .reuse(let directory):
                    settings.certfile = join(directory, DefaultCertificates.serverCertificateFile)
                    settings.keyfile = join(directory, DefaultCertificates.serverKeyFile)
                    report.append("generate_certificates: certfile and keyfile are missing; would use the certificates generated earlier in \(directory)")
                case .generate(let directory, let reason):
                    report.append("generate_certificates: would generate a CA and a server certificate in \(directory)\(reason) (not checked further)")
                    loadState = false
                case .failure(let message):
                    throw located(PluginError(pluginName: "tls", message: "listener \(name): cannot generate certificates: \(message)"))
                }
            } else if let files = try Self.generatedCertificates(settings, name: name, logger: logger, located: located) {
                settings.certfile = files.serverCertificate
                settings.keyfile = files.serverKey
            }
        }
        self.name = name
        self.handshakeTimeout = handshakeTimeout
        self.settings = settings
        self.logger = logger
        self.origin = origin
        self.checkReport = report
        guard loadState else {
            current = NIOLockedValueBox(nil)
            return
        }
        let state: TLSServerState
        do {
            state = try TLSServerState.load(settings)
        } catch {
            throw located(PluginError(pluginName: "tls", message: error.message))
        }
        current = NIOLockedValueBox(state)
        for warning in settings.warnings {
            logger.warning("Listener \(name): \(warning).")
        }
        if state.serverCertificateExpired {
            logger.warning("Listener \(name): the certificate in \(settings.certfile) has expired; clients will refuse it.")
        }
    }

    /// `generate_certificates true`: when certfile and keyfile are both missing, a CA and a server
    /// certificate made for this instance, in the directory of the certfile, or, when that directory is
    /// read-only (a mounted ConfigMap), in `MIDGE_STATE_DIR` (default `$TMPDIR/midge-state`). Existing files
    /// are never replaced. Nil when the listener's own files exist.
    private static func generatedCertificates(_ settings: TLSSettings, name: String, logger: Logger,
                                              located: (PluginError) -> PluginError) throws -> DefaultCertificates.Files? {
        guard !exists(settings.certfile) && !exists(settings.keyfile) else { return nil }
        let environment = processEnvironment()
        let files: DefaultCertificates.Files
        do {
            files = try DefaultCertificates.ensure(directory: parentDirectory(settings.certfile),
                                                   writableFallback: DefaultCertificates.fallbackDirectory(environment: environment),
                                                   environment: environment)
        } catch {
            throw located(PluginError(pluginName: "tls", message: "listener \(name): cannot generate certificates: \(error)"))
        }
        if files.generated {
            logger.notice("Generated a CA and a server certificate for this instance in \(files.directory)\(files.usedFallback ? " (\(parentDirectory(settings.certfile)) is read-only)" : ""); names: \(files.names.joined(separator: ", ")).")
        }
        if let ca = files.caCertificate {
            logger.notice("Clients verify the TLS listener on port \(name) with the CA certificate \(ca).")
        }
        return files
    }

    /// Which certificate field names clients on this listener, if any.
    public var usernameFromCertificate: CertificateUsername? { settings.usernameFromCertificate }

    public func decorate(_ next: @escaping ConnectionInitializer) -> ConnectionInitializer {
        let current = self.current
        let logger = self.logger
        let handshakeTimeout = self.handshakeTimeout
        let usernameFromCertificate = settings.usernameFromCertificate
        return { channel, facts in
            var facts = facts
            facts.usernameFromCertificate = usernameFromCertificate
            // No state only under `midge check-config`, which never listens.
            guard let state = current.withLockedValue({ $0 }) else {
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            return channel.eventLoop.makeCompletedFuture { [facts] in
                let ssl = try Self.makeServerHandler(state: state, channel: channel, listener: facts.listener,
                                                     logger: logger)
                try channel.pipeline.syncOperations.addHandler(ssl)
                try channel.pipeline.syncOperations.addHandler(
                    TLSHandshakeGate(ssl: ssl, facts: facts, initializer: next, logger: logger,
                                     timeout: handshakeTimeout))
            }
        }
    }

    /// certfile, keyfile, cafile and crlfile (capath is a directory: SIGHUP reloads it).
    public var watchedFiles: [String] {
        [settings.certfile, settings.keyfile, settings.cafile, settings.crlfile].compactMap { $0 }
    }

    /// Reads certfile, keyfile, cafile/capath and crlfile again and checks that they fit together; after the
    /// commit new handshakes use them, and established connections keep theirs. Throws (naming the directive
    /// and file) when anything is wrong.
    public func prepareReload() async throws -> PreparedReload {
        let state: TLSServerState
        do {
            state = try TLSServerState.load(settings)
        } catch {
            throw PluginError(pluginName: "tls", message: "listener \(name): \(error.message)", origin: origin)
        }
        return PreparedReload { [self] in
            current.withLockedValue { $0 = state }
            if state.serverCertificateExpired {
                logger.warning("Listener \(name): the certificate in \(settings.certfile) has expired; clients will refuse it.")
            }
            logger.info("Listener \(name): TLS certificates reloaded.")
        }
    }

    /// The SSL handler for one connection; with a CRL, one that refuses revoked client certificates during
    /// the handshake.
    static func makeServerHandler(state: TLSServerState, channel: any Channel, listener: String,
                                  logger: Logger) throws -> NIOSSLServerHandler {
        guard let revocation = state.revocation else { return NIOSSLServerHandler(context: state.context) }
        let peer = channel.remoteAddress?.peerDescription ?? "?"
        let maker: any RevocationCheckingHandlerMaker.Type = DeprecatedCallbackHandlerMaker.self
        return try maker.make(context: state.context) { preverified, certificate in
            guard case .certificateVerified = preverified,
                  let der = try? certificate.toDERBytes() else { return preverified }
            switch revocation.status(ofDER: der) {
            case .notRevoked:
                return .certificateVerified
            case .revoked:
                let subject = X509Certificate.fromDER(der)?.subjectRFC2253 ?? "?"
                logger.notice("Client connection from \(peer) on port \(listener) refused: certificate '\(subject)' is revoked by \(revocation.path).")
                return .failed
            case .listExpired:
                logger.notice("Client connection from \(peer) on port \(listener) refused: the CRL in \(revocation.path) for its issuer has expired.")
                return .failed
            }
        }
    }
}

/// NIOSSL's per-certificate verification callback runs after BoringSSL's own chain verification, once per
/// certificate of the chain, and can still refuse one, with a TLS alert, inside the handshake: what a CRL
/// check needs. Its initializer is deprecated in favour of callbacks that replace BoringSSL's verification
/// entirely; it is reached through this protocol so that the deprecation does not warn on every build.
protocol RevocationCheckingHandlerMaker {
    static func make(context: NIOSSLContext, callback: @escaping NIOSSLVerificationCallback) throws -> NIOSSLServerHandler
}

enum DeprecatedCallbackHandlerMaker: RevocationCheckingHandlerMaker {
    @available(*, deprecated, message: "uses NIOSSLServerHandler(context:verificationCallback:)")
    static func make(context: NIOSSLContext, callback: @escaping NIOSSLVerificationCallback) throws -> NIOSSLServerHandler {
        try NIOSSLServerHandler(context: context, verificationCallback: callback)
    }
}
