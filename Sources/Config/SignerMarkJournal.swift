#if canImport(Glibc)
import Primitives
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `SignerHighWaterMark`'s file as kept by its only writer, `evnode signer serve` (its home lock
/// keeps every other process out while it serves). The file is read once, on first use; from
/// then on the mark lives here and recording a height costs one append and one `fdatasync` on a
/// descriptor kept open — no reads, no `open`/`close`, no directory sync. Same format, same
/// durability as `SignerHighWaterMark.record`: `record` returns only once the line is on disk.
///
/// The file is rewritten atomically (temp file, fsync, rename, directory fsync) with the new line
/// alone when it is missing, when it does not end with a newline, after any failed append
/// (whatever reached the disk is then unknown, and a retried `fdatasync` can falsely succeed), and
/// past `compactionBytes`. Each line carries the block signed at its height, so the bound is by
/// size: with kilobyte blocks a rewrite every few thousand heights.
///
/// Not thread-safe: its owner serialises calls (`SignerFence` holds its lock around them).
package final class SignerMarkJournal {
    package let path: String
    package let compactionBytes: Int
    private var loaded = false
    private var current: SignerHighWaterMark.Record?
    /// Open for appending after the last durable line; -1 when the next record rewrites the file.
    private var fd: Int32 = -1
    private var size = 0

    /// A default that keeps the start-up read (the whole file, once) short while making the
    /// rename and its two fsyncs rare: about 2,000 kilobyte-block heights between rewrites.
    package static let defaultCompactionBytes = 4 << 20

    package init(path: String, compactionBytes: Int = SignerMarkJournal.defaultCompactionBytes) {
        self.path = path
        self.compactionBytes = min(compactionBytes, SignerHighWaterMark.maxFileBytes / 2)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// The mark, read from the file on the first call only; nil when the key never signed.
    /// A file that cannot be read or is damaged is an error, every time until it loads.
    package func mark() throws(ConfigError) -> SignerHighWaterMark.Record? {
        if !loaded { try load() }
        return current
    }

    private func load() throws(ConfigError) {
        let record = try SignerHighWaterMark(path: path).loadRecord()
        closeFile()
        if record != nil { openForAppending() }
        current = record
        loaded = true
    }

    /// Makes `height` (with the block signed there) durable as the mark; only above the mark
    /// (`ConfigError.markNotRaised` otherwise, naming both).
    package func record(_ height: UInt64, block: [UInt8]?) throws(ConfigError) {
        if let mark = try mark()?.height, mark >= height {
            throw .markNotRaised(path: path, height: height, mark: mark)
        }
        let line = SignerHighWaterMark.line(height, block: block)
        if fd >= 0, size + line.count < compactionBytes {
            if let reason = FileIO.writeAll(fd, line) {
                closeFile()
                throw .file(path: path, reason: "append: \(reason)")
            }
            // fdatasync makes the new size durable with the bytes; the directory entry is unchanged.
            if fdatasync(fd) != 0 {
                let reason = FileIO.errnoText()
                closeFile()
                throw .file(path: path, reason: "fdatasync: \(reason)")
            }
            size += line.count
        } else {
            closeFile()
            do {
                try FileIO.writeAtomically(path, line, mode: 0o600)
            } catch {
                throw .file(path: path, reason: error.description)
            }
            openForAppending()
        }
        current = SignerHighWaterMark.Record(height: height, block: block)
    }

    /// Opens the file for the next appends when it ends with a newline; otherwise (or on any
    /// failure) leaves it closed, so that the next record rewrites it.
    private func openForAppending() {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { return }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0, lastByteIsNewline() else {
            close(fd)
            return
        }
        self.fd = fd
        size = Int(st.st_size)
    }

    private func lastByteIsNewline() -> Bool {
        let reader = open(path, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { return false }
        defer { close(reader) }
        var st = stat()
        var byte: UInt8 = 0
        guard fstat(reader, &st) == 0, st.st_size > 0, pread(reader, &byte, 1, off_t(st.st_size - 1)) == 1 else { return false }
        return byte == UInt8(ascii: "\n")
    }

    private func closeFile() {
        if fd >= 0 { close(fd) }
        fd = -1
        size = 0
    }
}
