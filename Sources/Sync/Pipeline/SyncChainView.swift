import Chain

/// What `SyncBuffer` asks of the chain while it sorts candidates: the pipeline answers from its
/// store, DA's authoritative headers and its validator; a test answers from tables.
package protocol SyncChainView {
    /// The stored header at `height` (at or below the store height), if it can be read.
    func storedHeader(at height: UInt64) -> SignedHeader?
    /// The first validly signed header DA holds at `height`, while that height is not final.
    func authoritativeHeader(at height: UInt64) -> AuthoritativeHeaders.Entry?
    /// Who the state says signs `height` (known for the next height only).
    func expectedProposer(at height: UInt64) -> [UInt8]?
    /// Whether the chain has ever named `header`'s proposer (genesis or a rotation).
    func isPlaceable(_ header: Header) -> Bool
}
