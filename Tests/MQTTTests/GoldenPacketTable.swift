import MQTT
import NIOCore
import Testing

/// One packet written out by hand next to the value it stands for.
struct GoldenPacket: Sendable, CustomTestStringConvertible {
    let name: String
    /// The session's protocol version: what the decoder is set to (CONNECT sets it itself) and what the
    /// encoder is asked to write.
    let version: ProtocolVersion
    let wire: [UInt8]
    let packet: Packet
    /// False for a valid but non-minimal form the encoder never writes; such rows are only decoded.
    let canonical: Bool

    init(_ name: String, _ version: ProtocolVersion, _ wire: [Wire], _ packet: Packet, canonical: Bool = true) {
        self.name = name
        self.version = version
        self.wire = bytes(wire)
        self.packet = packet
        self.canonical = canonical
    }

    var testDescription: String { "\(name) [\(version)]" }
}

/// All 27 MQTT 5.0 property identifiers (spec table 2-4).
let allPropertyIdentifiers: Set<UInt8> = [
    0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19,
    0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
]

// Byte layouts follow MQTT 3.1 / 3.1.1 (OASIS 2014) and MQTT 5.0 (OASIS 2019). Every remaining length and
// property length was counted by hand; the comment on a header line gives the count.

let goldenConnect: [GoldenPacket] = [
    GoldenPacket("CONNECT 3.1 (MQIsdp) with will, user name and password", .v3_1, [
        0x10, 0x1F,                 // CONNECT, remaining length 31
        0x00, 0x06, "MQIsdp",       // protocol name
        0x03,                       // protocol level 3
        0xEE,                       // flags: user name, password, will retain, will QoS 1, will, clean session
        0x00, 0x1E,                 // keep alive 30 s
        0x00, 0x02, "c1",           // client identifier
        0x00, 0x01, "w",            // will topic
        0x00, 0x03, "bye",          // will payload
        0x00, 0x01, "u",            // user name
        0x00, 0x02, "pw",           // password
    ], .connect(ConnectPacket(
        protocolVersion: .v3_1, cleanStart: true, keepAlive: 30, clientID: "c1",
        will: Will(topic: "w", payload: buffer("bye"), qos: .atLeastOnce, retain: true),
        username: "u", password: buffer("pw")))),

    GoldenPacket("CONNECT 3.1.1 with will QoS 2, user name, binary password, no clean session", .v3_1_1, [
        0x10, 0x22,                 // CONNECT, remaining length 34
        0x00, 0x04, "MQTT",         // protocol name
        0x04,                       // protocol level 4
        0xD4,                       // flags: user name, password, will QoS 2, will (no retain, no clean session)
        0x00, 0x3C,                 // keep alive 60 s
        0x00, 0x03, "abc",          // client identifier
        0x00, 0x03, "a/b",          // will topic
        0x00, 0x02, 0x00, 0xFF,     // will payload (binary)
        0x00, 0x04, "user",         // user name
        0x00, 0x02, 0x01, 0x02,     // password (binary)
    ], .connect(ConnectPacket(
        protocolVersion: .v3_1_1, cleanStart: false, keepAlive: 60, clientID: "abc",
        will: Will(topic: "a/b", payload: buffer([0x00, 0xFF]), qos: .exactlyOnce, retain: false),
        username: "user", password: buffer([0x01, 0x02])))),

    GoldenPacket("CONNECT 3.1.1 minimal: empty client identifier, keep alive 0", .v3_1_1, [
        0x10, 0x0C,                 // CONNECT, remaining length 12
        0x00, 0x04, "MQTT",         // protocol name
        0x04,                       // protocol level 4
        0x02,                       // flags: clean session
        0x00, 0x00,                 // keep alive off
        0x00, 0x00,                 // client identifier ""
    ], .connect(ConnectPacket(protocolVersion: .v3_1_1, cleanStart: true, keepAlive: 0, clientID: ""))),

    GoldenPacket("CONNECT 5.0 with properties, will properties, user name and password", .v5, [
        0x10, 0x7F,                 // CONNECT, remaining length 127 (the largest one-byte length)
        0x00, 0x04, "MQTT",         // protocol name
        0x05,                       // protocol level 5
        0xE6,                       // flags: user name, password, will retain, will QoS 0, will, clean start
        0x00, 0x0A,                 // keep alive 10 s
        0x29,                       // property length 41
        0x11, 0x00, 0x00, 0x0E, 0x10,               // session expiry interval 3600
        0x21, 0x00, 0x14,                           // receive maximum 20
        0x27, 0x00, 0x01, 0x00, 0x00,               // maximum packet size 65536
        0x22, 0x00, 0x0A,                           // topic alias maximum 10
        0x19, 0x01,                                 // request response information 1
        0x17, 0x00,                                 // request problem information 0
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "v",     // user property k=v
        0x15, 0x00, 0x05, "SCRAM",                  // authentication method
        0x16, 0x00, 0x03, 0x01, 0x02, 0x03,         // authentication data
        0x00, 0x03, "cid",          // client identifier
        0x29,                       // will property length 41
        0x18, 0x00, 0x00, 0x00, 0x05,               // will delay interval 5
        0x01, 0x01,                                 // payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x00, 0x78,               // message expiry interval 120
        0x03, 0x00, 0x0A, "text/plain",             // content type
        0x08, 0x00, 0x01, "r",                      // response topic
        0x09, 0x00, 0x02, 0xCA, 0xFE,               // correlation data
        0x26, 0x00, 0x01, "w", 0x00, 0x01, "1",     // user property w=1
        0x00, 0x06, "will/t",       // will topic
        0x00, 0x04, "gone",         // will payload
        0x00, 0x04, "name",         // user name
        0x00, 0x06, "secret",       // password
    ], .connect(ConnectPacket(
        protocolVersion: .v5, cleanStart: true, keepAlive: 10, clientID: "cid",
        will: Will(topic: "will/t", payload: buffer("gone"), qos: .atMostOnce, retain: true, properties: [
            .willDelayInterval(5),
            .payloadFormatIndicator(1),
            .messageExpiryInterval(120),
            .contentType("text/plain"),
            .responseTopic("r"),
            .correlationData(buffer([0xCA, 0xFE])),
            .userProperty("w", "1"),
        ]),
        username: "name", password: buffer("secret"),
        properties: [
            .sessionExpiryInterval(3600),
            .receiveMaximum(20),
            .maximumPacketSize(65536),
            .topicAliasMaximum(10),
            .requestResponseInformation(1),
            .requestProblemInformation(0),
            .userProperty("k", "v"),
            .authenticationMethod("SCRAM"),
            .authenticationData(buffer([0x01, 0x02, 0x03])),
        ]))),

    GoldenPacket("CONNECT 5.0 minimal: no properties", .v5, [
        0x10, 0x0D,                 // CONNECT, remaining length 13
        0x00, 0x04, "MQTT",         // protocol name
        0x05,                       // protocol level 5
        0x02,                       // flags: clean start
        0x00, 0x3C,                 // keep alive 60 s
        0x00,                       // property length 0
        0x00, 0x00,                 // client identifier ""
    ], .connect(ConnectPacket(protocolVersion: .v5, cleanStart: true, keepAlive: 60, clientID: ""))),

    GoldenPacket("CONNECT 5.0 password without user name (allowed from 5.0 on)", .v5, [
        0x10, 0x10,                 // CONNECT, remaining length 16
        0x00, 0x04, "MQTT",         // protocol name
        0x05,                       // protocol level 5
        0x40,                       // flags: password only
        0x00, 0x3C,                 // keep alive 60 s
        0x00,                       // property length 0
        0x00, 0x00,                 // client identifier ""
        0x00, 0x01, "p",            // password
    ], .connect(ConnectPacket(protocolVersion: .v5, cleanStart: false, keepAlive: 60, clientID: "",
                              password: buffer("p")))),
]

