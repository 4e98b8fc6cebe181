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
}
