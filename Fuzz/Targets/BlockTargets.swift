import Chain
import Config

/// The block wire format (what peers gossip and serve and what anyone may post to DA) and the
/// signer's high-water mark file.
extension FuzzTargets {
    static let wire = FuzzTarget(
        name: "wire",
        summary: "the input as each of the block layer's wire messages (Header, SignedHeader, DAHeaderEnvelope, "
            + "Data, SignedData, State, DoubleSignEvidence); finding: a decoded message that does not encode to "
            + "bytes decoding to itself", maxLength: 64 << 10) { input throws(FuzzFinding) in
        var decoded = 0
        decoded += try roundTrips("Header", input, { bytes throws(WireError) in try Header(decoding: bytes) }, { $0.encoded() })
        decoded += try roundTrips("SignedHeader", input, { bytes throws(WireError) in try SignedHeader(decoding: bytes) }, { $0.encoded() })
        decoded += try roundTrips("DAHeaderEnvelope", input, { bytes throws(WireError) in try DAHeaderEnvelope(decoding: bytes) },
                       { $0.encoded() })
        decoded += try roundTrips("Data", input, { bytes throws(WireError) in try BlockData(decoding: bytes) }, { $0.encoded() })
        decoded += try roundTrips("SignedData", input, { bytes throws(WireError) in try SignedData(decoding: bytes) }, { $0.encoded() })
        decoded += try roundTrips("State", input, { bytes throws(WireError) in try State(decoding: bytes) }, { $0.encoded() })
        decoded += try roundTrips("DoubleSignEvidence", input, { bytes throws(WireError) in try DoubleSignEvidence(decoding: bytes) },
                       { $0.encoded() })
        return ["decoded": decoded]
    }

    /// Whatever decodes must encode to a form that decodes to the same value: what a node stores
    /// and re-serves is then what it checked.
    private static func roundTrips<T: Equatable>(_ name: String, _ input: [UInt8],
                                                 _ decode: ([UInt8]) throws(WireError) -> T,
                                                 _ encode: (T) -> [UInt8]) throws(FuzzFinding) -> Int {
        guard let value = try? decode(input) else { return 0 }
        let encoded = encode(value)
        let again: T
        do throws(WireError) {
            again = try decode(encoded)
        } catch {
            throw FuzzFinding(id: "wire-round-trip", "\(name) decoded, but its own encoding does not decode: \(error)")
        }
        if again != value { throw FuzzFinding(id: "wire-round-trip", "\(name) decoded, but its own encoding decodes to another value") }
        if encode(again) != encoded { throw FuzzFinding(id: "wire-round-trip", "\(name)'s encoding is not stable across a round trip") }
        return 1
    }

    static let signerState = FuzzTarget(
        name: "signer-state",
        summary: "config/signer.state as the node reads it: the lines of high-water marks, and the block kept "
            + "beside the last one (SignedBlockBytes)", maxLength: 64 << 10) { input throws(FuzzFinding) in
        guard let record = try? SignerHighWaterMark.parseLines(input, path: "signer.state") else { return ["parsed": 0] }
        guard let block = record.block else { return ["parsed": 1] }
        if let kept = try? SignedBlockBytes.decode(block) {
            let again = SignedBlockBytes.encode(kept.signedHeader, kept.data)
            guard let reread = try? SignedBlockBytes.decode(again), reread.signedHeader == kept.signedHeader,
                  reread.data == kept.data else {
                throw FuzzFinding(id: "kept-block-round-trip", "a kept block decoded, but its own encoding does not decode to it")
            }
            return ["parsed": 1, "keptBlock": 1]
        }
        return ["parsed": 1, "keptBlock": 0]
    }
}
