import DAClient
import Chain
import Sync
@testable import Config
import Foundation
import P2PSync
import Synchronization
import Testing
import ProcessKit
import TestSupport

// The catchup suites' scenario (CatchupTests, CatchupFenceTests, FaultyDATests) on the one
// harness, `Testnet`, and their own peers: real P2P nodes (the project's `P2PService`, libp2p
// over TCP) that prove heights they will not serve, or lie.

/// A catchup scenario's two homes in a `Testnet`: the sequencer's, which makes history, loses its
/// disk and is restarted with `--catchup-timeout`, and a full node's with the same genesis. Both
/// log JSON (the tests read the catchup lines' fields).
struct CatchupChain {
    let net: Testnet
    let sequencer: NodeProcess
    let full: NodeProcess

    init(_ net: Testnet) throws {
        self.net = net
        sequencer = try net.makeNode(name: "sequencer", aggregator: true, jsonLogs: true)
        full = try net.makeNode(name: "fullnode", genesisFrom: sequencer, jsonLogs: true)
    }

    var proposerHex: String { get throws { try sequencer.proposerHex } }
    var signerStateFile: String { sequencer.layout.signerStateFile }

    /// The last height the sequencer's key signed, from `config/signer.state`.
    func signerMark() throws -> UInt64? { try sequencer.signerMark() }

    /// A lost disk: the store goes, `config/` (keys and the signer's mark) stays.
    func wipeAggregatorStore() throws { try sequencer.wipeStore() }

    /// Every header blob of this chain on the DA layer: for each rollup height, the header
    /// hashes (lowercase hex) in DA order, one entry per blob.
    func headersOnDA(_ da: LocalDAProcess) async throws -> [UInt64: [String]] {
        let client = try da.client()
        defer { Task { [client] in await client.shutdown() } }
        let namespace = DANamespace(name: net.chainID + "-headers")
        return try await DAContents.read(client, headerNamespace: namespace, dataNamespace: namespace,
                                         chainID: net.chainID, proposer: try sequencer.genesis.proposerAddress).headerHashes
    }
}

extension NodeProcess {
    /// Starts a run with `flags` and returns the node (a run of a scenario's home).
    func started(_ flags: [String]) async throws -> NodeProcess {
        try await start(flags: flags)
        return self
    }
}

// MARK: Peers that claim heights they cannot serve

/// Blocks the genesis proposer signed beyond what DA holds, as a peer that got them by gossip
/// would hold them: signed with the aggregator's own key (read from its `config/`), chained to
/// nothing in particular, data empty. Enough to prove a height; never applied by the node.
func catchupSignedBlocks(aggregator: NodeProcess, heights: ClosedRange<UInt64>) throws -> [P2PBlock] {
    let genesis = try aggregator.genesis
    let signer = BlockSigner(keyFile: try aggregator.signerKey())
    return try heights.map { h in
        let header = Header(height: h, time: genesis.startTimeNanoseconds + h * 1_000_000_000,
                            lastHeaderHash: Array(repeating: 0xee, count: 32), dataHash: BlockData.emptyDataHash,
                            appHash: Array(repeating: 0, count: 32), proposerAddress: signer.address,
                            chainID: genesis.chainID)
        let signed = try signer.sign(header: header)
        let data = BlockData(metadata: Metadata(chainID: genesis.chainID, height: h, time: header.time, lastDataHash: []),
                             txs: [])
        return P2PBlock(signedHeader: signed, data: data)
    }
}

/// What a peer serves when it claims a height whose blocks it will not give: its head is
/// `head` at `announced` (its proof, SPEC §6; nil with an empty chain), every other range
/// request gets nothing (NOT_FOUND).
struct CatchupUnservableSource: BlockSource {
    let announced: UInt64
    let head: P2PBlock?
    func currentHeight() -> UInt64 { announced }
    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        guard let head, from == announced, count == 1 else { return [] }
        return [head]
    }
}

