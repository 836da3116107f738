import Chain
import Testing
import TestSupport

@Suite struct WireDecodingErrorTests {
    let vectors = ChainVectors.shared
    var header: [UInt8] { vectors.blocks[1].headerBytes }
    var signedHeader: [UInt8] { vectors.blocks[1].signedHeaderBytes }
    var data: [UInt8] { vectors.blocks[1].dataBytes }

    @Test func emptyVersionIsAlwaysEncoded() {
        let header = Header(height: 0, time: 0, lastHeaderHash: [], dataHash: [], appHash: [], proposerAddress: [],
                            chainID: "")
        #expect(header.encoded() == [0x0a, 0x00])
        let versioned = Header(version: Version(block: 11, app: 1), height: 1, time: 0, lastHeaderHash: [],
                               dataHash: [], appHash: [], proposerAddress: [], chainID: "c")
        #expect(versioned.encoded() == [0x0a, 0x04, 0x08, 0x0b, 0x10, 0x01, 0x10, 0x01, 0x62, 0x01, 0x63])
    }

    @Test func roundTripsExtremeValues() throws {
        let header = Header(version: Version(block: .max, app: 1 << 63), height: .max, time: 1 << 35,
                            lastHeaderHash: [UInt8](repeating: 0xab, count: 300), dataHash: [0], appHash: [1, 2],
                            proposerAddress: [UInt8](repeating: 9, count: 32), validatorHash: [7],
                            chainID: "chain-ü-✓")
        let decoded = try Header(decoding: header.encoded())
        #expect(decoded == header)
        #expect(decoded.encoded() == header.encoded())

        let data = BlockData(metadata: Metadata(chainID: "", height: 0, time: 0, lastDataHash: []),
                             txs: [[], [0], [UInt8](repeating: 1, count: 200)])
        let decodedData = try BlockData(decoding: data.encoded())
        #expect(decodedData == data)
        // Present-but-empty metadata keeps its presence (`0a 00`); empty txs are kept (`12 00`).
        #expect(data.encoded().prefix(4) == [0x0a, 0x00, 0x12, 0x00])
        let noMetadata = BlockData(metadata: nil, txs: [])
        #expect(noMetadata.encoded().isEmpty)
        #expect(try BlockData(decoding: [UInt8]()) == noMetadata)
    }

    @Test func decodesFromSlicesWithoutCopyingFirst() throws {
        let padded = [0xff, 0xff] + signedHeader + [0xee]
        let slice = padded[2..<(padded.count - 1)]
        #expect(try SignedHeader(decoding: slice) == SignedHeader(decoding: signedHeader))
    }

