public import Logging
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix
import NIOSSL
public import PluginAPI

/// The `tls` transport: a TCP listener whose connections speak TLS (BoringSSL, through NIOSSL) before MQTT.
///
/// Configured by Mosquitto's listener directives: `certfile` and `keyfile` (required), `cafile`, `capath`,
/// `crlfile`, `require_certificate`, `use_identity_as_username`, `use_subject_as_username`, `tls_version`,
/// `ciphers`, `ciphers_tls1.3` (and `dhparamfile`, accepted and ignored). Every file is read and checked when
/// the transport is created, so a missing, unreadable or mismatched certificate or key, or a cipher string
/// BoringSSL refuses, stops start-up with a message naming the directive and the file.
///
/// Each accepted connection gets `NIOSSLServerHandler` first; once the handshake is done, the host's
/// initializer runs with `ConnectionFacts` that carry the client certificate's subject and common name. A
/// client that does not finish the handshake within 30 s is disconnected.
///
/// `reload()` (SIGHUP) reads certificate, key, CAs and CRL again: new handshakes use them, connected clients
/// keep their session, and a failure keeps the previous state.
public final class TLSTransport: TransportPlugin, ReloadablePlugin, @unchecked Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "tls", summary: "TLS listener (BoringSSL)") { options, context in
        try TLSTransport(options: &options, logger: context.logger)
    }

    /// How long a client has by default to complete the TLS handshake.
    public static let defaultHandshakeTimeout: TimeAmount = .seconds(30)
    /// How long a client has to complete the TLS handshake (set before `listen`).
    var handshakeTimeout = TLSTransport.defaultHandshakeTimeout

    let host: String
    let ipv4Fallback: Bool
    let port: Int
    let noDelay: Bool
    let name: String
    let settings: TLSSettings
    let logger: Logger
    let origin: PluginOptions.Origin?
    private let current: NIOLockedValueBox<TLSServerState>
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)

    /// Options: the tcp transport's (`port` required, `bind_address`, `set_tcp_nodelay`, `name`) plus the
    /// TLS directives above. Without `bind_address` it listens on `::`, or `0.0.0.0` where there is no IPv6.
    public convenience init(options: inout PluginOptions, logger: Logger) throws {
        try self.init(options: &options, origin: nil, logger: logger)
    }

    /// A listener's transport, as the host makes it from `ListenerConfig`: `directives` are its raw TLS
    /// directives (`ListenerConfig.tls`); `bindAddress` nil listens on every interface (IPv6 and IPv4, or IPv4
    /// only where there is no IPv6); `origin` is the `listener` line, for error messages.
    public convenience init(port: Int, bindAddress: String?, noDelay: Bool, name: String,
                            directives: [String: String], origin: PluginOptions.Origin?, logger: Logger) throws {
        var entries: [(key: String, value: String, origin: PluginOptions.Origin?)] = [
            ("port", String(port), origin), ("set_tcp_nodelay", noDelay ? "true" : "false", origin), ("name", name, origin),
        ]
        if let bindAddress { entries.append(("bind_address", bindAddress, origin)) }
        entries += directives.sorted { $0.key < $1.key }.map { ($0.key, $0.value, origin) }
        var options = PluginOptions(pluginName: "tls", entries: entries)
        try self.init(options: &options, origin: origin, logger: logger)
    }

    private init(options: inout PluginOptions, origin: PluginOptions.Origin?, logger: Logger) throws {
        func located(_ error: PluginError) -> PluginError {
            var error = error
            if error.origin == nil { error.origin = origin }
            return error
        }
        do {
            guard let port = try options.int("port"), (0...65535).contains(port) else {
                throw PluginError(pluginName: "tls", message: "option 'port' must be a port number")
            }
            self.port = port
            if let address = options.string("bind_address") {
                host = address
                ipv4Fallback = false
            } else {
                host = "::"
                ipv4Fallback = true
            }
            noDelay = try options.bool("set_tcp_nodelay") ?? false
            name = options.string("name") ?? String(port)
            settings = try TLSSettings(options: &options)
            try options.finish()
        } catch let error as PluginError {
            throw located(error)
        }
        self.logger = logger
        self.origin = origin
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

    /// Which certificate field names clients on this listener, if any.
    public var usernameFromCertificate: CertificateUsername? { settings.usernameFromCertificate }

    public func listen(on group: any EventLoopGroup, initializer: @escaping ConnectionInitializer) async throws -> Int {
        let baseFacts = ConnectionFacts(listener: name, usernameFromCertificate: settings.usernameFromCertificate)
        let current = self.current
        let logger = self.logger
        let handshakeTimeout = self.handshakeTimeout
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: noDelay ? 1 : 0)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // As the tcp transport: a small receive buffer for idle clients, grown for busy ones.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256,
                                                                                       maximum: 65536))
            .childChannelInitializer { channel in
                let state = current.withLockedValue { $0 }
                return channel.eventLoop.makeCompletedFuture {
                    let ssl = try Self.makeServerHandler(state: state, channel: channel, listener: baseFacts.listener,
                                                         logger: logger)
                    try channel.pipeline.syncOperations.addHandler(ssl)
                    try channel.pipeline.syncOperations.addHandler(
                        TLSHandshakeGate(ssl: ssl, facts: baseFacts, initializer: initializer, logger: logger,
                                         timeout: handshakeTimeout))
                }
            }
        let bound: any Channel
        do {
            bound = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            // Some hosts have no IPv6: listen on IPv4's any-address instead.
            guard ipv4Fallback else { throw error }
            bound = try await bootstrap.bind(host: "0.0.0.0", port: port).get()
        }
        channel.withLockedValue { $0 = bound }
        return bound.localAddress?.port ?? port
    }

    public func close() async {
        let bound = channel.withLockedValue { $0 }
        try? await bound?.close()
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
