#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call, with `strerror`'s text.
package struct SystemError: Error, CustomStringConvertible {
    package var errno: Int32
    package var description: String { String(cString: strerror(errno)) }
}

/// Small POSIX file helpers: reading with the file's mode, and atomic replacement.
package enum FileIO {
    package struct Contents {
        package var bytes: [UInt8]
        package var mode: mode_t
        package var uid: uid_t
        package var gid: gid_t
    }

    /// Reads a regular file whole (refusing FIFOs, directories and devices).
    package static func read(path: String) throws(SystemError) -> Contents {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SystemError(errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SystemError(errno: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw SystemError(errno: EINVAL) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size))
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc_read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError(errno: errno)
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return Contents(bytes: bytes, mode: info.st_mode & 0o7777, uid: info.st_uid, gid: info.st_gid)
    }

    /// A regular file's text; nil when it is not valid UTF-8. Configuration and credentials files are read
    /// with this rather than Foundation's readers, which leak 4 KB on every empty file (swift-foundation with
    /// Swift 6.3, found by fuzzing the config parser: an empty include file leaked on each reload).
    package static func text(path: String) throws(SystemError) -> String? {
        String(validating: try read(path: path).bytes, as: UTF8.self)
    }

    /// The permission bits of `path`, or nil when it cannot be stat'ed.
    package static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    /// Whether something exists at `path` (following symbolic links).
    package static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// The canonical path when the file exists (so a symbolic link's target is replaced, not the link);
    /// `path` itself when it does not.
    package static func resolve(_ path: String) throws(SystemError) -> String {
        guard let resolved = realpath(path, nil) else {
            if errno == ENOENT { return path }
            throw SystemError(errno: errno)
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Writes `bytes` to a new temporary file in `path`'s directory with `mode` (and owner, when given and
    /// permitted), flushes it, and renames it over `path`.
    package static func replace(path: String, with bytes: [UInt8], mode: mode_t, owner: (uid_t, gid_t)? = nil) throws(SystemError) {
        let directory: String
        let name: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
            name = String(path[path.index(after: slash)...])
        } else {
            directory = "."
            name = path
        }
        var template = Array("\(directory == "/" ? "" : directory)/.\(name).XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SystemError(errno: errno) }
        let temporary = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var committed = false
        defer {
            if !committed { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            if let (uid, gid) = owner { _ = fchown(fd, uid, gid) }
            guard fchmod(fd, mode) == 0 else { throw SystemError(errno: errno) }
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { Glibc_write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SystemError(errno: errno)
                }
                offset += written
            }
            guard fsync(fd) == 0 else { throw SystemError(errno: errno) }
        }
        guard rename(temporary, path) == 0 else { throw SystemError(errno: errno) }
        committed = true
        let dirfd = open(directory, O_RDONLY | O_CLOEXEC)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            close(dirfd)
        }
    }
}

// `read` and `write` are shadowed by static members in scope above; these name the C functions.
@inline(__always) private func Glibc_read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

@inline(__always) private func Glibc_write(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, buffer, count)
}