    @Test func truncatedInputIsRejectedAtEveryLength() throws {
        // Protobuf has no end marker: a cut exactly after a top-level field is a shorter valid
        // message (here: without signature / signer), which validation then rejects. Every other
        // cut must be a decoding error.
        let headerEnd = 3 + Int(signedHeader[1] & 0x7f) + Int(signedHeader[2]) << 7
        let signatureEnd = headerEnd + 2 + 64
        let validator = BlockValidator(genesis: vectors.genesis)
        for cut in 1..<signedHeader.count {
            let prefix = Array(signedHeader[..<cut])
            if cut == headerEnd || cut == signatureEnd {
                let partial = try SignedHeader(decoding: prefix)
                #expect(throws: ValidationError.malformedSignerKey(height: 2, pubKey: [])) {
                    try validator.verifySignature(partial)
                }
            } else {
                #expect(throws: WireError.self, "cut at \(cut)") { try SignedHeader(decoding: prefix) }
            }
        }
        // Cutting inside the first field's value: the length prefix runs past the end.
        #expect(throws: WireError.lengthOverflow(message: .signedHeader, field: 1, length: UInt64(signedHeader[2]) << 7 | UInt64(signedHeader[1] & 0x7f), available: 10)) {
            try SignedHeader(decoding: signedHeader[..<13])
        }
        // Cutting inside a tag's varint.
        #expect(throws: WireError.truncated(message: .header, field: 0)) {
            try Header(decoding: [0x0a, 0x00, 0x80])
        }
        // Cutting inside a varint value.
        #expect(throws: WireError.truncated(message: .header, field: 2)) {
            try Header(decoding: [0x0a, 0x00, 0x10, 0xff])
        }
    }

    @Test func wrongWireTypeForKnownFieldsIsRejected() {
        // height (field 2) sent as length-delimited.
        #expect(throws: WireError.wrongWireType(message: .header, field: 2, expected: 0, actual: 2)) {
            try Header(decoding: [0x12, 0x01, 0x05])
        }
        // chain_id (field 12) sent as varint.
        #expect(throws: WireError.wrongWireType(message: .header, field: 12, expected: 2, actual: 0)) {
            try Header(decoding: [0x60, 0x01])
        }
        // A nested Metadata.height sent as fixed64.
        #expect(throws: WireError.wrongWireType(message: .metadata, field: 2, expected: 0, actual: 1)) {
            try BlockData(decoding: [0x0a, 0x09, 0x11, 1, 2, 3, 4, 5, 6, 7, 8])
        }
        // txs sent as varint.
        #expect(throws: WireError.wrongWireType(message: .data, field: 2, expected: 2, actual: 0)) {
            try BlockData(decoding: [0x10, 0x01])
        }
    }

    @Test func trailingGarbageIsRejected() {
        #expect(throws: WireError.invalidTag(message: .header, offset: header.count, tag: 0)) {
            try Header(decoding: header + [0x00])
        }
        #expect(throws: WireError.truncated(message: .signedHeader, field: 0)) {
            try SignedHeader(decoding: signedHeader + [0xff])
        }
        #expect(throws: WireError.invalidTag(message: .data, offset: data.count, tag: 0x0f)) {
            try BlockData(decoding: data + [0x0f]) // field 1, wire type 7
        }
        #expect(throws: WireError.lengthOverflow(message: .data, field: 2, length: 5, available: 2)) {
            try BlockData(decoding: data + [0x12, 0x05, 0x61, 0x62])
        }
        // A second copy of a singular field (e.g. a replayed header appended to the blob).
        #expect(throws: WireError.duplicateField(message: .signedHeader, field: 1)) {
            try SignedHeader(decoding: signedHeader + signedHeader)
        }
        #expect(throws: WireError.duplicateField(message: .header, field: 12)) {
            try Header(decoding: header + [0x62, 0x01, 0x78])
        }
        // Groups do not exist in proto3.
        #expect(throws: WireError.invalidTag(message: .header, offset: header.count, tag: 0x7b)) {
            try Header(decoding: header + [0x7b, 0x7c]) // field 15 start-group
        }
    }

    @Test func unknownFieldsAreSkipped() throws {
        // Field 5 (ev-node's last_commit_hash), field 20 varint, field 21 fixed32, field 22 fixed64.
        let extra: [UInt8] = [0x2a, 0x02, 0xaa, 0xbb, 0xa0, 0x01, 0x05, 0xad, 0x01, 1, 2, 3, 4,
                              0xb1, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]
        let decoded = try Header(decoding: header + extra)
        #expect(decoded == (try Header(decoding: header)))
        #expect(decoded.encoded() == header)
        #expect(throws: WireError.truncated(message: .header, field: 22)) {
            try Header(decoding: header + [0xb1, 0x01, 1, 2, 3])
        }
    }

    @Test func oversizedInputIsRejectedBeforeDecoding() {
        let big = [UInt8](repeating: 0, count: WireLimits.maxHeaderBytes + 1)
        #expect(throws: WireError.tooLarge(message: .header, size: big.count, limit: WireLimits.maxHeaderBytes)) {
            try Header(decoding: big)
        }
        #expect(throws: WireError.tooLarge(message: .data, size: 101, limit: 100)) {
            try BlockData(decoding: [UInt8](repeating: 0x12, count: 101), limit: 100)
        }
        let hugeData = [UInt8](repeating: 0, count: WireLimits.maxBlockBytes + 1)
        #expect(throws: WireError.tooLarge(message: .signedData, size: hugeData.count, limit: WireLimits.maxBlockBytes)) {
            try SignedData(decoding: hugeData)
        }
    }

    @Test func varintAndLengthOverflowAreRejected() {
        // 11-byte varint.
        #expect(throws: WireError.varintOverflow(message: .header, field: 2)) {
            try Header(decoding: [0x10] + [UInt8](repeating: 0xff, count: 10) + [0x01])
        }
        // 10th byte above 1 (value ≥ 2^64).
        #expect(throws: WireError.varintOverflow(message: .header, field: 3)) {
            try Header(decoding: [0x18] + [UInt8](repeating: 0xff, count: 9) + [0x02])
        }
        // 2^64-1 is fine.
        #expect((try? Header(decoding: [0x18] + [UInt8](repeating: 0xff, count: 9) + [0x01]))?.time == .max)
        // A length of 2^63.
        #expect(throws: WireError.lengthOverflow(message: .header, field: 4, length: 1 << 63, available: 0)) {
            try Header(decoding: [0x22] + [UInt8](repeating: 0x80, count: 9) + [0x01])
        }
        // Field number above 2^29-1.
        #expect(throws: WireError.invalidTag(message: .header, offset: 0, tag: 1 << 32)) {
            try Header(decoding: [0x80, 0x80, 0x80, 0x80, 0x10, 0x00])
        }
    }

    @Test func invalidUTF8InStringsIsRejected() {
        #expect(throws: WireError.invalidUTF8(message: .header, field: 12)) {
            try Header(decoding: [0x62, 0x02, 0xc3, 0x28])
        }
        #expect(throws: WireError.invalidUTF8(message: .metadata, field: 1)) {
            try BlockData(decoding: [0x0a, 0x03, 0x0a, 0x01, 0xff])
        }
    }

    @Test func errorsDescribeMessageAndField() {
        let error = WireError.wrongWireType(message: .metadata, field: 2, expected: 0, actual: 1)
        #expect(error.description.contains("Metadata"))
        #expect(error.description.contains("field 2"))
        #expect(error.message == .metadata)
    }
}

