import Chain
import Config
import Crypto
import Foundation
import Testing
import TestSupport

/// One test per rule of SPEC §3: each builds block 7 of the vector chain with exactly one thing
/// wrong (re-signed by the proposer after the change, so no other rule breaks) and checks that
/// validation names that rule at that height.
@Suite struct ValidationRuleTests {
    let vectors = ChainVectors.shared
    let validator: BlockValidator
    /// The state after block 6.
    let state: State
    let index = 6
    var block: ChainVectors.Block { vectors.blocks[index] }
    var height: UInt64 { block.height }
    /// A clock at which block 7's time is acceptable.
    var now: UInt64 { block.timeNs }

    init() throws {
        validator = BlockValidator(genesis: ChainVectors.shared.genesis)
        var state = State(genesis: vectors.genesis, appHash: [UInt8](repeating: 0, count: 32))
        for (b, decoded) in zip(vectors.blocks.prefix(6), vectors.decodedBlocks.prefix(6)) {
            state = try validator.validate(decoded.signedHeader, data: decoded.data, state: state, now: b.timeNs)
            state.appHash = b.appHashAfter
        }
        self.state = state
    }

    /// Block 7 with `change` applied to its header and data, signed by `signer` (default: the
    /// proposer).
    func block(signer: BlockSigner? = nil,
               _ change: (inout Header, inout BlockData) -> Void = { _, _ in }) throws -> (SignedHeader, BlockData) {
        var header = try Header(decoding: block.headerBytes)
        var data = try BlockData(decoding: block.dataBytes)
        change(&header, &data)
        return (try (signer ?? vectors.signer).sign(header: header), data)
    }

