import Primitives
import Chain
import Store

/// Builds the next block as the proposer (SPEC §3): data with metadata, header, execution, the
/// proposer's signature. Storing it, gossiping it and the signer's high-water mark are up to the
/// caller.
package struct BlockBuilder: Sendable {
    package let signer: BlockSigner
    package let executor: any Executor
    /// The executor when it runs in-process: what `build` calls on its caller's thread.
    package let local: (any SynchronousExecutor)?

    package init(signer: BlockSigner, executor: any Executor) {
        self.signer = signer
        self.executor = executor
        self.local = executor as? any SynchronousExecutor
    }

    /// The block after `state` with `txs` at `time` (unix ns), executed and signed. On a thread
    /// that may block, with an in-process executor (`local`; any other is `.notInProcess`): a
    /// remote one is awaited by async callers — `draft`, await `executeTxs`, then `finish`.
    ///
    /// The chain's first block carries the genesis start time (SPEC §3) whatever `time` says, and
    /// a `time` before the last block's (a clock stepping back) is raised to it, so the block
    /// never breaks the time rule.
    package func build(on state: State, txs: [[UInt8]], time requested: UInt64,
                      version: Version = Version()) throws(BuildError) -> BlockCommit {
        let draft = try self.draft(on: state, txs: txs, time: requested, version: version)
        let result: ExecutionResult
        do throws(ExecutionError) {
            guard let local else { throw .notInProcess(method: "executeTxs", height: draft.height) }
            result = try local.executeTxs(draft.data.txs, height: draft.height, time: draft.time,
                                             previousRoot: state.appHash)
        } catch {
            throw .execution(error)
        }
        return try finish(draft, result: result)
    }

    /// The unexecuted, unsigned block after `state`: what the executor is asked to execute
    /// (`draft.height`, `draft.time`, `draft.data.txs` on `draft.state.appHash`).
    package func draft(on state: State, txs: [[UInt8]], time requested: UInt64,
                      version: Version = Version()) throws(BuildError) -> BlockDraft {
        let height = state.nextHeight
        if !state.nextProposerAddress.isEmpty, state.nextProposerAddress != signer.address {
            throw .notProposer(height: height, expected: state.nextProposerAddress, signer: signer.address)
        }
        let time = state.isGenesis ? state.lastBlockTime : max(requested, state.lastBlockTime)
        let data = BlockData(metadata: Metadata(chainID: state.chainID, height: height, time: time,
                                                lastDataHash: state.lastDataHash),
                             txs: txs)
        let header = Header(version: version, height: height, time: time, lastHeaderHash: state.lastHeaderHash,
                            dataHash: data.dataHash, appHash: state.appHash, proposerAddress: signer.address,
                            chainID: state.chainID)
        return BlockDraft(state: state, header: header, data: data)
    }

    /// Signs the drafted block and returns it with the state after it, given what the
    /// executor answered for it. Blocking when the signer is remote.
    package func finish(_ draft: BlockDraft, result: ExecutionResult) throws(BuildError) -> BlockCommit {
        let signed: SignedHeader
        do throws(SigningError) {
            signed = try signer.sign(header: draft.header, data: draft.data)
        } catch {
            throw .signing(error)
        }
        var next = draft.state
        next.lastBlockHeight = draft.height
        next.lastBlockTime = draft.time
        next.lastHeaderHash = draft.header.hash
        next.lastDataHash = draft.data.fullHash
        next.appHash = result.stateRoot
        next.nextProposerAddress = State.nextProposer(previous: draft.state.nextProposerAddress,
                                                      executorNamed: result.nextProposerAddress,
                                                      blockProposer: signer.address)
        return BlockCommit(signedHeader: signed, data: draft.data, state: next, executorWrites: result.writes)
    }
}

/// A block drafted on `state`, not yet executed nor signed.
package struct BlockDraft: Sendable {
    package let state: State
    package let header: Header
    package let data: BlockData

    package var height: UInt64 { header.height }
    package var time: UInt64 { header.time }
}

package enum BuildError: Error, Sendable, Equatable, CustomStringConvertible {
    case execution(ExecutionError)
    case signing(SigningError)
    /// The state names another key as the next proposer: nothing was executed or signed.
    case notProposer(height: UInt64, expected: [UInt8], signer: [UInt8])

    package var description: String {
        switch self {
        case .execution(let e): return e.description
        case .signing(let e): return e.description
        case let .notProposer(h, expected, signer):
            return "the chain expects \(Hex.encode(expected)) to sign block \(h), not \(Hex.encode(signer))"
        }
    }
}
