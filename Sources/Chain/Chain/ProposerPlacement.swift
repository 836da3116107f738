/// What the chain state says about who signs which height (ev-node v1.2 rotation, reference §1):
/// the store answers from the rotations it recorded with the blocks. Lets components that see
/// headers ahead of the store (proven peer heights, the equivocation fence) tell a header the
/// chain can place from a stranger's.
package protocol ProposerPlacement: Sendable {
    /// Who was (or is) expected to sign block `height`; nil when the chain has not said yet
    /// (above the next height to be stored).
    func expectedProposer(at height: UInt64) -> [UInt8]?
    /// Every key the chain has named as a proposer so far (the genesis proposer included).
    var namedProposers: Set<[UInt8]> { get }
}