    func expectRejection(_ expected: ValidationError, _ block: (SignedHeader, BlockData), now: UInt64? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) {
            try validator.validate(block.0, data: block.1, state: state, now: now ?? self.now)
        }
        #expect(expected.height == height, sourceLocation: sourceLocation)
    }

    @Test func unmodifiedBlockIsAccepted() throws {
        let next = try validator.validate(try block().0, data: try block().1, state: state, now: now)
        #expect(next.lastBlockHeight == height)
        #expect(next.lastHeaderHash == block.headerHash)
        #expect(next.lastDataHash == block.dataFullHash)
        #expect(next.lastBlockTime == block.timeNs)
        // Execution sets the new root; validation leaves the one the header was checked against.
        #expect(next.appHash == block.appHashBefore)
    }

    @Test func malformedSignerKey() throws {
        var (signed, data) = try block()
        signed.signer.pubKey.removeLast()
        expectRejection(.malformedSignerKey(height: height, pubKey: signed.signer.pubKey), (signed, data))
        var wrongType = signed
        wrongType.signer.pubKey = [0x08, 0x02, 0x12, 0x20] + vectors.rawPublicKey // not Ed25519
        expectRejection(.malformedSignerKey(height: height, pubKey: wrongType.signer.pubKey), (wrongType, data))
    }

    @Test func signerAddressNotHashOfKey() throws {
        var (signed, data) = try block()
        signed.signer.address = [UInt8](repeating: 1, count: 32)
        expectRejection(.signerAddressMismatch(height: height, address: signed.signer.address, expected: vectors.address),
                        (signed, data))
    }

    @Test func signerIsNotTheGenesisProposer() throws {
        let intruder = BlockSigner(keyFile: KeyFile.generate())
        let forged = try block(signer: intruder) { header, _ in header.proposerAddress = intruder.address }
        expectRejection(.unexpectedProposer(height: height, address: intruder.address, expected: vectors.address), forged)
    }

    @Test func headerProposerAddressIsNotTheSigner() throws {
        let other = [UInt8](repeating: 0x42, count: 32)
        let forged = try block { header, _ in header.proposerAddress = other }
        expectRejection(.proposerAddressMismatch(height: height, proposerAddress: other, signerAddress: vectors.address),
                        forged)
    }

    @Test func invalidSignature() throws {
        var (signed, data) = try block()
        signed.signature[10] ^= 0x01
        expectRejection(.invalidSignature(height: height), (signed, data))
        // A valid signature of a different header.
        var swapped = try block()
        swapped.0.header.time += 1
        swapped.1.metadata?.time += 1
        expectRejection(.invalidSignature(height: height), swapped)
        // Truncated signature.
        var short = try block()
        short.0.signature.removeLast()
        expectRejection(.invalidSignature(height: height), short)
    }

    @Test func wrongChainID() throws {
        let forged = try block { header, data in
            header.chainID = "other-chain"
            data.metadata?.chainID = "other-chain"
        }
        expectRejection(.wrongChainID(height: height, chainID: "other-chain", expected: vectors.chainID), forged)
    }

    @Test func heightIsNotNext() throws {
        let skipping = try block { header, data in
            header.height += 1
            data.metadata?.height += 1
        }
        #expect(throws: ValidationError.unexpectedHeight(height: height + 1, expected: height)) {
            try validator.validate(skipping.0, data: skipping.1, state: state, now: now)
        }
        let repeating = try block { header, data in
            header.height -= 1
            data.metadata?.height -= 1
        }
        #expect(throws: ValidationError.unexpectedHeight(height: height - 1, expected: height)) {
            try validator.validate(repeating.0, data: repeating.1, state: state, now: now)
        }
    }

    @Test func timeBeforePreviousBlock() throws {
        let previous = state.lastBlockTime
        let forged = try block { header, data in
            header.time = previous - 1
            data.metadata?.time = previous - 1
        }
        expectRejection(.timeBeforePrevious(height: height, time: previous - 1, previous: previous), forged)
        // Equal time is allowed.
        let same = try block { header, data in
            header.time = previous
            data.metadata?.time = previous
        }
        _ = try validator.validate(same.0, data: same.1, state: state, now: now)
    }

    @Test func timeTooFarInTheFuture() throws {
        let clock = block.timeNs - 60_000_000_001
        expectRejection(.timeInFuture(height: height, time: block.timeNs, now: clock), try block(), now: clock)
        // Exactly one minute ahead is still accepted.
        _ = try validator.validate(try block().0, data: try block().1, state: state, now: block.timeNs - 60_000_000_000)
    }

    @Test func lastHeaderHashIsNotOurPreviousBlockIsDivergence() throws {
        let other = [UInt8](repeating: 0x33, count: 32)
        let forged = try block { header, _ in header.lastHeaderHash = other }
        let expected = ValidationError.lastHeaderHashMismatch(height: height, lastHeaderHash: other,
                                                              expected: vectors.blocks[index - 1].headerHash)
        expectRejection(expected, forged)
        #expect(expected.isDivergence)
        #expect(!expected.blamesSource)
    }

    @Test func appHashIsNotOurStateRootIsDivergence() throws {
        let other = [UInt8](repeating: 0x44, count: 32)
        let forged = try block { header, _ in header.appHash = other }
        let expected = ValidationError.appHashMismatch(height: height, appHash: other, expected: block.appHashBefore)
        expectRejection(expected, forged)
        #expect(expected.isDivergence)
    }

    @Test func dataHashDoesNotMatchTxs() throws {
        let (signed, data) = try block()
        var extra = data
        extra.txs.append(Array("sneaked=in".utf8))
        expectRejection(.dataHashMismatch(height: height, dataHash: block.dataHash, computed: extra.dataHash),
                        (signed, extra))
        #expect(!ValidationError.dataHashMismatch(height: 1, dataHash: [], computed: []).isDivergence)
        #expect(ValidationError.dataHashMismatch(height: 1, dataHash: [], computed: []).blamesSource)
    }

    @Test(arguments: ["chain_id", "height", "time", "last_data_hash"])
    func metadataDoesNotMatchBlock(field: String) throws {
        let (signed, data) = try block()
        var forged = data
        switch field {
        case "chain_id": forged.metadata?.chainID = "other"
        case "height": forged.metadata?.height += 1
        case "time": forged.metadata?.time += 1
        default: forged.metadata?.lastDataHash = [UInt8](repeating: 5, count: 32)
        }
        expectRejection(.metadataMismatch(height: height, field: field), (signed, forged))
    }

    @Test func dataWithoutMetadataChainsAsIfItWerePresent() throws {
        let (signed, data) = try block()
        let bare = BlockData(metadata: nil, txs: data.txs)
        let next = try validator.validate(signed, data: bare, state: state, now: now)
        #expect(next.lastDataHash == block.dataFullHash)
        // And the rebuilt empty data of a tx-less block matches what the proposer posted.
        let empty = vectors.blocks[7] // height 8, no txs
        let rebuilt = BlockData.empty(for: try Header(decoding: empty.headerBytes), lastDataHash: block.dataFullHash)
        #expect(rebuilt.encoded() == empty.dataBytes)
    }

    /// A DA blob is accepted on its header's signature alone (one check per block): the header
    /// inside an envelope must verify, and a data blob's signer must name itself (its address is
    /// SHA-256 of its key); whose key it is does not matter, data is bound by `data_hash`.
    @Test func daBlobsAreCheckedByTheHeaderSignatureAndTheDataSigner() throws {
        var badHeader = try DAHeaderEnvelope(decoding: block.envelopeBytes)
        try validator.verifySignature(badHeader.signedHeader)
        badHeader.signature[0] ^= 0x80
        #expect(throws: ValidationError.invalidSignature(height: height)) {
            try validator.verifySignature(badHeader.signedHeader)
        }
        try validator.verifySigner(of: try SignedData(decoding: block.signedDataBytes))
        let intruder = BlockSigner(keyFile: KeyFile.generate())
        var foreign = try intruder.sign(data: try BlockData(decoding: block.dataBytes))
        try validator.verifySigner(of: foreign)
        foreign.signer.address = vectors.address
        #expect(throws: ValidationError.signerAddressMismatch(height: height, address: vectors.address,
                                                              expected: intruder.address)) {
            try validator.verifySigner(of: foreign)
        }
    }

    @Test func preVerifiedSignatureIsNotCheckedAgain() throws {
        var (signed, data) = try block()
        try validator.verifySignature(signed)
        _ = try validator.validate(signed, data: data, state: state, now: now, signatureVerified: true)
        signed.signature[0] ^= 1
        // The caller vouches for the signature: only chain rules are checked.
        _ = try validator.validate(signed, data: data, state: state, now: now, signatureVerified: true)
        #expect(throws: ValidationError.invalidSignature(height: height)) {
            try validator.validate(signed, data: data, state: state, now: now)
        }
    }

    @Test func signaturesVerifyInParallel() async throws {
        let validator = self.validator
        let blocks = vectors.decodedBlocks
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for (i, block) in blocks.enumerated() {
                group.addTask {
                    try validator.verifySignature(block.signedHeader)
                    return i
                }
            }
            var done: [Int] = []
            for try await i in group { done.append(i) }
            return done
        }
        #expect(results.sorted() == Array(0..<24))
    }

    @Test func errorsNameRuleAndHeight() {
        let error = ValidationError.appHashMismatch(height: 7, appHash: [0xaa], expected: [0xbb])
        #expect(error.rule == "app_hash")
        #expect(error.description.contains("block 7"))
        #expect(error.description.contains("aa"))
        #expect(ValidationError.timeInFuture(height: 1, time: 2, now: 0).blamesSource == false)
        #expect(ValidationError.invalidSignature(height: 1).blamesSource)
    }
}

