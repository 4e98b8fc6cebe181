import CCrypto

/// The CRLs of a listener's `crlfile`, checked against client certificates during the handshake.
///
/// Mosquitto loads `crlfile` into OpenSSL's store with `X509_V_FLAG_CRL_CHECK`. NIOSSL does not expose the
/// store, so the transport reads the file with libcrypto, checks each CRL's signature against the listener's
/// CAs at load time, and refuses a certificate of the chain that a CRL of its issuer lists, or whose issuer's
/// CRL has expired (as OpenSSL does). Unlike OpenSSL's CRL_CHECK, a client whose issuer has no CRL in the file
/// is not refused.
final class RevocationList: Sendable {
    /// The X509_CRL objects, freed with the last reference.
    private final class Lists {
        let pointers: [OpaquePointer]
        init(_ pointers: [OpaquePointer]) { self.pointers = pointers }
        deinit { for crl in pointers { X509_CRL_free(crl) } }
    }

    private let lists: LibCryptoLocked<Lists>
    let path: String
    /// How many CRLs were loaded.
    let count: Int

    /// What a CRL says about one certificate.
    enum Status: Equatable, Sendable {
        case notRevoked
        case revoked
        case listExpired
    }

    /// Loads every CRL in `path` (PEM, one or more; or one DER) and checks that each was signed by one of
    /// `authorities`.
    init(path: String, authorities: [X509Certificate]) throws(DirectiveError) {
        self.path = path
        let bytes: [UInt8]
        do { bytes = try readFileBytes(path) } catch {
            throw DirectiveError("crlfile", path, error.reason)
        }
        var lists: [OpaquePointer] = []
        do {
            let bio = try MemoryBIO(bytes: bytes)
            while let crl = PEM_read_bio_X509_CRL(bio.pointer, nil, nil, nil) { lists.append(crl) }
            ERR_clear_error()
        } catch {
            throw DirectiveError("crlfile", path, "\(error)")
        }
        if lists.isEmpty {
            bytes.withUnsafeBufferPointer { buffer in
                var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
                if let crl = d2i_X509_CRL(nil, &cursor, buffer.count) { lists.append(crl) }
                ERR_clear_error()
            }
        }
        // Owned from here: freed with this list, also when a check below throws.
        self.lists = LibCryptoLocked(Lists(lists))
        count = lists.count
        guard !lists.isEmpty else {
            throw DirectiveError("crlfile", path, "holds no certificate revocation list (PEM or DER)")
        }
        for crl in lists {
            let issuer = X509_CRL_get_issuer(crl)!
            let candidates = authorities.filter { X509_NAME_cmp($0.subjectName, issuer) == 0 }
            let issuerText = distinguishedName(issuer) ?? "?"
            guard !candidates.isEmpty else {
                throw DirectiveError("crlfile", path, "the CRL issued by '\(issuerText)' has no matching CA in cafile/capath")
            }
            let verified = candidates.contains { authority in
                guard let key = X509_get0_pubkey(authority.pointer) else { return false }
                return X509_CRL_verify(crl, key) == 1
            }
            ERR_clear_error()
            guard verified else {
                throw DirectiveError("crlfile", path, "the signature of the CRL issued by '\(issuerText)' does not verify with that CA's key")
            }
        }
    }

    /// The status of a certificate (DER) by the CRLs of its issuer.
    func status(ofDER der: [UInt8]) -> Status {
        guard let certificate = X509Certificate.fromDER(der) else { return .notRevoked }
        return status(of: certificate)
    }

    func status(of certificate: X509Certificate) -> Status {
        lists.withLock { lists in
            for crl in lists.pointers where X509_NAME_cmp(certificate.issuerName, X509_CRL_get_issuer(crl)) == 0 {
                if let next = X509_CRL_get0_nextUpdate(crl), X509_cmp_current_time(next) < 0 { return .listExpired }
                var entry: OpaquePointer?
                if X509_CRL_get0_by_cert(crl, &entry, certificate.pointer) == 1 { return .revoked }
            }
            return .notRevoked
        }
    }
}

/// A listener directive whose value cannot be used.
struct DirectiveError: Error, CustomStringConvertible {
    var directive: String
    var message: String

    init(_ directive: String, _ path: String?, _ what: String) {
        self.directive = directive
        self.message = path.map { "\(directive) \($0): \(what)" } ?? "\(directive): \(what)"
    }

    var description: String { message }
}
