import Logging
import MQTT

/// Everything a connection needs from the broker, shared by all connections.
struct BrokerContext: Sendable {
    var router: Router
    var access: AccessControl
    var connect: ConnectSettings
    var logger: Logger
}

/// Rules applied to CONNECT and to PUBLISH from clients.
struct ConnectSettings: Sendable {
    var allowZeroLengthClientID = true
    var autoIDPrefix = "auto-"
    var maxKeepalive = 65535
    /// Largest packet accepted from clients, 0 = the protocol's limit.
    var maxPacketSize = 0
    /// Largest PUBLISH payload accepted, 0 = no limit.
    var messageSizeLimit = 0
    /// Highest topic alias a 5.0 client may use (Mosquitto's `max_topic_alias`, default 10).
    var maxTopicAlias = 10
    var maxInflightMessages = 20
    var connectionMessages = true
    /// Use the user name as client id (`use_username_as_clientid`).
    var useUsernameAsClientID = false
}
