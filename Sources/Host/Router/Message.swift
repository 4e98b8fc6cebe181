#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
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
    /// When it expires (MQTT 5.0 message expiry), if ever: a wall-clock second (seconds since 1970), as
    /// Mosquitto keeps it, so that the interval left that a subscriber is told is counted the same way.
    let expiresAt: Int?

    init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: Properties = [],
         origin: String? = nil) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        var forwarded = properties
        if !forwarded.isEmpty {
            forwarded.items.removeAll {
                if case .topicAlias = $0 { return true }
                if case .subscriptionIdentifier = $0 { return true }
                if case .willDelayInterval = $0 { return true }  // a will's own property, not a PUBLISH's
                return false
            }
        }
        self.properties = forwarded
        self.origin = origin
        if let seconds = properties.messageExpiryInterval {
            self.expiresAt = Self.wallClockSecond() + Int(seconds)
        } else {
            self.expiresAt = nil
        }
    }

    /// The same message with its payload in storage of its own (see `ByteBuffer.detached()`).
    func detachedPayload() -> Message {
        guard payload.storageCapacity > payload.readableBytes + 256 else { return self }
        return Message(copying: self, retain: retain, payload: payload.detached())
    }

    private init(copying other: Message, retain: Bool, payload: ByteBuffer) {
        topic = other.topic
        self.payload = payload
        qos = other.qos
        self.retain = retain
        properties = other.properties
        origin = other.origin
        expiresAt = other.expiresAt
    }

    /// Expired once the current second is past its expiry second (Mosquitto's rule).
    var isExpired: Bool {
        guard let expiresAt else { return false }
        return Self.wallClockSecond() > expiresAt
    }

    /// The expiry interval left, in whole seconds: its expiry second minus the current one (as Mosquitto
    /// computes it); nil for a message that never expires.
    var expiryLeft: UInt32? {
        guard let expiresAt else { return nil }
        return UInt32(clamping: max(0, expiresAt - Self.wallClockSecond()))
    }

    static func wallClockSecond() -> Int { Int(time(nil)) }

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
    /// For a message sent through a shared subscription: its group, so that another member gets it if this
    /// session ends before acknowledging it.
    var shareGroup: ShareGroup? = nil
    /// The packet id given when it was queued (QoS 1 and 2).
    var packetID: UInt16? = nil
}

extension ByteBuffer {
    /// These bytes in storage of their own when they are a small slice of a larger buffer (a read buffer),
    /// so that keeping them (a retained message, a will, a password) does not keep the whole read buffer.
    func detached() -> ByteBuffer {
        guard storageCapacity > readableBytes + 256 else { return self }
        return ByteBuffer(bytes: readableBytesView)
    }
}
