import Prometheus

/// The node's Prometheus metrics. One registry per node (no global state), rendered by `/metrics`.
public final class NodeMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    let phaseGauges: [NodePhase: Gauge]
    public let storeHeight: Gauge
    public let finalizedHeight: Gauge
    public let daHeadHeight: Gauge
    public let p2pMaxHeight: Gauge
    public let peers: Gauge
    public let catchupTarget: Gauge
    public let catchupBlocksPerSecond: Gauge
    public let blocksApplied: Counter
    public let blocksProduced: Counter
    public let blocksRejected: Counter
    public let doubleSignEvidence: Gauge
    public let rollbacks: Counter
    public let rollbackFailures: Counter
    public let divergences: Counter

    public init() {
        var gauges: [NodePhase: Gauge] = [:]
        for phase in NodePhase.allCases {
            gauges[phase] = registry.makeGauge(name: "evnode_phase", labels: [("phase", phase.rawValue)],
                                               help: "1 for the node's current phase, 0 for the others")
        }
        phaseGauges = gauges
        storeHeight = registry.makeGauge(name: "evnode_store_height", help: "Height of the last block in the store")
        finalizedHeight = registry.makeGauge(name: "evnode_finalized_height", help: "Highest DA-included (finalized) height")
        daHeadHeight = registry.makeGauge(name: "evnode_da_head_height", help: "Latest DA height observed")
        p2pMaxHeight = registry.makeGauge(name: "evnode_p2p_max_height", help: "Highest height announced by a connected peer")
        peers = registry.makeGauge(name: "evnode_peers", help: "Connected peers")
        catchupTarget = registry.makeGauge(name: "evnode_catchup_target_height", help: "Height the catchup is heading for")
        catchupBlocksPerSecond = registry.makeGauge(name: "evnode_catchup_blocks_per_second", help: "Blocks applied per second while syncing")
        blocksApplied = registry.makeCounter(name: "evnode_blocks_applied_total", help: "Blocks validated, executed and stored from DA or P2P")
        blocksProduced = registry.makeCounter(name: "evnode_blocks_produced_total", help: "Blocks produced by this node")
        blocksRejected = registry.makeCounter(name: "evnode_blocks_rejected_total", help: "Blocks dropped by validation")
        doubleSignEvidence = registry.makeGauge(name: "evnode_double_sign_evidence", help: "Double-sign evidence records held")
        rollbacks = registry.makeCounter(name: "evnode_rollbacks_total", help: "Rollbacks to a common ancestor")
        rollbackFailures = registry.makeCounter(name: "evnode_rollback_failures_total",
                                                help: "Divergence recovery attempts that failed and were retried")
        divergences = registry.makeCounter(name: "evnode_divergences_total",
                                           help: "Divergences from DA's chain detected (each recovered or halted)")
    }

    public func setPhase(_ phase: NodePhase) {
        for (p, gauge) in phaseGauges {
            gauge.set(to: p == phase ? 1.0 : 0.0)
        }
    }

    public func text() -> String {
        registry.emitToString()
    }
}
