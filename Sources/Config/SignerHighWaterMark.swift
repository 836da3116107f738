/// The signer's high-water mark (SPEC §6 condition 4): the last height this key signed, kept
/// beside the key in `config/signer.state` and made durable before a signature leaves the process.
/// A restored sequencer whose store is gone still knows how far it got, so it never signs a second
/// block at a height it already signed.
///
/// File format: `{"last_signed_height": N}`.
public struct SignerHighWaterMark: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The last signed height, or nil when the key has never signed (or the mark was not kept).
    public func load() throws(ConfigError) -> UInt64? {
        guard FileIO.exists(path) else { return nil }
        let text: String
        do {
            text = try FileIO.readString(path, limit: 4096)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        return try Self.parse(text, path: path)
    }

    static func parse(_ text: String, path: String) throws(ConfigError) -> UInt64 {
        // Tiny fixed format; parsed by hand so a damaged file is an error, never a silent zero.
        var s = Substring(text.trimmingWhitespace())
        let prefix = "{\"last_signed_height\":"
        guard s.hasPrefix(prefix), s.hasSuffix("}") else {
            throw .file(path: path, reason: "not a signer state file (expected {\"last_signed_height\": N})")
        }
        s = s.dropFirst(prefix.count).dropLast()
        guard let height = UInt64(String(s).trimmingWhitespace()) else {
            throw .file(path: path, reason: "last_signed_height is not a whole number")
        }
        return height
    }

    /// Durably records `height` as signed. Called before the signature is released; returns only
    /// after the file and its directory are fsynced.
    public func record(_ height: UInt64) throws(ConfigError) {
        do {
            try FileIO.writeAtomically(path, "{\"last_signed_height\": \(height)}\n", mode: 0o600)
        } catch {
            throw .file(path: path, reason: error.description)
        }
    }
}
