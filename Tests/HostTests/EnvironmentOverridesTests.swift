import Foundation
import Testing
@testable import Host

@Suite("Environment overrides and watch_interval")
struct EnvironmentOverridesTests {
    private func config(_ text: String) throws -> BrokerConfig {
        try ConfigParser.parse(text: text, file: "plugins.conf", baseDirectory: "/etc/midge")
    }

    private let shipped = """
        listener 1883
        listener 8883
        certfile certs/server.crt
        keyfile certs/server.key
        admin_listener 9090
        password_file passwd
        """

    @Test func portsMoveTheFirstPlainAndTheFirstTLSListener() throws {
        var loaded = try config(shipped)
        let notes = try EnvironmentOverrides(environment: ["MIDGE_PORT": "11883", "MIDGE_TLS_PORT": "18883",
                                                          "MIDGE_ADMIN_PORT": "19090"]).apply(to: &loaded)
        #expect(loaded.listeners.map(\.port) == [11883, 18883])
        #expect(loaded.adminListener?.port == 19090)
        #expect(notes.count == 3)
        #expect(notes.allSatisfy { $0.contains("from MIDGE_") })
    }

    @Test func nothingSetChangesNothing() throws {
        var loaded = try config(shipped)
        let before = loaded
        #expect(try EnvironmentOverrides(environment: [:]).apply(to: &loaded).isEmpty)
        #expect(loaded == before)
    }

    @Test func theInstallerUserNeverShowsItsPassword() throws {
        var loaded = try config(shipped)
        let notes = try EnvironmentOverrides(environment: ["MIDGE_ADMIN_PASSWORD": "hunter2-secret"]).apply(to: &loaded)
        #expect(loaded.installerUser == InstallerUser(username: "admin", password: "hunter2-secret"))
        #expect(!notes.joined().contains("hunter2"))
        #expect(!String(describing: loaded.installerUser!).contains("hunter2"))
    }

    @Test func logLevelMeansThatLevelAndThoseAbove() throws {
        var loaded = try config(shipped)
        _ = try EnvironmentOverrides(environment: ["MIDGE_LOG_LEVEL": "notice"]).apply(to: &loaded)
        #expect(loaded.logTypes == ["error", "warning", "notice"])
        _ = try EnvironmentOverrides(environment: ["MIDGE_LOG_LEVEL": "ALL"]).apply(to: &loaded)
        #expect(loaded.logTypes == ["all"])
    }

    @Test(arguments: [
        (["MIDGE_PORT": "0"], "MIDGE_PORT='0'"),
        (["MIDGE_TLS_PORT": "70000"], "MIDGE_TLS_PORT='70000'"),
        (["MIDGE_ADMIN_USERNAME": "ops"], "MIDGE_ADMIN_PASSWORD is not"),
        (["MIDGE_LOG_LEVEL": "verbose"], "MIDGE_LOG_LEVEL='verbose'"),
    ])
    func malformedValuesNameTheVariable(environment: [String: String], message: String) {
        #expect {
            _ = try EnvironmentOverrides(environment: environment)
        } throws: { error in
            "\(error)".contains(message) && "\(error)".hasPrefix("environment: ")
        }
    }

    @Test func aPortAnotherListenerUsesIsAnError() throws {
        for environment in [["MIDGE_PORT": "8883"], ["MIDGE_ADMIN_PORT": "1883"], ["MIDGE_TLS_PORT": "9090"]] {
            var loaded = try config(shipped)
            #expect(throws: ConfigError.self, "\(environment)") {
                _ = try EnvironmentOverrides(environment: environment).apply(to: &loaded)
            }
        }
    }

    @Test func aTLSPortWithoutATLSListenerIsAnError() throws {
        var loaded = try config("listener 1883\n")
        #expect(throws: ConfigError.self) {
            _ = try EnvironmentOverrides(environment: ["MIDGE_TLS_PORT": "8883"]).apply(to: &loaded)
        }
    }

    @Test func watchIntervalTakesSecondsWithDecimals() throws {
        #expect(try config("").watchIntervalMilliseconds == 2000)
        #expect(try config("watch_interval 0.25\n").watchIntervalMilliseconds == 250)
        #expect(try config("watch_interval 0\n").watchIntervalMilliseconds == 0)
        #expect(try config("watch_interval 3600\n").watchIntervalMilliseconds == 3_600_000)
        for bad in ["-1", "0.0001", "1e3", "3600.5", "two", ".5"] {
            #expect(throws: ConfigError.self, "watch_interval \(bad)") { _ = try config("watch_interval \(bad)\n") }
        }
    }
}

@Suite("check-config never prints secrets")
struct CheckConfigSecretsTests {
    @Test(arguments: [
        ("password_file", "/etc/midge/passwd", "(set)"),
        ("api_token", "abc", "(set)"),
        ("client_credentials", "x", "(set)"),
        ("url", "https://user:hunter2@example.com/path@x", "https://(set)@example.com/path@x"),
        ("url", "https://example.com/a@b", "https://example.com/a@b"),
        ("database", "users.db", "users.db"),
    ])
    func optionValues(key: String, value: String, shown: String) {
        #expect(ConfigCheck.shown(key: key, value: value) == shown)
    }
}
