import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PluginAPI
import TCPPlugin
@testable import TLSPlugin

/// A temporary directory, removed with its contents by `remove()`.
struct TLSTempDirectory {
    let path: String

    init() {
        var template = Array("/tmp/midge-tls-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil)
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let target = file(name)
        try! text.write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }

    func read(_ name: String) -> String { (try? String(contentsOfFile: file(name), encoding: .utf8)) ?? "" }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A CA with a server certificate for localhost and a few client certificates, written as PEM files.
struct TLSFixture {
    let directory = TLSTempDirectory()
    let authority: CertificateAuthority
    let server: IssuedCertificate
    let alice: IssuedCertificate
    let bob: IssuedCertificate
    /// A second, unrelated CA and a client certificate it issued.
    let stranger: CertificateAuthority
    let mallory: IssuedCertificate

    init() throws {
        authority = try CertificateAuthority.generate(commonName: "Midge test CA")
        server = try authority.issueServerCertificate(names: ["localhost", "127.0.0.1", "::1"])
        alice = try authority.issueClientCertificate(subject: [("C", "GB"), ("O", "Midge tests"), ("CN", "alice")])
        bob = try authority.issueClientCertificate(subject: [("CN", "bob")])
        stranger = try CertificateAuthority.generate(commonName: "Stranger CA")
        mallory = try stranger.issueClientCertificate(subject: [("CN", "mallory")])
        directory.write("ca.crt", authority.certificatePEM)
        directory.write("server.crt", server.certificatePEM)
        directory.write("server.key", server.privateKeyPEM)
        directory.write("stranger-ca.crt", stranger.certificatePEM)
    }

    var caFile: String { directory.file("ca.crt") }
    var certFile: String { directory.file("server.crt") }
    var keyFile: String { directory.file("server.key") }

    /// The directives of a TLS listener on this fixture's server certificate, then `change`d.
    func tls(_ change: (inout ListenerTLSConfig) -> Void = { _ in }) -> ListenerTLSConfig {
        var result = ListenerTLSConfig(certfile: certFile, keyfile: keyFile)
        change(&result)
        return result
    }
}

let tlsTestLogger = Logger(label: "midge.tls.tests")

/// A `tcp` listener on 127.0.0.1, any free port, named 8883: what the host puts the `tls` decorator on.
func plainListener(noDelay: Bool = false) -> TCPTransport {
    TCPTransport(listener: ListenerSettings(name: "8883", port: 0, bindAddress: "127.0.0.1", setTCPNoDelay: noDelay))
}

/// A running `tcp` listener on 127.0.0.1 with the `tls` decorator, whose connections echo what they read,
/// recording the facts each connection's initializer got.
final class EchoTLSServer: @unchecked Sendable {
    let transport: TLSDecorator
    let listener: TCPTransport
    let port: Int
    private let recorded = NIOLockedValueBox<[ConnectionFacts]>([])
    private let sslFirst = NIOLockedValueBox<[Bool]>([])

    init(tls: ListenerTLSConfig, handshakeTimeout: TimeAmount? = nil) async throws {
        transport = try TLSDecorator(tls: tls, name: "8883", origin: nil, logger: tlsTestLogger,
                                     handshakeTimeout: handshakeTimeout ?? TLSDecorator.defaultHandshakeTimeout)
        listener = plainListener(noDelay: true)
        let recorded = self.recorded
        let sslFirst = self.sslFirst
        port = try await listener.listen(on: MultiThreadedEventLoopGroup.singleton, initializer: transport.decorate { channel, facts in
            recorded.withLockedValue { $0.append(facts) }
            return channel.eventLoop.makeCompletedFuture {
                let ssl = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
                sslFirst.withLockedValue { $0.append(ssl != nil) }
                try channel.pipeline.syncOperations.addHandler(EchoHandler())
            }
        })
    }

    var facts: [ConnectionFacts] { recorded.withLockedValue { $0 } }
    var initializerSawSSLHandler: [Bool] { sslFirst.withLockedValue { $0 } }

    func stop() async { await listener.close() }
}

private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var active = false

    func channelActive(context: ChannelHandlerContext) {
        active = true
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        // Prove channelActive reached the handler before any data.
        var reply = context.channel.allocator.buffer(string: active ? "" : "NOT-ACTIVE:")
        reply.writeBuffer(&buffer)
        context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
    }
}

/// What a TLS client saw.
enum ClientOutcome: Equatable, CustomStringConvertible {
    case echoed(String)
    case failed(String)

    var succeeded: Bool { if case .echoed = self { return true } else { return false } }

    var description: String {
        switch self {
        case .echoed(let text): return "echoed(\(text))"
        case .failed(let reason): return "failed(\(reason))"
        }
    }
}

/// Connects with TLS to 127.0.0.1:`port`, trusting `trust`, presenting `identity` if given, sends "ping" and
/// waits for the echo (or a failure) for at most 10 s.
func tlsRoundTrip(port: Int, trust: String, identity: IssuedCertificate? = nil,
                  maximumVersion: TLSVersion? = nil, serverName: String = "localhost") async -> ClientOutcome {
    do {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(trust.utf8)))
        configuration.maximumTLSVersion = maximumVersion
        if let identity {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(identity.certificatePEM.utf8))
                .map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8),
                                                                         format: .pem))
        }
        let context = try NIOSSLContext(configuration: configuration)
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: ClientOutcome.self)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: context, serverHostname: serverName))
                    try channel.pipeline.syncOperations.addHandler(PingHandler(promise: promise))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(10)) { promise.succeed(.failed("timeout")) }
        let outcome = try await promise.futureResult.get()
        timeout.cancel()
        try? await channel.close()
        return outcome
    } catch {
        return .failed("\(error)")
    }
}

private final class PingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let promise: EventLoopPromise<ClientOutcome>

    init(promise: EventLoopPromise<ClientOutcome>) { self.promise = promise }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: "ping")), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        promise.succeed(.echoed(String(buffer: buffer)))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.succeed(.failed("\(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(.failed("closed"))
        context.fireChannelInactive()
    }
}

/// Runs a command, returning its exit status and standard output plus error.
@discardableResult
func runCommand(_ arguments: [String], input: String? = nil) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    let inputPipe = Pipe()
    process.standardInput = inputPipe
    do { try process.run() } catch { return (-1, "\(error)") }
    if let input { inputPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try? inputPipe.fileHandleForWriting.close()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
