/// What the host tells the plugins it makes for one `listener` line (the listener plugin, `tcp`, and the
/// connection decorators its directives ask for, `tls` and `websockets`), typed: `PluginContext.listener`.
public struct ListenerSettings: Sendable, Equatable {
    /// The listener's name, for logs and `ClientInfo.listener` (its port, as Mosquitto names it).
    public var name: String
    /// The port to bind; 0 picks a free one.
    public var port: Int
    /// The address to bind; nil: every interface (IPv6 and IPv4, or IPv4 alone where there is no IPv6).
    public var bindAddress: String?
    /// `set_tcp_nodelay`: accepted connections send small writes at once.
    public var setTCPNoDelay: Bool
    /// The broker's `max_packet_size` in bytes (0: none), which bounds a WebSocket frame.
    public var maxPacketSize: Int
    /// The listener's TLS directives; nil for a listener without them.
    public var tls: ListenerTLSConfig?
    /// Where the listener is declared (its `listener` line), for errors.
    public var origin: PluginOptions.Origin?

    public init(name: String, port: Int, bindAddress: String? = nil, setTCPNoDelay: Bool = false,
                maxPacketSize: Int = 0, tls: ListenerTLSConfig? = nil, origin: PluginOptions.Origin? = nil) {
        self.name = name
        self.port = port
        self.bindAddress = bindAddress
        self.setTCPNoDelay = setTCPNoDelay
        self.maxPacketSize = maxPacketSize
        self.tls = tls
        self.origin = origin
    }
}
