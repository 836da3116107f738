import Primitives
import Chain
import Config
import Crypto
import Foundation
import RemoteSigner
import Testing
import TestSupport

/// The rules of the remote signer's fence (issue 29), on a real mark file: what it signs, what it
/// signs again, and what it refuses, naming heights and hashes.
struct SignerFenceTests {
    let dir = TempDirectory("signer-fence")
    let key = Curve25519.Signing.PrivateKey()
    var markPath: String { dir.sub("signer.state") }

    func fence() -> SignerFence {
        SignerFence(key: key, chainID: "fence-chain", markPath: markPath)
    }

    func block(_ height: UInt64, txs: [[UInt8]] = [[1, 2, 3]], chain: String = "fence-chain",
               proposer: [UInt8]? = nil) -> (header: Header, data: BlockData) {
        let data = BlockData(metadata: Metadata(chainID: chain, height: height, time: 1_000 + height, lastDataHash: []),
                             txs: txs)
        let address = proposer ?? Signer(rawPublicKey: Array(key.publicKey.rawRepresentation)).address
        let header = Header(height: height, time: 1_000 + height, lastHeaderHash: [UInt8](repeating: UInt8(height), count: 32),
                            dataHash: data.dataHash, appHash: [9], proposerAddress: address, chainID: chain)
        return (header, data)
    }

    func refusal(_ body: () throws(SignRefusal) -> Void) -> SignRefusal? {
        do throws(SignRefusal) {
            try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func signsAboveTheMarkAndRecordsItFirst() throws {
        let f = fence()
        let (h1, _) = block(1)
        let (signature, outcome) = try f.sign(h1.encoded())
        #expect(outcome == .header(height: 1, hash: h1.hash))
        #expect(key.publicKey.isValidSignature(signature, for: h1.encoded()))
        // The mark is on disk, with the signed header, when the signature is answered.
        let record = try SignerHighWaterMark(path: markPath).loadRecord()
        #expect(record?.height == 1)
        let kept = try SignedBlockBytes.decode(try #require(record?.block))
        #expect(kept.signedHeader.header == h1 && kept.signedHeader.signature == signature)
    }

    @Test func theSameHeaderAgainGetsTheSameSignatureEvenAfterARestart() throws {
        let (h5, d5) = block(5)
        let first = try fence().signBlock(header: h5.encoded(), data: d5.encoded())
        // A new fence on the same file: what a restarted `signer serve` is.
        let again = try fence().sign(h5.encoded())
        #expect(again.signature == first.signature)
        #expect(again.outcome == .repeatedHeader(height: 5, hash: h5.hash))
        let mark = try #require(try fence().mark())
        #expect(mark.height == 5 && mark.data == d5 && mark.signedHeader?.signature == first.signature)
    }

    @Test func aDifferentHeaderAtOrBelowTheMarkIsRefusedNamingBoth() throws {
        let f = fence()
        let (h7, _) = block(7)
        _ = try f.sign(h7.encoded())
        let (other7, _) = block(7, txs: [[4]])
        let same = refusal { () throws(SignRefusal) in _ = try f.sign(other7.encoded()) }
        #expect(same == .fenced(height: 7, hash: other7.hash, mark: 7, markHash: h7.hash))
        let text = same?.description ?? ""
        #expect(text.contains(Hex.encode(other7.hash)) && text.contains(Hex.encode(h7.hash)) && text.contains("height 7"))
        let (h3, _) = block(3)
        #expect(refusal { () throws(SignRefusal) in _ = try f.sign(h3.encoded()) }
            == .fenced(height: 3, hash: h3.hash, mark: 7, markHash: h7.hash))
        // Nothing refused moved the mark.
        #expect(try SignerHighWaterMark(path: markPath).load() == 7)
    }

    @Test func aMarkSetByHandFencesWithoutAHeader() throws {
        try SignerHighWaterMark(path: markPath).replace(with: 10)
        let (h10, _) = block(10)
        #expect(refusal { () throws(SignRefusal) in _ = try fence().sign(h10.encoded()) }
            == .fenced(height: 10, hash: h10.hash, mark: 10, markHash: nil))
        _ = try fence().sign(block(11).header.encoded())
    }

    @Test func anotherChainOrProposerIsRefused() throws {
        let f = fence()
        let foreign = block(1, chain: "other-chain").header
        #expect(refusal { () throws(SignRefusal) in _ = try f.sign(foreign.encoded()) }
            == .foreignChain(what: "the header at height 1", chainID: "other-chain", expected: "fence-chain"))
        let stranger = block(1, proposer: [UInt8](repeating: 7, count: 32)).header
        if case .foreignProposer = refusal({ () throws(SignRefusal) in _ = try f.sign(stranger.encoded()) }) {} else {
            Issue.record("a header naming another proposer was not refused as such")
        }
        #expect(try SignerHighWaterMark(path: markPath).load() == nil)
    }

