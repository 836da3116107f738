import Foundation

/// The signer's high-water mark (SPEC §6 condition 4): the last height this key signed, kept
/// beside the key in `config/signer.state` and made durable before the block at that height is
/// committed to the store or leaves the process in any way. A restored sequencer whose store is
/// gone still knows how far it got, so it never signs a second block at a height it already signed.
///
/// File format: `{"last_signed_height": N}`, or `{"last_signed_height": N, "block": "<base64>"}`
/// when the producer also kept the block it signed at N. That block is the only one this key
/// ever signed at N, so a node that crashed after the mark and before its store commit can
/// commit exactly that block again instead of refusing to go on (or signing a second one).
public struct SignerHighWaterMark: Sendable {
    /// The mark and, when the producer kept it, the encoded block signed at that height.
    public struct Record: Sendable, Equatable {
        public var height: UInt64
        public var block: [UInt8]?

        public init(height: UInt64, block: [UInt8]? = nil) {
            self.height = height
            self.block = block
        }
    }

    public let path: String

    /// The encoded block is bounded like a block: a bigger file is damage, not a mark.
    static let maxFileBytes = 64 << 20

    public init(path: String) {
        self.path = path
    }

    /// The last signed height, or nil when the key has never signed (the file does not exist).
    /// Any other failure — unreadable, damaged, or a `stat` that fails for another reason than
    /// "no such file" — is an error: which heights were signed is then unknown.
    public func load() throws(ConfigError) -> UInt64? {
        try loadRecord()?.height
    }

    /// The mark with the block kept beside it, nil when the file does not exist.
    public func loadRecord() throws(ConfigError) -> Record? {
        let present: Bool
        do {
            present = try FileIO.existence(path)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        guard present else { return nil }
        let text: String
        do {
            text = try FileIO.readString(path, limit: Self.maxFileBytes)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        return try Self.parse(text, path: path)
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
        return Record(height: height, block: block)
    }

    /// Durably records `height` as signed, with the block signed there when given. Returns only
    /// after the file and its directory are fsynced; every failure on the way is an error.
    public func record(_ height: UInt64, block: [UInt8]? = nil) throws(ConfigError) {
        var text = "{\"last_signed_height\": \(height)"
        if let block {
            text += ", \"block\": \"\(Data(block).base64EncodedString())\""
        }
        text += "}\n"
        do {
            try FileIO.writeAtomically(path, text, mode: 0o600)
        } catch {
            throw .file(path: path, reason: error.description)
        }
    }
}