let goldenConnAck: [GoldenPacket] = [
    GoldenPacket("CONNACK 3.1 identifier rejected", .v3_1, [
        0x20, 0x02,                 // CONNACK, remaining length 2
        0x00,                       // acknowledge flags: no session
        0x02,                       // return code 2: identifier rejected
    ], .connack(ConnAckPacket(sessionPresent: false, code: 2))),

    GoldenPacket("CONNACK 3.1.1 accepted", .v3_1_1, [
        0x20, 0x02,                 // CONNACK, remaining length 2
        0x00,                       // acknowledge flags: no session
        0x00,                       // return code 0: accepted
    ], .connack(ConnAckPacket(sessionPresent: false, code: 0))),

    GoldenPacket("CONNACK 3.1.1 session present", .v3_1_1, [
        0x20, 0x02,                 // CONNACK, remaining length 2
        0x01,                       // acknowledge flags: session present
        0x00,                       // return code 0: accepted
    ], .connack(ConnAckPacket(sessionPresent: true, code: 0))),

    GoldenPacket("CONNACK 5.0 without properties", .v5, [
        0x20, 0x03,                 // CONNACK, remaining length 3
        0x00,                       // acknowledge flags
        0x00,                       // reason code: success
        0x00,                       // property length 0
    ], .connack(ConnAckPacket(sessionPresent: false, code: 0))),

    GoldenPacket("CONNACK 5.0 success with the server's capabilities", .v5, [
        0x20, 0x31,                 // CONNACK, remaining length 49
        0x01,                       // acknowledge flags: session present
        0x00,                       // reason code: success
        0x2E,                       // property length 46
        0x12, 0x00, 0x06, "auto-1",                 // assigned client identifier
        0x13, 0x00, 0x1E,                           // server keep alive 30
        0x1A, 0x00, 0x05, "resp/",                  // response information
        0x21, 0x00, 0x64,                           // receive maximum 100
        0x22, 0x00, 0x05,                           // topic alias maximum 5
        0x24, 0x01,                                 // maximum QoS 1
        0x25, 0x00,                                 // retain available: no
        0x27, 0x00, 0x10, 0x00, 0x00,               // maximum packet size 1048576
        0x28, 0x01,                                 // wildcard subscription available
        0x29, 0x01,                                 // subscription identifiers available
        0x2A, 0x00,                                 // shared subscription available: no
        0x11, 0xFF, 0xFF, 0xFF, 0xFF,               // session expiry interval: never
    ], .connack(ConnAckPacket(sessionPresent: true, code: 0, properties: [
        .assignedClientIdentifier("auto-1"),
        .serverKeepAlive(30),
        .responseInformation("resp/"),
        .receiveMaximum(100),
        .topicAliasMaximum(5),
        .maximumQoS(1),
        .retainAvailable(0),
        .maximumPacketSize(1_048_576),
        .wildcardSubscriptionAvailable(1),
        .subscriptionIdentifierAvailable(1),
        .sharedSubscriptionAvailable(0),
        .sessionExpiryInterval(0xFFFF_FFFF),
    ]))),

    GoldenPacket("CONNACK 5.0 use another server, with server reference and reason string", .v5, [
        0x20, 0x18,                 // CONNACK, remaining length 24
        0x00,                       // acknowledge flags
        0x9C,                       // reason code: use another server
        0x15,                       // property length 21
        0x1C, 0x00, 0x0A, "other:1883",             // server reference
        0x1F, 0x00, 0x05, "moved",                  // reason string
    ], .connack(ConnAckPacket(sessionPresent: false, code: 0x9C, properties: [
        .serverReference("other:1883"),
        .reasonString("moved"),
    ]))),
]

