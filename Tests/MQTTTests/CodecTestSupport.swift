import MQTT
import NIOCore
import Testing

// Helpers shared by the codec tests: hand-written wire images, decode/encode shortcuts, and a way to compare
// `MQTTError`s by case only (their messages are free text).

/// One element of a hand-written wire image: a single byte, ASCII text spelled out byte for byte (length
/// prefixes are always written by hand as bytes), or a run of one repeated byte.
enum Wire: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, Sendable {
    case byte(UInt8)
    case ascii(String)
    case repeated(UInt8, count: Int)

    init(integerLiteral value: UInt8) { self = .byte(value) }

    init(stringLiteral value: String) {
        precondition(value.unicodeScalars.allSatisfy(\.isASCII), "wire text must be ASCII: \(value)")
        self = .ascii(value)
    }
}

/// Flattens a wire image into bytes.
func bytes(_ parts: [Wire]) -> [UInt8] {
    var out: [UInt8] = []
    for part in parts {
        switch part {
        case .byte(let b): out.append(b)
        case .ascii(let s): out.append(contentsOf: s.utf8)
        case .repeated(let b, let count): out.append(contentsOf: repeatElement(b, count: count))
        }
    }
    return out
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }
func buffer(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

/// `0x10 0x1F ...`, for failure messages.
func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { "0x" + String($0, radix: 16, uppercase: true).leftPadded(to: 2) }.joined(separator: " ")
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// The bytes `packet.write(version:to:)` produces.
func encode(_ packet: Packet, version: ProtocolVersion) -> [UInt8] {
    var out = ByteBuffer()
    packet.write(version: version, to: &out)
    return Array(out.readableBytesView)
}

/// The case of an `MQTTError`, without its associated values.
enum MQTTErrorKind: Sendable, Hashable, CustomStringConvertible {
    case malformedPacket, protocolError, packetTooLarge, unsupportedProtocolVersion, topicNameInvalid

    var description: String {
        switch self {
        case .malformedPacket: return "malformedPacket"
        case .protocolError: return "protocolError"
        case .packetTooLarge: return "packetTooLarge"
        case .unsupportedProtocolVersion: return "unsupportedProtocolVersion"
        case .topicNameInvalid: return "topicNameInvalid"
        }
    }
}

extension MQTTError {
    var kind: MQTTErrorKind {
        switch self {
        case .malformedPacket: return .malformedPacket
        case .protocolError: return .protocolError
        case .packetTooLarge: return .packetTooLarge
        case .unsupportedProtocolVersion: return .unsupportedProtocolVersion
        case .topicNameInvalid: return .topicNameInvalid
        }
    }
}

/// Expects `body` to throw an `MQTTError` of case `kind`; any other outcome is recorded as a failure.
func expectMQTTError<R>(
    _ kind: MQTTErrorKind,
    _ context: String = "",
    sourceLocation: SourceLocation = #_sourceLocation,
    performing body: () throws -> R
) {
    let suffix = context.isEmpty ? "" : " (\(context))"
    do {
        let result = try body()
        Issue.record(Comment(rawValue: "expected \(kind), got a result: \(result)\(suffix)"),
                     sourceLocation: sourceLocation)
    } catch let error as MQTTError {
        #expect(error.kind == kind, Comment(rawValue: "expected \(kind), got \(error)\(suffix)"),
                sourceLocation: sourceLocation)
    } catch {
        Issue.record(Comment(rawValue: "expected \(kind), got a non-MQTT error \(error)\(suffix)"),
                     sourceLocation: sourceLocation)
    }
}
