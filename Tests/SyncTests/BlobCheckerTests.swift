@testable import DAClient
@testable import Sync
import Chain
import Config
import Testing
import TestSupport

/// `DABlobChecker`: one signature check per block, results in blob order whether the height is
/// checked on one thread or spread over the cores.
@Suite struct BlobCheckerTests {
    let headerNS = DANamespace(name: "check-headers")
    let dataNS = DANamespace(name: "check-data")

    /// A DA height of 80 blocks (160 blobs) with faults mixed in: a header whose proposer
    /// signature is wrong, a header signed by another key, data naming another signer, junk, and a
    /// header posted in the data namespace are rejected, and so is a header whose envelope
    /// signature does not verify (ev-node v1.2: blob dropped); one posted without an envelope
    /// signature is a legacy header (the follower's strict mode decides). The data signature of
    /// data a verified header claims is not looked at (the header signature and `data_hash`
    /// already authenticate its txs). Data no verified header claims is held only
    /// with a valid signature of its own: with a bad one it is rejected.
    @Test func checksOneSignaturePerBlockInBlobOrder() throws {
        let dir = TempDirectory("evnode-checker")
        let source = try TestChain(chainID: "da-test", path: dir.path + "/source")
        defer { source.close() }
        for h in 1...80 { try source.produce(["k\(h)=v\(h)"]) }
        let stranger = BlockSigner(keyFile: KeyFile.generate())

        var blobs: [DABlob] = []
        var expected: [String] = []
        for h in UInt64(1)...80 {
            let block = try source.store.block(at: h)!
            var envelope = try source.signer.envelope(for: block.signedHeader)
            var signedData = try source.signer.sign(data: block.data)
            var headerVerdict = "header \(h)", dataVerdict = "data \(h)"
            switch h {
            case 7:
                envelope.signature[0] ^= 0xff
                headerVerdict = "rejected"
                dataVerdict = "signed data 7"
            case 8:
                // No header claims it and its own signature is bad: junk naming the proposer.
                envelope.signature[0] ^= 0xff
                signedData.signature[0] ^= 0xff
                headerVerdict = "rejected"
                dataVerdict = "rejected"
            case 9:
                envelope.envelopeSignature = [UInt8](repeating: 9, count: 64)
                headerVerdict = "rejected"
                dataVerdict = "signed data 9"
            case 10:
                envelope.envelopeSignature = []
                headerVerdict = "legacy header 10"
            case 11:
                signedData.signature = [UInt8](repeating: 11, count: 64)
            case 13:
                envelope = try stranger.envelope(for: try stranger.sign(header: block.signedHeader.header))
                headerVerdict = "rejected"
                dataVerdict = "signed data 13"
            case 15:
                // Data is bound to its block by the header's data_hash, not by its signer: ev-node
                // signs data with the submitter's key (reference §1, §5 scenario).
                signedData = try stranger.sign(data: block.data)
            default:
                break
            }
            blobs.append(DABlob(namespace: headerNS, data: envelope.encoded()))
            expected.append(headerVerdict)
            blobs.append(DABlob(namespace: dataNS, data: signedData.encoded()))
            expected.append(dataVerdict)
        }
        blobs.insert(DABlob(namespace: dataNS, data: [0xde, 0xad, 0xbe, 0xef]), at: 40)
        expected.insert("rejected", at: 40)
        blobs.append(DABlob(namespace: dataNS, data: blobs[0].data))
        expected.append("rejected")

        let parallel = DABlobChecker(validator: BlockValidator(genesis: source.genesis),
                                     headerNamespace: headerNS, dataNamespace: dataNS)
        var sequential = parallel
        sequential.parallelThreshold = .max
        #expect(blobs.count >= parallel.parallelThreshold, "the test must take the parallel path")
        #expect(parallel.check(blobs).map(Self.verdict) == expected)
        #expect(sequential.check(blobs).map(Self.verdict) == expected)
    }

    static func verdict(_ checked: DABlobChecker.Checked) -> String {
        switch checked {
        case .header(let h, let enveloped): "\(enveloped ? "" : "legacy ")header \(h.height)"
        case .data(let d, _, _, let verified): "\(verified ? "signed " : "")data \(d.metadata?.height ?? 0)"
        case .rejected: "rejected"
        }
    }

    /// Data whose txs a header waiting in the follower claims needs no signature; data nobody
    /// claims does. The follower's claims come in as `claimed`.
    @Test func dataClaimedByAWaitingHeaderNeedsNoSignature() throws {
        let dir = TempDirectory("evnode-checker")
        let source = try TestChain(chainID: "da-test", path: dir.path + "/source")
        defer { source.close() }
        try source.produce(["a=1"])
        let block = try source.store.block(at: 1)!
        var unsigned = try source.signer.sign(data: block.data)
        unsigned.signature = [UInt8](repeating: 1, count: 64)
        let blob = DABlob(namespace: dataNS, data: unsigned.encoded())
        let checker = DABlobChecker(validator: BlockValidator(genesis: source.genesis),
                                    headerNamespace: headerNS, dataNamespace: dataNS)
        #expect(Self.verdict(checker.check(blob)) == "rejected")
        #expect(Self.verdict(checker.check([blob], claimed: [block.signedHeader.header.dataHash])[0]) == "data 1")
    }
}
