import Logging
import NIOCore
import NIOSSL
import NIOTLS
import PluginAPI

/// Sits behind `NIOSSLServerHandler` until the handshake is done, then runs the host's initializer with the
/// facts the handshake established (the client certificate's subject and common name) and gets out of the way.
///
/// Until then it holds back `channelActive` and any reads, so the handlers the initializer adds see the
/// connection start as they would on plain TCP; it logs a failed handshake and closes a connection whose
/// handshake takes longer than `timeout`.
final class TLSHandshakeGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private enum Phase {
        case handshaking
        case initializing
        case done
    }

    private let ssl: NIOSSLHandler
    private let facts: ConnectionFacts
    private let initializer: ConnectionInitializer
    private let logger: Logger
    private let timeout: TimeAmount
    private var phase = Phase.handshaking
    private var heldActive = false
    private var heldReads: [NIOAny] = []
    private var heldReadComplete = false
    private var timer: Scheduled<Void>?
    private var peer = "?"

    init(ssl: NIOSSLHandler, facts: ConnectionFacts, initializer: @escaping ConnectionInitializer, logger: Logger,
         timeout: TimeAmount) {
        self.ssl = ssl
        self.facts = facts
        self.initializer = initializer
        self.logger = logger
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress { peer = address.peerDescription }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard phase == .handshaking else { return }
            logger.notice("Client connection from \(peer) on port \(facts.listener) closed: no TLS handshake within \(timeout.nanoseconds / 1_000_000_000) s.")
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if phase == .done { context.fireChannelActive() } else { heldActive = true }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if phase == .done { context.fireChannelRead(data) } else { heldReads.append(data) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if phase == .done { context.fireChannelReadComplete() } else { heldReadComplete = true }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard phase == .handshaking, let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        timer?.cancel()
        timer = nil
        phase = .initializing
        var facts = self.facts
        if let certificate = ssl.peerCertificate, let der = try? certificate.toDERBytes(),
           let parsed = X509Certificate.fromDER(der) {
            facts.certificateSubject = parsed.subjectRFC2253
            facts.certificateCommonName = parsed.commonName
        }
        initializer(context.channel, facts).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                phase = .done
                guard context.channel.isActive else { return }
                if heldActive { context.fireChannelActive() }
                context.fireUserInboundEventTriggered(event)
                let reads = heldReads
                heldReads = []
                for read in reads { context.fireChannelRead(read) }
                if heldReadComplete || !reads.isEmpty { context.fireChannelReadComplete() }
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            case .failure(let error):
                logger.error("Client connection from \(peer) on port \(facts.listener): cannot set up the connection: \(error)")
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard phase == .handshaking else {
            context.fireErrorCaught(error)
            return
        }
        switch error {
        case NIOSSLError.handshakeFailed(let reason):
            logger.notice("Client connection from \(peer) on port \(facts.listener) failed: TLS handshake: \(Self.summary(of: reason)).")
        default:
            logger.debug("Client connection from \(peer) on port \(facts.listener) ended before the TLS handshake: \(error)")
        }
        context.close(promise: nil)
    }

    /// BoringSSL's reasons without codes and source locations: "CERTIFICATE_VERIFY_FAILED" becomes
    /// "certificate verify failed", as OpenSSL 3 (and so Mosquitto) words them.
    static func summary(of error: BoringSSLError) -> String {
        guard case .sslError(let errors) = error, !errors.isEmpty else { return "\(error)" }
        let reasons = errors.map { item -> String in
            // "Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at FILE:LINE"
            let text = "\(item)"
            let words = text.split(separator: " ")
            guard let at = words.lastIndex(of: "at"), at > words.startIndex,
                  let reason = words[words.index(before: at)].split(separator: ":").last,
                  reason.allSatisfy({ $0 == "_" || $0.isLetter || $0.isNumber })
            else { return text }
            return reason.lowercased().split(separator: "_").joined(separator: " ")
        }
        return reasons.joined(separator: "; ")
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }
}
