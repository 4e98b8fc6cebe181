import CCrypto

/// SHA-256, HMAC-SHA-256 (RFC 2104) and PBKDF2-HMAC-SHA-256 over OpenSSL's libcrypto, and random bytes.
enum SCRAMCrypto {
    /// SHA-256 of `data`.
    static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = data.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                EVP_Digest(input.baseAddress, input.count, output.baseAddress, &length, EVP_sha256(), nil) == 1
            }
        }
        precondition(ok && length == 32, "SHA-256 failed")
        return out
    }

    /// HMAC-SHA-256 of `message` under `key` (RFC 2104, block size 64).
    static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var block = key.count > 64 ? sha256(key) : key
        block += [UInt8](repeating: 0, count: 64 - block.count)
        let inner = sha256(block.map { $0 ^ 0x36 } + message)
        return sha256(block.map { $0 ^ 0x5C } + inner)
    }

    /// PBKDF2-HMAC-SHA-256 with a 32-byte output (SCRAM's Hi()).
    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = password.withUnsafeBufferPointer { pw in
            salt.withUnsafeBufferPointer { st in
                out.withUnsafeMutableBufferPointer { o in
                    pw.withMemoryRebound(to: CChar.self) { pwc in
                        PKCS5_PBKDF2_HMAC(pwc.baseAddress, Int32(pw.count), st.baseAddress, Int32(st.count),
                                          Int32(iterations), EVP_sha256(), 32, o.baseAddress) == 1
                    }
                }
            }
        }
        precondition(ok, "PBKDF2 failed")
        return out
    }

    /// `count` bytes from OpenSSL's random generator.
    static func random(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        precondition(ok == 1, "RAND_bytes failed")
        return bytes
    }
}
