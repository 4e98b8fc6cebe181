import NIOCore
import NIOPosix
public import PluginAPI

/// The `tcp` transport: a plain MQTT listener on a port.
public final class TCPTransport: TransportPlugin, @unchecked Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(name: "tcp", summary: "plain TCP listener") { options, _ in
        try TCPTransport(options: &options)
    }

    let host: String
    let port: Int
    let noDelay: Bool
    let name: String
    private var channel: (any Channel)?

    /// Options: `port` (required), `bind_address` (default all interfaces), `set_tcp_nodelay`, `name`.
    public init(options: inout PluginOptions) throws {
        guard let port = try options.int("port"), (0...65535).contains(port) else {
            throw PluginError(pluginName: "tcp", message: "option 'port' must be a port number")
        }
        self.port = port
        self.host = options.string("bind_address") ?? "0.0.0.0"
        self.noDelay = try options.bool("set_tcp_nodelay") ?? false
        self.name = options.string("name") ?? String(port)
        try options.finish()
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
        let channel = try await bootstrap.bind(host: host, port: port).get()
        self.channel = channel
        return channel.localAddress?.port ?? port
    }

    public func close() async {
        try? await channel?.close()
    }
}
