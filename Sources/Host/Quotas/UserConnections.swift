import NIOConcurrencyHelpers

/// `max_connections_per_user`: the clients each user name has connected.
///
/// A slot is taken when a client is accepted (after authentication) and given back when its connection ends.
/// Slots are counted by client id: a client that reconnects with its own client id (taking its session over)
/// shares the slot of the connection it replaces, so a takeover is never refused because of the old
/// connection itself, even before that one has closed.
final class UserConnections: Sendable {
    let maximum: Int
    /// User name -> client id -> connections holding it (2 only during a takeover).
    private let users = NIOLockedValueBox([String: [String: Int]]())

    init(maximum: Int) {
        self.maximum = maximum
    }

    /// Takes a slot for `clientID` of `user`; false when the user has `maximum` other clients connected.
    func acquire(user: String, clientID: String) -> Bool {
        users.withLockedValue { users in
            var clients = users[user] ?? [:]
            if let holders = clients[clientID] {
                clients[clientID] = holders + 1
            } else {
                guard clients.count < maximum else { return false }
                clients[clientID] = 1
            }
            users[user] = clients
            return true
        }
    }

    /// Gives back a slot taken by `acquire`.
    func release(user: String, clientID: String) {
        users.withLockedValue { users in
            guard var clients = users[user], let holders = clients[clientID] else { return }
            clients[clientID] = holders > 1 ? holders - 1 : nil
            users[user] = clients.isEmpty ? nil : clients
        }
    }

    /// Clients `user` has connected now.
    func connected(user: String) -> Int {
        users.withLockedValue { $0[user]?.count ?? 0 }
    }
}
