import Foundation
import MQTT
import NIOConcurrencyHelpers
import PasswordFilePlugin
public import NIOCore
public import PluginAPI

/// The `scram` plugin: the MQTT 5.0 enhanced authentication method `SCRAM-SHA-256` (RFC 5802 with the
/// SHA-256 of RFC 7677), users from a credentials file `midge scram` writes (`plugin_opt_scram_file`).
///
/// The exchange (MQTT 5.0 section 4.12, Authentication Data carries the SCRAM messages as UTF-8):
///
/// 1. CONNECT, method `SCRAM-SHA-256`, data client-first-message (`n,,n=USER,r=CLIENTNONCE`);
/// 2. AUTH 0x18 from the server: server-first-message (`r=NONCE,s=SALT,i=ITERATIONS`);
/// 3. AUTH 0x18 from the client: client-final-message (`c=biws,r=NONCE,p=PROOF`);
/// 4. CONNACK 0x00 with server-final-message (`v=SIGNATURE`), which the client should check; or CONNACK 0x87
///    (not authorized) for a wrong password, an unknown user or a malformed message.
///
/// Channel binding (`p=`) and mandatory extensions (`m=`) are refused; SASLprep is not applied to user
/// names or passwords (ASCII ones are unaffected). An unknown user gets a made-up salt, so the exchange does
/// not tell who exists. Everything is answered at once: the server side does no PBKDF2.
public final class SCRAMPlugin: EnhancedAuthenticationPlugin, ReloadablePlugin, Sendable {
    /// Registry entry.
    public static let descriptor = PluginDescriptor(
        name: "scram",
        summary: "MQTT 5.0 enhanced authentication SCRAM-SHA-256, users from a file `midge scram` writes",
        commands: [PluginCommand(name: "scram", usage: "scram [-c] [-D] [-I N] FILE USER [PASSWORD]   (SCRAM-SHA-256 credentials)",
                                 run: SCRAMTool.run(arguments:))],
        pathOptions: ["scram_file"]
    ) { options, context in
        try SCRAMPlugin(options: &options, context: context)
    }

    /// The Authentication Method name.
    public static let method = "SCRAM-SHA-256"

    /// `["SCRAM-SHA-256"]`.
    public let methods = [SCRAMPlugin.method]
    /// The absolute path of the credentials file.
    public let path: String
    private let context: PluginContext
    private let users: NIOLockedValueBox<[String: SCRAMCredential]>
    /// Makes the salts of unknown users.
    private let secret = SCRAMCrypto.random(32)
    /// The server's part of the nonce (replaced by tests to check RFC 7677's example exchange).
    var makeServerNonce: @Sendable () -> String {
        get { nonceMaker.withLockedValue { $0 }.make }
        set { nonceMaker.withLockedValue { $0 = NonceMaker(make: newValue) } }
    }
    /// The closure sits in a class: a closure kept directly in the box was re-abstracted through
    /// `withLockedValue`'s inout on every read, growing by two thunks per SCRAM exchange until the stack
    /// overflowed (found by the scram fuzz target after about 100,000 exchanges).
    private let nonceMaker = NIOLockedValueBox(NonceMaker { Data(SCRAMCrypto.random(18)).base64EncodedString() })

    /// Options: `scram_file` (required; relative paths resolve against the config directory).
    public convenience init(options: inout PluginOptions, context: PluginContext) throws {
        let file = try options.requiredString("scram_file")
        try options.finish()
        try self.init(path: file, context: context)
    }

    /// Loads `path`; throws naming the file (and line) when it cannot be read.
    public init(path: String, context: PluginContext) throws {
        if path.hasPrefix("/") || context.configDirectory.isEmpty {
            self.path = path
        } else {
            self.path = (context.configDirectory as NSString).appendingPathComponent(path)
        }
        self.context = context
        users = NIOLockedValueBox(try Self.load(path: self.path))
        context.logger.info("Loaded \(users.withLockedValue { $0.count }) SCRAM user(s) from \(self.path).")
    }

    /// Reads the file again; a broken file throws and keeps the old users.
    /// The credentials file.
    public var watchedFiles: [String] { [path] }

    public func prepareReload() async throws -> PreparedReload {
        let fresh = try Self.load(path: path)
        return PreparedReload { [self] in
            users.withLockedValue { $0 = fresh }
            context.logger.info("Reloaded \(fresh.count) SCRAM user(s) from \(path).")
        }
    }

    private static func load(path: String) throws -> [String: SCRAMCredential] {
        let text: String
        do {
            guard let read = try FileIO.text(path: path) else {
                throw PluginError(pluginName: "scram", message: "SCRAM credentials file '\(path)' is not UTF-8")
            }
            text = read
        } catch let error as SystemError {
            throw PluginError(pluginName: "scram", message: "unable to read SCRAM credentials file '\(path)': \(error)")
        }
        do {
            return try SCRAMCredentialsFile(parsing: text, file: path).users
        } catch let error as SCRAMCredentialsFile.ParseError {
            throw PluginError(pluginName: "scram", message: error.reason,
                              origin: PluginOptions.Origin(file: error.file, line: error.line))
        }
    }

    /// A new server-side SCRAM exchange; the user name comes from the client-first message, not the CONNECT.
    public func begin(method: String, client: ClientInfo, on eventLoop: any EventLoop) throws
        -> any AuthenticationConversation {
        SCRAMConversation(plugin: self)
    }

