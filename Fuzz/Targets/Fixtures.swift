import DAClient
import Chain
import Sync
import Config
import Crypto
import NIOCore
import NIOEmbedded
import P2PSync
import Synchronization
import Libp2p

/// What the targets run against: the chain of `shared/vectors` (its chain id, genesis time and
/// proposer, whose seed is the independent encoder's test seed `01…01`), a few blocks of it made
/// with the project's own builder types, and fixed peer keys. Fixed, so that an input means the
/// same thing in every run.
enum Fixtures {
    static let chainID = "evnode-vectors"
    static let proposer = key(0x01)
    static let signer = BlockSigner(privateKey: proposer)
    static let genesis = Genesis(chainID: chainID, startTimeNanoseconds: 1_700_000_000_000_000_000,
                                 proposerAddress: signer.address)
    static let validator = BlockValidator(genesis: genesis)
    /// The fuzzed node's own key, and the peer it talks to (which signs its pubsub messages).
    static let nodeKey = key(0x03)
    static let peerKey = key(0x04)
    static let headerNamespace = DANamespace(name: "evnode-fuzz-headers")
    static let dataNamespace = DANamespace(name: "evnode-fuzz-data")

    static func key(_ byte: UInt8) -> Curve25519.Signing.PrivateKey {
        try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: byte, count: 32))
    }

    /// Blocks 1…12, one second apart; every third has no txs, one carries a tx that is not `k=v`.
    static let blocks: [(signed: SignedHeader, data: BlockData)] = {
        var out: [(SignedHeader, BlockData)] = []
        var lastHeaderHash: [UInt8] = []
        var lastDataHash: [UInt8] = []
        for height in UInt64(1)...12 {
            let time = genesis.startTimeNanoseconds + (height - 1) * 1_000_000_000
            var txs: [[UInt8]] = height % 3 == 0 ? [] : (0..<height % 4).map { Array("k\(height)-\($0)=v\($0)".utf8) }
            if height == 7 { txs.append([0x00, 0xff, 0x3d]) }
            let data = BlockData(metadata: Metadata(chainID: chainID, height: height, time: time, lastDataHash: lastDataHash),
                                 txs: txs)
            let header = Header(height: height, time: time, lastHeaderHash: lastHeaderHash, dataHash: data.dataHash,
                                appHash: Array(SHA256.hash(data: Array("state \(height)".utf8))),
                                proposerAddress: signer.address, chainID: chainID)
            let signed = try! signer.sign(header: header)
            out.append((signed, data))
            lastHeaderHash = header.hash
            lastDataHash = data.fullHash
        }
        return out
    }()

    static let p2pBlocks: [P2PBlock] = blocks.map {
        P2PBlock(height: $0.signed.height, headerHash: $0.signed.header.hash,
                 encodedSignedHeader: $0.signed.encoded(), encodedData: $0.data.encoded())
    }

    /// A node holding `blocks`, as the header-ex server and the gossip path see its store.
    static let source = MemoryBlockSource(p2pBlocks)

    /// A fresh P2P service of a full node of the chain that holds no block yet (so gossip of any
    /// height is news to it), never started: its FloodSub, gossip validation and header-ex client
    /// run on connections the drivers hand it. Fresh per input, so that one input's seen messages
    /// and bans do not change what the next one does. The counter sees its validator's verdicts.
    static func service() -> (P2PService, CountingValidator) {
        let verdicts = CountingValidator(SignedBlockValidator(genesis: genesis))
        let service = P2PService(config: P2PConfig(listen: HostPort(host: "127.0.0.1", port: 0), peers: []),
                                 nodeKey: KeyFile(privateKey: nodeKey), chainID: chainID, source: MemoryBlockSource([]),
                                 validator: verdicts, provenHeights: ProvenPeerHeights(validator: validator),
                                 logger: Libp2pInputDrivers.quietLogger)
        return (service, verdicts)
    }

    /// The channel connection objects hold; the drivers never touch it. One for all inputs:
    /// a channel's pipeline lives until the channel is closed.
    static func idleChannel() -> any Channel { sharedChannel }
    private static let sharedChannel: any Channel = EmbeddedChannel()
}

/// The node's own validator, with a count of the gossiped headers it accepted (how far gossip got
/// past the signature check).
final class CountingValidator: GossipValidator {
    let inner: SignedBlockValidator
    private let acceptedHeaders = Mutex(0)

    init(_ inner: SignedBlockValidator) { self.inner = inner }

    var headersAccepted: Int { acceptedHeaders.withLock { $0 } }

    func validate(_ block: P2PBlock) -> GossipVerdict { inner.validate(block) }

    func validate(header: SignedHeader) -> GossipVerdict {
        let verdict = inner.validate(header: header)
        if verdict == .accept { acceptedHeaders.withLock { $0 += 1 } }
        return verdict
    }
}

/// Blocks held in memory, served as a node serves its store.
struct MemoryBlockSource: BlockSource {
    let blocks: [P2PBlock]

    init(_ blocks: [P2PBlock]) { self.blocks = blocks }

    func currentHeight() -> UInt64 { UInt64(blocks.count) }

    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        guard from >= 1, from <= UInt64(blocks.count), count > 0 else { return [] }
        let start = Int(from - 1)
        return Array(blocks[start..<min(blocks.count, start + count)])
    }

    func height(ofHeaderHash hash: [UInt8]) async throws -> UInt64? {
        blocks.first { $0.headerHash == hash }?.height
    }
}
