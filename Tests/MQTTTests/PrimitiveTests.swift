@testable import MQTT
import NIOCore
import Testing

// MARK: - Variable byte integers

struct VariableInteger: Sendable, CustomTestStringConvertible {
    let value: Int
    let wire: [UInt8]
    var testDescription: String { "\(value) ⇄ \(hex(wire))" }
}

/// The boundaries of each encoded length (MQTT 5.0 §1.5.5, 3.1.1 §2.2.3).
let variableIntegerBoundaries: [VariableInteger] = [
    VariableInteger(value: 0, wire: [0x00]),
    VariableInteger(value: 127, wire: [0x7F]),
    VariableInteger(value: 128, wire: [0x80, 0x01]),
    VariableInteger(value: 16_383, wire: [0xFF, 0x7F]),
    VariableInteger(value: 16_384, wire: [0x80, 0x80, 0x01]),
    VariableInteger(value: 2_097_151, wire: [0xFF, 0xFF, 0x7F]),
    VariableInteger(value: 2_097_152, wire: [0x80, 0x80, 0x80, 0x01]),
    VariableInteger(value: 268_435_455, wire: [0xFF, 0xFF, 0xFF, 0x7F]),
]

@Suite("Variable byte integers")
struct VariableIntegerTests {
    @Test("round trip and byte count at each boundary", arguments: variableIntegerBoundaries)
    func roundTrip(_ row: VariableInteger) throws {
        var out = ByteBuffer()
        let written = out.writeMQTTVariableInteger(row.value)
        #expect(Array(out.readableBytesView) == row.wire)
        #expect(written == row.wire.count)
        #expect(variableIntegerSize(row.value) == row.wire.count)

        var input = buffer(row.wire + [0xAA])  // a following byte must stay unread
        #expect(try input.readMQTTVariableInteger() == row.value)
        #expect(input.readableBytes == 1)
    }

    @Test("more than four bytes, or cut short, is malformed", arguments: [
        [0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        [0x80, 0x80, 0x80, 0x80, 0x01],
        [0x80],
        [0xFF, 0xFF, 0xFF],
        [],
    ] as [[UInt8]])
    func malformed(_ wire: [UInt8]) {
        var input = buffer(wire)
        expectMQTTError(.malformedPacket, hex(wire)) { try input.readMQTTVariableInteger() }
    }

    @Test("as a remaining length: PUBLISH at each boundary size",
          arguments: variableIntegerBoundaries.filter { $0.value >= 3 && $0.value <= 2_097_152 })
    func remainingLength(_ row: VariableInteger) throws {
        // Topic "t" takes three bytes; the payload fills the rest of the remaining length.
        let payload = ByteBuffer(repeating: 0x61, count: row.value - 3)
        let packet = Packet.publish(PublishPacket(topic: "t", payload: payload))
        let written = encode(packet, version: .v3_1_1)
        #expect(written.count == 1 + row.wire.count + row.value)
        #expect(Array(written.prefix(1 + row.wire.count)) == [0x30] + row.wire)
        #expect(Array(written[(1 + row.wire.count)...].prefix(3)) == [0x00, 0x01, 0x74])
        if case .publish(let p) = packet { #expect(p.encodedSize(version: .v3_1_1) == written.count) }

        var decoder = MQTTDecoder(version: .v3_1_1)
        var input = buffer(written)
        #expect(try decoder.decode(buffer: &input) == packet)
        #expect(input.readableBytes == 0)
    }

    @Test("the largest remaining length is read from a header alone")
    func largestRemainingLength() throws {
        let header: [UInt8] = [0x30, 0xFF, 0xFF, 0xFF, 0x7F]  // PUBLISH, remaining length 268435455
        let total = 5 + 268_435_455
        var over = MQTTDecoder(version: .v3_1_1, maximumPacketSize: total - 1)
        var input = buffer(header)
        #expect(throws: MQTTError.packetTooLarge(size: total, limit: total - 1)) {
            try over.decode(buffer: &input)
        }
        var within = MQTTDecoder(version: .v3_1_1, maximumPacketSize: total)
        input = buffer(header)
        #expect(try within.decode(buffer: &input) == nil)
        var unlimited = MQTTDecoder(version: .v3_1_1)
        input = buffer(header)
        #expect(try unlimited.decode(buffer: &input) == nil)
    }

    @Test("as a property: subscription identifier at each boundary",
          arguments: variableIntegerBoundaries.filter { $0.value > 0 })
    func subscriptionIdentifier(_ row: VariableInteger) throws {
        let propertyLength = UInt8(1 + row.wire.count)
        let wire: [UInt8] = [0x82, 7 + propertyLength,     // SUBSCRIBE, remaining length
                             0x00, 0x01,                   // packet identifier 1
                             propertyLength, 0x0B]         // property length, subscription identifier
            + row.wire                                     // its value
            + [0x00, 0x01, 0x61, 0x00]                     // filter "a", QoS 0
        let packet = Packet.subscribe(SubscribePacket(
            packetID: 1, subscriptions: [TopicSubscription(filter: "a", options: SubscriptionOptions(qos: .atMostOnce))],
            properties: [.subscriptionIdentifier(row.value)]))
        #expect(encode(packet, version: .v5) == wire)
        var decoder = MQTTDecoder(version: .v5)
        var input = buffer(wire)
        #expect(try decoder.decode(buffer: &input) == packet)
    }
}

// MARK: - UTF-8 as MQTT allows it

struct UTF8Case: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let valid: Bool
    init(_ name: String, _ bytes: [UInt8], _ valid: Bool) {
        self.name = name
        self.bytes = bytes
        self.valid = valid
    }
    var testDescription: String { "\(name): \(hex(bytes)) \(valid ? "valid" : "invalid")" }
}

