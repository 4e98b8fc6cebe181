// Asks BoringSSL itself (the copy NIOSSL links) whether it accepts a cipher string. NIOSSL hands
// `TLSConfiguration.cipherSuites` straight to `SSL_CTX_set_cipher_list` and traps if BoringSSL refuses it, so
// the `tls` transport checks the string here first and reports the directive instead.
//
// This is a target of its own because BoringSSL's headers and the system OpenSSL headers (CCrypto, which the
// transport uses for certificates) cannot be imported into one Swift module: their structs clash. The import
// is implementation-only so that importers never see BoringSSL's declarations.
@_implementationOnly import CNIOBoringSSL

/// What BoringSSL makes of a cipher string (TLS 1.2 and below; OpenSSL syntax).
public enum BoringSSLCipherCheck: Sendable, Equatable {
    /// Every name is known and the list selects at least one cipher suite.
    case accepted
    /// BoringSSL accepts the string but ignores names it does not know.
    case acceptedIgnoringUnknownNames
    /// BoringSSL refuses the string (a syntax error, or no cipher suite left).
    case refused

    /// Checks `ciphers` on a scratch context.
    public static func check(_ ciphers: String) -> BoringSSLCipherCheck {
        guard let context = SSL_CTX_new(TLS_method()) else { return .refused }
        defer { SSL_CTX_free(context) }
        if SSL_CTX_set_strict_cipher_list(context, ciphers) == 1 {
            ERR_clear_error()
            return .accepted
        }
        ERR_clear_error()
        if SSL_CTX_set_cipher_list(context, ciphers) == 1 {
            ERR_clear_error()
            return .acceptedIgnoringUnknownNames
        }
        ERR_clear_error()
        return .refused
    }
}
