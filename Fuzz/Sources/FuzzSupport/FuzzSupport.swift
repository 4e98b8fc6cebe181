import Foundation

/// A fuzz input cut into fields at `0x00` bytes: a target takes as many as it needs, missing ones are empty.
public struct FuzzFields {
    private var parts: [ArraySlice<UInt8>]
    private var next = 0

    public init(_ start: UnsafePointer<UInt8>, _ count: Int, limit: Int) {
        let bytes = Array(UnsafeBufferPointer(start: start, count: count))
        parts = bytes.split(separator: 0, maxSplits: limit - 1, omittingEmptySubsequences: false)
    }

    /// The next field's bytes.
    public mutating func bytes() -> [UInt8] {
        defer { next += 1 }
        return next < parts.count ? Array(parts[next]) : []
    }

    /// The next field as text (invalid UTF-8 repaired, as `String(decoding:)` does).
    public mutating func text() -> String { String(decoding: bytes(), as: UTF8.self) }
}

/// Sizes to cut a stream into, from one seed byte: the same input is always cut the same way.
public struct FuzzCuts {
    private var state: UInt32
    private let largest: Int

    public init(seed: UInt8, largest: Int) {
        state = UInt32(seed) &+ 1
        self.largest = largest
    }

    /// The next piece's size, from 1 to `largest`.
    public mutating func next() -> Int {
        state = state &* 1_103_515_245 &+ 12_345
        return 1 + Int((state >> 16) % UInt32(largest))
    }
}

/// A directory of this process's own, made once and emptied at exit; in memory (/dev/shm) where there is one,
/// as targets write files for every input.
public enum FuzzScratch {
    public static let directory: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
        let path = base + "midge-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: FuzzScratch.directory) }
        return path
    }()

    /// Writes `bytes` to `name` in the directory (replacing it) and returns the path.
    @discardableResult
    public static func write(_ bytes: [UInt8], to name: String) -> String {
        let path = directory + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }
}
