#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a regular file whole; on failure, returns `strerror`'s text.
func readWholeFile(_ path: String) -> Result<[UInt8], ReadFailure> {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { return .failure(ReadFailure(errno)) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { return .failure(ReadFailure(errno)) }
    guard info.st_mode & S_IFMT == S_IFREG else { return .failure(ReadFailure(message: "not a regular file")) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(Int(info.st_size))
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { buffer in read(fd, buffer.baseAddress, buffer.count) }
        if count < 0 {
            if errno == EINTR { continue }
            return .failure(ReadFailure(errno))
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[..<count])
    }
    return .success(bytes)
}

struct ReadFailure: Error {
    var message: String
    init(message: String) { self.message = message }
    init(_ code: Int32) { self.message = String(cString: strerror(code)) }
}

/// A value behind a readers-writer lock: `authorize` (many event loops at once) reads, `prepare`/`forget`/
/// `reload` write. Writers are preferred on glibc so a steady stream of readers cannot starve a reload.
// @unchecked: the pthread rwlock `lock` protects `value` (shared in `withReadLock`, alone in `withWriteLock`).
final class ReadWriteLocked<Value: Sendable>: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        #if canImport(Glibc)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
        #else
        pthread_rwlock_init(lock, nil)
        #endif
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deinitialize(count: 1)
        lock.deallocate()
    }

    /// Runs `body` with the value, sharing the lock with other readers.
    @inline(__always)
    func withReadLock<T>(_ body: (Value) throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(value)
    }

    /// Runs `body` with the value to change, alone.
    @inline(__always)
    func withWriteLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(&value)
    }
}