@Suite struct BlockBuilderTests {
    @Test func buildsBlocksThatValidateAndKeepTheTimeRules() throws {
        let chain = try TestChain()
        let genesisState = chain.store.state!
        // Block 1 carries the genesis start time whatever the clock says.
        let first = try chain.builder.build(on: genesisState, txs: [Array("a=1".utf8)], time: 5)
        #expect(first.signedHeader.header.time == chain.genesis.startTimeNanoseconds)
        #expect(first.data.metadata?.time == chain.genesis.startTimeNanoseconds)
        #expect(first.signedHeader.header.lastHeaderHash.isEmpty)
        #expect(first.data.metadata?.lastDataHash.isEmpty == true)
        #expect(first.signedHeader.header.appHash == [UInt8](repeating: 0, count: 32))
        let validated = try chain.validator.validate(first.signedHeader, data: first.data, state: genesisState,
                                                     now: BlockValidator.currentTime())
        #expect(validated.lastHeaderHash == first.state.lastHeaderHash)
        #expect(validated.lastDataHash == first.state.lastDataHash)
        try chain.store.commit(first, sync: true)

        // A clock that stepped back is raised to the last block's time.
        let second = try chain.builder.build(on: first.state, txs: [], time: 1)
        #expect(second.signedHeader.header.time == first.signedHeader.header.time)
        #expect(second.signedHeader.header.dataHash == BlockData.emptyDataHash)
        #expect(second.signedHeader.header.appHash == first.state.appHash)
        _ = try chain.validator.validate(second.signedHeader, data: second.data, state: first.state,
                                         now: BlockValidator.currentTime())
        let later = try chain.builder.build(on: first.state, txs: [], time: first.signedHeader.header.time + 7)
        #expect(later.signedHeader.header.time == first.signedHeader.header.time + 7)
    }
}
