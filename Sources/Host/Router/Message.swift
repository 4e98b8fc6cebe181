import MQTT
import NIOCore

/// An application message as the router carries it: immutable, shared by every session it is queued for.
final class Message: Sendable {
    let topic: String
    let payload: ByteBuffer
    let qos: QoS
    let retain: Bool
    /// MQTT 5.0 properties to forward (topic alias and subscription identifiers removed).
    let properties: Properties
    /// The client that published it, for no-local; nil for messages the broker makes.
    let origin: String?
    /// When it expires (MQTT 5.0 message expiry), if ever.
    let expiresAt: NIODeadline?

    init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: Properties = [],
         origin: String? = nil, receivedAt: NIODeadline = .now()) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        var forwarded = properties
        if !forwarded.isEmpty {
            forwarded.items.removeAll {
                if case .topicAlias = $0 { return true }
                if case .subscriptionIdentifier = $0 { return true }
                return false
            }
        }
        self.properties = forwarded
        self.origin = origin
        if let seconds = properties.messageExpiryInterval {
            self.expiresAt = receivedAt + .seconds(Int64(seconds))
        } else {
            self.expiresAt = nil
        }
    }

    /// The same message with another retain flag.
    func with(retain: Bool) -> Message {
        Message(copying: self, retain: retain)
    }

    private init(copying other: Message, retain: Bool) {
        topic = other.topic
        payload = other.payload
        qos = other.qos
        self.retain = retain
        properties = other.properties
        origin = other.origin
        expiresAt = other.expiresAt
    }

    var isExpired: Bool {
        guard let expiresAt else { return false }
        return expiresAt <= .now()
    }

    /// Bytes of payload and topic, for queue accounting.
    var size: Int { payload.readableBytes + topic.utf8.count }
}

/// One message waiting for, or in, delivery to one session.
struct Delivery {
    var message: Message
    /// The QoS it goes out with (the lower of the message's and the subscription's, unless upgraded).
    var qos: QoS
    /// The retain flag it goes out with.
    var retain: Bool
    /// Subscription identifiers of the matching subscriptions (5.0).
    var subscriptionIDs: [Int]
}
