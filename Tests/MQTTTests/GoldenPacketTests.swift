import MQTT
import NIOCore
import NIOTestUtils
import Testing

/// The decoder a session on `golden.version` would read `golden` with: CONNECT arrives first and sets the
/// version itself; everything else is read after the version is known.
private func decoder(for golden: GoldenPacket) -> MQTTDecoder {
    golden.packet.type == .connect ? MQTTDecoder() : MQTTDecoder(version: golden.version)
}

/// The property lists a packet carries (CONNECT's own and its will's).
private func propertyLists(of packet: Packet) -> [Properties] {
    switch packet {
    case .connect(let p): return [p.properties, p.will?.properties ?? []]
    case .connack(let p): return [p.properties]
    case .publish(let p): return [p.properties]
    case .ack(let p): return [p.properties]
    case .subscribe(let p): return [p.properties]
    case .suback(let p): return [p.properties]
    case .unsubscribe(let p): return [p.properties]
    case .unsuback(let p): return [p.properties]
    case .disconnect(let p): return [p.properties]
    case .auth(let p): return [p.properties]
    case .pingreq, .pingresp: return []
    }
}

@Suite("Golden packets: hand-written bytes ⇄ Packet values")
struct GoldenPacketTests {
    @Test("decoding the bytes yields the packet and consumes them all", arguments: goldenPackets)
    func decodes(_ golden: GoldenPacket) throws {
        var decoder = decoder(for: golden)
        var input = buffer(golden.wire)
        let decoded = try decoder.decode(buffer: &input)
        #expect(decoded == golden.packet)
        #expect(input.readableBytes == 0, "left \(input.readableBytes) bytes unread")
        #expect(decoder.version == golden.version, "the decoder's version after the packet")
    }

    @Test("a prefix of the bytes is not yet a packet", arguments: goldenPackets)
    func waitsForTheWholePacket(_ golden: GoldenPacket) throws {
        for cut in 0..<golden.wire.count {
            var decoder = decoder(for: golden)
            var input = buffer(Array(golden.wire[..<cut]))
            #expect(try decoder.decode(buffer: &input) == nil, "decoded from the first \(cut) bytes")
            #expect(input.readableBytes == cut, "consumed bytes of an incomplete packet")
        }
    }

    @Test("writing the packet yields exactly the bytes", arguments: goldenPackets.filter(\.canonical))
    func encodes(_ golden: GoldenPacket) {
        let written = encode(golden.packet, version: golden.version)
        #expect(written == golden.wire, "wrote \(hex(written))\n expected \(hex(golden.wire))")
        if case .publish(let publish) = golden.packet {
            #expect(publish.encodedSize(version: golden.version) == golden.wire.count)
        }
    }

    @Test("ByteToMessageDecoderVerifier: whole, drip-fed and batched", arguments: goldenPackets)
    func verifier(_ golden: GoldenPacket) throws {
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(buffer(golden.wire), [golden.packet])],
            decoderFactory: { decoder(for: golden) })
    }

    @Test("ByteToMessageDecoderVerifier: every packet of a version in one session",
          arguments: [ProtocolVersion.v3_1, .v3_1_1, .v5])
    func verifierSession(_ version: ProtocolVersion) throws {
        let rows = goldenPackets.filter { $0.version == version }
        #expect(rows.count >= 5)
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: rows.map { (buffer($0.wire), [$0.packet]) },
            decoderFactory: { MQTTDecoder(version: version) })
    }

    @Test("every MQTT 5.0 property identifier appears in some golden packet")
    func propertyCoverage() {
        #expect(allPropertyIdentifiers.count == 27)
        var seen: Set<UInt8> = []
        for golden in goldenPackets {
            let lists = propertyLists(of: golden.packet)
            if golden.version != .v5 {
                #expect(lists.allSatisfy { $0.isEmpty }, "\(golden.name) is not 5.0 but carries properties")
            }
            for list in lists { for property in list { seen.insert(property.identifier) } }
        }
        let missing = allPropertyIdentifiers.subtracting(seen).sorted().map { "0x" + String($0, radix: 16) }
        #expect(missing.isEmpty, "no golden packet carries \(missing)")
        #expect(seen.isSubset(of: allPropertyIdentifiers))
    }

    @Test("every packet type appears in the golden table")
    func packetTypeCoverage() {
        let types = Set(goldenPackets.map(\.packet.type.rawValue))
        #expect(types == Set(1...15))
    }

    @Test("user properties decode in wire order, repeated names included")
    func userPropertyOrder() throws {
        let golden = try #require(goldenPackets.first { $0.name.contains("user properties in order") })
        var decoder = MQTTDecoder(version: .v5)
        var input = buffer(golden.wire)
        guard case .publish(let publish) = try decoder.decode(buffer: &input) else {
            Issue.record("not a PUBLISH")
            return
        }
        #expect(publish.properties.userProperties.map { "\($0.0)=\($0.1)" } == ["a=1", "b=2", "a=3"])
        let correlation = publish.properties.items.compactMap { p -> [UInt8]? in
            if case .correlationData(let data) = p { return Array(data.readableBytesView) } else { return nil }
        }
        #expect(correlation == [[0x00, 0x01, 0x02, 0x03]])
        #expect(publish.properties.payloadFormatIndicator == 1)
        #expect(publish.properties.messageExpiryInterval == 60)
    }

    @Test("a payload format indicator other than 0 or 1 is decoded as it came, to be forwarded (as Mosquitto)")
    func payloadFormatIndicatorIsNotChecked() throws {
        var decoder = MQTTDecoder(version: .v5)
        var input = buffer(bytes([0x30, 0x06, 0x00, 0x01, "t", 0x02, 0x01, 0x02]))
        guard case .publish(let publish) = try decoder.decode(buffer: &input) else {
            Issue.record("not a PUBLISH")
            return
        }
        #expect(publish.properties.payloadFormatIndicator == 2)
    }
}

