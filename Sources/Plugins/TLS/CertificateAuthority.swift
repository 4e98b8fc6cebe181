import CCrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A problem making, reading or writing certificates; the message names the file or setting.
public struct CertificateError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A certificate and its private key, as PEM text.
public struct IssuedCertificate: Sendable {
    public var certificatePEM: String
    /// PKCS #8, unencrypted.
    public var privateKeyPEM: String
}

/// A certificate authority with an ECDSA P-256 key that issues ECDSA P-256 certificates signed with SHA-256:
/// the per-instance CA of the default deployment (see `DefaultCertificates`), and the tests' CAs.
///
/// Everything is done in memory with libcrypto; a CA plus a server certificate take about a millisecond.
/// The CA is its PEM text: each certificate or CRL it signs reads its certificate and key again (microseconds),
/// so no libcrypto object is shared between threads.
public final class CertificateAuthority: Sendable {
    /// The CA certificate, PEM.
    public let certificatePEM: String
    /// The CA key, PEM (PKCS #8, unencrypted).
    public let privateKeyPEM: String

    private init(certificate: X509Certificate, key: PrivateKey) throws {
        self.certificatePEM = try certificate.pem()
        self.privateKeyPEM = try key.pem()
    }

    /// The CA certificate and key as libcrypto objects, for one signing.
    private func signer() throws -> (certificate: X509Certificate, key: PrivateKey) {
        guard let certificate = try X509Certificate.allFromPEM(Array(certificatePEM.utf8)).first,
              let key = try PrivateKey.fromPEM(Array(privateKeyPEM.utf8)) else {
            throw CertificateError("cannot read the CA certificate or key again")
        }
        return (certificate, key)
    }

