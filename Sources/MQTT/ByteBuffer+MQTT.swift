import NIOCore

extension ByteBuffer {
    /// Reads a variable byte integer (at most four bytes), or throws if it is longer or cut short.
    @inlinable
    mutating func readMQTTVariableInteger() throws -> Int {
        var value = 0
        var multiplier = 1
        for _ in 0..<4 {
            guard let byte = readInteger(as: UInt8.self) else {
                throw MQTTError.malformedPacket("variable byte integer cut short")
            }
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 { return value }
            multiplier *= 128
        }
        throw MQTTError.malformedPacket("variable byte integer longer than four bytes")
    }

    /// Writes a variable byte integer; `value` must be below 268,435,456.
    @inlinable
    @discardableResult
    mutating func writeMQTTVariableInteger(_ value: Int) -> Int {
        var remaining = value
        var written = 0
        repeat {
            var byte = UInt8(remaining & 0x7F)
            remaining >>= 7
            if remaining > 0 { byte |= 0x80 }
            writeInteger(byte)
            written += 1
        } while remaining > 0
        return written
    }

    /// Reads a two-byte length followed by that many bytes of valid MQTT UTF-8.
    ///
    /// One pass over the readable bytes: each separate read of a `ByteBuffer` inlined here reaches its storage
    /// through a class property, at the cost of a dynamic exclusivity check.
    @inlinable
    mutating func readMQTTString(_ what: StaticString) throws -> String {
        let (string, consumed): (String, Int) = try withUnsafeReadableBytes { raw in
            guard raw.count >= 2 else { throw MQTTError.malformedPacket("\(what): length cut short") }
            let length = Int(raw[0]) << 8 | Int(raw[1])
            guard raw.count - 2 >= length else {
                throw MQTTError.malformedPacket("\(what): string cut short")
            }
            let bytes = UnsafeRawBufferPointer(rebasing: raw[2..<(2 + length)])
            guard UTF8Validation.isValidMQTT(bytes) else {
                throw MQTTError.malformedPacket("\(what): not valid UTF-8 for MQTT")
            }
            return (String(decoding: bytes, as: UTF8.self), 2 + length)
        }
        moveReaderIndex(forwardBy: consumed)
        return string
    }

    /// Reads a two-byte length followed by that many bytes.
    @inlinable
    mutating func readMQTTBinary(_ what: StaticString) throws -> ByteBuffer {
        guard let length = readInteger(as: UInt16.self), let slice = readSlice(length: Int(length)) else {
            throw MQTTError.malformedPacket("\(what) cut short")
        }
        return slice
    }

    @inlinable
    mutating func writeMQTTString(_ string: String) {
        writeInteger(UInt16(truncatingIfNeeded: string.utf8.count))
        writeString(string)
    }

    @inlinable
    mutating func writeMQTTBinary(_ bytes: ByteBuffer) {
        writeInteger(UInt16(truncatingIfNeeded: bytes.readableBytes))
        writeImmutableBuffer(bytes)
    }
}

/// The number of bytes a variable byte integer takes.
@inlinable
func variableIntegerSize(_ value: Int) -> Int {
    switch value {
    case ..<128: return 1
    case ..<16_384: return 2
    case ..<2_097_152: return 3
    default: return 4
    }
}

/// UTF-8 as MQTT allows it: well formed, no U+0000, no surrogates, and (as Mosquitto checks) no C0/C1 control
/// characters and no non-characters.
public enum UTF8Validation {
    @inlinable
    public static func isValidMQTT(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            if byte < 0x80 {
                if byte < 0x20 || byte == 0x7F { return false }
                index += 1
                continue
            }
            var codepoint: UInt32
            var needed: Int
            if byte & 0xE0 == 0xC0 {
                codepoint = UInt32(byte & 0x1F); needed = 1
                if byte < 0xC2 { return false }  // overlong
            } else if byte & 0xF0 == 0xE0 {
                codepoint = UInt32(byte & 0x0F); needed = 2
            } else if byte & 0xF8 == 0xF0 {
                codepoint = UInt32(byte & 0x07); needed = 3
                if byte > 0xF4 { return false }
            } else {
                return false
            }
            guard index + needed < count else { return false }
            for offset in 1...needed {
                let next = bytes[index + offset]
                guard next & 0xC0 == 0x80 else { return false }
                codepoint = (codepoint << 6) | UInt32(next & 0x3F)
            }
            switch needed {
            case 2 where codepoint < 0x800: return false
            case 3 where codepoint < 0x10000 || codepoint > 0x10FFFF: return false
            default: break
            }
            if codepoint >= 0xD800 && codepoint <= 0xDFFF { return false }
            if codepoint >= 0x7F && codepoint <= 0x9F { return false }
            if codepoint >= 0xFDD0 && codepoint <= 0xFDEF { return false }
            if codepoint & 0xFFFE == 0xFFFE { return false }
            index += needed + 1
        }
        return true
    }

    /// Validates a Swift string's UTF-8 the same way.
    public static func isValidMQTT(_ string: String) -> Bool {
        var copy = string
        return copy.withUTF8 { isValidMQTT(UnsafeRawBufferPointer($0)) }
    }
}
