import Config
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The acceptance rules of SPEC §3 for one chain: who may sign and what the next block must be.
///
/// Who may sign block h is chain state (ev-node v1.2 rotation, reference §1): the
/// `nextProposerAddress` of the state after h−1, the genesis proposer until the executor names
/// another key. So the checks split in two, in ev-node's order: what a header proves on its own
/// (`verifySignature`: signer address = SHA-256(key), proposer_address = signer address, the
/// signature), and, in `validate`, that its proposer is the one the state expects.
///
/// A value type without mutable state: `verifySignature` can run on many threads at once ahead
/// of the in-order `validate(…, signatureVerified: true)`.
package struct BlockValidator: Sendable {
    package let chainID: String
    /// The genesis proposer: the expected signer while the state names none (a state stored
    /// before rotation existed), and the start of the chain's proposer sequence.
    package let proposerAddress: [UInt8]
    /// How far a block's time may be ahead of the local clock (SPEC: 1 minute).
    package let maxFutureDrift: UInt64

    package static let defaultMaxFutureDrift: UInt64 = 60_000_000_000
    /// go-header's bound for headers that arrive over P2P (gossip and header-exchange): 10 s.
    /// Stricter than the sync path's minute, so what P2P takes the pipeline can always apply.
    package static let p2pMaxFutureDrift: UInt64 = 10_000_000_000

    /// `header.time` is at most `maxDrift` ahead of `now` (clocks drift: the caller drops the
    /// header without blaming its source, and takes it again once the clock has caught up).
    package static func checkNotAhead(_ header: Header, now: UInt64, maxDrift: UInt64) throws(ValidationError) {
        if header.time > now, header.time - now > maxDrift {
            throw .timeInFuture(height: header.height, time: header.time, now: now)
        }
    }

    package init(chainID: String, proposerAddress: [UInt8], maxFutureDrift: UInt64 = defaultMaxFutureDrift) {
        self.chainID = chainID
        self.proposerAddress = proposerAddress
        self.maxFutureDrift = maxFutureDrift
    }

    package init(genesis: Genesis, maxFutureDrift: UInt64 = defaultMaxFutureDrift) {
        self.init(chainID: genesis.chainID, proposerAddress: genesis.proposerAddress, maxFutureDrift: maxFutureDrift)
    }

    /// Wall-clock time in unix nanoseconds, for the `now` parameter.
    package static func currentTime() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Who must sign the block after `state`.
    package func expectedProposer(after state: State) -> [UInt8] {
        state.expectedProposer(genesisProposer: proposerAddress)
    }

    /// The signer is well formed and names itself: its address is SHA-256 of its key. Returns
    /// the raw public key.
    private func checkSigner(_ signer: Signer, height: UInt64) throws(ValidationError) -> [UInt8] {
        guard let raw = signer.rawPublicKey else {
            throw .malformedSignerKey(height: height, pubKey: signer.pubKey)
        }
        let derived = Hashing.sha256(raw)
        guard signer.address == derived else {
            throw .signerAddressMismatch(height: height, address: signer.address, expected: derived)
        }
        return raw
    }

    /// ev-node's order: signer address = SHA-256(key), proposer_address = signer address, the
    /// header signature over `encodedHeader` (= `header.encoded()`).
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

    /// Checks that the header is validly signed by the key it names as its proposer, independent
    /// of chain state. Whether that key may sign this height is `validate`'s question (or
    /// `verifySignature(_:expectedProposer:)`'s, where the caller knows the answer). Thread-safe;
    /// meant to run in parallel ahead of `validate`.
    package func verifySignature(_ signedHeader: SignedHeader) throws(ValidationError) {
        try verify(signedHeader, encodedHeader: signedHeader.header.encoded())
    }

    /// The proposer is `expected` (the cheap check, first), and `verifySignature`.
    package func verifySignature(_ signedHeader: SignedHeader, expectedProposer expected: [UInt8]) throws(ValidationError) {
        let header = signedHeader.header
        guard header.proposerAddress == expected else {
            throw .unexpectedProposer(height: header.height, address: header.proposerAddress, expected: expected)
        }
        try verify(signedHeader, encodedHeader: header.encoded())
    }

    /// The signer rules alone for a DA data blob (no signature check): a well-formed key that
    /// names itself. Data is bound to its block by the header's `data_hash`, not by its signer:
    /// ev-node signs data with the submitter's key, which around a rotation need not be the
    /// block's proposer (reference §1).
    package func verifySigner(of signedData: SignedData) throws(ValidationError) {
        _ = try checkSigner(signedData.signer, height: signedData.data.metadata?.height ?? 0)
    }

    /// Signer rules plus the data blob's own signature over the encoded `Data` (metadata
    /// included), under the key it carries. The DA follower needs it only for data no verified
    /// header claims.
    package func verifySignature(of signedData: SignedData) throws(ValidationError) {
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
    /// (skipped when `signatureVerified`, i.e. `verifySignature` already passed), the proposer
    /// the state expects, chain id, height, time, last header hash, app hash, data hash, metadata.
    ///
    /// The returned state still carries `state`'s `nextProposerAddress`: the executor's answer
    /// for this block decides the next one (`State.nextProposer`, applied by `BlockApplier`).
    ///
    /// Data without metadata is accepted (its header commits to the txs); the chained data hash
    /// is then computed as if the metadata the producer always includes were present.
    package func validate(_ signedHeader: SignedHeader, data: BlockData, state: State, now: UInt64,
                         signatureVerified: Bool = false) throws(ValidationError) -> State {
        let header = signedHeader.header
        let height = header.height
        let encodedHeader = header.encoded()
        if !signatureVerified {
            try verify(signedHeader, encodedHeader: encodedHeader)
        }
        let expected = expectedProposer(after: state)
        guard header.proposerAddress == expected else {
            throw .unexpectedProposer(height: height, address: header.proposerAddress, expected: expected)
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
        try Self.checkNotAhead(header, now: now, maxDrift: maxFutureDrift)
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