    /// The credential of `user`, or a made-up one (stable salt, keys nobody can match) and false.
    fileprivate func credential(for user: String) -> (SCRAMCredential, known: Bool) {
        if let known = users.withLockedValue({ $0[user] }) { return (known, true) }
        let salt = Array(SCRAMCrypto.hmac(key: secret, Array(user.utf8)).prefix(16))
        return (SCRAMCredential(iterations: SCRAMCredential.defaultIterations, salt: salt,
                                storedKey: SCRAMCrypto.random(32), serverKey: SCRAMCrypto.random(32)), false)
    }
}

/// Makes the server's part of a nonce.
private final class NonceMaker: Sendable {
    let make: @Sendable () -> String
    init(make: @escaping @Sendable () -> String) { self.make = make }
}

/// The server side of one SCRAM-SHA-256 exchange.
final class SCRAMConversation: AuthenticationConversation {
    private let plugin: SCRAMPlugin
    private enum State {
        case awaitingClientFirst
        case awaitingClientFinal(user: String, credential: SCRAMCredential, known: Bool, gs2Header: String,
                                 clientFirstBare: String, serverFirst: String, nonce: String)
        case done
    }
    private var state = State.awaitingClientFirst

    init(plugin: SCRAMPlugin) { self.plugin = plugin }

    func step(data: ByteBuffer?, on eventLoop: any EventLoop) -> PluginAnswer<AuthenticationStep> {
        let text = data.flatMap { String(validating: $0.readableBytesView, as: UTF8.self) }
        let answer: AuthenticationStep
        switch state {
        case .awaitingClientFirst:
            answer = clientFirst(text)
        case .awaitingClientFinal(let user, let credential, let known, let header, let bare, let serverFirst, let nonce):
            answer = clientFinal(text, user: user, credential: credential, known: known, gs2Header: header,
                                 clientFirstBare: bare, serverFirst: serverFirst, nonce: nonce)
        case .done:
            answer = .failure(.notAuthorized)
        }
        if !answer.isChallenge { state = .done }
        return .now(answer)
    }

    /// `n,[a=AUTHZID],n=USER,r=NONCE[,...]` -> `r=NONCE+SERVERNONCE,s=SALT,i=ITERATIONS`.
    private func clientFirst(_ text: String?) -> AuthenticationStep {
        guard let text, text.hasPrefix("n,") || text.hasPrefix("y,") else { return .failure(.notAuthorized) }
        let afterFlag = text.dropFirst(2)
        guard let comma = afterFlag.firstIndex(of: ",") else { return .failure(.notAuthorized) }
        let authzid = afterFlag[..<comma]
        let header = String(text[..<afterFlag.index(after: comma)])
        let bare = String(afterFlag[afterFlag.index(after: comma)...])
        let attributes = bare.split(separator: ",", omittingEmptySubsequences: false)
        guard attributes.count >= 2, attributes[0].hasPrefix("n="), attributes[1].hasPrefix("r="),
              let user = Self.decodeName(attributes[0].dropFirst(2)), !user.isEmpty else {
            return .failure(.notAuthorized)
        }
        let clientNonce = String(attributes[1].dropFirst(2))
        guard !clientNonce.isEmpty, !clientNonce.contains(",") else { return .failure(.notAuthorized) }
        if !authzid.isEmpty {
            guard authzid.hasPrefix("a="), Self.decodeName(authzid.dropFirst(2)) == user else {
                return .failure(.notAuthorized)
            }
        }
        let (credential, known) = plugin.credential(for: user)
        let nonce = clientNonce + plugin.makeServerNonce()
        let serverFirst = "r=\(nonce),s=\(Data(credential.salt).base64EncodedString()),i=\(credential.iterations)"
        state = .awaitingClientFinal(user: user, credential: credential, known: known, gs2Header: header,
                                     clientFirstBare: bare, serverFirst: serverFirst, nonce: nonce)
        return .challenge(ByteBuffer(string: serverFirst))
    }

    /// `c=BASE64(GS2HEADER),r=NONCE[,...],p=PROOF` -> success with `v=SERVERSIGNATURE`.
    private func clientFinal(_ text: String?, user: String, credential: SCRAMCredential, known: Bool,
                             gs2Header: String, clientFirstBare: String, serverFirst: String,
                             nonce: String) -> AuthenticationStep {
        guard let text, let proofRange = text.range(of: ",p=", options: .backwards) else {
            return .failure(.notAuthorized)
        }
        let withoutProof = String(text[..<proofRange.lowerBound])
        let attributes = withoutProof.split(separator: ",", omittingEmptySubsequences: false)
        guard attributes.count >= 2,
              attributes[0] == "c=" + Data(gs2Header.utf8).base64EncodedString(),
              attributes[1] == "r=" + nonce,
              let proof = Data(base64Encoded: String(text[proofRange.upperBound...])), proof.count == 32 else {
            return .failure(.notAuthorized)
        }
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let signature = SCRAMCrypto.hmac(key: credential.storedKey, authMessage)
        let clientKey = zip(proof, signature).map { $0 ^ $1 }
        guard PasswordHash.constantTimeEqual(SCRAMCrypto.sha256(clientKey), credential.storedKey), known else {
            return .failure(.notAuthorized)
        }
        let serverSignature = SCRAMCrypto.hmac(key: credential.serverKey, authMessage)
        return .success(data: ByteBuffer(string: "v=" + Data(serverSignature).base64EncodedString()), username: user)
    }

    /// A `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` makes it invalid.
    private static func decodeName(_ encoded: Substring) -> String? {
        var out = ""
        var rest = encoded[...]
        while let first = rest.first {
            if first == "=" {
                if rest.hasPrefix("=2C") { out.append(",") } else if rest.hasPrefix("=3D") { out.append("=") } else { return nil }
                rest = rest.dropFirst(3)
            } else {
                out.append(first)
                rest = rest.dropFirst()
            }
        }
        return out
    }
}