let utf8Cases: [UTF8Case] = [
    // Valid
    UTF8Case("empty", [], true),
    UTF8Case("ASCII", Array("a/b c~".utf8), true),
    UTF8Case("U+00A0, first after the C1 range", [0xC2, 0xA0], true),
    UTF8Case("U+00E9 é, two bytes", [0xC3, 0xA9], true),
    UTF8Case("U+07FF, largest two-byte", [0xDF, 0xBF], true),
    UTF8Case("U+0800, smallest three-byte", [0xE0, 0xA0, 0x80], true),
    UTF8Case("U+20AC €, three bytes", [0xE2, 0x82, 0xAC], true),
    UTF8Case("U+D7FF, just below the surrogates", [0xED, 0x9F, 0xBF], true),
    UTF8Case("U+E000, just above the surrogates", [0xEE, 0x80, 0x80], true),
    UTF8Case("U+FFFD replacement character", [0xEF, 0xBF, 0xBD], true),
    UTF8Case("U+10000, smallest four-byte", [0xF0, 0x90, 0x80, 0x80], true),
    UTF8Case("U+1D11E 𝄞, four bytes", [0xF0, 0x9D, 0x84, 0x9E], true),
    UTF8Case("U+10FFFD, largest non-non-character", [0xF4, 0x8F, 0xBF, 0xBD], true),
    UTF8Case("mixed multi-byte", Array("a/é/€/𝄞".utf8), true),
    // Overlong
    UTF8Case("overlong / in two bytes", [0xC0, 0xAF], false),
    UTF8Case("overlong U+007F in two bytes", [0xC1, 0xBF], false),
    UTF8Case("overlong / in three bytes", [0xE0, 0x80, 0xAF], false),
    UTF8Case("overlong U+07FF in three bytes", [0xE0, 0x9F, 0xBF], false),
    UTF8Case("overlong / in four bytes", [0xF0, 0x80, 0x80, 0xAF], false),
    UTF8Case("overlong U+FFFD in four bytes", [0xF0, 0x8F, 0xBF, 0xBD], false),
    // Surrogates
    UTF8Case("U+D800, first high surrogate", [0xED, 0xA0, 0x80], false),
    UTF8Case("U+DBFF, last high surrogate", [0xED, 0xAF, 0xBF], false),
    UTF8Case("U+DC00, first low surrogate", [0xED, 0xB0, 0x80], false),
    UTF8Case("U+DFFF, last low surrogate", [0xED, 0xBF, 0xBF], false),
    UTF8Case("CESU-8 pair for U+10000", [0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80], false),
    // Beyond Unicode
    UTF8Case("U+110000", [0xF4, 0x90, 0x80, 0x80], false),
    UTF8Case("lead byte 0xF5", [0xF5, 0x80, 0x80, 0x80], false),
    UTF8Case("lead byte 0xF8 (five-byte form)", [0xF8, 0x88, 0x80, 0x80, 0x80], false),
    UTF8Case("byte 0xFE", [0xFE], false),
    UTF8Case("byte 0xFF", [0xFF], false),
    // Truncated and stray
    UTF8Case("two-byte lead at the end", [0x61, 0xC3], false),
    UTF8Case("three-byte sequence missing its last byte", [0xE2, 0x82], false),
    UTF8Case("four-byte sequence missing its last byte", [0xF0, 0x9D, 0x84], false),
    UTF8Case("three-byte sequence interrupted by ASCII", [0xE2, 0x82, 0x41], false),
    UTF8Case("lone continuation byte", [0x80], false),
    UTF8Case("continuation byte after ASCII", [0x61, 0xBF], false),
    // Non-characters
    UTF8Case("U+FFFE", [0xEF, 0xBF, 0xBE], false),
    UTF8Case("U+FFFF", [0xEF, 0xBF, 0xBF], false),
    UTF8Case("U+FDD0, first of the FDD0-FDEF block", [0xEF, 0xB7, 0x90], false),
    UTF8Case("U+FDEF, last of the FDD0-FDEF block", [0xEF, 0xB7, 0xAF], false),
    UTF8Case("U+1FFFE", [0xF0, 0x9F, 0xBF, 0xBE], false),
    UTF8Case("U+10FFFF", [0xF4, 0x8F, 0xBF, 0xBF], false),
    // Control characters
    UTF8Case("U+0000", [0x00], false),
    UTF8Case("U+0000 inside text", [0x61, 0x00, 0x62], false),
    UTF8Case("U+0001, C0 control", [0x01], false),
    UTF8Case("U+001F, C0 control", [0x1F], false),
    UTF8Case("U+007F DEL", [0x7F], false),
    UTF8Case("U+0080, C1 control", [0xC2, 0x80], false),
    UTF8Case("U+0085 NEL, C1 control", [0xC2, 0x85], false),
    UTF8Case("U+009F, C1 control", [0xC2, 0x9F], false),
]

