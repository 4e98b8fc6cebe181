// Thin owners of libcrypto (system OpenSSL) objects: keys, certificates, names, PEM text.
//
// The TLS connections themselves run on NIOSSL's BoringSSL; libcrypto is used where the project wants
// OpenSSL's exact behaviour or an API NIOSSL does not offer: making certificates and CRLs, reading CRLs, and
// printing a certificate subject the way Mosquitto does.
import CCrypto
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A libcrypto failure, with OpenSSL's error queue as text.
struct LibCryptoError: Error, CustomStringConvertible {
    var description: String

    init(_ what: String) {
        self.description = "\(what): \(drainOpenSSLErrors())"
    }
}

/// OpenSSL's queued errors as one line, emptying the queue.
func drainOpenSSLErrors() -> String {
    var messages: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        messages.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }
    return messages.isEmpty ? "unknown error" : messages.joined(separator: "; ")
}

/// libcrypto objects shared between threads, used by one caller at a time: nothing of them leaves `withLock`
/// but Sendable results.
// @unchecked: `lock` serialises every use of `objects` (libcrypto pointers, not thread-safe by themselves).
final class LibCryptoLocked<Objects>: @unchecked Sendable {
    private let lock = NIOLock()
    private let objects: Objects

    init(_ objects: Objects) { self.objects = objects }

    func withLock<Result: Sendable>(_ body: (Objects) throws -> Result) rethrows -> Result {
        try lock.withLock { try body(objects) }
    }
}

/// A memory BIO.
final class MemoryBIO {
    let pointer: OpaquePointer

    init() throws {
        guard let bio = BIO_new(BIO_s_mem()) else { throw LibCryptoError("BIO_new") }
        pointer = bio
    }

    convenience init(bytes: [UInt8]) throws {
        try self.init()
        if !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { BIO_write(pointer, $0.baseAddress, Int32($0.count)) }
            guard written == Int32(bytes.count) else { throw LibCryptoError("BIO_write") }
        }
    }

    deinit { BIO_free(pointer) }

    /// Everything written so far, as text.
    func text() -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = BIO_read(pointer, &chunk, Int32(chunk.count))
            if count <= 0 { break }
            bytes += chunk[0..<Int(count)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// An EVP_PKEY.
final class PrivateKey {
    let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }

    /// A new ECDSA key on P-256 (about a millisecond; RSA-2048 takes far longer).
    static func generateP256() throws -> PrivateKey {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw LibCryptoError("EVP_PKEY_CTX_new_from_name") }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1 else {
            throw LibCryptoError("P-256 key generation setup")
        }
        var key: OpaquePointer?
        guard EVP_PKEY_generate(context, &key) == 1, let key else { throw LibCryptoError("P-256 key generation") }
        return PrivateKey(taking: key)
    }

    /// Reads the first private key in PEM text; nil when there is none or it is encrypted.
    static func fromPEM(_ bytes: [UInt8]) throws -> PrivateKey? {
        let bio = try MemoryBIO(bytes: bytes)
        // A nil password callback with an empty password makes an encrypted key fail instead of prompting.
        let key = PEM_read_bio_PrivateKey(bio.pointer, nil, { _, _, _, _ in 0 }, nil)
        ERR_clear_error()
        return key.map(PrivateKey.init(taking:))
    }

    /// PKCS #8 PEM ("BEGIN PRIVATE KEY"), unencrypted.
    func pem() throws -> String {
        let bio = try MemoryBIO()
        guard PEM_write_bio_PrivateKey(bio.pointer, pointer, nil, nil, 0, nil, nil) == 1 else {
            throw LibCryptoError("PEM_write_bio_PrivateKey")
        }
        return bio.text()
    }
}

