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
    public let haLeader: Gauge
    public let daFailedRequests: Counter
    public let daBadBlobs: Counter
    public let daHeldDataBytes: Gauge
    public let daAuthFailing: Gauge
    public let haReplicatedHeight: Gauge
    public let daGasPrice: Gauge
    public let daPendingBlocks: Gauge
    public let productionPaused: Gauge

    public init() {
        var gauges: [NodePhase: Gauge] = [:]
        for phase in NodePhase.allCases {
            gauges[phase] = Self.gauge(registry, "evnode_phase", "1 for the node's current phase, 0 for the others",
                                       labels: [("phase", phase.rawValue)])
        }
        phaseGauges = gauges
        storeHeight = Self.gauge(registry, "evnode_store_height", "Height of the last block in the store")
        finalizedHeight = Self.gauge(registry, "evnode_finalized_height", "Highest DA-included (finalized) height")
        daHeadHeight = Self.gauge(registry, "evnode_da_head_height", "Latest DA height observed")
        p2pMaxHeight = Self.gauge(registry, "evnode_p2p_max_height", "Highest height announced by a connected peer")
        peers = Self.gauge(registry, "evnode_peers", "Connected peers")
        catchupTarget = Self.gauge(registry, "evnode_catchup_target_height", "Height the catchup is heading for")
        catchupBlocksPerSecond = Self.gauge(registry, "evnode_catchup_blocks_per_second", "Blocks applied per second while syncing")
        blocksApplied = Self.counter(registry, "evnode_blocks_applied_total", "Blocks validated, executed and stored from DA or P2P")
        blocksProduced = Self.counter(registry, "evnode_blocks_produced_total", "Blocks produced by this node")
        blocksRejected = Self.counter(registry, "evnode_blocks_rejected_total", "Blocks dropped by validation")
        doubleSignEvidence = Self.gauge(registry, "evnode_double_sign_evidence", "Double-sign evidence records held")
        rollbacks = Self.counter(registry, "evnode_rollbacks_total", "Rollbacks to a common ancestor")
        rollbackFailures = Self.counter(registry, "evnode_rollback_failures_total",
                                        "Divergence recovery attempts that failed and were retried")
        divergences = Self.counter(registry, "evnode_divergences_total",
                                   "Divergences from DA's chain detected (each recovered or halted)")
        daFailedRequests = Self.counter(registry, "evnode_da_failed_requests_total",
                                        "DA follower requests that failed with a fault (retried)")
        daBadBlobs = Self.counter(registry, "evnode_da_bad_blobs_total",
                                  "DA blobs ignored: undecodable, wrongly signed, or data no header will claim")
        daHeldDataBytes = Self.gauge(registry, "evnode_da_held_data_bytes",
                                     "Bytes of DA data blobs held while they wait for their header")
        daAuthFailing = Self.gauge(registry, "evnode_da_auth_failing",
                                   "1 while the DA node refuses this node's credentials (HTTP 401/403)")
        haLeader = Self.gauge(registry, "evnode_ha_leader", "1 while this HA node leads, 0 otherwise")
        haReplicatedHeight = Self.gauge(registry, "evnode_ha_replicated_height",
                                        "Height of the latest block committed to etcd, as last seen")
        daGasPrice = Self.gauge(registry, "evnode_da_gas_price",
                                "Gas price (utia per gas unit) the next DA submission offers; -1 while the DA node estimates")
        daPendingBlocks = Self.gauge(registry, "evnode_da_pending_blocks", "Produced blocks not yet on DA")
        productionPaused = Self.gauge(registry, "evnode_production_paused",
                                      "1 while --max-pending-blocks holds block production back")
    }

    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        // The whole name is given; no unit suffix is appended.
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private static func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String,
                              labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: descriptor(name, help), labels: labels)
    }

    private static func counter(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String) -> Counter {
        registry.makeCounter(descriptor: descriptor(name, help))
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
