import Primitives
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The signer's high-water mark (SPEC §6 condition 4): the last height this key signed, kept
/// beside the key in `config/signer.state` and made durable before the block at that height is
/// committed to the store or leaves the process in any way. A restored sequencer whose store is
/// gone still knows how far it got, so it never signs a second block at a height it already signed.
///
/// File format: one JSON object per line, `{"last_signed_height": N}` or
/// `{"last_signed_height": N, "block": "<base64>"}` when the producer also kept the block it
/// signed at N; the last line is the mark. That block is the only one this key ever signed at N,
/// so a node that crashed after the mark and before its store commit can commit exactly that
/// block again instead of refusing to go on (or signing a second one). A file of one such line —
/// what earlier versions, `evnode signer reset` and operators write — is the same format.
///
/// Recording appends a line and `fdatasync`s the file (about a third of a temp-file rename and two
/// fsyncs: production records once per block). The directory entry is made durable when the file
/// is created or rewritten, never changed by an append. Past `compactionBytes`, after an
/// unterminated last line, or when the file is missing, the file is rewritten atomically with
/// the new line alone. A crash during an append can leave an unterminated last line: it was
/// never durable, so its block never left the process, and loading skips it. Any other line that
/// does not parse is damage, and loading fails closed.
package struct SignerHighWaterMark: SignerMark {
    /// The mark and, when the producer kept it, the encoded block signed at that height.
    package struct Record: Sendable, Equatable {
        package var height: UInt64
        package var block: [UInt8]?

        package init(height: UInt64, block: [UInt8]? = nil) {
            self.height = height
            self.block = block
        }
    }

    package let path: String
    private let cache = ParsedRecord()

    /// The encoded block is bounded like a block: a bigger file is damage, not a mark.
    static let maxFileBytes = 64 << 20

    package init(path: String) {
        self.path = path
    }

    /// The record this instance last parsed, with the file's bytes it came from. The producer
    /// reads the mark before every block; parsing up to `compactionBytes` of lines each time
    /// cost about 5 ms per block (debug build, 1 KB blocks), reading the file and comparing it
    /// with the bytes parsed last costs microseconds. Any change to the file, by anyone, is a
    /// difference in its bytes and it is parsed again.
    private final class ParsedRecord: Sendable {
        private let entry = Mutex<(bytes: [UInt8], record: Record)?>(nil)

        func record(for bytes: [UInt8]) -> Record? {
            entry.withLock { e in
                guard let e, e.bytes.count == bytes.count else { return nil }
                let same = e.bytes.withUnsafeBytes { a in bytes.withUnsafeBytes { b in
                    a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
                return same ? e.record : nil
            }
        }

        func set(_ bytes: [UInt8], _ record: Record) {
            entry.withLock { $0 = (bytes, record) }
        }
    }

    /// The last signed height, or nil when the key has never signed (the file does not exist).
    /// Any other failure — unreadable, damaged, or a `stat` that fails for another reason than
    /// "no such file" — is an error: which heights were signed is then unknown.
    package func load() throws(ConfigError) -> UInt64? {
        try loadRecord()?.height
    }

    /// The mark with the block kept beside it, nil when the file does not exist.
    package func loadRecord() throws(ConfigError) -> Record? {
        try loadWithBytes()?.record
    }

    /// The record and the file's bytes it was parsed from; nil when the file does not exist.
    private func loadWithBytes() throws(ConfigError) -> (bytes: [UInt8], record: Record)? {
        let present: Bool
        do {
            present = try FileIO.existence(path)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        guard present else { return nil }
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readBytes(path, limit: Self.maxFileBytes)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        if let known = cache.record(for: bytes) { return (bytes, known) }
        let record = try Self.parseLines(bytes, path: path)
        cache.set(bytes, record)
        return (bytes, record)
    }

    /// The last record of the file; see the type's comment for what is skipped and what fails.
    package static func parseLines(_ bytes: [UInt8], path: String) throws(ConfigError) -> Record {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        // What follows the last newline: empty, or a line whose append did not complete.
        let unterminated = lines.removeLast()
        var last: Record?
        for (number, line) in lines.enumerated() where !Self.isBlank(line) {
            guard let text = String(validating: line, as: UTF8.self) else {
                throw .file(path: path, reason: "line \(number + 1) is not valid UTF-8")
            }
            do throws(ConfigError) {
                last = try parse(text, path: path)
            } catch {
                if lines.count > 1, case .file(_, let reason) = error {
                    throw .file(path: path, reason: "line \(number + 1): \(reason)")
                }
                throw error
            }
        }
        if !Self.isBlank(unterminated) {
            let text = String(validating: unterminated, as: UTF8.self)
            if let text, let record = try? parse(text, path: path) {
                last = record                                   // written without a final newline
            } else if last == nil, let text {
                _ = try parse(text, path: path)                 // the only line: damage, say why
            } else if last == nil {
                throw .file(path: path, reason: "not valid UTF-8")
            }
            // Otherwise a torn append after a durable line: never acted on, skipped.
        }
        guard let last else {
            throw .file(path: path, reason: "not a signer state file (expected {\"last_signed_height\": N})")
        }
        return last
    }

    private static func isBlank(_ line: ArraySlice<UInt8>) -> Bool {
        line.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }
    }

    static func parse(_ text: String, path: String) throws(ConfigError) -> Record {
        // Tiny fixed format; parsed by hand so a damaged file is an error, never a silent zero.
        var s = Substring(text.trimmingWhitespace())
        let prefix = "{\"last_signed_height\":"
        guard s.hasPrefix(prefix), s.hasSuffix("}") else {
            throw .file(path: path, reason: "not a signer state file (expected {\"last_signed_height\": N})")
        }
        s = s.dropFirst(prefix.count).dropLast()
        var block: [UInt8]?
        if let comma = s.firstIndex(of: ",") {
            var rest = Substring(String(s[s.index(after: comma)...]).trimmingWhitespace())
            s = s[..<comma]
            let key = "\"block\":"
            guard rest.hasPrefix(key) else {
                throw .file(path: path, reason: "unexpected field after last_signed_height (only \"block\" may follow)")
            }
            rest = Substring(String(rest.dropFirst(key.count)).trimmingWhitespace())
            guard rest.count >= 2, rest.hasPrefix("\""), rest.hasSuffix("\""),
                  let bytes = Data(base64Encoded: String(rest.dropFirst().dropLast())) else {
                throw .file(path: path, reason: "block is not a base64 string")
            }
            block = [UInt8](bytes)
        }
        guard let height = UInt64(String(s).trimmingWhitespace()) else {
            throw .file(path: path, reason: "last_signed_height is not a whole number")
        }
        // Blocks start at height 1: a block kept "at 0" was never signed by a producer.
        if height == 0, block != nil {
            throw .file(path: path, reason: "a block is kept at last_signed_height 0, where nothing is ever signed")
        }
        return Record(height: height, block: block)
    }

    /// Past this size the next record rewrites the file with itself alone; small enough that a
    /// load, which reads the whole file, stays cheap enough to run before every block.
    package static let compactionBytes = 64 << 10

    /// Durably records `height` as signed, with the block signed there when given. Returns only
    /// after the record is on disk; every failure on the way is an error.
    ///
    /// The mark only rises: a height at or below the current mark is refused
    /// (`ConfigError.markNotRaised`, naming both), whatever the caller checked before — the
    /// last line of defence against signing a height twice. A mark that cannot be read refuses
    /// every record. `replace(with:)` is the one way down.
    package func record(_ height: UInt64, block: [UInt8]? = nil) throws(ConfigError) {
        let current = try loadWithBytes()
        if let mark = current?.record.height, mark >= height {
            throw .markNotRaised(path: path, height: height, mark: mark)
        }
        let line = Self.line(height, block: block)
        let appended: Bool
        do {
            appended = try FileIO.appendSynced(path, line, whileBelow: Self.compactionBytes)
            if !appended { try FileIO.writeAtomically(path, line, mode: 0o600) }
        } catch {
            throw .file(path: path, reason: error.description)
        }
        // What the file should now hold, parsed: the next load (before the next block) only
        // compares. Were the file anything else, the comparison fails and it is parsed.
        cache.set(appended ? (current?.bytes ?? []) + line : line, Record(height: height, block: block))
    }

    /// Replaces the whole file with `height` alone (`evnode signer reset`): no earlier line and no
    /// kept block survive. File and directory are fsynced before it returns.
    package func replace(with height: UInt64) throws(ConfigError) {
        do {
            try FileIO.writeAtomically(path, Self.line(height, block: nil), mode: 0o600)
        } catch {
            throw .file(path: path, reason: error.description)
        }
    }

    static func line(_ height: UInt64, block: [UInt8]?) -> [UInt8] {
        var text = "{\"last_signed_height\": \(height)"
        if let block {
            text += ", \"block\": \"\(Data(block).base64EncodedString())\""
        }
        text += "}\n"
        return Array(text.utf8)
    }
}

/// Where a node reads and records what its key signed: `signer.state` beside the key, or the
/// remote signer, which keeps its own mark (issue 29) and in whose place the node records nothing.
package protocol SignerMark: Sendable {
    /// The mark with the block kept beside it, nil when the key never signed. Blocking (a file
    /// read, or a call to the remote signer): from a thread that may block.
    func loadRecord() throws(ConfigError) -> SignerHighWaterMark.Record?
    /// Only the height, which may be cheaper than the record.
    func load() throws(ConfigError) -> UInt64?
    /// Makes `height` durable as signed, with the block signed there, before the block is
    /// committed or leaves the process.
    func record(_ height: UInt64, block: [UInt8]?) throws(ConfigError)
    /// `loadRecord` for async contexts (the catchup check): never blocks a pool thread on the
    /// network.
    func currentRecord() async throws(ConfigError) -> SignerHighWaterMark.Record?
}

extension SignerMark {
    package func record(_ height: UInt64) throws(ConfigError) {
        try record(height, block: nil)
    }
}

extension SignerHighWaterMark {
    /// A local file read, as cheap as before: the catchup check has always read it in place.
    package func currentRecord() async throws(ConfigError) -> Record? {
        try loadRecord()
    }
}
