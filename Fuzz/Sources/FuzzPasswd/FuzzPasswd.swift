import FuzzSupport
import PasswordFilePlugin

/// Fields: a password file (Mosquitto's format, as bytes), then a password. What parses must render and
/// parse back to the same users and hashes, each hash's text must parse back to it, and cheap hashes (up to
/// 1,000 iterations) are checked against the password.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPasswd(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var fields = FuzzFields(start, count, limit: 2)
    let file = fields.bytes(), password = fields.bytes()
    // A hash on its own, as `midge passwd` and the SQLite plugin read them.
    if let hash = try? PasswordHash(parsing: String(decoding: file, as: UTF8.self)) {
        precondition((try? PasswordHash(parsing: hash.encoded)) == hash, "hash round trip: \(hash.encoded)")
    }
    guard let parsed = try? PasswordFile(parsing: file) else { return 0 }
    let rendered = parsed.render()
    guard let again = try? PasswordFile(parsing: rendered) else {
        preconditionFailure("rendered file does not parse: \(rendered)")
    }
    precondition(again.entries.map(\.username) == parsed.entries.map(\.username), "users changed in a round trip")
    precondition(again.entries.map(\.hash) == parsed.entries.map(\.hash), "hashes changed in a round trip")
    for entry in parsed.entries {
        precondition((try? PasswordHash(parsing: entry.hash.encoded)) == entry.hash, "hash round trip")
        precondition(parsed.hash(for: entry.username) != nil, "\(entry.username) is listed but not found")
        if entry.hash.iterations <= 1_000 {
            _ = parsed.verify(username: entry.username, password: password)
        }
    }
    return 0
}
