import Primitives
import Chain
import Config
import Crypto
import Synchronization

/// Why the remote signer refused to sign. Every case names what was asked and what the signer
/// holds, so that the operator reading either log can tell which block is whose.
package enum SignRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message is none of the three things this signer signs.
    case undecodable(bytes: Int)
    case foreignChain(what: String, chainID: String, expected: String)
    case foreignProposer(height: UInt64, address: [UInt8], expected: [UInt8])
    /// The double-sign fence: a header at or below the mark that is not the very header signed
    /// at the mark. `markHash` is nil when the mark was set by hand (`signer reset`).
    case fenced(height: UInt64, hash: [UInt8], mark: UInt64, markHash: [UInt8]?)
    /// A DA header envelope around a header this key did not sign.
    case notSignedHere(height: UInt64, hash: [UInt8])
    /// A data blob for a height no header was signed for yet.
    case dataAboveMark(height: UInt64, mark: UInt64?)
    /// `SignBlock`: the data is not the one the header commits to.
    case dataMismatch(height: UInt64, headerDataHash: [UInt8], dataHash: [UInt8])
    /// The mark cannot be read or made durable: nothing is signed without it.
    case mark(String)
    /// The key could not sign (a token that failed): nothing was recorded.
    case key(String)

    package var description: String {
        switch self {
        case let .undecodable(n):
            return "refused: the \(n)-byte message is not an encoded evnode.v1 Header, SignedHeader or Data (canonical encoding)"
        case let .foreignChain(what, chainID, expected):
            return "refused: \(what) is for chain \"\(chainID)\" but this signer signs for chain \"\(expected)\""
        case let .foreignProposer(h, address, expected):
            return "refused: the header at height \(h) names proposer \(Hex.encode(address)) but this signer's key is \(Hex.encode(expected))"
        case let .fenced(h, hash, mark, markHash):
            let held = markHash.map { "header \(Hex.encode($0)) at height \(mark)" } ?? "height \(mark) (mark set by hand, header unknown)"
            return "refused: header \(Hex.encode(hash)) at height \(h) would be a second signature at or below this signer's high-water mark; it last signed \(held)"
        case let .notSignedHere(h, hash):
            return "refused: the DA envelope carries header \(Hex.encode(hash)) at height \(h), which this key did not sign"
        case let .dataAboveMark(h, mark):
            return "refused: data for height \(h), but this signer has signed headers only up to \(mark.map(String.init) ?? "none")"
        case let .dataMismatch(h, headerHash, dataHash):
            return "refused: the data sent with the header at height \(h) hashes to \(Hex.encode(dataHash)) but the header commits to \(Hex.encode(headerHash))"
        case let .mark(reason):
            return "refused: the signer's high-water mark is not usable (\(reason)); nothing is signed without it"
        case let .key(reason):
            return "refused: the signer's key did not sign (\(reason)); nothing was recorded"
        }
    }
}

/// What one answered request was, for the log and the counters.
package enum SignOutcome: Sendable, Equatable {
    case header(height: UInt64, hash: [UInt8])
    /// The same header as the last one signed, asked again (a retry after a crash).
    case repeatedHeader(height: UInt64, hash: [UInt8])
    case envelope(height: UInt64)
    case data(height: UInt64)
}

