import Store
import Prometheus
import Synchronization
import Telemetry

/// The node's Prometheus metrics. One registry per node (no global state), rendered by `/metrics`
/// on the RPC port and by the Prometheus listener (`instrumentation.prometheus`): evnode's own
/// series (phase, catchup, fence, HA, DA window, fees, memory) and ev-node's (`evnode`).
package final class NodeMetrics: Sendable {
    package let registry = PrometheusCollectorRegistry()
    /// ev-node's `<namespace>_sequencer_*` and `<namespace>_p2p_*`, fed where the events happen.
    package let evnode: EvNodeMetrics

    let phaseGauges: [NodePhase: Gauge]
    package let storeHeight: Gauge
    package let finalizedHeight: Gauge
    package let daHeadHeight: Gauge
    package let p2pMaxHeight: Gauge
    package let peers: Gauge
    package let catchupTarget: Gauge
    package let catchupBlocksPerSecond: Gauge
    package let blocksApplied: Counter
    package let blocksProduced: Counter
    package let blocksRejected: Counter
    package let doubleSignEvidence: Gauge
    package let rollbacks: Counter
    package let rollbackFailures: Counter
    package let divergences: Counter
    package let haLeader: Gauge
    package let daFailedRequests: Counter
    package let daBadBlobs: Counter
    package let daHeldDataBytes: Gauge
    package let daAuthFailing: Gauge
    package let haReplicatedHeight: Gauge
    package let daGasPrice: Gauge
    package let daPendingBlocks: Gauge
    package let productionPaused: Gauge
    let memory: MemoryGauges
    /// Where `text()` reads RocksDB's memory properties from, once the store is open.
    private let storeMemory = Mutex<(@Sendable () -> StoreMemoryUsage)?>(nil)

    package init(namespace: String = "evnode", chainID: String = "") {
        evnode = EvNodeMetrics(namespace: namespace, chainID: chainID)
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
        memory = MemoryGauges(registry: registry)
    }

    fileprivate static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        // The whole name is given; no unit suffix is appended.
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    fileprivate static func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String,
                              labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: descriptor(name, help), labels: labels)
    }

    private static func counter(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String) -> Counter {
        registry.makeCounter(descriptor: descriptor(name, help))
    }

    package func setPhase(_ phase: NodePhase) {
        for (p, gauge) in phaseGauges {
            gauge.set(to: p == phase ? 1.0 : 0.0)
        }
    }

    /// Reports `store`'s RocksDB memory properties with every scrape.
    package func observe(store: BlockStore) {
        storeMemory.withLock { $0 = { store.memoryUsage() } }
    }

    /// The metrics now; memory figures are sampled for this very scrape.
    package func text() -> String {
        memory.sample(process: ProcessMemory.current(), store: storeMemory.withLock { $0 }?())
        var text = PrometheusText()
        evnode.render(into: &text)
        return registry.emitToString() + text.output
    }
}

/// Resident memory and where it sits: glibc's heap (in use or free inside its arenas: free space
/// the allocator keeps is fragmentation, not a leak) and RocksDB's own accounting.
struct MemoryGauges: Sendable {
    let resident: Gauge
    let mallocHeap: Gauge
    let mallocInUse: Gauge
    let mallocFree: Gauge
    let mallocMapped: Gauge
    let tableReaders: Gauge
    let memtables: Gauge
    let memtablesPinned: Gauge
    let blockCache: Gauge
    let blockCachePinned: Gauge
    let blockCacheCapacity: Gauge
    let liveVersions: Gauge
    let sstFiles: Gauge
    let estimatedKeys: Gauge

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String, _ help: String) -> Gauge { NodeMetrics.gauge(registry, name, help) }
        resident = gauge("evnode_process_resident_bytes", "Resident memory of the node process (RSS)")
        mallocHeap = gauge("evnode_malloc_heap_bytes", "Memory glibc's allocator holds from the OS (arenas and mmapped chunks)")
        mallocInUse = gauge("evnode_malloc_in_use_bytes", "Memory allocated with malloc and not freed")
        mallocFree = gauge("evnode_malloc_free_bytes", "Free memory kept inside glibc's arenas (fragmentation)")
        mallocMapped = gauge("evnode_malloc_mmapped_bytes", "Large allocations glibc serves with mmap")
        tableReaders = gauge("evnode_rocksdb_table_readers_bytes",
                             "RocksDB index and filter blocks held outside the block cache (rocksdb.estimate-table-readers-mem)")
        memtables = gauge("evnode_rocksdb_memtables_bytes", "RocksDB active and unflushed memtables (rocksdb.cur-size-all-mem-tables)")
        memtablesPinned = gauge("evnode_rocksdb_memtables_all_bytes",
                                "RocksDB memtables including those pinned by iterators (rocksdb.size-all-mem-tables)")
        blockCache = gauge("evnode_rocksdb_block_cache_bytes", "RocksDB block cache usage (rocksdb.block-cache-usage)")
        blockCachePinned = gauge("evnode_rocksdb_block_cache_pinned_bytes", "RocksDB block cache entries pinned in use")
        blockCacheCapacity = gauge("evnode_rocksdb_block_cache_capacity_bytes", "RocksDB block cache capacity")
        liveVersions = gauge("evnode_rocksdb_live_versions", "RocksDB LSM versions kept alive (rocksdb.num-live-versions)")
        sstFiles = gauge("evnode_rocksdb_sst_bytes", "Size of RocksDB's SST files on disk")
        estimatedKeys = gauge("evnode_rocksdb_estimated_keys", "RocksDB's estimate of the keys in the store")
    }

    func sample(process: ProcessMemory, store: StoreMemoryUsage?) {
        resident.set(to: Double(process.residentBytes))
        mallocHeap.set(to: Double(process.mallocHeapBytes))
        mallocInUse.set(to: Double(process.mallocInUseBytes))
        mallocFree.set(to: Double(process.mallocFreeBytes))
        mallocMapped.set(to: Double(process.mallocMappedBytes))
        guard let store else { return }
        tableReaders.set(to: Double(store.tableReadersBytes))
        memtables.set(to: Double(store.memtablesBytes))
        memtablesPinned.set(to: Double(store.memtablesPinnedBytes))
        blockCache.set(to: Double(store.blockCacheBytes))
        blockCachePinned.set(to: Double(store.blockCachePinnedBytes))
        blockCacheCapacity.set(to: Double(store.blockCacheCapacityBytes))
        liveVersions.set(to: Double(store.liveVersions))
        sstFiles.set(to: Double(store.sstFilesBytes))
        estimatedKeys.set(to: Double(store.estimatedKeys))
    }
}