    /// A new self-signed CA: `CN=commonName` (and `O=organization`), basicConstraints critical CA:TRUE with
    /// pathlen 0, keyUsage critical keyCertSign and cRLSign.
    public static func generate(commonName: String, organization: String? = "Midge",
                                validDays: Int = 3650) throws -> CertificateAuthority {
        let key = try PrivateKey.generateP256()
        var subject: [(field: String, value: String)] = []
        if let organization { subject.append(("O", organization)) }
        subject.append(("CN", commonName))
        let certificate = try makeCertificate(subject: subject, publicKey: key, issuer: nil, signer: key,
                                              validDays: validDays, extensions: [
            (NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
            (NID_key_usage, "critical,keyCertSign,cRLSign"),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ])
        return try CertificateAuthority(certificate: certificate, key: key)
    }

    /// An existing CA from PEM text; throws when the key is not the certificate's.
    public convenience init(certificatePEM: String, privateKeyPEM: String) throws {
        guard let certificate = try X509Certificate.allFromPEM(Array(certificatePEM.utf8)).first else {
            throw CertificateError("no PEM certificate in the CA certificate")
        }
        guard let key = try PrivateKey.fromPEM(Array(privateKeyPEM.utf8)) else {
            throw CertificateError("no unencrypted PEM private key in the CA key")
        }
        guard certificate.matches(key) else {
            throw CertificateError("the CA key does not belong to the CA certificate")
        }
        try self.init(certificate: certificate, key: key)
    }

    /// A TLS server certificate for `names` (host names, `*.` wildcards, IPv4 and IPv6 addresses; at least
    /// one): subjectAltName with each as DNS or IP, extendedKeyUsage serverAuth, keyUsage digitalSignature,
    /// CA:FALSE. The common name is `commonName`, or the first DNS name (or "localhost") when it fits 64 bytes.
    public func issueServerCertificate(names: [String], commonName: String? = nil,
                                       validDays: Int = 825) throws -> IssuedCertificate {
        let entries = try names.map(SubjectAlternativeName.init(parsing:))
        guard !entries.isEmpty else { throw CertificateError("a server certificate needs at least one name") }
        let firstDNS = entries.first(where: { !$0.isIP })?.value
        let cn = commonName ?? firstDNS.flatMap { $0.utf8.count <= 64 ? $0 : nil } ?? "localhost"
        let alternativeNames = entries.map(\.extensionValue).joined(separator: ",")
        return try issue(subject: [("CN", cn)], validDays: validDays, extensions: [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature"),
            (NID_ext_key_usage, "serverAuth"),
            (NID_subject_alt_name, alternativeNames),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ])
    }

    /// A TLS client certificate with `subject` (RDNs in order, most general first, e.g.
    /// `[("O", "Example"), ("CN", "alice")]`): extendedKeyUsage clientAuth, keyUsage digitalSignature, CA:FALSE.
    public func issueClientCertificate(subject: [(field: String, value: String)],
                                       validDays: Int = 825) throws -> IssuedCertificate {
        try issue(subject: subject, validDays: validDays, extensions: [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature"),
            (NID_ext_key_usage, "clientAuth"),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ])
    }

    /// A CRL (v2, PEM) signed by this CA that revokes `certificates` (PEM, each issued by this CA), valid
    /// from now for `validDays` (a Mosquitto or Midge listener refuses every client of this CA once it expires).
    public func revocationList(revoking certificates: [String], validDays: Int = 30) throws -> String {
        let (certificate, key) = try signer()
        guard let crl = X509_CRL_new() else { throw LibCryptoError("X509_CRL_new") }
        defer { X509_CRL_free(crl) }
        guard let now = ASN1_TIME_new(), let next = ASN1_TIME_new() else { throw LibCryptoError("ASN1_TIME_new") }
        defer { ASN1_TIME_free(now); ASN1_TIME_free(next) }
        X509_gmtime_adj(now, 0)
        X509_time_adj_ex(next, Int32(validDays), 0, nil)
        guard X509_CRL_set_version(crl, 1) == 1,
              X509_CRL_set_issuer_name(crl, certificate.subjectName) == 1,
              X509_CRL_set1_lastUpdate(crl, now) == 1,
              X509_CRL_set1_nextUpdate(crl, next) == 1 else { throw LibCryptoError("CRL fields") }
        for pem in certificates {
            for revoked in try X509Certificate.allFromPEM(Array(pem.utf8)) {
                guard let entry = X509_REVOKED_new() else { throw LibCryptoError("X509_REVOKED_new") }
                guard X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(revoked.pointer)) == 1,
                      X509_REVOKED_set_revocationDate(entry, now) == 1,
                      X509_CRL_add0_revoked(crl, entry) == 1 else {
                    X509_REVOKED_free(entry)
                    throw LibCryptoError("CRL entry")
                }
            }
        }
        var context = X509V3_CTX()
        X509V3_set_ctx(&context, certificate.pointer, nil, nil, crl, 0)
        if let extensionValue = X509V3_EXT_conf_nid(nil, &context, NID_authority_key_identifier, "keyid:always") {
            X509_CRL_add_ext(crl, extensionValue, -1)
            X509_EXTENSION_free(extensionValue)
        }
        if let number = ASN1_INTEGER_new() {
            ASN1_INTEGER_set(number, 1)
            X509_CRL_add1_ext_i2d(crl, NID_crl_number, UnsafeMutableRawPointer(number), 0, 0)
            ASN1_INTEGER_free(number)
        }
        guard X509_CRL_sort(crl) == 1, X509_CRL_sign(crl, key.pointer, EVP_sha256()) > 0 else {
            throw LibCryptoError("signing the CRL")
        }
        let bio = try MemoryBIO()
        guard PEM_write_bio_X509_CRL(bio.pointer, crl) == 1 else { throw LibCryptoError("PEM_write_bio_X509_CRL") }
        return bio.text()
    }

    private func issue(subject: [(field: String, value: String)], validDays: Int,
                       extensions: [(Int32, String)]) throws -> IssuedCertificate {
        let (certificate, key) = try signer()
        let leafKey = try PrivateKey.generateP256()
        let leaf = try Self.makeCertificate(subject: subject, publicKey: leafKey, issuer: certificate, signer: key,
                                            validDays: validDays, extensions: extensions)
        return IssuedCertificate(certificatePEM: try leaf.pem(), privateKeyPEM: try leafKey.pem())
    }

