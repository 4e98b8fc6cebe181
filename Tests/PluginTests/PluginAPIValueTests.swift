import MQTT
import NIOCore
import PluginAPI
import Testing

/// The plugin API's version, and the value types plugins make and inspect (structs with static members, so
/// that they can grow without breaking a plugin's `switch`).
@Suite struct PluginAPIValueTests {
    @Test func versionOrderAndCompatibility() {
        let v1_0_0 = PluginAPIVersion(major: 1, minor: 0, patch: 0)
        let v1_2_3 = PluginAPIVersion(major: 1, minor: 2, patch: 3)
        let v2_0_0 = PluginAPIVersion(major: 2, minor: 0, patch: 0)
        #expect(v1_0_0 < v1_2_3 && v1_2_3 < v2_0_0)
        #expect(PluginAPIVersion(major: 1, minor: 2, patch: 4) > v1_2_3)
        #expect([v2_0_0, v1_0_0, v1_2_3].sorted() == [v1_0_0, v1_2_3, v2_0_0])
        #expect(v1_2_3.description == "1.2.3")
        // Same major, no newer minor: a host runs plugins built against its own or an earlier minor version.
        #expect(v1_2_3.isCompatible(withPluginBuiltAgainst: v1_0_0))
        #expect(v1_2_3.isCompatible(withPluginBuiltAgainst: PluginAPIVersion(major: 1, minor: 2, patch: 9)))
        #expect(!v1_0_0.isCompatible(withPluginBuiltAgainst: v1_2_3))
        #expect(!v2_0_0.isCompatible(withPluginBuiltAgainst: v1_2_3))
        #expect(PluginAPIVersion.current.isCompatible(withPluginBuiltAgainst: .current))
        #expect(PluginAPIVersion.current.major >= 1)
    }

    @Test func decisionKindsAndReason() {
        #expect(Decision.allow.isAllow && !Decision.allow.isDeny && !Decision.allow.isAbstain)
        #expect(Decision.abstain.isAbstain && Decision.abstain.denyReason == nil)
        let denied = Decision.deny(.notAuthorized)
        #expect(denied.isDeny && denied.denyReason == .notAuthorized)
        #expect(Decision.deny().isDeny && Decision.deny().denyReason == nil)
        #expect(denied == .deny(.notAuthorized) && denied != .deny() && denied != .deny(.badUserNameOrPassword))
        #expect(Decision.allow != .abstain)
        #expect([Decision.allow.description, denied.description, Decision.deny().description,
                 Decision.abstain.description] == ["allow", "deny(0x87)", "deny", "abstain"])
        // Asked on every PUBLISH and delivery: a few bytes, no reference.
        #expect(MemoryLayout<Decision>.size <= 4)
        #expect(MemoryLayout<Access>.size == 1)
    }

    @Test func accessSwitchNeedsDefault() {
        func name(_ access: Access) -> String {
            switch access {
            case .write: return "w"
            case .read: return "r"
            case .subscribe: return "s"
            default: return "?"
            }
        }
        #expect([Access.write, .read, .subscribe].map(name) == ["w", "r", "s"])
        #expect(Set([Access.write, .read, .subscribe, .write]).count == 3)
        #expect(Access.subscribe.description == "subscribe")
    }

    @Test func publishVerdictAccessors() {
        let message = HookMessage(topic: "a/b", payload: ByteBuffer(string: "x"))
        #expect(PublishVerdict.accept.isAccept && PublishVerdict.accept.rewrittenMessage == nil)
        let rewrite = PublishVerdict.rewrite(message)
        #expect(rewrite.isRewrite && rewrite.rewrittenMessage == message && !rewrite.isReject)
        #expect(PublishVerdict.reject(.quotaExceeded).rejectReason == .quotaExceeded)
        #expect(PublishVerdict.reject().isReject && PublishVerdict.reject().rejectReason == nil)
        #expect(PublishVerdict.reject() != .accept && rewrite == .rewrite(message))
    }

    @Test func disconnectReasonDetailsAndDescription() {
        let byClient = DisconnectReason.clientDisconnected(.success)
        #expect(byClient.isClientDisconnected && byClient.reasonCode == .success && byClient.details == nil)
        let broken = DisconnectReason.protocolError(.protocolError, "second CONNECT")
        #expect(broken.isProtocolError && broken.reasonCode == .protocolError && broken.details == "second CONNECT")
        #expect(DisconnectReason.connectionLost.reasonCode == nil && !DisconnectReason.takenOver.isProtocolError)
        #expect(DisconnectReason.keepAliveTimeout != .serverShutdown && DisconnectReason.notAuthorized == .notAuthorized)
        // Hooks that log a reason print its name, as they did when it was an enum.
        #expect(["\(byClient)", "\(DisconnectReason.connectionLost)", "\(broken)"]
                == ["clientDisconnected(0x0)", "connectionLost", "protocolError(0x82, \"second CONNECT\")"])
    }

    @Test func authenticationStepAccessors() {
        let challenge = AuthenticationStep.challenge(ByteBuffer(string: "c"))
        #expect(challenge.isChallenge && challenge.data == ByteBuffer(string: "c") && challenge.failureReason == nil)
        let success = AuthenticationStep.success(data: nil, username: "alice")
        #expect(success.isSuccess && success.data == nil && success.username == "alice")
        let failure = AuthenticationStep.failure(.notAuthorized)
        #expect(failure.isFailure && failure.failureReason == .notAuthorized && failure.data == nil)
        #expect(failure == .failure(.notAuthorized) && failure != .failure(.badAuthenticationMethod))
    }

    @Test func certificateUsernameCompares() {
        #expect(CertificateUsername.commonName != .subject)
        #expect(ConnectionFacts(listener: "l", certificateSubject: "CN=a,O=b", certificateCommonName: "a",
                                usernameFromCertificate: .commonName).certificateUsername == "a")
        #expect(ConnectionFacts(listener: "l", certificateSubject: "CN=a,O=b", certificateCommonName: "a",
                                usernameFromCertificate: .subject).certificateUsername == "CN=a,O=b")
        #expect(ConnectionFacts(listener: "l", certificateSubject: "CN=a").certificateUsername == nil)
    }
}