/// The double-sign fence where the key is (issue 29). It decodes every message and signs only
/// what it can place on its chain:
/// - a `Header` above its mark: the mark (with the signed header, and the block's data when
///   given) is made durable first, then the signature is answered;
/// - the same height and byte-identical header as the last one signed: the signature kept with
///   the mark, again (a node that crashed between asking and storing can retry);
/// - a `SignedHeader` (the DA envelope) only around a header this key signed;
/// - a `Data` only for a height up to the mark;
/// - anything else is refused, naming heights and hashes.
///
/// Blocking (file syncs): call it from a thread that may block. Calls are serialised by a lock so
/// that the check of the mark and its record are one step.
///
/// `signer serve` holds its home's lock, so this fence is the mark file's only writer: the file
/// is read once (on first use) and the mark is then kept in memory, decoded; a header costs one
/// append and one `fdatasync` (`SignerMarkJournal`), a data or envelope signature no file access.
package final class SignerFence: Sendable {
    package let chainID: String
    package let signer: Signer
    private let key: any SignerKey
    private let markPath: String
    private let state: Mutex<State>
    /// Called with the height once its mark is durable and before the signature is answered
    /// (`signer serve --crash-after-mark`: the crash test kills the process there).
    private let afterMarkDurable: (@Sendable (UInt64) -> Void)?

    package init(key: any SignerKey, chainID: String, markPath: String,
                compactionBytes: Int = SignerMarkJournal.defaultCompactionBytes,
                afterMarkDurable: (@Sendable (UInt64) -> Void)? = nil) {
        self.key = key
        self.chainID = chainID
        self.signer = Signer(rawPublicKey: key.rawPublicKey)
        self.markPath = markPath
        self.state = Mutex(State(journal: SignerMarkJournal(path: markPath, compactionBytes: compactionBytes)))
        self.afterMarkDurable = afterMarkDurable
    }

    /// The mark file and the mark decoded from it, guarded by the fence's lock.
    private struct State {
        let journal: SignerMarkJournal
        /// `.some` once read: the decoded mark (nil when the key never signed).
        var mark: Mark??
    }

    /// The signer's mark and what it keeps there; nil when it never signed.
    /// The key of `signer.json`, in this process.
    package convenience init(key: Curve25519.Signing.PrivateKey, chainID: String, markPath: String,
                            compactionBytes: Int = SignerMarkJournal.defaultCompactionBytes,
                            afterMarkDurable: (@Sendable (UInt64) -> Void)? = nil) {
        self.init(key: FileSignerKey(key) as any SignerKey, chainID: chainID, markPath: markPath,
                  compactionBytes: compactionBytes, afterMarkDurable: afterMarkDurable)
    }

    package struct Mark: Sendable, Equatable {
        package var height: UInt64
        /// Nil when the mark was set by hand.
        package var signedHeader: SignedHeader?
        /// The block's data, when the header was signed through `signBlock`.
        package var data: BlockData?
    }

    package func mark() throws(SignRefusal) -> Mark? {
        try state.withLock { state throws(SignRefusal) in try loadMark(&state) }
    }

    /// ev-node's `SignerService.Sign`: `message` is an encoded Header, SignedHeader or Data.
    package func sign(_ message: [UInt8]) throws(SignRefusal) -> (signature: [UInt8], outcome: SignOutcome) {
        try state.withLock { state throws(SignRefusal) in
            if let header = Self.header(message) {
                return try signHeader(header, bytes: message, data: nil, state: &state)
            }
            if let signed = Self.signedHeader(message) {
                return try signEnvelope(signed, bytes: message)
            }
            if let data = Self.data(message), data.metadata != nil {
                return try signData(data, bytes: message, state: &state)
            }
            throw .undecodable(bytes: message.count)
        }
    }

    /// evnode's `SignBlock`: a header signed like `sign`'s, with its data kept beside the mark.
    package func signBlock(header bytes: [UInt8], data dataBytes: [UInt8]) throws(SignRefusal) -> (signature: [UInt8], outcome: SignOutcome) {
        try state.withLock { state throws(SignRefusal) in
            guard let header = Self.header(bytes), let data = Self.data(dataBytes), data.metadata != nil else {
                throw .undecodable(bytes: bytes.count + dataBytes.count)
            }
            guard data.dataHash == header.dataHash else {
                throw .dataMismatch(height: header.height, headerDataHash: header.dataHash, dataHash: data.dataHash)
            }
            return try signHeader(header, bytes: bytes, data: data, state: &state)
        }
    }

    /// Decodes `bytes` and keeps the result only when its encoding is `bytes` again: what the
    /// signer places is then exactly what it signs, and "byte-identical" means one header.
    private static func header(_ bytes: [UInt8]) -> Header? {
        guard let value = try? Header(decoding: bytes), value.encoded() == bytes else { return nil }
        return value
    }

    private static func signedHeader(_ bytes: [UInt8]) -> SignedHeader? {
        guard let value = try? SignedHeader(decoding: bytes), value.encoded() == bytes else { return nil }
        return value
    }

    private static func data(_ bytes: [UInt8]) -> BlockData? {
        guard let value = try? BlockData(decoding: bytes, limit: WireLimits.maxBlockBytes), value.encoded() == bytes else { return nil }
        return value
    }

    private func loadMark(_ state: inout State) throws(SignRefusal) -> Mark? {
        if let known = state.mark { return known }
        let mark = try decodedMark(state.journal)
        state.mark = .some(mark)
        return mark
    }

    private func decodedMark(_ journal: SignerMarkJournal) throws(SignRefusal) -> Mark? {
        let record: SignerHighWaterMark.Record?
        do throws(ConfigError) {
            record = try journal.mark()
        } catch {
            throw .mark(error.description)
        }
        guard let record else { return nil }
        guard let bytes = record.block else { return Mark(height: record.height) }
        let kept: (signedHeader: SignedHeader, data: BlockData)
        do throws(WireError) {
            kept = try SignedBlockBytes.decode(bytes)
        } catch {
            throw .mark("\(markPath): the header kept with the mark does not decode: \(error)")
        }
        guard kept.signedHeader.height == record.height else {
            throw .mark("\(markPath): the header kept at height \(record.height) is for height \(kept.signedHeader.height)")
        }
        // A header signed through `Sign` alone keeps an empty Data (no metadata).
        return Mark(height: record.height, signedHeader: kept.signedHeader,
                    data: kept.data.metadata == nil ? nil : kept.data)
    }

    private func signHeader(_ header: Header, bytes: [UInt8], data: BlockData?, state: inout State) throws(SignRefusal) -> (signature: [UInt8], outcome: SignOutcome) {
        guard header.chainID == chainID else {
            throw .foreignChain(what: "the header at height \(header.height)", chainID: header.chainID, expected: chainID)
        }
        guard header.proposerAddress == signer.address else {
            throw .foreignProposer(height: header.height, address: header.proposerAddress, expected: signer.address)
        }
        let hash = header.hash
        let mark = try loadMark(&state)
        if let mark, header.height <= mark.height {
            if header.height == mark.height, let kept = mark.signedHeader, kept.header.encoded() == bytes {
                return (kept.signature, .repeatedHeader(height: header.height, hash: hash))
            }
            throw .fenced(height: header.height, hash: hash, mark: mark.height, markHash: mark.signedHeader?.header.hash)
        }
        guard header.height > 0 else {
            throw .fenced(height: 0, hash: hash, mark: 0, markHash: nil)
        }
        // The signature is computed before the mark is written and answered only after: it
        // exists nowhere but in this function until the mark that covers it is durable.
        let signature: [UInt8]
        do throws(SignerKeyError) {
            signature = try key.signature(for: bytes)
        } catch {
            throw .key(error.description)
        }
        let signed = SignedHeader(header: header, signature: signature, signer: signer)
        let kept = SignedBlockBytes.encode(signed, data ?? BlockData(metadata: nil, txs: []))
        do throws(ConfigError) {
            try state.journal.record(header.height, block: kept)
        } catch {
            throw .mark(error.description)
        }
        state.mark = .some(Mark(height: header.height, signedHeader: signed, data: data))
        afterMarkDurable?(header.height)
        return (signature, .header(height: header.height, hash: hash))
    }

    private func signEnvelope(_ signed: SignedHeader, bytes: [UInt8]) throws(SignRefusal) -> (signature: [UInt8], outcome: SignOutcome) {
        let header = signed.header
        guard header.chainID == chainID else {
            throw .foreignChain(what: "the DA envelope's header at height \(header.height)", chainID: header.chainID, expected: chainID)
        }
        // Only this key can have made a valid signature with this key: the header was signed here.
        guard signed.signer == signer, header.proposerAddress == signer.address,
              SignatureVerifier.isValid(signature: signed.signature, message: header.encoded(), signer: signer) else {
            throw .notSignedHere(height: header.height, hash: header.hash)
        }
        return (try signature(bytes), .envelope(height: header.height))
    }

    private func signData(_ data: BlockData, bytes: [UInt8], state: inout State) throws(SignRefusal) -> (signature: [UInt8], outcome: SignOutcome) {
        guard let metadata = data.metadata else { throw .undecodable(bytes: bytes.count) }
        guard metadata.chainID == chainID else {
            throw .foreignChain(what: "the data at height \(metadata.height)", chainID: metadata.chainID, expected: chainID)
        }
        let mark = try loadMark(&state)
        guard let mark, metadata.height >= 1, metadata.height <= mark.height else {
            throw .dataAboveMark(height: metadata.height, mark: mark?.height)
        }
        return (try signature(bytes), .data(height: metadata.height))
    }

    private func signature(_ bytes: [UInt8]) throws(SignRefusal) -> [UInt8] {
        do throws(SignerKeyError) {
            return try key.signature(for: bytes)
        } catch {
            throw .key(error.description)
        }
    }
}
