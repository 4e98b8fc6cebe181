import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import PluginAPI

/// The `tcp` listener: binds a port and accepts TCP connections. Every listener is one, whatever speaks on
/// it: TLS and WebSocket are decorators the host wraps around the connections it accepts.
public final class TCPTransport: TransportPlugin, Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "tcp", summary: "TCP listener", kind: .listener) { options, context in
        try options.finish()
        guard let listener = context.listener else {
            throw PluginError(pluginName: options.pluginName, message: "made without a listener's settings "
                + "(the host makes it for a listener line)")
        }
        return TCPTransport(listener: listener)
    }

    let host: String
    /// No `bind_address` given: `::`, or `0.0.0.0` on hosts without IPv6.
    let ipv4Fallback: Bool
    let port: Int
    let noDelay: Bool
    let name: String
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)

    /// A listener for `listener`: its `port`, `bindAddress` (nil: every interface, IPv6 and IPv4, or IPv4
    /// alone where there is no IPv6), `setTCPNoDelay` and `name` (for logs and `ClientInfo.listener`).
    public init(listener: ListenerSettings) {
        port = listener.port
        host = listener.bindAddress ?? "::"
        ipv4Fallback = listener.bindAddress == nil
        noDelay = listener.setTCPNoDelay
        name = listener.name
    }

    public func listen(on group: any EventLoopGroup, initializer: @escaping ConnectionInitializer) async throws -> Int {
        let facts = ConnectionFacts(listener: name)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: noDelay ? 1 : 0)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // Each channel keeps its receive buffer between reads: start small, so an idle client costs
            // 256 bytes here instead of 2 KiB; a busy one grows it (up to 64 KiB) after full reads.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256,
                                                                                       maximum: 65536))
            .childChannelInitializer { channel in initializer(channel, facts) }
        let bound: any Channel
        do {
            bound = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            // Some hosts have no IPv6: listen on IPv4's any-address instead (its error is the telling one there:
            // "address in use" rather than "address family not supported").
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
}
