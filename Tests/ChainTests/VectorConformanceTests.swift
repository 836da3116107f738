import Primitives
import Chain
import Testing
import TestSupport

/// Every block of `chain-24.json`, in both directions: our encoder reproduces the independent
/// encoder's bytes, hashes and signatures, and our decoder reads its bytes back to the same
/// values.
@Suite struct VectorConformanceTests {
    let vectors = ChainVectors.shared

    @Test func proposerKeyAndAddress() throws {
        let signer = vectors.signer
        #expect(Signer(rawPublicKey: vectors.rawPublicKey).pubKey == vectors.protoPublicKey)
        #expect(signer.signer.pubKey == vectors.protoPublicKey)
        #expect(signer.address == vectors.address)
        #expect(signer.signer.rawPublicKey == vectors.rawPublicKey)
        #expect(vectors.genesis.proposerAddress == vectors.address)
        #expect(BlockData.emptyDataHash == vectors.emptyDataHash)
        #expect(vectors.blocks.count == 24)
    }

    @Test(arguments: 0..<24)
    func encodesBlockLikeTheIndependentEncoder(index: Int) throws {
        let b = vectors.blocks[index]
        let signer = vectors.signer
        let lastHeaderHash = index == 0 ? [] : vectors.blocks[index - 1].headerHash
        let lastDataHash = index == 0 ? [] : vectors.blocks[index - 1].dataFullHash

        let data = BlockData(metadata: Metadata(chainID: vectors.chainID, height: b.height, time: b.timeNs,
                                                lastDataHash: lastDataHash),
                             txs: b.txs)
        #expect(Hex.encode(data.encoded()) == Hex.encode(b.dataBytes))
        #expect(data.dataHash == b.dataHash)
        #expect(BlockData.dataHash(of: b.txs) == b.dataHash)
        #expect(data.fullHash == b.dataFullHash)

        let header = Header(height: b.height, time: b.timeNs, lastHeaderHash: lastHeaderHash, dataHash: data.dataHash,
                            appHash: b.appHashBefore, proposerAddress: vectors.address, chainID: vectors.chainID)
        #expect(Hex.encode(header.encoded()) == Hex.encode(b.headerBytes))
        #expect(header.hash == b.headerHash)

        // Ed25519 (RFC 8032) is deterministic; BoringSSL, which swift-crypto uses on Linux, signs that way.
        let signed = try signer.sign(header: header)
        #if os(Linux)
        #expect(signed.signature == b.signature)
        #endif
        #expect(SignatureVerifier.isValid(signature: b.signature, message: b.headerBytes,
                                          protoPublicKey: vectors.protoPublicKey))
        let vectorSigned = SignedHeader(header: header, signature: b.signature, signer: signer.signer)
        #expect(Hex.encode(vectorSigned.encoded()) == Hex.encode(b.signedHeaderBytes))
        #expect(vectorSigned.hasValidSignature)

        let envelope = try signer.envelope(for: vectorSigned)
        let vectorEnvelope = try DAHeaderEnvelope(decoding: b.envelopeBytes)
        #if os(Linux)
        #expect(Hex.encode(envelope.encoded()) == Hex.encode(b.envelopeBytes))
        #endif
        #expect(envelope.signedHeader == vectorSigned)
        #expect(vectorEnvelope.hasValidSignatures)

        let signedData = try signer.sign(data: data)
        let vectorSignedData = try SignedData(decoding: b.signedDataBytes)
        #if os(Linux)
        #expect(Hex.encode(signedData.encoded()) == Hex.encode(b.signedDataBytes))
        #endif
        #expect(vectorSignedData.hasValidSignature)
        #expect(vectorSignedData.data == data)
        #expect(Hex.encode(vectorSignedData.encoded()) == Hex.encode(b.signedDataBytes))
    }

    @Test(arguments: 0..<24)
    func decodesBlockToTheSameValues(index: Int) throws {
        let b = vectors.blocks[index]
        let header = try Header(decoding: b.headerBytes)
        #expect(header.height == b.height)
        #expect(header.time == b.timeNs)
        #expect(header.chainID == vectors.chainID)
        #expect(header.proposerAddress == vectors.address)
        #expect(header.appHash == b.appHashBefore)
        #expect(header.dataHash == b.dataHash)
        #expect(header.lastHeaderHash == (index == 0 ? [] : vectors.blocks[index - 1].headerHash))
        #expect(header.version == Version())
        #expect(header.encoded() == b.headerBytes)
        #expect(header.hash == b.headerHash)

        let signed = try SignedHeader(decoding: b.signedHeaderBytes)
        #expect(signed.header == header)
        #expect(signed.signature == b.signature)
        #expect(signed.signer.pubKey == vectors.protoPublicKey)
        #expect(signed.signer.address == vectors.address)
        #expect(signed.encoded() == b.signedHeaderBytes)

        let envelope = try DAHeaderEnvelope(decoding: b.envelopeBytes)
        #expect(envelope.signedHeader == signed)
        #expect(envelope.encoded() == b.envelopeBytes)
        #expect(SignatureVerifier.isValid(signature: envelope.envelopeSignature, message: b.signedHeaderBytes,
                                          protoPublicKey: vectors.protoPublicKey))

        let data = try BlockData(decoding: b.dataBytes)
        #expect(data.txs == b.txs)
        #expect(data.metadata?.height == b.height)
        #expect(data.metadata?.time == b.timeNs)
        #expect(data.metadata?.chainID == vectors.chainID)
        #expect(data.metadata?.lastDataHash == (index == 0 ? [] : vectors.blocks[index - 1].dataFullHash))
        #expect(data.encoded() == b.dataBytes)
        #expect(data.dataHash == b.dataHash)
        #expect(data.fullHash == b.dataFullHash)

        let signedData = try SignedData(decoding: b.signedDataBytes)
        #expect(signedData.data == data)
        #expect(signedData.encoded() == b.signedDataBytes)
        #expect(SignatureVerifier.isValid(signature: signedData.signature, message: b.dataBytes,
                                          protoPublicKey: vectors.protoPublicKey))
    }

    @Test func vectorChainValidatesAgainstGenesis() throws {
        let validator = BlockValidator(genesis: vectors.genesis)
        var state = State(genesis: vectors.genesis, appHash: [UInt8](repeating: 0, count: 32))
        for (b, (signed, data)) in zip(vectors.blocks, vectors.decodedBlocks) {
            try validator.verifySignature(signed)
            try validator.verifySignature(try DAHeaderEnvelope(decoding: b.envelopeBytes).signedHeader)
            try validator.verifySigner(of: try SignedData(decoding: b.signedDataBytes))
            #expect(state.appHash == b.appHashBefore)
            state = try validator.validate(signed, data: data, state: state, now: vectors.now)
            #expect(state.lastHeaderHash == b.headerHash)
            #expect(state.lastDataHash == b.dataFullHash)
            // The KV root rule, computed independently of the executor.
            state.appHash = Crypto256.hash(b.appHashBefore + b.dataHash)
            #expect(state.appHash == b.appHashAfter)
        }
    }
}