let goldenPublish: [GoldenPacket] = [
    GoldenPacket("PUBLISH 3.1 QoS 1 with DUP and RETAIN", .v3_1, [
        0x3B,                       // PUBLISH, DUP, QoS 1, RETAIN
        0x08,                       // remaining length 8
        0x00, 0x03, "x/y",          // topic name
        0x00, 0x01,                 // packet identifier 1
        0x00,                       // payload: one zero byte
    ], .publish(PublishPacket(topic: "x/y", payload: buffer([0x00]), qos: .atLeastOnce, retain: true, dup: true,
                              packetID: 1))),

    GoldenPacket("PUBLISH 3.1.1 QoS 0", .v3_1_1, [
        0x30,                       // PUBLISH, QoS 0
        0x07,                       // remaining length 7
        0x00, 0x03, "a/b",          // topic name
        "hi",                       // payload
    ], .publish(PublishPacket(topic: "a/b", payload: buffer("hi")))),

    GoldenPacket("PUBLISH 3.1.1 QoS 1 with RETAIN", .v3_1_1, [
        0x33,                       // PUBLISH, QoS 1, RETAIN
        0x08,                       // remaining length 8
        0x00, 0x03, "a/b",          // topic name
        0x00, 0x0A,                 // packet identifier 10
        "x",                        // payload
    ], .publish(PublishPacket(topic: "a/b", payload: buffer("x"), qos: .atLeastOnce, retain: true, packetID: 10))),

    GoldenPacket("PUBLISH 3.1.1 QoS 2 with DUP, empty payload, packet identifier 65535", .v3_1_1, [
        0x3C,                       // PUBLISH, DUP, QoS 2
        0x05,                       // remaining length 5
        0x00, 0x01, "t",            // topic name
        0xFF, 0xFF,                 // packet identifier 65535
    ], .publish(PublishPacket(topic: "t", payload: buffer([]), qos: .exactlyOnce, dup: true, packetID: 0xFFFF))),

    GoldenPacket("PUBLISH 3.1.1 with a two-byte remaining length", .v3_1_1, [
        0x30,                       // PUBLISH, QoS 0
        0xCD, 0x01,                 // remaining length 205 = 0x4D + 1 * 128
        0x00, 0x03, "big",          // topic name
        .repeated(0x61, count: 200),    // payload: 200 × "a"
    ], .publish(PublishPacket(topic: "big", payload: buffer(String(repeating: "a", count: 200))))),

    GoldenPacket("PUBLISH 5.0 QoS 0 without properties", .v5, [
        0x30,                       // PUBLISH, QoS 0
        0x06,                       // remaining length 6
        0x00, 0x01, "t",            // topic name
        0x00,                       // property length 0
        "ok",                       // payload
    ], .publish(PublishPacket(topic: "t", payload: buffer("ok")))),

    GoldenPacket("PUBLISH 5.0 QoS 1 with message properties and user properties in order", .v5, [
        0x32,                       // PUBLISH, QoS 1
        0x3E,                       // remaining length 62
        0x00, 0x03, "s/1",          // topic name
        0x00, 0x07,                 // packet identifier 7
        0x34,                       // property length 52
        0x01, 0x01,                                 // payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x00, 0x3C,               // message expiry interval 60
        0x03, 0x00, 0x04, "json",                   // content type
        0x08, 0x00, 0x07, "reply/1",                // response topic
        0x09, 0x00, 0x04, 0x00, 0x01, 0x02, 0x03,   // correlation data
        0x26, 0x00, 0x01, "a", 0x00, 0x01, "1",     // user property a=1
        0x26, 0x00, 0x01, "b", 0x00, 0x01, "2",     // user property b=2
        0x26, 0x00, 0x01, "a", 0x00, 0x01, "3",     // user property a=3 (names may repeat)
        "{}",                       // payload
    ], .publish(PublishPacket(topic: "s/1", payload: buffer("{}"), qos: .atLeastOnce, packetID: 7, properties: [
        .payloadFormatIndicator(1),
        .messageExpiryInterval(60),
        .contentType("json"),
        .responseTopic("reply/1"),
        .correlationData(buffer([0x00, 0x01, 0x02, 0x03])),
        .userProperty("a", "1"),
        .userProperty("b", "2"),
        .userProperty("a", "3"),
    ]))),

    GoldenPacket("PUBLISH 5.0 QoS 2 RETAIN with topic alias and two subscription identifiers", .v5, [
        0x35,                       // PUBLISH, QoS 2, RETAIN
        0x11,                       // remaining length 17
        0x00, 0x03, "s/2",          // topic name
        0x12, 0x34,                 // packet identifier 0x1234
        0x09,                       // property length 9
        0x23, 0x00, 0x03,                           // topic alias 3
        0x0B, 0x01,                                 // subscription identifier 1
        0x0B, 0x80, 0x80, 0x01,                     // subscription identifier 16384 (three-byte integer)
    ], .publish(PublishPacket(topic: "s/2", payload: buffer([]), qos: .exactlyOnce, retain: true, packetID: 0x1234,
                              properties: [.topicAlias(3), .subscriptionIdentifier(1),
                                           .subscriptionIdentifier(16384)]))),

    GoldenPacket("PUBLISH 5.0 empty topic name with a topic alias", .v5, [
        0x32,                       // PUBLISH, QoS 1
        0x09,                       // remaining length 9
        0x00, 0x00,                 // topic name "" (the alias stands in)
        0x00, 0x02,                 // packet identifier 2
        0x03,                       // property length 3
        0x23, 0x00, 0x03,                           // topic alias 3
        "p",                        // payload
    ], .publish(PublishPacket(topic: "", payload: buffer("p"), qos: .atLeastOnce, packetID: 2,
                              properties: [.topicAlias(3)]))),
]

