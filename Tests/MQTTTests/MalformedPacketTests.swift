import MQTT
import NIOCore
import Testing

/// Bytes the decoder must refuse, the error case it must refuse them with, and (where there is one) the same
/// packet with only the defect repaired, which must decode — so each row fails for the reason it names.
struct MalformedPacket: Sendable, CustomTestStringConvertible {
    let name: String
    /// The decoder's version; nil before CONNECT.
    let version: ProtocolVersion?
    let wire: [UInt8]
    let error: MQTTErrorKind
    let repaired: [UInt8]?
    let maximumPacketSize: Int

    init(_ name: String, _ version: ProtocolVersion?, _ wire: [Wire], _ error: MQTTErrorKind,
         repaired: [Wire]? = nil, maximumPacketSize: Int = 0) {
        self.name = name
        self.version = version
        self.wire = bytes(wire)
        self.error = error
        self.repaired = repaired.map(bytes)
        self.maximumPacketSize = maximumPacketSize
    }

    func makeDecoder() -> MQTTDecoder { MQTTDecoder(version: version, maximumPacketSize: maximumPacketSize) }

    var testDescription: String { "\(name) → \(error)" }
}

let malformedPackets: [MalformedPacket] = [
    // MARK: Fixed header
    MalformedPacket("reserved packet type 0", .v3_1_1, [
        0x00, 0x00,                 // type 0, remaining length 0
    ], .protocolError, repaired: [0xC0, 0x00]),     // protocol error, as Mosquitto answers it

    MalformedPacket("remaining length with five bytes", .v3_1_1, [
        0x30,                       // PUBLISH
        0xFF, 0xFF, 0xFF, 0xFF, 0x01,   // five length bytes: the fourth still says "more"
    ], .malformedPacket),

    MalformedPacket("PUBREL with flags 0000", .v3_1_1, [
        0x60, 0x02, 0x00, 0x01,     // PUBREL must carry flags 0010
    ], .malformedPacket, repaired: [0x62, 0x02, 0x00, 0x01]),

    MalformedPacket("SUBSCRIBE with flags 0000", .v3_1_1, [
        0x80, 0x06,                 // SUBSCRIBE must carry flags 0010
        0x00, 0x01, 0x00, 0x01, "a", 0x00,
    ], .malformedPacket, repaired: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a", 0x00]),

    MalformedPacket("UNSUBSCRIBE with flags 0000", .v3_1_1, [
        0xA0, 0x05,                 // UNSUBSCRIBE must carry flags 0010
        0x00, 0x01, 0x00, 0x01, "a",
    ], .malformedPacket, repaired: [0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, "a"]),

    MalformedPacket("PINGREQ with flags 0001", .v3_1_1, [
        0xC1, 0x00,                 // PINGREQ must carry flags 0000
    ], .malformedPacket, repaired: [0xC0, 0x00]),

    MalformedPacket("CONNACK with flags 0001", .v3_1_1, [
        0x21, 0x02, 0x00, 0x00,     // CONNACK must carry flags 0000
    ], .malformedPacket, repaired: [0x20, 0x02, 0x00, 0x00]),

    MalformedPacket("CONNACK with reserved acknowledge flags", .v3_1_1, [
        0x20, 0x02,
        0x02,                       // acknowledge flags: only bit 0 may be set
        0x00,
    ], .malformedPacket, repaired: [0x20, 0x02, 0x01, 0x00]),

    // MARK: PUBLISH
    MalformedPacket("PUBLISH QoS 3", .v3_1_1, [
        0x36, 0x05,                 // PUBLISH, QoS bits 11
        0x00, 0x01, "t", 0x00, 0x01,
    ], .malformedPacket, repaired: [0x34, 0x05, 0x00, 0x01, "t", 0x00, 0x01]),

    MalformedPacket("PUBLISH QoS 0 with DUP", .v3_1_1, [
        0x38, 0x03,                 // PUBLISH, DUP, QoS 0
        0x00, 0x01, "t",
    ], .malformedPacket, repaired: [0x30, 0x03, 0x00, 0x01, "t"]),

    MalformedPacket("PUBLISH topic with #", .v3_1_1, [
        0x30, 0x05, 0x00, 0x03, "a/#",
    ], .topicNameInvalid, repaired: [0x30, 0x05, 0x00, 0x03, "a/b"]),

    MalformedPacket("PUBLISH topic with +", .v5, [
        0x30, 0x06, 0x00, 0x03, "+/b", 0x00,
    ], .topicNameInvalid, repaired: [0x30, 0x06, 0x00, 0x03, "a/b", 0x00]),

    MalformedPacket("PUBLISH 3.1.1 with an empty topic", .v3_1_1, [
        0x30, 0x02, 0x00, 0x00,
    ], .topicNameInvalid, repaired: [0x30, 0x03, 0x00, 0x01, "t"]),

    MalformedPacket("PUBLISH 5.0 with an empty topic and no topic alias", .v5, [
        0x30, 0x03, 0x00, 0x00, 0x00,
    ], .topicNameInvalid, repaired: [0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01]),

    MalformedPacket("PUBLISH QoS 1 with packet identifier 0", .v3_1_1, [
        0x32, 0x05, 0x00, 0x01, "t",
        0x00, 0x00,                 // packet identifier 0
    ], .protocolError, repaired: [0x32, 0x05, 0x00, 0x01, "t", 0x00, 0x01]),

    MalformedPacket("PUBLISH topic with an overlong encoding of /", .v3_1_1, [
        0x30, 0x04, 0x00, 0x02,
        0xC0, 0xAF,                 // "/" in two bytes
    ], .malformedPacket, repaired: [0x30, 0x04, 0x00, 0x02, 0xC3, 0xA9]),

    MalformedPacket("PUBLISH topic with a UTF-16 surrogate", .v3_1_1, [
        0x30, 0x05, 0x00, 0x03,
        0xED, 0xA0, 0x80,           // U+D800
    ], .malformedPacket, repaired: [0x30, 0x05, 0x00, 0x03, 0xE2, 0x82, 0xAC]),

    MalformedPacket("PUBLISH topic with U+0000", .v3_1_1, [
        0x30, 0x03, 0x00, 0x01,
        0x00,                       // U+0000
    ], .malformedPacket, repaired: [0x30, 0x03, 0x00, 0x01, "0"]),

    MalformedPacket("PUBLISH topic with a C0 control character", .v3_1_1, [
        0x30, 0x03, 0x00, 0x01,
        0x01,                       // U+0001
    ], .malformedPacket, repaired: [0x30, 0x03, 0x00, 0x01, "1"]),

    MalformedPacket("PUBLISH topic length beyond the packet", .v3_1_1, [
        0x30, 0x03,
        0x00, 0x05, "t",            // topic length 5, one byte present
    ], .malformedPacket, repaired: [0x30, 0x03, 0x00, 0x01, "t"]),

    // MARK: CONNECT
    MalformedPacket("CONNECT with the reserved flag", nil, [
        0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04,
        0x03,                       // flags: clean session + reserved bit 0
        0x00, 0x3C, 0x00, 0x00,
    ], .malformedPacket, repaired: [0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00]),

    MalformedPacket("CONNECT will QoS 3", nil, [
        0x10, 0x11, 0x00, 0x04, "MQTT", 0x04,
        0x1E,                       // flags: will QoS 3, will, clean session
        0x00, 0x3C, 0x00, 0x00,
        0x00, 0x01, "w", 0x00, 0x00,    // will topic, empty will payload
    ], .malformedPacket, repaired: [
        0x10, 0x11, 0x00, 0x04, "MQTT", 0x04, 0x0E, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, "w", 0x00, 0x00,
    ]),

    MalformedPacket("CONNECT will retain without will flag", nil, [
        0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04,
        0x22,                       // flags: will retain, clean session
        0x00, 0x3C, 0x00, 0x00,
    ], .malformedPacket, repaired: [0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00]),

    MalformedPacket("CONNECT will QoS without will flag", nil, [
        0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04,
        0x0A,                       // flags: will QoS 1, clean session
        0x00, 0x3C, 0x00, 0x00,
    ], .malformedPacket, repaired: [0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00]),

    MalformedPacket("CONNECT 3.1.1 password without user name", nil, [
        0x10, 0x0F, 0x00, 0x04, "MQTT", 0x04,
        0x42,                       // flags: password, clean session
        0x00, 0x3C, 0x00, 0x00,
        0x00, 0x01, "p",            // password
    ], .protocolError, repaired: [  // with an (empty) user name
        0x10, 0x11, 0x00, 0x04, "MQTT", 0x04, 0xC2, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, "p",
    ]),

    MalformedPacket("CONNECT with an unknown protocol name", nil, [
        0x10, 0x0C,
        0x00, 0x04, "MQTX",         // protocol name
        0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
    ], .protocolError, repaired: [0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00]),

    MalformedPacket("CONNECT MQTT level 6", nil, [
        0x10, 0x0C, 0x00, 0x04, "MQTT",
        0x06,                       // protocol level 6
        0x02, 0x00, 0x3C, 0x00, 0x00,
    ], .unsupportedProtocolVersion, repaired: [0x10, 0x0C, 0x00, 0x04, "MQTT", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00]),

    MalformedPacket("CONNECT MQIsdp level 4", nil, [
        0x10, 0x0E, 0x00, 0x06, "MQIsdp",
        0x04,                       // protocol level 4 under the 3.1 name
        0x02, 0x00, 0x3C, 0x00, 0x00,
    ], .unsupportedProtocolVersion, repaired: [
        0x10, 0x0E, 0x00, 0x06, "MQIsdp", 0x03, 0x02, 0x00, 0x3C, 0x00, 0x00,
    ]),

    MalformedPacket("CONNECT will topic with a wildcard", nil, [
        0x10, 0x11, 0x00, 0x04, "MQTT", 0x04, 0x06, 0x00, 0x3C, 0x00, 0x00,
        0x00, 0x01, "#", 0x00, 0x00,    // will topic "#"
    ], .malformedPacket, repaired: [
        0x10, 0x11, 0x00, 0x04, "MQTT", 0x04, 0x06, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, "w", 0x00, 0x00,
    ]),

    // MARK: Properties (5.0)
    MalformedPacket("5.0 duplicate session expiry interval in CONNECT", nil, [
        0x10, 0x17, 0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C,
        0x0A,                       // property length 10
        0x11, 0x00, 0x00, 0x00, 0x01,   // session expiry interval 1
        0x11, 0x00, 0x00, 0x00, 0x02,   // session expiry interval 2
        0x00, 0x00,
    ], .protocolError, repaired: [
        0x10, 0x17, 0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C,
        0x0A, 0x11, 0x00, 0x00, 0x00, 0x01, 0x27, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
    ]),

    MalformedPacket("5.0 duplicate payload format indicator in PUBLISH", .v5, [
        0x30, 0x08, 0x00, 0x01, "t",
        0x04,                       // property length 4
        0x01, 0x01, 0x01, 0x01,     // payload format indicator twice
    ], .protocolError, repaired: [0x30, 0x09, 0x00, 0x01, "t", 0x05, 0x01, 0x01, 0x23, 0x00, 0x05]),

    MalformedPacket("5.0 session expiry interval in PUBLISH", .v5, [
        0x30, 0x09, 0x00, 0x01, "t",
        0x05, 0x11, 0x00, 0x00, 0x00, 0x01, // session expiry interval: CONNECT, CONNACK, DISCONNECT only
    ], .protocolError, repaired: [0x30, 0x09, 0x00, 0x01, "t", 0x05, 0x02, 0x00, 0x00, 0x00, 0x01]),

    MalformedPacket("5.0 reason string in UNSUBSCRIBE", .v5, [
        0xA2, 0x0A, 0x00, 0x01,
        0x04, 0x1F, 0x00, 0x01, "r",    // reason string: not allowed client to server here
        0x00, 0x01, "a",
    ], .malformedPacket,                // MQTT 5.0 2.2.2.2, and Mosquitto's 0x81 (issue 16, 4)
       repaired: [0xA2, 0x0D, 0x00, 0x01, 0x07, 0x26, 0x00, 0x01, "r", 0x00, 0x01, "r",
                                   0x00, 0x01, "a"]),

    MalformedPacket("5.0 will delay interval in CONNECT's own properties", nil, [
        0x10, 0x12, 0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C,
        0x05, 0x18, 0x00, 0x00, 0x00, 0x01, // will delay interval belongs in the will properties
        0x00, 0x00,
    ], .protocolError, repaired: [0x10, 0x12, 0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C,
                                   0x05, 0x11, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]),

    MalformedPacket("5.0 two subscription identifiers in SUBSCRIBE", .v5, [
        0x82, 0x0B, 0x00, 0x01,
        0x04, 0x0B, 0x01, 0x0B, 0x02,   // only PUBLISH may repeat it
        0x00, 0x01, "a", 0x00,
    ], .protocolError, repaired: [  // one identifier, 16384, taking the same four bytes
        0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x80, 0x80, 0x01, 0x00, 0x01, "a", 0x00,
    ]),

    MalformedPacket("5.0 unknown property identifier", .v5, [
        0x30, 0x06, 0x00, 0x01, "t",
        0x02, 0x04, 0x00,           // property 0x04 does not exist
    ], .malformedPacket, repaired: [0x30, 0x06, 0x00, 0x01, "t", 0x02, 0x01, 0x00]),

    MalformedPacket("5.0 property length beyond the packet", .v5, [
        0x30, 0x06, 0x00, 0x01, "t",
        0x05,                       // property length 5, two bytes follow
        0x01, 0x01,
    ], .malformedPacket, repaired: [0x30, 0x06, 0x00, 0x01, "t", 0x02, 0x01, 0x01]),

    MalformedPacket("5.0 property value cut short by the property length", .v5, [
        0x30, 0x07, 0x00, 0x01, "t",
        0x02,                       // property length 2
        0x02, 0x00,                 // message expiry interval needs four bytes
        0x00,
    ], .malformedPacket),

    MalformedPacket("5.0 receive maximum 0", nil, [
        0x10, 0x10, 0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C,
        0x03, 0x21, 0x00, 0x00,     // receive maximum 0
        0x00, 0x00,
    ], .protocolError, repaired: [0x10, 0x10, 0x00, 0x04, "MQTT", 0x05, 0x02, 0x00, 0x3C,
                                   0x03, 0x21, 0x00, 0x01, 0x00, 0x00]),

    MalformedPacket("5.0 topic alias 0", .v5, [
        0x30, 0x07, 0x00, 0x01, "t",
        0x03, 0x23, 0x00, 0x00,     // topic alias 0
    ], .malformedPacket,            // malformed, as Mosquitto answers it
       repaired: [0x30, 0x07, 0x00, 0x01, "t", 0x03, 0x23, 0x00, 0x01]),

    // (A payload format indicator other than 0 or 1 is not refused: it is forwarded as Mosquitto forwards
    // it; see PropertyTests.)

    MalformedPacket("5.0 subscription identifier 0", .v5, [
        0x82, 0x09, 0x00, 0x01,
        0x02, 0x0B, 0x00,           // subscription identifier 0
        0x00, 0x01, "a", 0x00,
    ], .protocolError, repaired: [0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, "a", 0x00]),

    // MARK: SUBSCRIBE / UNSUBSCRIBE
    MalformedPacket("SUBSCRIBE without topic filters", .v3_1_1, [
        0x82, 0x02, 0x00, 0x01,     // packet identifier only
    ], .protocolError, repaired: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a", 0x00]),

    MalformedPacket("SUBSCRIBE 3.1.1 with reserved option bits", .v3_1_1, [
        0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a",
        0x04,                       // the 5.0 no-local bit is reserved in 3.1.1
    ], .malformedPacket, repaired: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a", 0x00]),

    MalformedPacket("SUBSCRIBE 5.0 with reserved option bits", .v5, [
        0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, "a",
        0x40,                       // bits 6-7 are reserved
    ], .malformedPacket, repaired: [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, "a", 0x00]),

    MalformedPacket("SUBSCRIBE QoS 3", .v3_1_1, [
        0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a",
        0x03,                       // QoS 3
    ], .malformedPacket, repaired: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a", 0x02]),

    MalformedPacket("SUBSCRIBE 5.0 retain handling 3", .v5, [
        0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, "a",
        0x30,                       // retain handling 3
    ], .protocolError, repaired: [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, "a", 0x20]),

    MalformedPacket("SUBSCRIBE with filter a/#/b", .v3_1_1, [
        0x82, 0x0A, 0x00, 0x01,
        0x00, 0x05, "a/#/b", 0x00,
    ], .malformedPacket, repaired: [0x82, 0x0A, 0x00, 0x01, 0x00, 0x05, "a/+/b", 0x00]),

    MalformedPacket("SUBSCRIBE filter without its options byte", .v3_1_1, [
        0x82, 0x05, 0x00, 0x01, 0x00, 0x01, "a",
    ], .malformedPacket, repaired: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a", 0x00]),

    MalformedPacket("SUBSCRIBE packet identifier 0", .v3_1_1, [
        0x82, 0x06, 0x00, 0x00, 0x00, 0x01, "a", 0x00,
    ], .malformedPacket,            // 0x81, as Mosquitto answers it (issue 16, 13)
       repaired: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, "a", 0x00]),

    MalformedPacket("UNSUBSCRIBE 5.0 packet identifier 0", .v5, [
        0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, "a",
    ], .malformedPacket, repaired: [0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, "a"]),

    MalformedPacket("SUBSCRIBE 5.0 with a property SUBSCRIBE may not carry", .v5, [
        0x82, 0x09, 0x00, 0x01,
        0x02, 0x01, 0x01,           // payload format indicator: not a SUBSCRIBE property
        0x00, 0x01, "a", 0x00,
    ], .malformedPacket,            // MQTT 5.0 2.2.2.2 (issue 16, 4)
       repaired: [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, "a", 0x00]),

    MalformedPacket("UNSUBSCRIBE 5.0 with a property UNSUBSCRIBE may not carry", .v5, [
        0xA2, 0x08, 0x00, 0x01,
        0x02, 0x0B, 0x01,           // subscription identifier: not an UNSUBSCRIBE property
        0x00, 0x01, "a",
    ], .malformedPacket, repaired: [0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, "a"]),

    MalformedPacket("SUBSCRIBE filter with 202 levels", .v5, [
        0x82, 0xCF, 0x01, 0x00, 0x01, 0x00,
        0x00, 0xC9, .repeated(0x2F, count: 201),   // 201 separators; Mosquitto accepts 200 (201 levels)
        0x00,
    ], .malformedPacket,
       repaired: [0x82, 0xCE, 0x01, 0x00, 0x01, 0x00, 0x00, 0xC8, .repeated(0x2F, count: 200), 0x00]),

    MalformedPacket("PUBLISH topic with 202 levels", .v3_1_1, [
        0x30, 0xCB, 0x01,
        0x00, 0xC9, .repeated(0x2F, count: 201),   // protocol error, as Mosquitto (0x82 for 5.0)
    ], .protocolError, repaired: [0x30, 0xCA, 0x01, 0x00, 0xC8, .repeated(0x2F, count: 200)]),

    MalformedPacket("UNSUBSCRIBE without topic filters", .v3_1_1, [
        0xA2, 0x02, 0x00, 0x01,
    ], .protocolError, repaired: [0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, "a"]),

    MalformedPacket("UNSUBSCRIBE with filter a+", .v3_1_1, [
        0xA2, 0x06, 0x00, 0x01, 0x00, 0x02, "a+",
    ], .malformedPacket, repaired: [0xA2, 0x06, 0x00, 0x01, 0x00, 0x02, "a/"]),

    // MARK: Acknowledgements and control packets
    MalformedPacket("PUBREL packet identifier 0", .v5, [
        0x62, 0x02, 0x00, 0x00,
    ], .protocolError, repaired: [0x62, 0x02, 0x00, 0x01]),

    MalformedPacket("PUBACK 3.1.1 with a reason code", .v3_1_1, [
        0x40, 0x03, 0x00, 0x01, 0x10,   // 3.1.1 acknowledgements have no reason code
    ], .malformedPacket, repaired: [0x40, 0x02, 0x00, 0x01]),

    MalformedPacket("PINGREQ with a body byte", .v3_1_1, [
        0xC0, 0x01,                 // PINGREQ, remaining length 1
        0x00,                       // a byte PINGREQ has no room for
    ], .malformedPacket, repaired: [0xC0, 0x00]),

    MalformedPacket("DISCONNECT 3.1.1 with a reason code", .v3_1_1, [
        0xE0, 0x01, 0x00,
    ], .malformedPacket, repaired: [0xE0, 0x00]),

    MalformedPacket("AUTH in a 3.1.1 session", .v3_1_1, [
        0xF0, 0x00,
    ], .malformedPacket),

    MalformedPacket("PINGREQ before CONNECT", nil, [
        0xC0, 0x00,
    ], .protocolError),

    MalformedPacket("PUBLISH before CONNECT", nil, [
        0x30, 0x03, 0x00, 0x01, "t",
    ], .protocolError),

    // MARK: Size limit
    MalformedPacket("PUBLISH of 19 bytes, limit 18: refused from the fixed header alone", .v3_1_1, [
        0x30, 0x11,                 // PUBLISH, remaining length 17: 19 bytes in all; no body yet
    ], .packetTooLarge, maximumPacketSize: 18),

    MalformedPacket("PUBLISH of 131 bytes, limit 130: two-byte length, header only", .v3_1_1, [
        0x30, 0x80, 0x01,           // PUBLISH, remaining length 128: 131 bytes in all
    ], .packetTooLarge, maximumPacketSize: 130),

    MalformedPacket("CONNECT over the limit before any version is known", nil, [
        0x10, 0x7F,                 // CONNECT, remaining length 127
    ], .packetTooLarge, maximumPacketSize: 100),
]

@Suite("Malformed packets")
struct MalformedPacketTests {
    @Test("the decoder refuses the bytes with the expected error", arguments: malformedPackets)
    func refuses(_ row: MalformedPacket) {
        var decoder = row.makeDecoder()
        var input = buffer(row.wire)
        expectMQTTError(row.error, hex(row.wire)) { try decoder.decode(buffer: &input) }
    }

    @Test("drip-fed one byte at a time, the decoder fails the same way and never yields a packet",
          arguments: malformedPackets)
    func refusesDripFed(_ row: MalformedPacket) {
        var decoder = row.makeDecoder()
        var input = ByteBuffer()
        for (index, byte) in row.wire.enumerated() {
            input.writeInteger(byte)
            do {
                if let packet = try decoder.decode(buffer: &input) {
                    Issue.record("decoded \(packet) after \(index + 1) bytes")
                    return
                }
            } catch let error as MQTTError {
                #expect(error.kind == row.error, "after \(index + 1) bytes: \(error)")
                return
            } catch {
                Issue.record("non-MQTT error \(error)")
                return
            }
        }
        Issue.record("all \(row.wire.count) bytes fed and still waiting for more")
    }

    @Test("with the defect repaired the packet decodes",
          arguments: malformedPackets.filter { $0.repaired != nil })
    func repairedDecodes(_ row: MalformedPacket) throws {
        let repaired = try #require(row.repaired)
        var decoder = row.makeDecoder()
        var input = buffer(repaired)
        #expect(try decoder.decode(buffer: &input) != nil, "\(hex(repaired))")
        #expect(input.readableBytes == 0)
    }

    @Test("packetTooLarge reports the whole size and the limit; at the limit the decoder just waits")
    func packetTooLargeDetails() throws {
        // PUBLISH, remaining length 17 → 19 bytes with the two-byte fixed header.
        let header: [UInt8] = [0x30, 0x11]
        var over = MQTTDecoder(version: .v3_1_1, maximumPacketSize: 18)
        var input = buffer(header)
        #expect(throws: MQTTError.packetTooLarge(size: 19, limit: 18)) { try over.decode(buffer: &input) }

        var atLimit = MQTTDecoder(version: .v3_1_1, maximumPacketSize: 19)
        input = buffer(header)
        #expect(try atLimit.decode(buffer: &input) == nil)
        #expect(input.readableBytes == 2, "the header stays until the body arrives")
        input.writeBytes([0x00, 0x01, 0x74] + Array(repeating: 0x61, count: 14))  // topic "t", 14-byte payload
        #expect(try atLimit.decode(buffer: &input) == .publish(PublishPacket(
            topic: "t", payload: buffer(String(repeating: "a", count: 14)))))
    }

    @Test("packet identifier 0 on acknowledgements that carry one", arguments: [
        PacketType.puback, .pubrec, .pubrel, .pubcomp,
    ])
    func zeroPacketIdentifier(_ type: PacketType) {
        for version in [ProtocolVersion.v3_1_1, .v5] {
            var decoder = MQTTDecoder(version: version)
            var input = buffer([type.rawValue << 4 | (type == .pubrel ? 0x02 : 0x00), 0x02, 0x00, 0x00])
            expectMQTTError(.protocolError, "\(type) \(version)") { try decoder.decode(buffer: &input) }
        }
    }
}
