import Chain
/// What the node serves to its peers. The node implements it over its block store.
package protocol BlockSource: Sendable {
    /// Highest height the node holds (0 when it holds none). Called on event-loop threads, so it
    /// must be cheap and must not block (an in-memory value, not a disk read).
    func currentHeight() -> UInt64

    /// Blocks `from`, `from + 1`, … in height order, at most `count` of them, stopping at the first
    /// height the node does not hold (an empty array when it holds none of them).
    /// Called from a task, never on an event loop; it may read the disk.
    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock]

    /// The height of the block whose header hash is `hash`, nil when the node holds none
    /// (go-header's hash requests). Called from a task; it may read the disk.
    func height(ofHeaderHash hash: [UInt8]) async throws -> UInt64?

    /// The DA heights that include the header and the data of block `height` (0 when not known
    /// to be included): served as the envelopes' `da_height_hint`, as ev-node's store does.
    /// Called from a task; it may read the disk.
    func daHeightHints(at height: UInt64) async throws -> (header: UInt64, data: UInt64)
}

extension BlockSource {
    package func height(ofHeaderHash hash: [UInt8]) async throws -> UInt64? { nil }
    package func daHeightHints(at height: UInt64) async throws -> (header: UInt64, data: UInt64) { (0, 0) }
}

/// The outcome of checking a block that a peer sent.
package enum GossipVerdict: Sendable, Equatable {
    /// Valid and worth relaying / delivering.
    case accept
    /// Not wrong, but not worth relaying (for example already known or too old).
    case ignore
    /// Wrong: bad encoding, wrong chain, bad signature, wrong proposer, inconsistent height or
    /// hash. The peer that sent it is disconnected and banned.
    case reject(String)
}

/// Decides whether what a peer sent is acceptable. Runs on event-loop threads for gossip, so it
/// must not block; a signature check is fine.
package protocol GossipValidator: Sendable {
    /// A block of a range answer, both halves from one peer.
    func validate(_ block: P2PBlock) -> GossipVerdict

    /// A gossiped signed header on its own (ev-node gossips header and data on separate topics):
    /// chain id, signer and signature. Gossiped data is paired with it by the service (its txs
    /// must hash to the header's `data_hash`, see `PendingGossip`).
    func validate(header: SignedHeader) -> GossipVerdict
}