let goldenAcks: [GoldenPacket] = [
    GoldenPacket("PUBACK 3.1", .v3_1, [
        0x40, 0x02,                 // PUBACK, remaining length 2
        0x00, 0x01,                 // packet identifier 1
    ], .ack(AckPacket(type: .puback, packetID: 1))),

    GoldenPacket("PUBACK 3.1.1", .v3_1_1, [
        0x40, 0x02,                 // PUBACK, remaining length 2
        0x00, 0x0A,                 // packet identifier 10
    ], .ack(AckPacket(type: .puback, packetID: 10))),

    GoldenPacket("PUBREC 3.1.1", .v3_1_1, [
        0x50, 0x02,                 // PUBREC, remaining length 2
        0x00, 0x0B,                 // packet identifier 11
    ], .ack(AckPacket(type: .pubrec, packetID: 11))),

    GoldenPacket("PUBREL 3.1.1", .v3_1_1, [
        0x62, 0x02,                 // PUBREL (flags 0010), remaining length 2
        0x00, 0x0C,                 // packet identifier 12
    ], .ack(AckPacket(type: .pubrel, packetID: 12))),

    GoldenPacket("PUBCOMP 3.1.1", .v3_1_1, [
        0x70, 0x02,                 // PUBCOMP, remaining length 2
        0x00, 0x0D,                 // packet identifier 13
    ], .ack(AckPacket(type: .pubcomp, packetID: 13))),

    // 5.0 short form: reason code success and no properties may be left out entirely.
    GoldenPacket("PUBACK 5.0 short form", .v5, [
        0x40, 0x02,                 // PUBACK, remaining length 2
        0x01, 0x00,                 // packet identifier 256
    ], .ack(AckPacket(type: .puback, packetID: 256))),

    GoldenPacket("PUBREC 5.0 short form", .v5, [
        0x50, 0x02,                 // PUBREC, remaining length 2
        0x01, 0x01,                 // packet identifier 257
    ], .ack(AckPacket(type: .pubrec, packetID: 257))),

    GoldenPacket("PUBREL 5.0 short form", .v5, [
        0x62, 0x02,                 // PUBREL (flags 0010), remaining length 2
        0x01, 0x02,                 // packet identifier 258
    ], .ack(AckPacket(type: .pubrel, packetID: 258))),

    GoldenPacket("PUBCOMP 5.0 short form", .v5, [
        0x70, 0x02,                 // PUBCOMP, remaining length 2
        0x01, 0x03,                 // packet identifier 259
    ], .ack(AckPacket(type: .pubcomp, packetID: 259))),

    // 5.0 with a reason code and no properties: the property length may be left out.
    GoldenPacket("PUBACK 5.0 with reason code", .v5, [
        0x40, 0x03,                 // PUBACK, remaining length 3
        0x00, 0x01,                 // packet identifier 1
        0x10,                       // reason code: no matching subscribers
    ], .ack(AckPacket(type: .puback, packetID: 1, reasonCode: .noMatchingSubscribers))),

    GoldenPacket("PUBREC 5.0 with reason code", .v5, [
        0x50, 0x03,                 // PUBREC, remaining length 3
        0x00, 0x02,                 // packet identifier 2
        0x80,                       // reason code: unspecified error
    ], .ack(AckPacket(type: .pubrec, packetID: 2, reasonCode: .unspecifiedError))),

    GoldenPacket("PUBREL 5.0 with reason code", .v5, [
        0x62, 0x03,                 // PUBREL (flags 0010), remaining length 3
        0x00, 0x03,                 // packet identifier 3
        0x92,                       // reason code: packet identifier not found
    ], .ack(AckPacket(type: .pubrel, packetID: 3, reasonCode: .packetIdentifierNotFound))),

    GoldenPacket("PUBCOMP 5.0 with reason code", .v5, [
        0x70, 0x03,                 // PUBCOMP, remaining length 3
        0x00, 0x04,                 // packet identifier 4
        0x92,                       // reason code: packet identifier not found
    ], .ack(AckPacket(type: .pubcomp, packetID: 4, reasonCode: .packetIdentifierNotFound))),

    // 5.0 with a reason code and properties.
    GoldenPacket("PUBACK 5.0 with reason code and properties", .v5, [
        0x40, 0x10,                 // PUBACK, remaining length 16
        0x00, 0x05,                 // packet identifier 5
        0x87,                       // reason code: not authorized
        0x0C,                       // property length 12
        0x1F, 0x00, 0x02, "no",                     // reason string
        0x26, 0x00, 0x01, "x", 0x00, 0x01, "y",     // user property x=y
    ], .ack(AckPacket(type: .puback, packetID: 5, reasonCode: .notAuthorized,
                      properties: [.reasonString("no"), .userProperty("x", "y")]))),

    GoldenPacket("PUBREC 5.0 with reason code and properties", .v5, [
        0x50, 0x0C,                 // PUBREC, remaining length 12
        0x00, 0x06,                 // packet identifier 6
        0x97,                       // reason code: quota exceeded
        0x08,                       // property length 8
        0x1F, 0x00, 0x05, "quota",                  // reason string
    ], .ack(AckPacket(type: .pubrec, packetID: 6, reasonCode: .quotaExceeded,
                      properties: [.reasonString("quota")]))),

    GoldenPacket("PUBREL 5.0 with reason code and properties", .v5, [
        0x62, 0x0B,                 // PUBREL (flags 0010), remaining length 11
        0x00, 0x07,                 // packet identifier 7
        0x92,                       // reason code: packet identifier not found
        0x07,                       // property length 7
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "v",     // user property k=v
    ], .ack(AckPacket(type: .pubrel, packetID: 7, reasonCode: .packetIdentifierNotFound,
                      properties: [.userProperty("k", "v")]))),

    GoldenPacket("PUBCOMP 5.0 success with properties", .v5, [
        0x70, 0x09,                 // PUBCOMP, remaining length 9
        0x00, 0x08,                 // packet identifier 8
        0x00,                       // reason code: success (must be present when properties follow)
        0x05,                       // property length 5
        0x1F, 0x00, 0x02, "ok",                     // reason string
    ], .ack(AckPacket(type: .pubcomp, packetID: 8, properties: [.reasonString("ok")]))),

    GoldenPacket("PUBACK 5.0 success with an explicit empty property list (non-minimal)", .v5, [
        0x40, 0x04,                 // PUBACK, remaining length 4
        0x00, 0x01,                 // packet identifier 1
        0x00,                       // reason code: success
        0x00,                       // property length 0
    ], .ack(AckPacket(type: .puback, packetID: 1)), canonical: false),
]

