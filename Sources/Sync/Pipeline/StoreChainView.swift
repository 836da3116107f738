import Chain
import Store

/// The chain as the sync pipeline's buffer sees it: the store, DA's authoritative headers and
/// the genesis proposer.
struct StoreChainView: SyncChainView {
    let store: BlockStore
    let authority: AuthoritativeHeaders?
    let genesisProposer: [UInt8]

    func storedHeader(at height: UInt64) -> SignedHeader? { try? store.signedHeader(at: height) }

    func authoritativeHeader(at height: UInt64) -> AuthoritativeHeaders.Entry? { authority?.entry(at: height) }

    func expectedProposer(at height: UInt64) -> [UInt8]? { store.expectedProposer(at: height) }

    /// Whether the chain has ever named `header`'s proposer (genesis or a rotation): only such a
    /// header counts as known (the equivocation fence). A self-signed header of a key the chain
    /// never named is anyone's; it may still become valid once a rotation names its key, and is
    /// then counted when it is applied.
    func isPlaceable(_ header: Header) -> Bool {
        header.proposerAddress == genesisProposer || store.namedProposers.contains(header.proposerAddress)
    }
}
