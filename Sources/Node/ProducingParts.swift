import Production
import Config

/// The parts only a producing role has, kept by the node for `/status` and the dashboard.
struct ProducingParts: Sendable {
    let runtime: AggregatorRuntime
    let mark: any SignerMark
    /// `--max-pending-blocks`; nil when off.
    let backPressure: PendingBlocksGate?
}
