import Primitives
import Chain
import Store

/// Builds the next block as the proposer (SPEC §3): data with metadata, header, execution, the
/// proposer's signature. Storing it, gossiping it and the signer's high-water mark are up to the
/// caller.
public struct BlockBuilder: Sendable {
    public let signer: BlockSigner
    public let executor: BlockingExecutor

    public init(signer: BlockSigner, executor: any Executor) {
        self.signer = signer
        self.executor = BlockingExecutor(executor)
    }

    /// The block after `state` with `txs` at `time` (unix ns). Blocking (the executor may be
    /// remote): call it from a thread that may block.
    ///
    /// The chain's first block carries the genesis start time (SPEC §3) whatever `time` says, and
    /// a `time` before the last block's (a clock stepping back) is raised to it, so the block
    /// never breaks the time rule.
    public func build(on state: State, txs: [[UInt8]], time requested: UInt64,
                      version: Version = Version()) throws(BuildError) -> BlockCommit {
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
        let result: ExecutionResult
        do throws(ExecutionError) {
            result = try executor.executeTxs(txs, height: height, time: time, previousRoot: state.appHash)
        } catch {
            throw .execution(error)
        }
        let signed: SignedHeader
        do throws(SigningError) {
            signed = try signer.sign(header: header, data: data)
        } catch {
            throw .signing(error)
        }
        var next = state
        next.lastBlockHeight = height
        next.lastBlockTime = time
        next.lastHeaderHash = header.hash
        next.lastDataHash = data.fullHash
        next.appHash = result.stateRoot
        next.nextProposerAddress = State.nextProposer(previous: state.nextProposerAddress,
                                                      executorNamed: result.nextProposerAddress,
                                                      blockProposer: signer.address)
        return BlockCommit(signedHeader: signed, data: data, state: next, executorWrites: result.writes)
    }
}

public enum BuildError: Error, Sendable, Equatable, CustomStringConvertible {
    case execution(ExecutionError)
    case signing(SigningError)
    /// The state names another key as the next proposer: nothing was executed or signed.
    case notProposer(height: UInt64, expected: [UInt8], signer: [UInt8])

    public var description: String {
        switch self {
        case .execution(let e): return e.description
        case .signing(let e): return e.description
        case let .notProposer(h, expected, signer):
            return "the chain expects \(Hex.encode(expected)) to sign block \(h), not \(Hex.encode(signer))"
        }
    }
}
