import Foundation
import Testing
@testable import Host

/// The directive table (`ConfigDirectives`): each directive declared once, and each one doing what its
/// status says.
@Suite("config directive table")
struct ConfigDirectivesTests {
    /// Every name a directive line could use for `directive`: its names, or for a prefix one name it covers.
    private func lineNames(_ directive: ConfigDirective) -> [String] {
        directive.isPrefix ? directive.names.map { $0 + "example" } : directive.names
    }

    /// Parses `text` in an empty directory of its own.
    private func parse(_ text: String) throws -> ConfigParseResult {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("midge-directive-tests-\(UUID().uuidString)", isDirectory: true).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return ConfigParser.parseCollectingErrors(text: text, file: "test.conf", baseDirectory: directory)
    }

    @Test("no name is declared twice, and each name finds its directive")
    func namesAreUnique() {
        let names = ConfigDirectives.all.flatMap(\.names)
        let repeated = Dictionary(grouping: names, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        #expect(repeated.isEmpty, "declared more than once: \(repeated)")
        let prefixes = ConfigDirectives.all.filter(\.isPrefix).flatMap(\.names)
        let shadowed = ConfigDirectives.all.filter { !$0.isPrefix }.flatMap(\.names)
            .filter { name in prefixes.contains { name.hasPrefix($0) } }
        #expect(shadowed.isEmpty, "names that a prefix also covers: \(shadowed)")
        for directive in ConfigDirectives.all {
            for name in lineNames(directive) {
                #expect(ConfigDirectives.named(name)?.names == directive.names, "\(name)")
            }
        }
        #expect(ConfigDirectives.named("no_such_directive") == nil)
    }

    @Test("a directive accepted and ignored warns with its reason")
    func ignoredDirectivesWarn() throws {
        for directive in ConfigDirectives.all {
            guard case .ignored(let why) = directive.status else { continue }
            for name in lineNames(directive) {
                let result = try parse("\(name) \(directive.value.example)\n")
                #expect(result.errors.isEmpty, "\(name): \(result.errors)")
                #expect(result.config.warnings.map(\.message) == ["accepted but not implemented: '\(name)' (\(why))"])
            }
        }
    }

    @Test("a refused directive is an error with its message")
    func refusedDirectivesFail() throws {
        for directive in ConfigDirectives.all {
            for name in lineNames(directive) {
                switch directive.status {
                case .refused(let message):
                    let result = try parse("\(name) \(directive.value.example)\n")
                    #expect(result.errors.map(\.description) == ["test.conf:1: \(message(name, directive.value.example))"])
                case .refusedIfTrue(let message):
                    #expect(try parse("\(name) false\n").errors.isEmpty, "\(name) false")
                    #expect(try parse("\(name) true\n").errors.map(\.description) == ["test.conf:1: \(message(name))"])
                default:
                    continue
                }
            }
        }
    }

    @Test("an honoured directive takes its example value without an error or a not-implemented warning")
    func honouredDirectivesParse() throws {
        for directive in ConfigDirectives.all {
            guard case .honoured = directive.status else { continue }
            let context = directive.scope == .plugin ? "listener 1883\nplugin passwd\n" : "listener 1883\n"
            for name in lineNames(directive) {
                let result = try parse(context + "\(name) \(directive.value.example)\n")
                #expect(result.errors.isEmpty, "\(name) \(directive.value.example): \(result.errors)")
                #expect(!result.config.warnings.contains { $0.message.hasPrefix("accepted but not implemented") }, "\(name)")
            }
        }
    }

    @Test("the Directive decisions table names every directive")
    func theDocumentationTableNamesEveryDirective() throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/Host/Config/ConfigDirectives.swift").standardizedFileURL.path
        let table = try String(contentsOfFile: source, encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("/// | ") }.joined(separator: "\n")
        for directive in ConfigDirectives.all {
            for name in directive.names {
                let written = directive.isPrefix ? ["`\(name)*`"] : ["`\(name)`", "`\(name) "]
                #expect(written.contains { table.contains($0) }, "\(name) is not in the Directive decisions table")
            }
        }
    }
}