@Suite("UTF8Validation")
struct UTF8ValidationTests {
    @Test("bytes", arguments: utf8Cases)
    func bytes(_ row: UTF8Case) {
        let valid = row.bytes.withUnsafeBytes { UTF8Validation.isValidMQTT($0) }
        #expect(valid == row.valid)
    }

    @Test("a topic carrying the bytes is accepted or refused accordingly", arguments: utf8Cases.filter {
        !$0.bytes.isEmpty && !$0.bytes.contains(UInt8(ascii: "+")) && !$0.bytes.contains(UInt8(ascii: "#"))
    })
    func inTopic(_ row: UTF8Case) throws {
        let length = row.bytes.count
        let wire: [UInt8] = [0x30, UInt8(2 + length), 0x00, UInt8(length)] + row.bytes  // PUBLISH QoS 0
        var decoder = MQTTDecoder(version: .v3_1_1)
        var input = buffer(wire)
        if row.valid {
            let packet = try decoder.decode(buffer: &input)
            guard case .publish(let publish) = packet else {
                Issue.record("not a PUBLISH: \(String(describing: packet))")
                return
            }
            #expect(Array(publish.topic.utf8) == row.bytes)
        } else {
            expectMQTTError(.malformedPacket) { try decoder.decode(buffer: &input) }
        }
    }

    @Test("strings")
    func strings() {
        #expect(UTF8Validation.isValidMQTT("sensors/é/€/𝄞"))
        #expect(UTF8Validation.isValidMQTT(""))
        #expect(!UTF8Validation.isValidMQTT("a\u{0}b"))
        #expect(!UTF8Validation.isValidMQTT("tab\there"))
        #expect(!UTF8Validation.isValidMQTT("\u{85}"))
        #expect(!UTF8Validation.isValidMQTT("\u{FFFE}"))
        #expect(!UTF8Validation.isValidMQTT(String(Character(Unicode.Scalar(0xFDD0 as UInt32)!))))
        #expect(!UTF8Validation.isValidMQTT("\u{10FFFF}"))
    }
}
