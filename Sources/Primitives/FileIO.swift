#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX file helpers with the guarantees the node needs: whole-file reads with a size
/// bound, and writes that are atomic (temp file, fsync, rename, fsync of the directory), so a
/// crash leaves either the old file or the new one, never half of either.
package enum FileIO {
    package struct Failure: Error, CustomStringConvertible, Equatable, Sendable {
        package let path: String
        package let reason: String
        package var description: String { reason }
    }

    package static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// Whether a file exists, telling "no such file" apart from a `stat` that failed (EACCES,
    /// EIO, …): callers that must fail closed treat only the first as absence.
    package static func existence(_ path: String) throws(Failure) -> Bool {
        var st = stat()
        if stat(path, &st) == 0 { return true }
        let code = errno
        if code == ENOENT { return false }
        throw Failure(path: path, reason: "stat: \(errnoText(code))")
    }

    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Permission bits of a file, or nil when it does not exist.
    package static func mode(_ path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode & 0o7777)
    }

    package static func readBytes(_ path: String, limit: Int = 16 << 20) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw Failure(path: path, reason: errnoText()) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, reason: errnoText())
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { throw Failure(path: path, reason: "larger than \(limit) bytes") }
        }
        return out
    }

    package static func readString(_ path: String, limit: Int = 16 << 20) throws(Failure) -> String {
        let bytes = try readBytes(path, limit: limit)
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw Failure(path: path, reason: "not valid UTF-8")
        }
        return s
    }

    /// Creates the directory and its parents (like `mkdir -p`).
    package static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(Failure) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part + "/"
            if mkdir(prefix, mode) != 0 && errno != EEXIST {
                throw Failure(path: prefix, reason: errnoText())
            }
        }
        if !isDirectory(path) { throw Failure(path: path, reason: "exists and is not a directory") }
    }

    /// Writes `bytes` to `path` atomically with the given permission bits.
    /// With `exclusive`, refuses to replace an existing file (used by `init`).
    package static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644,
                                       exclusive: Bool = false) throws(Failure) {
        if exclusive && exists(path) { throw Failure(path: path, reason: "already exists") }
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        if fd < 0 { throw Failure(path: tmp, reason: errnoText()) }
        if let reason = writeAll(fd, bytes) {
            close(fd)
            unlink(tmp)
            throw Failure(path: tmp, reason: reason)
        }
        // open(2) applies the umask; the key files must end up exactly 0600.
        if fchmod(fd, mode) != 0 {
            let reason = errnoText()
            close(fd)
            unlink(tmp)
            throw Failure(path: tmp, reason: "fchmod: \(reason)")
        }
        if fsync(fd) != 0 {
            let reason = errnoText()
            close(fd)
            unlink(tmp)
            throw Failure(path: tmp, reason: "fsync: \(reason)")
        }
        // close(2) can report a deferred write error (NFS, quota): the data may not be there.
        if close(fd) != 0 {
            let reason = errnoText()
            unlink(tmp)
            throw Failure(path: tmp, reason: "close: \(reason)")
        }
        if exclusive {
            // link(2) fails if the target appeared meanwhile; no window for a silent overwrite.
            if link(tmp, path) != 0 {
                let reason = errnoText()
                unlink(tmp)
                throw Failure(path: path, reason: reason)
            }
            unlink(tmp)
        } else if rename(tmp, path) != 0 {
            let reason = errnoText()
            unlink(tmp)
            throw Failure(path: path, reason: reason)
        }
        // Until the directory entry is on disk the rename may be lost in a crash: the caller
        // must not act as if the file were written.
        try syncDirectory(of: path)
    }

    /// Appends `bytes` to the existing file at `path` and `fdatasync`s it, when the file is
    /// there, not empty, ends with a newline and stays below `limit` bytes; returns false
    /// (writing nothing) otherwise, for the caller to rewrite it whole. An error after the write
    /// began can leave part of `bytes` at the end, unterminated.
    package static func appendSynced(_ path: String, _ bytes: [UInt8], whileBelow limit: Int) throws(Failure) -> Bool {
        let fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return false }
            throw Failure(path: path, reason: errnoText())
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = errnoText()
            close(fd)
            throw Failure(path: path, reason: "fstat: \(reason)")
        }
        let size = Int(st.st_size)
        var lastByte: UInt8 = 0
        guard size > 0, size + bytes.count < limit, pread(fd, &lastByte, 1, off_t(size - 1)) == 1,
              lastByte == UInt8(ascii: "\n") else {
            close(fd)
            return false
        }
        if let reason = writeAll(fd, bytes) {
            close(fd)
            throw Failure(path: path, reason: "append: \(reason)")
        }
        // fdatasync also makes the new size durable; the directory entry does not change.
        if fdatasync(fd) != 0 {
            let reason = errnoText()
            close(fd)
            throw Failure(path: path, reason: "fdatasync: \(reason)")
        }
        if close(fd) != 0 { throw Failure(path: path, reason: "close: \(errnoText())") }
        return true
    }

    package static func writeAtomically(_ path: String, _ text: String, mode: mode_t = 0o644,
                                       exclusive: Bool = false) throws(Failure) {
        try writeAtomically(path, Array(text.utf8), mode: mode, exclusive: exclusive)
    }

    /// Writes all of `bytes` to `fd`, retrying short writes and EINTR; the error text, or nil.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> String? {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                return errnoText()
            }
            written += n
        }
        return nil
    }

    package static func syncDirectory(of path: String) throws(Failure) {
        let dir: String
        if let slash = path.lastIndex(of: "/") {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            dir = "."
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw Failure(path: dir, reason: "opening the directory to fsync it: \(errnoText())") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw Failure(path: dir, reason: "fsync of the directory: \(errnoText())") }
    }

    package static func errnoText(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }
}
