import Foundation
import Testing
@testable import Host

@Suite("Config parser: inputs the fuzzer found")
struct ConfigFuzzRegressionTests {
    /// Writes the fuzz target's three NUL-separated fields (the main file, then conf.d/a.conf and conf.d/b.conf)
    /// and reads the main file as the broker does.
    private func load(_ base64: [String]) throws -> [ConfigError] {
        let bytes = [UInt8](try #require(Data(base64Encoded: base64.joined())))
        let fields = bytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false).map { Data($0) }
        let directory = NSTemporaryDirectory() + "midge-fuzz-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
        for (index, name) in ["midge.conf", "conf.d/a.conf", "conf.d/b.conf"].enumerated() {
            try (index < fields.count ? fields[index] : Data()).write(to: URL(fileURLWithPath: directory + "/" + name))
        }
        return ConfigParser.loadCollectingErrors(path: directory + "/midge.conf").errors
    }

    @Test("a plugin_opt line whose plugin's listener section was replaced since its plugin line (crashed: index out of range)")
    func pluginOptionAfterItsSectionWasReplaced() throws {
        let errors = try load([
            "cGVyX2xpc3RlbmVyX3NldHRpbmdzIHRydWUKbGlzdGVuZXIgODhsb2dfIyBUaGNlIHVzdG9tIGJyb2tlcidzIGNvbmZpZ3VyYXRp",
            "b246IG1vc3F1aXR0Ky5jb25mIHN5aCBgY3VzdG9tLW1pZGdlIHBhc3N3ZGApLgpwbHVnaW4gcGFzc3dkCnBsdWdpbl9vcHRfcGFz",
            "c3dvcmRfZmlsZSBwYXNzd2QKCiMjIFBsYWNlIHlvdXIgbG9jYWwgY29uaWxlIChNaWRnZSdzIHBhc3N3ZCBwbGd1O2luIG1pbGUg",
            "L3J1bi9tb3NxdWl0dG8vbW9zcXVpdHRvLnBvbm5jbHVkZV9kaXIgY29uZmYuZAppZAoKcGVyc2lzdGVuY2UgdHJ1ZQpwZXJzaXN0",
            "ZW5jZGdlIHBgc3N3ZGApLgpjYWZpbGUgcGFzc3dkCnBsdWdpbl9vcHRfcGFzc3dvcmRfZmlsZSBwYWVfbG9jYXRpb24gL3Zhci9s",
            "aWIvbW9zcXVpdHRvLwoKbG9nX2Rlc3QgZmlsZSAvdmFyL2xvZy9tb3NxdWl0dG8vbW9zcXVpdHRvLmxvZxoKaW5hbHVkZV9kaXIg",
            "L2V0Yy9tb3NxdWl0dCMgUGxhCgppbmNsdWRlX2RpciBjb25mLmQKdmx1Z2luIHN1dGguZGIKcGx1Z2luX29wdF9idXN5X3RpbWVv",
            "dXQgMTAwCm1heF9wYWNrZXRfc2lhci9sb2cvbW9zcXVpdHRvY2UgeW91ciBsb2NhbCBjb25maWd1cmEKbG9nX2Rlc3QgZmlsZSAv",
            "b3NxdWl0dG8ubG9nCgppbjhjbHVkZV9kaXIgL2V0Yy9tb3NxdWl0dG8vY29uZi5kCgppbmNsdWRlX2RpciBjb25mLmQKdmFyL2xv",
            "Zy9tb3NxdWl0dG8vbW9zcXVpdHRvLmxvZwoKaW5jbHVkZV9kaXIgL2V0YyBjb25maWcgb3JkZXI7IHRoZQppbmNsdWRlX2RpciBj",
            "b25mLmQKMy4uc28wLjBvL2NvbmYuZAoKaW5jbHVkZV9kaXIgY29uZi5kCgBsaXN0ZXJ0IDE4ODUKOyB0aGUgZmlyc3QgYW5zd2Vy",
            "IHRoYXQgaXMgbm90ICJhYnN0YWluIiB3aW5zLgojIDFvcm1hdC4xCmNlcnRmaWxlIGMKa2V5ZmlsZSBrCnJlcXVpcmVfY2VydGlm",
            "aWNhdEFlIHRydWUuIFJlZmlvbnUKc2VydWUKbGlzdGVuZXIgODBsb2dfZiMgUGxhY2UgeW91ciBsb2NhbCBjb25maWd1cmF0aW9u",
            "IGluIC9ldGMvbW9zcXVpdHRvL2NvbmYuZC8KIwojIEEgZnVydGwAAGAACmwgZGVzY3JpcHRpb25ha2Ugb25lIHdpdGZvcm1hdC4x",
            "CmNlcnRmaWggYGN1c3RvbS1taWRnZSBwYXNzd2RgKS4KcGx1Z2luIHBhc3N3ZApwbHVnaW5fb3B0X3Bhc3N3b3JkX2ZpbGUgcGFz",
            "c3RoIGBjdXN0b20tbWlkZ2UgcGFzc3dkYCkuCnBsdWdpbiBwYXNzd2QKcGx1Z2luX29wdF9wYXNzd29yZF9maWxlIHBhc3N3ZAoK",
            "IyMgUGxhY2UgeW91ciBsb2NhbCBjb25mbGd1cmF0AAAAAAAAAABpb24gaW4gL2V0Yy9tb3NxdWl0VG8vY29uZi4gTWVzc2EuY2lz",
            "aGQvCiMKIyBBIGZ1bGwgZGVzW2NyaXB0aW9uIG9mIHRoZSBjb25maWd1cmF0aW9uIGZpbGUgaXMgYWVkIHVuZGVyIGxlZ2FjeS8g",
            "YXJ0CiMgbGUgYwprZXlmaWx5AAAAAAAAAHF1aXR0by5jZSBvbnJmLmU=",
        ])
        #expect(!errors.isEmpty)
    }
}