/// A real P2P node (the project's `P2PService`, libp2p over TCP) whose head is `head` at
/// `height` — with a block the proposer signed, a proven height it cannot serve — and which
/// answers every other range request with nothing; it dials `dialling` (multiaddrs or
/// host:port). Returns it and its multiaddr.
func catchupStartUnservablePeer(aggregator: NodeProcess, announcing height: UInt64, head: P2PBlock?,
                                dialling: [String] = []) async throws -> (RunningP2PPeer, String) {
    try await startUnservingPeer(genesis: try aggregator.genesis, announcing: height, head: head, dialling: dialling)
}

/// A liar: its head answer claims `height` with a header that names the genesis proposer but is
/// signed by another key — an unproven claim (SPEC §6) — and it serves nothing.
func catchupStartLiar(aggregator: NodeProcess, claiming height: UInt64) async throws -> (RunningP2PPeer, String) {
    let genesis = try aggregator.genesis
    let impostor = BlockSigner(keyFile: KeyFile.generate())
    let header = Header(height: height, time: genesis.startTimeNanoseconds + 1_000_000_000,
                        lastHeaderHash: [UInt8](repeating: 1, count: 32), dataHash: BlockData(metadata: nil, txs: []).dataHash,
                        appHash: [UInt8](repeating: 0, count: 32), proposerAddress: genesis.proposerAddress,
                        chainID: genesis.chainID)
    var signed = try impostor.sign(header: header)
    // The signer claims to be the proposer; only the signature gives it away.
    signed = SignedHeader(header: signed.header, signature: signed.signature,
                          signer: Signer(address: genesis.proposerAddress, pubKey: signed.signer.pubKey))
    let head = P2PBlock(signedHeader: signed, data: BlockData(metadata: nil, txs: []))
    return try await startUnservingPeer(genesis: genesis, announcing: height, head: head)
}

/// A P2P node of `genesis`'s chain that answers head requests with `head` at `height` and every
/// range request with nothing.
private func startUnservingPeer(genesis: Genesis, announcing height: UInt64,
                                head: P2PBlock?, dialling: [String] = []) async throws -> (RunningP2PPeer, String) {
    let service = P2PService(config: P2PConfig(listen: HostPort(host: "127.0.0.1", port: 0),
                                               peers: try dialling.map { try P2PPeerAddress(parsing: $0) }),
                             nodeKey: KeyFile.generate(), chainID: genesis.chainID,
                             source: CatchupUnservableSource(announced: height, head: head),
                             validator: SignedBlockValidator(genesis: genesis),
                             provenHeights: ProvenPeerHeights(validator: BlockValidator(genesis: genesis)))
    let peer = RunningP2PPeer(service)
    try await waitUntil("the P2P peer to listen") {
        if peer.hasEnded { throw TestFailure("the P2P peer ended before it listened") }
        return service.listenAddress != nil
    }
    return (peer, "/ip4/127.0.0.1/tcp/\(service.listenAddress?.port ?? 0)/p2p/\(service.localID)")
}

/// A `P2PService` running in a task of the test (its `run()`), read through like the service
/// itself; `shutdown()` cancels it and waits for `run()` to return.
@dynamicMemberLookup
final class RunningP2PPeer: Sendable {
    let service: P2PService
    private let task: Task<Void, Never>
    private let ended = Ended()

    private final class Ended: Sendable {
        private let flag = Mutex(false)
        var value: Bool { flag.withLock { $0 } }
        func set() { flag.withLock { $0 = true } }
    }

    init(_ service: P2PService) {
        self.service = service
        let ended = self.ended
        task = Task {
            do {
                try await service.run()
            } catch {
                print("[p2p peer] run() failed: \(error)")
            }
            ended.set()
        }
    }

    subscript<T>(dynamicMember path: KeyPath<P2PService, T>) -> T { service[keyPath: path] }

    var hasEnded: Bool { ended.value }

    func broadcast(block: P2PBlock) { service.broadcast(block: block) }

    func shutdown() async {
        task.cancel()
        await task.value
    }
}