let goldenSubscriptions: [GoldenPacket] = [
    GoldenPacket("SUBSCRIBE 3.1.1 with three filters", .v3_1_1, [
        0x82, 0x10,                 // SUBSCRIBE (flags 0010), remaining length 16
        0x00, 0x0A,                 // packet identifier 10
        0x00, 0x03, "a/+", 0x01,    // filter, options: QoS 1
        0x00, 0x01, "#", 0x02,      // filter, options: QoS 2
        0x00, 0x01, "x", 0x00,      // filter, options: QoS 0
    ], .subscribe(SubscribePacket(packetID: 10, subscriptions: [
        TopicSubscription(filter: "a/+", options: SubscriptionOptions(qos: .atLeastOnce)),
        TopicSubscription(filter: "#", options: SubscriptionOptions(qos: .exactlyOnce)),
        TopicSubscription(filter: "x", options: SubscriptionOptions(qos: .atMostOnce)),
    ]))),

    GoldenPacket("SUBSCRIBE 5.0 with options and the largest subscription identifier", .v5, [
        0x82, 0x28,                 // SUBSCRIBE (flags 0010), remaining length 40
        0x00, 0x0B,                 // packet identifier 11
        0x0C,                       // property length 12
        0x0B, 0xFF, 0xFF, 0xFF, 0x7F,               // subscription identifier 268435455
        0x26, 0x00, 0x01, "s", 0x00, 0x01, "1",     // user property s=1
        0x00, 0x03, "a/b", 0x05,    // filter, options: QoS 1, no local
        0x00, 0x03, "c/#", 0x1A,    // filter, options: QoS 2, retain as published, retain handling 1
        0x00, 0x0A, "$share/g/d", 0x20,     // filter, options: QoS 0, retain handling 2
    ], .subscribe(SubscribePacket(packetID: 11, subscriptions: [
        TopicSubscription(filter: "a/b", options: SubscriptionOptions(qos: .atLeastOnce, noLocal: true)),
        TopicSubscription(filter: "c/#", options: SubscriptionOptions(qos: .exactlyOnce, retainAsPublished: true,
                                                                       retainHandling: 1)),
        TopicSubscription(filter: "$share/g/d", options: SubscriptionOptions(qos: .atMostOnce, retainHandling: 2)),
    ], properties: [.subscriptionIdentifier(268_435_455), .userProperty("s", "1")]))),

    GoldenPacket("SUBSCRIBE 5.0 without properties, every option bit set", .v5, [
        0x82, 0x07,                 // SUBSCRIBE (flags 0010), remaining length 7
        0x00, 0x01,                 // packet identifier 1
        0x00,                       // property length 0
        0x00, 0x01, "t", 0x2E,      // filter, options: QoS 2, no local, retain as published, retain handling 2
    ], .subscribe(SubscribePacket(packetID: 1, subscriptions: [
        TopicSubscription(filter: "t", options: SubscriptionOptions(qos: .exactlyOnce, noLocal: true,
                                                                     retainAsPublished: true, retainHandling: 2)),
    ]))),

    GoldenPacket("SUBACK 3.1.1", .v3_1_1, [
        0x90, 0x05,                 // SUBACK, remaining length 5
        0x00, 0x0A,                 // packet identifier 10
        0x01, 0x02, 0x80,           // return codes: QoS 1, QoS 2, failure
    ], .suback(SubAckPacket(packetID: 10, reasonCodes: [.grantedQoS1, .grantedQoS2, .unspecifiedError]))),

    GoldenPacket("SUBACK 5.0 without properties", .v5, [
        0x90, 0x04,                 // SUBACK, remaining length 4
        0x00, 0x0C,                 // packet identifier 12
        0x00,                       // property length 0
        0x02,                       // reason code: granted QoS 2
    ], .suback(SubAckPacket(packetID: 12, reasonCodes: [.grantedQoS2]))),

    GoldenPacket("SUBACK 5.0 with properties", .v5, [
        0x90, 0x17,                 // SUBACK, remaining length 23
        0x00, 0x0B,                 // packet identifier 11
        0x11,                       // property length 17
        0x1F, 0x00, 0x07, "partial",                // reason string
        0x26, 0x00, 0x01, "k", 0x00, 0x01, "v",     // user property k=v
        0x00, 0x01, 0xA2,           // reason codes: QoS 0, QoS 1, wildcard subscriptions not supported
    ], .suback(SubAckPacket(packetID: 11, reasonCodes: [.success, .grantedQoS1, .wildcardSubscriptionsNotSupported],
                            properties: [.reasonString("partial"), .userProperty("k", "v")]))),

    GoldenPacket("UNSUBSCRIBE 3.1.1", .v3_1_1, [
        0xA2, 0x0A,                 // UNSUBSCRIBE (flags 0010), remaining length 10
        0x00, 0x0D,                 // packet identifier 13
        0x00, 0x03, "a/+",          // filter
        0x00, 0x01, "b",            // filter
    ], .unsubscribe(UnsubscribePacket(packetID: 13, filters: ["a/+", "b"]))),

    GoldenPacket("UNSUBSCRIBE 5.0 with a user property", .v5, [
        0xA2, 0x0F,                 // UNSUBSCRIBE (flags 0010), remaining length 15
        0x00, 0x0E,                 // packet identifier 14
        0x07,                       // property length 7
        0x26, 0x00, 0x01, "u", 0x00, 0x01, "1",     // user property u=1
        0x00, 0x03, "a/#",          // filter
    ], .unsubscribe(UnsubscribePacket(packetID: 14, filters: ["a/#"], properties: [.userProperty("u", "1")]))),

    GoldenPacket("UNSUBACK 3.1.1", .v3_1_1, [
        0xB0, 0x02,                 // UNSUBACK, remaining length 2
        0x00, 0x0D,                 // packet identifier 13
    ], .unsuback(UnsubAckPacket(packetID: 13))),

    GoldenPacket("UNSUBACK 5.0 without properties", .v5, [
        0xB0, 0x04,                 // UNSUBACK, remaining length 4
        0x00, 0x0F,                 // packet identifier 15
        0x00,                       // property length 0
        0x00,                       // reason code: success
    ], .unsuback(UnsubAckPacket(packetID: 15, reasonCodes: [.success]))),

    GoldenPacket("UNSUBACK 5.0 with properties", .v5, [
        0xB0, 0x0C,                 // UNSUBACK, remaining length 12
        0x00, 0x0E,                 // packet identifier 14
        0x07,                       // property length 7
        0x1F, 0x00, 0x04, "gone",                   // reason string
        0x00, 0x11,                 // reason codes: success, no subscription existed
    ], .unsuback(UnsubAckPacket(packetID: 14, reasonCodes: [.success, .noSubscriptionExisted],
                                properties: [.reasonString("gone")]))),
]

