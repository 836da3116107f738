@testable import Config
import Crypto
import NIOConcurrencyHelpers
@testable import P2PSync

/// A chain of blocks signed by a real Ed25519 proposer key, in a compact test encoding:
///
///     signed header = "EVT1" ‖ chain-id-len u8 ‖ chain id ‖ height u64 ‖ SHA-256(data) ‖ public key[32] ‖ signature[64]
///
/// The signature covers everything before it; the header hash is SHA-256 of that same prefix.
/// (Stands in for the Block module's encoding until it lands.)
struct TestChain {
    let chainID: String
    let proposer: Curve25519.Signing.PrivateKey

    init(chainID: String = "p2p-test", proposer: Curve25519.Signing.PrivateKey = .init()) {
        self.chainID = chainID
        self.proposer = proposer
    }

    var proposerAddress: [UInt8] { Array(SHA256.hash(data: proposer.publicKey.rawRepresentation)) }

    func block(height: UInt64, data: [UInt8]? = nil, signer: Curve25519.Signing.PrivateKey? = nil,
               chainID overrideChain: String? = nil) -> P2PBlock {
        let key = signer ?? proposer
        let payload = data ?? Array("block \(height) of \(chainID)".utf8)
        var header = Array("EVT1".utf8)
        let id = Array((overrideChain ?? chainID).utf8)
        header.append(UInt8(id.count))
        header += id
        withUnsafeBytes(of: height.bigEndian) { header += $0 }
        header += Array(SHA256.hash(data: payload))
        header += Array(key.publicKey.rawRepresentation)
        let hash = Array(SHA256.hash(data: header))
        let signature = Array(try! key.signature(for: header))
        return P2PBlock(height: height, headerHash: hash, encodedSignedHeader: header + signature,
                        encodedData: payload)
    }

    func blocks(_ range: ClosedRange<UInt64>) -> [P2PBlock] {
        range.map { block(height: $0) }
    }
}

/// Checks blocks of the test encoding for real: chain id, height, hash, data binding, proposer
/// address and Ed25519 signature.
struct TestChainValidator: GossipValidator {
    let chainID: String
    let proposerAddress: [UInt8]

    init(_ chain: TestChain) {
        chainID = chain.chainID
        proposerAddress = chain.proposerAddress
    }

    func validate(_ block: P2PBlock) -> GossipVerdict {
        let bytes = block.encodedSignedHeader
        let id = Array(chainID.utf8)
        let headerLength = 4 + 1 + id.count + 8 + 32 + 32
        guard bytes.count == headerLength + 64, bytes.starts(with: Array("EVT1".utf8)) else {
            return .reject("not a test header")
        }
        guard bytes[4] == UInt8(id.count), Array(bytes[5..<(5 + id.count)]) == id else {
            return .reject("wrong chain id")
        }
        var height: UInt64 = 0
        for b in bytes[(5 + id.count)..<(13 + id.count)] { height = height << 8 | UInt64(b) }
        guard height == block.height else { return .reject("height \(height) ≠ announced \(block.height)") }
        let header = Array(bytes[0..<headerLength])
        guard Array(SHA256.hash(data: header)) == block.headerHash else { return .reject("header hash mismatch") }
        guard Array(bytes[(13 + id.count)..<(45 + id.count)]) == Array(SHA256.hash(data: block.encodedData)) else {
            return .reject("data does not match the header")
        }
        let key = Array(bytes[(45 + id.count)..<headerLength])
        guard Array(SHA256.hash(data: key)) == proposerAddress else { return .reject("not the proposer") }
        guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key),
              publicKey.isValidSignature(bytes[headerLength...], for: header) else {
            return .reject("bad signature")
        }
        return .accept
    }
}

/// An in-memory `BlockSource`: the blocks a test node holds. Records the largest request it served.
final class MemoryBlockSource: BlockSource {
    private struct State {
        var blocks: [UInt64: P2PBlock] = [:]
        var height: UInt64 = 0
        var largestRequest = 0
        var requests = 0
        var failing = false
    }

    private let state = NIOLockedValueBox(State())

    init(_ blocks: [P2PBlock] = []) {
        add(blocks)
    }

    func add(_ blocks: [P2PBlock]) {
        state.withLockedValue { s in
            for b in blocks {
                s.blocks[b.height] = b
                s.height = max(s.height, b.height)
            }
        }
    }

    /// Makes `currentHeight` claim `height` regardless of what is held (a store that lost blocks).
    func claim(height: UInt64) {
        state.withLockedValue { $0.height = height }
    }

    /// Makes reads throw, like a failing disk.
    func setFailing(_ failing: Bool) {
        state.withLockedValue { $0.failing = failing }
    }

    var largestRequest: Int { state.withLockedValue { $0.largestRequest } }
    var requests: Int { state.withLockedValue { $0.requests } }

    func currentHeight() -> UInt64 { state.withLockedValue { $0.height } }

    struct ReadFailure: Error {}

    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        try state.withLockedValue { s in
            s.requests += 1
            s.largestRequest = max(s.largestRequest, count)
            if s.failing { throw ReadFailure() }
            var out: [P2PBlock] = []
            var h = from
            while out.count < count, let b = s.blocks[h] {
                out.append(b)
                h += 1
            }
            return out
        }
    }
}
