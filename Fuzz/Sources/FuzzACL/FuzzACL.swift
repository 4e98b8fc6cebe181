@testable import ACLFilePlugin
import FuzzSupport
import MQTT
import PluginAPI

/// Fields: an ACL file (Mosquitto's `acl_file` format), a client id, a user name (absent when empty), a
/// topic. Check: a topic name without wildcards, as a subscription filter, gets the same decision from the
/// search over filters as from the plain read check (the plugin answers such a SUBSCRIBE with the second;
/// both must agree). Topics of at most 8 levels only: past its step budget the search answers "exists".
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzACL(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var fields = FuzzFields(start, count, limit: 4)
    let text = fields.text(), clientID = fields.text(), username = fields.text(), topic = fields.text()
    guard let file = try? ACLFile(parsing: text, path: "fuzz.acl") else { return 0 }
    let client = ClientInfo(clientID: clientID, username: username.isEmpty ? nil : username,
                            protocolVersion: .v5, listener: "1883")
    let rules = file.rules(for: client)
    let read = rules.decide(.read, topic: topic)
    _ = rules.decide(.write, topic: topic)
    if Topic.isValidFilter(topic) {
        let searched = rules.decideSubscription(ACLFilter(topic))
        if Topic.isValidName(topic), topic.utf8.count(where: { $0 == UInt8(ascii: "/") }) < 8 {
            precondition(searched == read, "\(topic): \(searched) as a filter, \(read) as a topic")
        }
    }
    return 0
}