    /// Builds and signs one X.509 v3 certificate; `issuer` nil makes it self-signed.
    private static func makeCertificate(subject: [(field: String, value: String)], publicKey: PrivateKey,
                                        issuer: X509Certificate?, signer: PrivateKey, validDays: Int,
                                        extensions: [(Int32, String)]) throws -> X509Certificate {
        guard let pointer = X509_new() else { throw LibCryptoError("X509_new") }
        let certificate = X509Certificate(taking: pointer)
        guard X509_set_version(pointer, 2) == 1 else { throw LibCryptoError("X509_set_version") }
        // A random positive 127-bit serial number (16 bytes in DER), as RFC 5280 and CA/B practice want.
        guard let serial = BN_new() else { throw LibCryptoError("BN_new") }
        defer { BN_free(serial) }
        guard BN_rand(serial, 127, 0, 0) == 1, BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(pointer)) != nil else {
            throw LibCryptoError("serial number")
        }
        // Valid from an hour ago, for clocks that lag a little.
        guard X509_gmtime_adj(X509_getm_notBefore(pointer), -3600) != nil,
              X509_time_adj_ex(X509_getm_notAfter(pointer), Int32(validDays), 0, nil) != nil else {
            throw LibCryptoError("validity")
        }
        guard X509_set_pubkey(pointer, publicKey.pointer) == 1 else { throw LibCryptoError("X509_set_pubkey") }
        let name = X509_get_subject_name(pointer)
        for (field, value) in subject {
            let bytes = Array(value.utf8)
            guard X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, bytes, Int32(bytes.count), -1, 0) == 1 else {
                throw CertificateError("subject \(field)=\(value): \(drainOpenSSLErrors())")
            }
        }
        guard X509_set_issuer_name(pointer, issuer?.subjectName ?? name) == 1 else {
            throw LibCryptoError("X509_set_issuer_name")
        }
        var context = X509V3_CTX()
        X509V3_set_ctx(&context, issuer?.pointer ?? pointer, pointer, nil, nil, 0)
        for (nid, value) in extensions {
            guard let extensionValue = X509V3_EXT_conf_nid(nil, &context, nid, value) else {
                throw CertificateError("extension \(String(cString: OBJ_nid2sn(nid))) '\(value)': \(drainOpenSSLErrors())")
            }
            defer { X509_EXTENSION_free(extensionValue) }
            guard X509_add_ext(pointer, extensionValue, -1) == 1 else { throw LibCryptoError("X509_add_ext") }
        }
        guard X509_sign(pointer, signer.pointer, EVP_sha256()) > 0 else { throw LibCryptoError("X509_sign") }
        return certificate
    }
}

/// One subjectAltName entry: an IP address or a DNS name.
struct SubjectAlternativeName: Equatable {
    var value: String
    var isIP: Bool

    /// Accepts IPv4 and IPv6 addresses, and DNS names of letters, digits, `-` and `_` labels (a leading `*.`
    /// wildcard allowed), 253 bytes at most.
    init(parsing raw: String) throws {
        let text = raw.trimmingSpaces()
        if Self.isIPAddress(text) {
            value = text
            isIP = true
            return
        }
        let name = text.hasSuffix(".") ? String(text.dropLast()) : text
        var labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*" && labels.count > 2 { labels.removeFirst() }
        let valid = !name.isEmpty && name.utf8.count <= 253 && labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.utf8.allSatisfy { byte in
                    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                        || byte == 0x2D || byte == 0x5F
                }
        }
        guard valid else { throw CertificateError("'\(raw)' is neither a host name nor an IP address") }
        value = name.lowercased()
        isIP = false
    }

    var extensionValue: String { (isIP ? "IP:" : "DNS:") + value }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}

extension String {
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
