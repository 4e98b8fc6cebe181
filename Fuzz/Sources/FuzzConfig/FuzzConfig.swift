import FuzzSupport
import Foundation
import Host

/// Fields: the main config file, then two files of its `include_dir` (`conf.d`, read in name order). The
/// files are written to disk and read through `ConfigParser.loadCollectingErrors`, as the broker starts.
/// Checks: whatever the text, parsing ends; a second read gives the same errors (nothing carried over from
/// one read to the next); every error names a file the parser read, or the command line, with a line
/// inside that file (0: not tied to a line).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var fields = FuzzFields(start, count, limit: 3)
    let main = fields.bytes(), first = fields.bytes(), second = fields.bytes()
    let include = FuzzScratch.directory + "/conf.d"
    try? FileManager.default.createDirectory(atPath: include, withIntermediateDirectories: true)
    let lines = [
        FuzzScratch.write(first, to: "conf.d/a.conf"): lineCount(first),
        FuzzScratch.write(second, to: "conf.d/b.conf"): lineCount(second),
        FuzzScratch.write(main, to: "midge.conf"): lineCount(main),
    ]
    let path = FuzzScratch.directory + "/midge.conf"

    let collected = ConfigParser.loadCollectingErrors(path: path)
    let again = ConfigParser.loadCollectingErrors(path: path)
    precondition(collected.errors == again.errors, "a second read gave other errors")
    for error in collected.errors {
        // Files outside the scratch directory (an include_dir naming /etc, say) are not checked.
        guard error.file.hasPrefix(FuzzScratch.directory) else { continue }
        guard let count = lines[error.file] else { continue }  // a path the config named (password_file, ...)
        precondition(error.line >= 0 && error.line <= count, "\(error) is past the end of its file (\(count) lines)")
    }
    return 0
}

/// Lines as the parser counts them: every newline ends one, and text after the last newline is one more.
private func lineCount(_ bytes: [UInt8]) -> Int {
    bytes.reduce(0) { $0 + ($1 == 10 ? 1 : 0) } + 1
}
