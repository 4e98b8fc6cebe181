import Foundation
import Logging
import Testing
@testable import Host

@Suite("Log line formats")
struct LogFormatTests {
    /// What one `log` call writes through a `MidgeLogHandler` with this format.
    private func written(_ format: LogFormat, timestamps: Bool = false, label: String = "midge.test",
                         level: Logger.Level, _ message: Logger.Message,
                         metadata: Logger.Metadata? = nil) throws -> String {
        let pipe = TestPipe()
        let sink = MidgeLogHandler.Sink(handles: [pipe.fileHandleForWriting], timestamps: timestamps, format: format)
        var handler = MidgeLogHandler(label: label, sink: sink, enabled: Set(Logger.Level.allCases))
        handler[metadataKey: "listener"] = "1883"
        handler.log(event: LogEvent(level: level, message: message, metadata: metadata, source: "test", file: #file,
                                    function: #function, line: #line))
        try pipe.fileHandleForWriting.close()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test("text lines are Mosquitto's: no label, no metadata")
    func text() throws {
        #expect(try written(.text, level: .warning, "careful") == "Warning: careful\n")
        #expect(try written(.text, level: .error, "broken", metadata: ["client": "c1"]) == "Error: broken\n")
        #expect(try written(.text, level: .notice, "hello") == "hello\n")
        let stamped = try written(.text, timestamps: true, level: .info, "hi")
        #expect(stamped.range(of: #"^\d+: hi\n$"#, options: .regularExpression) != nil)
    }

    @Test("json lines: one object with time, level, logger, message and metadata, keys in a fixed order")
    func json() throws {
        let line = try written(.json, level: .warning, "a \"quoted\"\tline\nand\u{1} more",
                               metadata: ["client": "c1", "topics": ["a", "b"]])
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "warning")
        #expect(object["logger"] as? String == "midge.test")
        #expect(object["message"] as? String == "a \"quoted\"\tline\nand\u{1} more")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["client"] as? String == "c1")
        #expect(metadata["listener"] as? String == "1883")
        #expect(metadata["topics"] as? [String] == ["a", "b"])
        let time = try #require(object["time"] as? String)
        #expect(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil)
        #expect(line.hasPrefix("{\"time\":\"\(time)\",\"level\":\"warning\",\"logger\":\"midge.test\",\"message\":"))
    }

    @Test("json lines leave out empty metadata")
    func jsonWithoutMetadata() {
        let line = MidgeLogHandler.jsonLine(time: Date(timeIntervalSince1970: 1_700_000_000.042), level: .info,
                                            label: "midge", message: "hi", metadata: [:])
        #expect(line == "{\"time\":\"2023-11-14T22:13:20.042Z\",\"level\":\"info\",\"logger\":\"midge\",\"message\":\"hi\"}\n")
    }

    @Test("lines are cut at Mosquitto's 1,000 bytes, newline included (log__vprintf's char log_line[1000])")
    func longLinesAreCut() throws {
        let topic = String(repeating: "t", count: 65_535)
        let text = try written(.text, level: .notice, "Denied PUBLISH from c to \(topic).")
        #expect(text.utf8.count == 1000)
        #expect(text == "Denied PUBLISH from c to " + String(repeating: "t", count: 999 - 25) + "\n")
        let stamped = try written(.text, timestamps: true, level: .warning, "\(topic)")
        #expect(stamped.utf8.count == 1000)
        #expect(stamped.range(of: #"^\d+: Warning: t+\n$"#, options: .regularExpression) != nil)
        // A character is never split: the line stays valid UTF-8, one byte short here.
        let accents = try written(.text, level: .notice, "xx\(String(repeating: "é", count: 1000))")
        #expect(accents.utf8.count == 999)
        #expect(accents == "xx" + String(repeating: "é", count: 498) + "\n")
        #expect(try written(.text, level: .notice, "\(String(repeating: "a", count: 999))").utf8.count == 1000)

        for message in [topic, String(repeating: "\"\u{1}é", count: 30_000)] {
            let json = try written(.json, level: .notice, "\(message)", metadata: ["client": "c1"])
            #expect(json.utf8.count <= 1000)
            #expect(json.utf8.count >= 994)
            #expect(json.hasSuffix("}\n"))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            let cut = try #require(object["message"] as? String)
            #expect(!cut.isEmpty && message.hasPrefix(cut))
            #expect((object["metadata"] as? [String: Any])?["client"] as? String == "c1")
        }
    }

    @Test("RFC 3339 times: UTC, zero-padded, milliseconds")
    func times() {
        #expect(MidgeLogHandler.rfc3339(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(MidgeLogHandler.rfc3339(Date(timeIntervalSince1970: 946_684_799.999)) == "1999-12-31T23:59:59.999Z")
        #expect(MidgeLogHandler.rfc3339(Date(timeIntervalSince1970: 1_709_210_096.5)) == "2024-02-29T12:34:56.500Z")
    }
}
