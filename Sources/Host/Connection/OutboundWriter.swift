import MQTT
import NIOCore
import PluginAPI

/// Everything that goes to the client: packets encoded for its protocol version, and the session's messages
/// drained while the socket takes them (read authorization, topic aliases towards the client, the time left
/// of a message's expiry, the client's maximum packet size, the deliver hooks). Writes are flushed once per
/// read batch, or at once outside one.
final class OutboundWriter {
    private let state: ConnectionState
    /// Set while the handler is in the pipeline.
    var context: ChannelHandlerContext?
    /// True while a read batch runs: writes wait for its end to be flushed, routing goes through the batch.
    var inRead = false
    private var needsFlush = false
    /// Topic aliases this connection uses towards the client (`max_topic_alias_broker`), first come first
    /// served: the first `aliasLimit` topics sent get one, for as long as the connection lives.
    private var aliases: [String: UInt16] = [:]
    var aliasLimit: UInt16 = 0
    /// The largest packet the client takes (its 5.0 Maximum Packet Size); 0 = the protocol's limit. A larger
    /// packet is not sent (MQTT-3.1.2-24): a PUBLISH is dropped (as if delivered), any other packet closes
    /// the connection instead.
    var maximumPacketSize: UInt32 = 0

    init(state: ConnectionState) {
        self.state = state
    }

    /// Encodes and writes one packet (flushed at the end of the read batch, or by `flushIfOutsideRead`).
    func send(_ packet: Packet) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 16)
        packet.write(version: state.version, to: &buffer)
        if maximumPacketSize > 0 && buffer.readableBytes > Int(maximumPacketSize) {
            // MQTT-3.1.2-24: not sent. The connection closes, as Mosquitto closes it for a CONNACK (Mosquitto
            // sends a SUBACK that does not fit anyway; see README, "Where Midge differs").
            let size = buffer.readableBytes
            state.logger.notice("Client \(state.clientName) disconnected: its \(packet.type) would be \(size) bytes, more than its maximum packet size \(maximumPacketSize).")
            state.disconnectReason = .protocolError(.packetTooLarge, "\(packet.type) larger than the client's maximum packet size")
            state.control?.close()
            return
        }
        state.loop.counters.messagesSent += 1
        state.loop.counters.bytesSent += buffer.readableBytes
        context.write(NIOAny(buffer), promise: nil)
        needsFlush = true
    }

    func flushIfOutsideRead() {
        if !inRead { flush() }
    }

    /// Flushes what was written since the last flush.
    func flush() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    /// Writes what the session has ready, while the channel accepts more.
    func drain() {
        guard state.phase == .connected, let session = state.session, let context else { return }
        var wrote = false
        var permit: ((Delivery) -> Bool)?
        let access = state.broker.access
        if !access.authorizers.isEmpty, let client = state.client {
            permit = { delivery in
                access.authorize(client: client, access: .read, topic: delivery.message.topic,
                                 qos: delivery.qos, retain: delivery.retain)
            }
        }
        let loop = state.loop
        while context.channel.isWritable {
            loop.outgoing.removeAll(keepingCapacity: true)
            let resumable = session.takeReady(limit: 256, into: &loop.outgoing, permit: permit)
            for publisher in resumable { publisher.resumeReading() }
            if loop.outgoing.isEmpty { break }
            writeOutgoing(session)
            wrote = true
        }
        if wrote {
            needsFlush = true
            flushIfOutsideRead()
        }
    }

    /// After CONNACK: resends what was in flight, then what queued while the client was away.
    func resume(_ session: Session) {
        let loop = state.loop
        loop.outgoing.removeAll(keepingCapacity: true)
        session.resendInflight(into: &loop.outgoing)
        writeOutgoing(session)
        drain()
    }

    /// Encodes the loop's `outgoing` into one buffer and writes it; empties `outgoing`.
    private func writeOutgoing(_ session: Session) {
        let loop = state.loop
        guard !loop.outgoing.isEmpty, let context else { return }
        let version = state.version
        var buffer = context.channel.allocator.buffer(capacity: 256)
        let maximum = Int(maximumPacketSize)
        for item in loop.outgoing {
            switch item {
            case .pubrel(let id):
                Packet.ack(AckPacket(type: .pubrel, packetID: id)).write(version: version, to: &buffer)
                loop.counters.messagesSent += 1
            case .publish(let delivery, let packetID, let dup):
                let message = delivery.message
                var properties = Properties()
                if version == .v5 {
                    properties = message.properties
                    if let left = message.expiryLeft {
                        properties.items.removeAll { if case .messageExpiryInterval = $0 { return true }; return false }
                        properties.append(.messageExpiryInterval(left))
                    }
                    for id in delivery.subscriptionIDs { properties.append(.subscriptionIdentifier(id)) }
                }
                var topic = message.topic
                var newAlias: UInt16?
                if aliasLimit > 0 {
                    if let alias = aliases[topic] {
                        properties.append(.topicAlias(alias))
                        topic = ""
                    } else if aliases.count < Int(aliasLimit) {
                        // Recorded once the packet is really sent (it may be too large for the client).
                        let alias = UInt16(aliases.count + 1)
                        newAlias = alias
                        properties.append(.topicAlias(alias))
                    }
                }
                let publish = PublishPacket(topic: topic, payload: message.payload, qos: delivery.qos,
                                            retain: delivery.retain, dup: dup, packetID: packetID,
                                            properties: properties)
                if maximum > 0 && publish.encodedSize(version: version) > maximum {
                    if let packetID { _ = session.complete(packetID) }
                    session.countDropped()
                    loop.counters.publishDropped += 1
                    continue
                }
                publish.write(version: version, to: &buffer)
                if let newAlias { aliases[message.topic] = newAlias }
                loop.counters.messagesSent += 1
                loop.counters.publishSent += 1
                let hooks = state.broker.hooks
                if !hooks.deliver.isEmpty {
                    state.notify(hooks.deliver, "deliver", {
                        DeliverEvent(client: $0, message: HookMessage(
                            topic: message.topic, payload: message.payload, qos: delivery.qos,
                            retain: delivery.retain, properties: properties), duplicate: dup)
                    }) { try $0.delivered($1, on: $2) }
                }
            }
        }
        loop.outgoing.removeAll(keepingCapacity: true)
        if buffer.readableBytes > 0 {
            loop.counters.bytesSent += buffer.readableBytes
            context.write(NIOAny(buffer), promise: nil)
            needsFlush = true
        }
    }
}