/// 10,000 seeded random mutations of valid encodings (bit flips, truncations, insertions,
/// deletions, byte overwrites, splices): every decoder must either throw a `WireError` or
/// decode — never crash — and whatever decodes must re-encode to a stable canonical form.
@Suite struct WireFuzzTests {
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    static func mutate(_ input: [UInt8], using rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        let rounds = Int.random(in: 1...4, using: &rng)
        for _ in 0..<rounds {
            switch Int.random(in: 0..<6, using: &rng) {
            case 0 where !bytes.isEmpty:
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !bytes.isEmpty:
                bytes = Array(bytes[..<Int.random(in: 0..<bytes.count, using: &rng)])
            case 2:
                let i = Int.random(in: 0...bytes.count, using: &rng)
                let n = Int.random(in: 1...8, using: &rng)
                bytes.insert(contentsOf: (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: i)
            case 3 where !bytes.isEmpty:
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...8, using: &rng)))
            case 4 where !bytes.isEmpty:
                // Overwrite with values that stress varints and lengths.
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] = [0x00, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x1a][Int.random(in: 0..<7, using: &rng)]
            default:
                // Splice: duplicate a random range somewhere else.
                guard !bytes.isEmpty else { break }
                let a = Int.random(in: 0..<bytes.count, using: &rng)
                let b = Int.random(in: a...min(bytes.count, a + 40), using: &rng)
                bytes.insert(contentsOf: bytes[a..<b], at: Int.random(in: 0...bytes.count, using: &rng))
            }
        }
        return bytes
    }

    @Test func tenThousandMutationsNeverCrash() {
        let vectors = ChainVectors.shared
        var corpus: [[UInt8]] = []
        for b in vectors.blocks {
            corpus += [b.headerBytes, b.signedHeaderBytes, b.envelopeBytes, b.dataBytes, b.signedDataBytes]
        }
        var rng = SplitMix64(state: 0x5eed_2024)
        var decoded = 0
        var rejected = 0
        for i in 0..<10_000 {
            let original = corpus[i % corpus.count]
            let mutated = WireFuzzTests.mutate(original, using: &rng)
            // Every decoder on every input: a mutation of one message is often a valid prefix
            // or look-alike of another.
            decoded += check { try Header(decoding: mutated) } roundTrip: { try Header(decoding: $0.encoded()) == $0 }
            decoded += check { try SignedHeader(decoding: mutated) } roundTrip: { try SignedHeader(decoding: $0.encoded()) == $0 }
            decoded += check { try DAHeaderEnvelope(decoding: mutated) } roundTrip: { try DAHeaderEnvelope(decoding: $0.encoded()) == $0 }
            decoded += check { try BlockData(decoding: mutated) } roundTrip: { try BlockData(decoding: $0.encoded()) == $0 }
            decoded += check { try SignedData(decoding: mutated) } roundTrip: { try SignedData(decoding: $0.encoded()) == $0 }
            decoded += check { try State(decoding: mutated) } roundTrip: { try State(decoding: $0.encoded()) == $0 }
            rejected += 6
        }
        rejected -= decoded
        // Both outcomes must occur, or the mutations are not reaching the decoder's error paths.
        #expect(decoded > 1000)
        #expect(rejected > 1000)
    }

    /// 1 when `decode` succeeded (and the value round-trips), 0 when it threw a WireError.
    private func check<T>(_ decode: () throws -> T, roundTrip: (T) throws -> Bool) -> Int {
        do {
            let value = try decode()
            #expect((try? roundTrip(value)) == true)
            return 1
        } catch {
            #expect(error is WireError)
            return 0
        }
    }
}
