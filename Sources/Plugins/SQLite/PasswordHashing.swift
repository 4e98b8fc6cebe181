import PasswordFilePlugin

/// The one seam between this plugin and the password hash format: mosquitto_passwd's `$7$` (PBKDF2-SHA512;
/// `$6$` is also accepted), through PasswordFilePlugin's `PasswordHash`.
enum PasswordHashing {
    /// `$7$101$SALT$HASH`, as mosquitto_passwd writes it.
    static func hash(password: [UInt8]) throws -> String {
        do {
            return try PasswordHash.make(password: password).encoded
        } catch {
            throw SQLiteError(code: 0, message: "cannot hash the password: \(error)")
        }
    }

    /// Whether `password` matches `encoded`; throws (naming no secret) when `encoded` is not a hash.
    static func verify(password: [UInt8], against encoded: String) throws -> Bool {
        let hash: PasswordHash
        do {
            hash = try PasswordHash(parsing: encoded)
        } catch {
            throw SQLiteError(code: 0, message: "malformed password_hash: \(error)")
        }
        return hash.verify(password: password)
    }
}