/// An X509 certificate.
final class X509Certificate {
    let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) { self.pointer = pointer }
    deinit { X509_free(pointer) }

    /// Every certificate in PEM text, in order (empty when there is none).
    static func allFromPEM(_ bytes: [UInt8]) throws -> [X509Certificate] {
        let bio = try MemoryBIO(bytes: bytes)
        var certificates: [X509Certificate] = []
        while let certificate = PEM_read_bio_X509(bio.pointer, nil, nil, nil) {
            certificates.append(X509Certificate(taking: certificate))
        }
        ERR_clear_error()  // the read that ends the loop always fails
        return certificates
    }

    /// One certificate from DER bytes.
    static func fromDER(_ bytes: [UInt8]) -> X509Certificate? {
        bytes.withUnsafeBufferPointer { buffer -> X509Certificate? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let certificate = d2i_X509(nil, &cursor, buffer.count) else {
                ERR_clear_error()
                return nil
            }
            return X509Certificate(taking: certificate)
        }
    }

    func pem() throws -> String {
        let bio = try MemoryBIO()
        guard PEM_write_bio_X509(bio.pointer, pointer) == 1 else { throw LibCryptoError("PEM_write_bio_X509") }
        return bio.text()
    }

    var subjectName: OpaquePointer { X509_get_subject_name(pointer) }
    var issuerName: OpaquePointer { X509_get_issuer_name(pointer) }

    /// The subject in RFC 2253 form, exactly as Mosquitto prints it for `use_subject_as_username`
    /// (`X509_NAME_print_ex` with `XN_FLAG_RFC2253`).
    var subjectRFC2253: String? { distinguishedName(subjectName) }

    /// The first common name as UTF-8; nil when there is none or it holds a NUL (Mosquitto refuses those).
    var commonName: String? {
        let index = X509_NAME_get_index_by_NID(subjectName, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(subjectName, index),
              let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&utf8, data)
        guard length >= 0, let utf8 else {
            ERR_clear_error()
            return nil
        }
        defer { CRYPTO_free(utf8, #fileID, #line) }
        let bytes = UnsafeBufferPointer(start: utf8, count: Int(length))
        guard !bytes.contains(0) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// True when `key` is this certificate's private key.
    func matches(_ key: PrivateKey) -> Bool {
        let result = X509_check_private_key(pointer, key.pointer) == 1
        ERR_clear_error()
        return result
    }

    /// True when notAfter has passed.
    var expired: Bool {
        guard let notAfter = X509_get0_notAfter(pointer) else { return false }
        return X509_cmp_current_time(notAfter) < 0
    }
}

/// A name in RFC 2253 form.
func distinguishedName(_ name: OpaquePointer) -> String? {
    guard let bio = try? MemoryBIO() else { return nil }
    // XN_FLAG_RFC2253 (a macro Swift cannot import): ASN1_STRFLGS_RFC2253 (ESC_2253 | ESC_CTRL | ESC_MSB |
    // UTF8_CONVERT | DUMP_UNKNOWN | DUMP_DER) | XN_FLAG_SEP_COMMA_PLUS | XN_FLAG_DN_REV | XN_FLAG_FN_SN |
    // XN_FLAG_DUMP_UNKNOWN_FIELDS.
    let strings = UInt(ASN1_STRFLGS_ESC_2253 | ASN1_STRFLGS_ESC_CTRL | ASN1_STRFLGS_ESC_MSB | ASN1_STRFLGS_UTF8_CONVERT
                       | ASN1_STRFLGS_DUMP_UNKNOWN | ASN1_STRFLGS_DUMP_DER)
    let flags = strings | UInt(1 << 16) | UInt(1 << 20) | UInt(1 << 24)
    guard X509_NAME_print_ex(bio.pointer, name, 0, flags) >= 0 else {
        ERR_clear_error()
        return nil
    }
    return bio.text()
}

/// Reads a whole file; throws an errno-style reason ("no such file or directory", "permission denied").
func readFileBytes(_ path: String) throws(FileReadError) -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw FileReadError(reason: errnoText()) }
    defer { close(descriptor) }
    var info = stat()
    if fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
        throw FileReadError(reason: "is a directory")
    }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        let count = read(descriptor, &chunk, chunk.count)
        if count < 0 {
            if errno == EINTR { continue }
            throw FileReadError(reason: errnoText())
        }
        if count == 0 { break }
        bytes += chunk[0..<count]
        if bytes.count > 16 << 20 { throw FileReadError(reason: "larger than 16 MiB") }
    }
    return bytes
}

struct FileReadError: Error {
    var reason: String
}

/// `strerror(errno)`, lower-cased as in "no such file or directory".
func errnoText(_ code: Int32 = errno) -> String {
    let text = String(cString: strerror(code))
    guard let first = text.first else { return text }
    return first.lowercased() + text.dropFirst()
}
