public import NIOCore

/// A plugin that publishes HTTP endpoints on the broker's admin listener (`admin_listener PORT [ADDRESS]`),
/// the one small HTTP server that also answers the health probes `/healthz` and `/readyz`. A metrics plugin,
/// for example, publishes `/metrics` this way; plugins depend on PluginAPI only, never on the host.
///
/// The host reads `httpEndpoints` once, after every plugin's `start()` returned. Two endpoints with the same
/// path (from two plugins, or one of the host's own) stop start-up with an error naming both. When no
/// `admin_listener` is configured, the host logs one warning at start-up and serves nothing.
public protocol HTTPEndpointProvider: Plugin {
    /// The endpoints this plugin serves, each on its own exact path.
    var httpEndpoints: [HTTPEndpoint] { get }
}

/// One HTTP path on the admin listener and the code that answers it.
///
/// The admin listener accepts `GET` and `HEAD` only (anything else is answered 405 by the host, without
/// calling the handler). For `HEAD` the host calls the same handler and sends its status and headers without
/// the body.
public struct HTTPEndpoint: Sendable {
    /// Answers one request. It runs on an event loop (`eventLoop`, the connection's) and must never block
    /// it: answer `.now` with what is at hand (a rendering of in-memory counters), or do slower work elsewhere
    /// and answer `.later` with a future. The host bounds the wait by a deadline and answers 503 when it is
    /// missed, and 500 when the future fails.
    public typealias Handler = @Sendable (_ request: HTTPEndpointRequest, _ eventLoop: any EventLoop)
        -> PluginAnswer<HTTPEndpointResponse>

    /// The exact path served, starting with `/` and without a query (for example `/metrics`). The query of a
    /// request does not take part in matching.
    public var path: String
    /// Produces the response; must not block (see `Handler`).
    public var handler: Handler

    /// An endpoint serving `path` with `handler`.
    public init(path: String, handler: @escaping Handler) {
        self.path = path
        self.handler = handler
    }
}

/// What a handler sees of an HTTP request.
public struct HTTPEndpointRequest: Sendable {
    /// `GET` or `HEAD`.
    public var method: String
    /// The path, without the query (for example `/metrics`).
    public var path: String
    /// The query after `?`, undecoded, or nil when the target had none.
    public var query: String?
    /// The request's header fields in the order received, names as the client spelled them.
    public var headers: [(name: String, value: String)]

    /// A request with these parts.
    public init(method: String, path: String, query: String? = nil, headers: [(name: String, value: String)] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
    }

    /// The value of the first header field called `name` (compared without regard to case), or nil.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first(where: { $0.name.lowercased() == wanted })?.value
    }
}

/// A handler's answer: status, content type and body. The host adds `Content-Length` and `Connection`.
public struct HTTPEndpointResponse: Sendable {
    /// The status code, for example 200.
    public var status: Int
    /// The `Content-Type` header's value, for example `text/plain; version=0.0.4; charset=utf-8`.
    public var contentType: String
    /// The body (not sent for `HEAD`, though its length is).
    public var body: ByteBuffer

    /// A response with a body already in bytes.
    public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", body: ByteBuffer) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// A response with a text body, sent as UTF-8.
    public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.init(status: status, contentType: contentType, body: ByteBuffer(string: body))
    }
}