let goldenControl: [GoldenPacket] = [
    GoldenPacket("PINGREQ 3.1.1", .v3_1_1, [0xC0, 0x00], .pingreq),   // PINGREQ, remaining length 0
    GoldenPacket("PINGREQ 5.0", .v5, [0xC0, 0x00], .pingreq),         // PINGREQ, remaining length 0
    GoldenPacket("PINGRESP 3.1.1", .v3_1_1, [0xD0, 0x00], .pingresp), // PINGRESP, remaining length 0
    GoldenPacket("PINGRESP 5.0", .v5, [0xD0, 0x00], .pingresp),       // PINGRESP, remaining length 0

    GoldenPacket("DISCONNECT 3.1", .v3_1, [
        0xE0, 0x00,                 // DISCONNECT, remaining length 0
    ], .disconnect(DisconnectPacket())),

    GoldenPacket("DISCONNECT 3.1.1", .v3_1_1, [
        0xE0, 0x00,                 // DISCONNECT, remaining length 0
    ], .disconnect(DisconnectPacket())),

    GoldenPacket("DISCONNECT 5.0 short form", .v5, [
        0xE0, 0x00,                 // DISCONNECT, remaining length 0 (normal disconnection)
    ], .disconnect(DisconnectPacket())),

    GoldenPacket("DISCONNECT 5.0 with reason code", .v5, [
        0xE0, 0x01,                 // DISCONNECT, remaining length 1
        0x04,                       // reason code: disconnect with will message
    ], .disconnect(DisconnectPacket(reasonCode: .disconnectWithWillMessage))),

    GoldenPacket("DISCONNECT 5.0 normal with session expiry", .v5, [
        0xE0, 0x07,                 // DISCONNECT, remaining length 7
        0x00,                       // reason code: normal disconnection
        0x05,                       // property length 5
        0x11, 0x00, 0x00, 0x00, 0x00,               // session expiry interval 0
    ], .disconnect(DisconnectPacket(reasonCode: .normalDisconnection, properties: [.sessionExpiryInterval(0)]))),

    GoldenPacket("DISCONNECT 5.0 server moved, with server reference and reason string", .v5, [
        0xE0, 0x11,                 // DISCONNECT, remaining length 17
        0x9D,                       // reason code: server moved
        0x0F,                       // property length 15
        0x1C, 0x00, 0x06, "b:1883",                 // server reference
        0x1F, 0x00, 0x03, "bye",                    // reason string
    ], .disconnect(DisconnectPacket(reasonCode: .serverMoved,
                                    properties: [.serverReference("b:1883"), .reasonString("bye")]))),

    GoldenPacket("DISCONNECT 5.0 reason code 0 written out (non-minimal)", .v5, [
        0xE0, 0x01,                 // DISCONNECT, remaining length 1
        0x00,                       // reason code: normal disconnection
    ], .disconnect(DisconnectPacket()), canonical: false),

    GoldenPacket("AUTH 5.0 short form", .v5, [
        0xF0, 0x00,                 // AUTH, remaining length 0 (success, no properties)
    ], .auth(AuthPacket())),

    GoldenPacket("AUTH 5.0 re-authenticate without properties", .v5, [
        0xF0, 0x02,                 // AUTH, remaining length 2
        0x19,                       // reason code: re-authenticate
        0x00,                       // property length 0
    ], .auth(AuthPacket(reasonCode: .reAuthenticate))),

    GoldenPacket("AUTH 5.0 continue authentication with method, data and reason string", .v5, [
        0xF0, 0x1E,                 // AUTH, remaining length 30
        0x18,                       // reason code: continue authentication
        0x1C,                       // property length 28
        0x15, 0x00, 0x0B, "SCRAM-SHA-1",            // authentication method
        0x16, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF,   // authentication data
        0x1F, 0x00, 0x04, "step",                   // reason string
    ], .auth(AuthPacket(reasonCode: .continueAuthentication, properties: [
        .authenticationMethod("SCRAM-SHA-1"),
        .authenticationData(buffer([0xDE, 0xAD, 0xBE, 0xEF])),
        .reasonString("step"),
    ]))),

    GoldenPacket("AUTH 5.0 reason code without property length (non-minimal)", .v5, [
        0xF0, 0x01,                 // AUTH, remaining length 1
        0x19,                       // reason code: re-authenticate
    ], .auth(AuthPacket(reasonCode: .reAuthenticate)), canonical: false),
]

let goldenPackets: [GoldenPacket] =
    goldenConnect + goldenConnAck + goldenPublish + goldenAcks + goldenSubscriptions + goldenControl
