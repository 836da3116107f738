import Sync
import Chain
import Store
import Execution
import Production
import Config

/// Why the node stopped by itself. Every case names what an operator must look at; the process
/// exits non-zero with the description.
package enum NodeFailure: Error, Sendable, CustomStringConvertible {
    /// Catchup refused to promote: producing could fork the chain or sign a height twice.
    case failClosed(String)
    /// Divergence recovery cannot proceed without an operator: DA's chain differs at or below the
    /// finalized height, DA holds no consistent chain, or the executor state disagrees with
    /// blocks that match. Nothing was changed.
    case divergence(DivergenceRecoveryError)
    /// The sync pipeline stopped (store or executor failure).
    case syncer(ApplyError)
    case production(ProductionError)
    case store(StoreError)
    /// Pruning the KV state behind finality failed (the store could not be read or written).
    case pruning(ExecutionError)
    /// Pruning old blocks (`pruning.pruning_mode`) failed: the store could not be read or written.
    case blockPruning(StoreError)
    case config(ConfigError)
    /// The execution layer refused, answered wrongly, or computes another chain than the store's.
    case execution(ExecutionError)
    /// While this node aggregated, another source showed a header signed by the proposer key at
    /// or above the height this node signs next: a second live signer (`SecondSignerWatch`).
    case secondSigner(SecondSignerSighting)
    /// A full node found forced transactions omitted past their grace boundary (the sequencer is
    /// malicious). The node stays up, halted, until the operator stops it.
    case forcedInclusion(ForcedInclusionViolation)
    /// A part of the node failed with an error of its own kind: `component` is the part that ran
    /// it, `underlying` the error as it was thrown (typed, never flattened to a string: the DA
    /// follower's `DAError`, the etcd client's `EtcdError`, the service group's error …).
    case failed(NodeComponent, underlying: any Error)

    /// The failure of the child `component` ran: a `NodeFailure` already names its part and is
    /// kept as it is; any other error is kept whole, blamed on `component`.
    package init(component: NodeComponent, underlying: any Error) {
        if let failure = underlying as? NodeFailure {
            self = failure
        } else {
            self = .failed(component, underlying: underlying)
        }
    }

    package var description: String {
        switch self {
        case .failClosed(let why): return "catchup failed closed: \(why)"
        case .divergence(let why): return "divergence recovery halted the node: \(why)"
        case .syncer(let e): return "sync pipeline stopped: \(e)"
        case .production(let e): return "block production stopped: \(e)"
        case .store(let e): return "store: \(e)"
        case .pruning(let e): return "pruning the KV state: \(e)"
        case .blockPruning(let e): return "pruning old blocks: \(e)"
        case .config(let e): return e.description
        case .execution(let e): return "execution layer: \(e)"
        case .secondSigner(let sighting): return "second live signer: \(sighting)"
        case .forcedInclusion(let violation): return violation.description
        case .failed(let component, let error): return "\(component) stopped: \(error)"
        }
    }

    /// Process exit status: 3 when an operator decision is needed (a fail-closed catchup, a
    /// divergence recovery cannot handle, a second live signer); 2 for configuration, flags or
    /// files found unusable before anything started (a remote signer that cannot be reached, has
    /// another key or chain, or refuses the token), as for a configuration error at load; 1 for
    /// everything else.
    package var exitStatus: Int32 {
        switch self {
        case .failClosed, .divergence, .secondSigner, .forcedInclusion: return 3
        case .config: return 2
        default: return 1
        }
    }
}
