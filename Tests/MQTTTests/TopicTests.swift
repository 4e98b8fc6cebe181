import MQTT
import Testing

@Suite("Topic names and filters")
struct TopicTests {
    @Test("valid and invalid topic names")
    func names() {
        #expect(Topic.isValidName("a/b"))
        #expect(Topic.isValidName("/"))
        #expect(!Topic.isValidName(""))
        #expect(!Topic.isValidName("a/+"))
        #expect(!Topic.isValidName("a/#"))
    }

    @Test("wildcards only as whole levels")
    func filters() {
        for good in ["#", "+", "a/#", "a/+/b", "+/+", "/#", "$SYS/#", "a//b"] {
            #expect(Topic.isValidFilter(good), "\(good)")
        }
        for bad in ["", "a#", "a/#/b", "a+", "a/b+", "#/a", "a/+b"] {
            #expect(!Topic.isValidFilter(bad), "\(bad)")
        }
    }

    @Test("shared subscription syntax")
    func shared() {
        let parsed = Topic.parseShared("$share/g/a/+")
        #expect(parsed??.group == "g")
        #expect(parsed??.filter == "a/+")
        #expect(Topic.parseShared("a/b")! == nil)
        #expect(Topic.parseShared("$share/g") == nil)
        #expect(Topic.parseShared("$share//a") == nil)
        #expect(Topic.parseShared("$share/g+/a") == nil)
    }

    @Test("matching, with $ topics hidden from leading wildcards")
    func matching() {
        #expect(Topic.matches(filter: "a/#", topic: "a"))
        #expect(Topic.matches(filter: "a/#", topic: "a/b/c"))
        #expect(Topic.matches(filter: "a/+/c", topic: "a/b/c"))
        #expect(!Topic.matches(filter: "a/+", topic: "a/b/c"))
        #expect(!Topic.matches(filter: "#", topic: "$SYS/x"))
        #expect(!Topic.matches(filter: "+/x", topic: "$SYS/x"))
        #expect(Topic.matches(filter: "$SYS/#", topic: "$SYS/x"))
        #expect(Topic.matches(filter: "+/+", topic: "/x"))
    }
}