    @Test func theEnvelopeOnlyAroundAHeaderThisKeySigned() throws {
        let f = fence()
        let signer = Signer(rawPublicKey: Array(key.publicKey.rawRepresentation))
        let (h1, _) = block(1)
        let s1 = try f.sign(h1.encoded()).signature
        let ours = SignedHeader(header: h1, signature: s1, signer: signer)
        let envelope = try f.sign(ours.encoded())
        #expect(envelope.outcome == .envelope(height: 1))
        #expect(key.publicKey.isValidSignature(envelope.signature, for: ours.encoded()))
        // A header this key never signed, with a made-up signature.
        let (h2, _) = block(2)
        let forged = SignedHeader(header: h2, signature: [UInt8](repeating: 1, count: 64), signer: signer)
        #expect(refusal { () throws(SignRefusal) in _ = try f.sign(forged.encoded()) }
            == .notSignedHere(height: 2, hash: h2.hash))
    }

    @Test func dataOnlyUpToTheMark() throws {
        let f = fence()
        let (h2, d2) = block(2)
        #expect(refusal { () throws(SignRefusal) in _ = try f.sign(d2.encoded()) } == .dataAboveMark(height: 2, mark: nil))
        _ = try f.sign(h2.encoded())
        #expect(try f.sign(d2.encoded()).outcome == .data(height: 2))
        #expect(try f.sign(block(1).data.encoded()).outcome == .data(height: 1))
        #expect(refusal { () throws(SignRefusal) in _ = try f.sign(block(3).data.encoded()) } == .dataAboveMark(height: 3, mark: 2))
    }

    @Test func signBlockNeedsTheHeadersData() throws {
        let (h4, _) = block(4)
        let (_, otherData) = block(4, txs: [[8, 8]])
        #expect(refusal { () throws(SignRefusal) in _ = try fence().signBlock(header: h4.encoded(), data: otherData.encoded()) }
            == .dataMismatch(height: 4, headerDataHash: h4.dataHash, dataHash: otherData.dataHash))
        #expect(try SignerHighWaterMark(path: markPath).load() == nil)
    }

    @Test func anythingElseIsRefused() throws {
        let f = fence()
        for junk: [UInt8] in [[0xFF, 0xFF, 0xFF], Array("sign me".utf8), [0x08]] {
            #expect(refusal { () throws(SignRefusal) in _ = try f.sign(junk) } == .undecodable(bytes: junk.count))
        }
        // A header with an unknown field appended: not its canonical encoding, so not placed.
        let padded = block(1).header.encoded() + [0xF8, 0x01, 0x01]
        #expect(refusal { () throws(SignRefusal) in _ = try f.sign(padded) } == .undecodable(bytes: padded.count))
        #expect(try SignerHighWaterMark(path: markPath).load() == nil)
    }

    @Test func aDamagedMarkRefusesEverything() throws {
        try Data("{\"last_signed_height\": x}\n".utf8).write(to: URL(fileURLWithPath: markPath))
        if case .mark = refusal({ () throws(SignRefusal) in _ = try fence().sign(block(1).header.encoded()) }) {} else {
            Issue.record("a damaged mark did not refuse the signature")
        }
    }

    /// `signer serve` is the mark file's only writer: each header is one append to the same file,
    /// not a rewrite every few blocks (the cost that made 10 ms blocks miss slots), and the marks
    /// it appended are what a restart reads.
    @Test func headersAreAppendedToOneFileNotRewrittenEveryFewBlocks() throws {
        let f = fence()
        let payload = [UInt8](repeating: 0x5A, count: 4_000)
        var inode: ino_t?
        var signatures: [[UInt8]] = []
        for height in UInt64(1)...40 {
            let (h, d) = block(height, txs: [payload + [UInt8(height)]])
            signatures.append(try f.signBlock(header: h.encoded(), data: d.encoded()).signature)
            var st = stat()
            #expect(stat(markPath, &st) == 0)
            if let inode { #expect(st.st_ino == inode, "the mark file was replaced at height \(height)") }
            inode = st.st_ino
        }
        let lines = try String(contentsOfFile: markPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 40)
        let (h40, d40) = block(40, txs: [payload + [40]])
        let again = try fence().signBlock(header: h40.encoded(), data: d40.encoded())
        #expect(again.signature == signatures.last && again.outcome == .repeatedHeader(height: 40, hash: h40.hash))
        #expect(try fence().mark()?.data == d40)
    }

    /// Past its size bound the file is rewritten with the mark alone; the mark, its header and
    /// its data survive a restart, and signing goes on above it.
    @Test func pastTheBoundTheFileKeepsTheMarkAlone() throws {
        let bound = 16 << 10
        let f = SignerFence(key: key, chainID: "fence-chain", markPath: markPath, compactionBytes: bound)
        let payload = [UInt8](repeating: 0x33, count: 2_000)
        var last: [UInt8] = []
        for height in UInt64(1)...30 {
            let (h, d) = block(height, txs: [payload + [UInt8(height)]])
            last = try f.signBlock(header: h.encoded(), data: d.encoded()).signature
            let size = try FileManager.default.attributesOfItem(atPath: markPath)[.size] as? Int ?? 0
            #expect(size < bound, "the mark file is \(size) bytes at height \(height)")
        }
        #expect(try String(contentsOfFile: markPath, encoding: .utf8).split(separator: "\n").count < 30)
        let restarted = SignerFence(key: key, chainID: "fence-chain", markPath: markPath, compactionBytes: bound)
        let (h30, d30) = block(30, txs: [payload + [30]])
        #expect(try restarted.signBlock(header: h30.encoded(), data: d30.encoded()).signature == last)
        #expect(try restarted.mark()?.data == d30)
        let (h31, d31) = block(31, txs: [payload + [31]])
        #expect(try restarted.signBlock(header: h31.encoded(), data: d31.encoded()).outcome == .header(height: 31, hash: h31.hash))
        #expect(try SignerHighWaterMark(path: markPath).load() == 31)
    }
}
