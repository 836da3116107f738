import Config
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The acceptance rules of SPEC §3 for one chain: who may sign and what the next block must be.
///
/// A value type without mutable state: `verifySignature` can run on many threads at once ahead
/// of the in-order `validate(…, signatureVerified: true)`.
public struct BlockValidator: Sendable {
    public let chainID: String
    /// The genesis proposer: the only key allowed to sign blocks.
    public let proposerAddress: [UInt8]
    /// How far a block's time may be ahead of the local clock (SPEC: 1 minute).
    public let maxFutureDrift: UInt64

    public static let defaultMaxFutureDrift: UInt64 = 60_000_000_000

    public init(chainID: String, proposerAddress: [UInt8], maxFutureDrift: UInt64 = defaultMaxFutureDrift) {
        self.chainID = chainID
        self.proposerAddress = proposerAddress
        self.maxFutureDrift = maxFutureDrift
    }

    public init(genesis: Genesis, maxFutureDrift: UInt64 = defaultMaxFutureDrift) {
        self.init(chainID: genesis.chainID, proposerAddress: genesis.proposerAddress, maxFutureDrift: maxFutureDrift)
    }

    /// Wall-clock time in unix nanoseconds, for the `now` parameter.
    public static func currentTime() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The signer rules: a well-formed key whose address is the signer address and the genesis
    /// proposer. Returns the raw public key.
    private func checkSigner(_ signer: Signer, height: UInt64) throws(ValidationError) -> [UInt8] {
        guard let raw = signer.rawPublicKey else {
            throw .malformedSignerKey(height: height, pubKey: signer.pubKey)
        }
        let derived = Hashing.sha256(raw)
        guard signer.address == derived else {
            throw .signerAddressMismatch(height: height, address: signer.address, expected: derived)
        }
        guard derived == proposerAddress else {
            throw .unexpectedProposer(height: height, address: derived, expected: proposerAddress)
        }
        return raw
    }

    /// Signer rules plus the header signature over `encodedHeader` (= `header.encoded()`).
    private func verify(_ signedHeader: SignedHeader, encodedHeader: [UInt8]) throws(ValidationError) {
        let header = signedHeader.header
        let raw = try checkSigner(signedHeader.signer, height: header.height)
        guard header.proposerAddress == signedHeader.signer.address else {
            throw .proposerAddressMismatch(height: header.height, proposerAddress: header.proposerAddress,
                                           signerAddress: signedHeader.signer.address)
        }
        guard SignatureVerifier.isValid(signature: signedHeader.signature, message: encodedHeader,
                                        rawPublicKey: raw) else {
            throw .invalidSignature(height: header.height)
        }
    }

    /// Checks that the header is signed by the genesis proposer (signer rules + signature),
    /// independent of chain state. Thread-safe; meant to run in parallel ahead of `validate`.
    public func verifySignature(_ signedHeader: SignedHeader) throws(ValidationError) {
        try verify(signedHeader, encodedHeader: signedHeader.header.encoded())
    }

    /// The signer rules alone for a DA data blob (no signature check): it names the genesis
    /// proposer. Its txs are authenticated by the signed header's `data_hash` instead.
    public func verifySigner(of signedData: SignedData) throws(ValidationError) {
        _ = try checkSigner(signedData.signer, height: signedData.data.metadata?.height ?? 0)
    }

    /// Signer rules plus the data blob's own signature over the encoded `Data` (metadata
    /// included). The DA follower needs it only for data no verified header claims.
    public func verifySignature(of signedData: SignedData) throws(ValidationError) {
        let height = signedData.data.metadata?.height ?? 0
        let raw = try checkSigner(signedData.signer, height: height)
        guard SignatureVerifier.isValid(signature: signedData.signature, message: signedData.data.encoded(),
                                        rawPublicKey: raw) else {
            throw .invalidSignature(height: height)
        }
    }

    /// Validates block `signedHeader`/`data` as the successor of `state` and returns the state
    /// after it — with one exception: `appHash` still holds the root *before* the block (the
    /// header's `app_hash`). Execution produces the new root; set it before storing the state
    /// (`BlockApplier` does all of this).
    ///
    /// Rules are checked in this order, the first failure is thrown: signer and signature
    /// (skipped when `signatureVerified`, i.e. `verifySignature` already passed), chain id,
    /// height, time, last header hash, app hash, data hash, metadata.
    ///
    /// Data without metadata is accepted (its header commits to the txs); the chained data hash
    /// is then computed as if the metadata the producer always includes were present.
    public func validate(_ signedHeader: SignedHeader, data: BlockData, state: State, now: UInt64,
                         signatureVerified: Bool = false) throws(ValidationError) -> State {
        let header = signedHeader.header
        let height = header.height
        let encodedHeader = header.encoded()
        if !signatureVerified {
            try verify(signedHeader, encodedHeader: encodedHeader)
        }
        guard header.chainID == state.chainID else {
            throw .wrongChainID(height: height, chainID: header.chainID, expected: state.chainID)
        }
        guard height == state.nextHeight else {
            throw .unexpectedHeight(height: height, expected: state.nextHeight)
        }
        guard header.time >= state.lastBlockTime else {
            throw .timeBeforePrevious(height: height, time: header.time, previous: state.lastBlockTime)
        }
        if header.time > now, header.time - now > maxFutureDrift {
            throw .timeInFuture(height: height, time: header.time, now: now)
        }
        guard header.lastHeaderHash == state.lastHeaderHash else {
            throw .lastHeaderHashMismatch(height: height, lastHeaderHash: header.lastHeaderHash,
                                          expected: state.lastHeaderHash)
        }
        guard header.appHash == state.appHash else {
            throw .appHashMismatch(height: height, appHash: header.appHash, expected: state.appHash)
        }
        let computed = data.dataHash
        guard header.dataHash == computed else {
            throw .dataHashMismatch(height: height, dataHash: header.dataHash, computed: computed)
        }
        let fullHash: [UInt8]
        if let metadata = data.metadata {
            if metadata.chainID != header.chainID { throw .metadataMismatch(height: height, field: "chain_id") }
            if metadata.height != height { throw .metadataMismatch(height: height, field: "height") }
            if metadata.time != header.time { throw .metadataMismatch(height: height, field: "time") }
            if metadata.lastDataHash != state.lastDataHash {
                throw .metadataMismatch(height: height, field: "last_data_hash")
            }
            fullHash = data.fullHash
        } else {
            fullHash = BlockData(metadata: Metadata(chainID: header.chainID, height: height, time: header.time,
                                                    lastDataHash: state.lastDataHash),
                                 txs: data.txs).fullHash
        }
        var next = state
        next.lastBlockHeight = height
        next.lastBlockTime = header.time
        next.lastHeaderHash = Hashing.sha256(encodedHeader)
        next.lastDataHash = fullHash
        return next
    }
}