/// 5.0-only content written for an older peer: the encoder leaves it out.
struct DowngradeCase: Sendable, CustomTestStringConvertible {
    let name: String
    let version: ProtocolVersion
    let packet: Packet
    let wire: [UInt8]
    var testDescription: String { "\(name) [\(version)]" }

    init(_ name: String, _ version: ProtocolVersion, _ packet: Packet, _ wire: [Wire]) {
        self.name = name
        self.version = version
        self.packet = packet
        self.wire = bytes(wire)
    }
}

let downgradeCases: [DowngradeCase] = [
    DowngradeCase("PUBLISH properties are dropped", .v3_1_1,
                  .publish(PublishPacket(topic: "t", payload: buffer("x"), qos: .atLeastOnce, packetID: 1,
                                         properties: [.messageExpiryInterval(5), .userProperty("k", "v")])), [
        0x32, 0x06,                 // PUBLISH QoS 1, remaining length 6
        0x00, 0x01, "t",            // topic name
        0x00, 0x01,                 // packet identifier 1
        "x",                        // payload
    ]),
    DowngradeCase("PUBACK reason code and properties are dropped", .v3_1_1,
                  .ack(AckPacket(type: .puback, packetID: 9, reasonCode: .notAuthorized,
                                 properties: [.reasonString("no")])), [
        0x40, 0x02,                 // PUBACK, remaining length 2
        0x00, 0x09,                 // packet identifier 9
    ]),
    DowngradeCase("SUBSCRIBE 5.0 options and properties are dropped", .v3_1_1,
                  .subscribe(SubscribePacket(packetID: 2, subscriptions: [
                      TopicSubscription(filter: "a", options: SubscriptionOptions(
                          qos: .atLeastOnce, noLocal: true, retainAsPublished: true, retainHandling: 2)),
                  ], properties: [.subscriptionIdentifier(4)])), [
        0x82, 0x06,                 // SUBSCRIBE, remaining length 6
        0x00, 0x02,                 // packet identifier 2
        0x00, 0x01, "a", 0x01,      // filter, options: QoS 1 only
    ]),
    DowngradeCase("UNSUBACK reason codes are dropped", .v3_1,
                  .unsuback(UnsubAckPacket(packetID: 3, reasonCodes: [.noSubscriptionExisted])), [
        0xB0, 0x02,                 // UNSUBACK, remaining length 2
        0x00, 0x03,                 // packet identifier 3
    ]),
    DowngradeCase("DISCONNECT reason code is dropped", .v3_1_1,
                  .disconnect(DisconnectPacket(reasonCode: .serverShuttingDown)), [
        0xE0, 0x00,                 // DISCONNECT, remaining length 0
    ]),
    DowngradeCase("CONNACK properties are dropped", .v3_1_1,
                  .connack(ConnAckPacket(code: 5, properties: [.reasonString("no")])), [
        0x20, 0x02,                 // CONNACK, remaining length 2
        0x00, 0x05,                 // flags, return code 5: not authorized
    ]),
]

@Suite("Writing for MQTT 3.x peers")
struct DowngradeTests {
    @Test("5.0-only fields are left out for 3.x", arguments: downgradeCases)
    func downgrade(_ row: DowngradeCase) throws {
        let written = encode(row.packet, version: row.version)
        #expect(written == row.wire, "wrote \(hex(written))\n expected \(hex(row.wire))")
        // And what was written reads back as a valid packet of that version.
        var decoder = MQTTDecoder(version: row.version)
        var input = buffer(written)
        #expect(try decoder.decode(buffer: &input) != nil)
        #expect(input.readableBytes == 0)
    }
}
