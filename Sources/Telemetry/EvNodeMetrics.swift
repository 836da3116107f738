/// ev-node's Prometheus series (`block/internal/common/metrics.go`, `pkg/p2p/metrics.go`): the
/// same names, types, labels and meanings, so that an ev-node operator's Grafana dashboards and
/// alerts read an evnode unchanged. Every series carries `chain_id`; names are
/// `<namespace>_sequencer_*` and `<namespace>_p2p_*` (`instrumentation.namespace`, default
/// `evnode`). The parts are handed to the components where each event happens (producer,
/// sync pipeline, DA follower, DA submitter, P2P host), which keep the cells they need: counting
/// is one atomic add, never a lock or an actor hop.
package final class EvNodeMetrics: Sendable {
    package let namespace: String
    package let chainID: String
    package let chain = ChainSeries()
    package let sync = SyncSeries()
    package let submitter = SubmitterSeries()
    package let forcedInclusion = ForcedInclusionSeries()
    package let p2p = P2PSeries()

    package init(namespace: String = "evnode", chainID: String) {
        self.namespace = namespace
        self.chainID = chainID
    }

    /// Every series, in the text exposition format.
    package func render(into text: inout PrometheusText) {
        let seq = namespace + "_sequencer_"
        let chainLabel = [("chain_id", chainID)]
        func gauge(_ name: String, _ help: String, _ cell: GaugeCell) {
            text.family(seq + name, .gauge, help: help)
            text.sample(seq + name, chainLabel, cell.value)
        }
        func counter(_ name: String, _ help: String, _ cell: CounterCell) {
            text.family(seq + name, .counter, help: help)
            text.sample(seq + name, chainLabel, cell.value)
        }
        gauge("height", "Height of the chain: the last block produced or synced", chain.height)
        gauge("num_txs", "Transactions in the last block produced", chain.numTxs)
        gauge("block_size_bytes", "Bytes of transactions in the last block produced", chain.blockSizeBytes)
        gauge("total_txs", "Transactions in all blocks produced since start", chain.totalTxs)
        gauge("latest_block_height", "Height of the last block produced", chain.latestBlockHeight)
        text.family(seq + "txs_per_block", .histogram, help: "Transactions per produced block")
        text.histogram(seq + "txs_per_block", chainLabel, chain.txsPerBlock)
        text.family(seq + "operation_duration_seconds", .histogram, help: "Time an operation took, in seconds")
        for op in Operation.allCases {
            text.histogram(seq + "operation_duration_seconds", chainLabel + [("operation", op.rawValue)],
                           chain.operationDuration(op))
        }
        counter("da_retrieval_attempts_total", "DA height fetches attempted", sync.daRetrievalAttempts)
        counter("da_retrieval_successes_total", "DA height fetches the DA node answered", sync.daRetrievalSuccesses)
        counter("da_retrieval_failures_total", "DA height fetches that failed (retried)", sync.daRetrievalFailures)
        gauge("da_inclusion_height", "Highest block height below which every block is included on DA",
              sync.daInclusionHeight)
        gauge("forced_inclusion_txs_in_grace_period", "Forced-inclusion transactions now in their grace period",
              forcedInclusion.txsInGracePeriod)
        counter("forced_inclusion_txs_malicious_total", "Forced-inclusion transactions found malicious",
                forcedInclusion.txsMalicious)
        gauge("da_submitter_pending_blobs", "Blobs (headers and data) waiting to be posted to DA",
              submitter.pendingBlobs)
        counter("da_submitter_resends_total", "DA submissions tried again after a failure", submitter.resends)
        text.family(seq + "da_submitter_failures_total", .counter, help: "DA submission failures, by reason")
        for reason in DASubmitterFailureReason.allCases {
            text.sample(seq + "da_submitter_failures_total", chainLabel + [("reason", reason.rawValue)],
                        submitter.failures(reason).value)
        }
        text.family(seq + "da_submitter_last_failure_timestamp", .gauge,
                    help: "Unix time of the last DA submission failure, by reason (0: none yet)")
        for reason in DASubmitterFailureReason.allCases {
            text.sample(seq + "da_submitter_last_failure_timestamp", chainLabel + [("reason", reason.rawValue)],
                        submitter.lastFailure(reason).value)
        }
        text.family(seq + "blocks_synchronized_total", .counter, help: "Blocks applied from others, by source")
        for source in SyncSource.allCases {
            text.sample(seq + "blocks_synchronized_total", chainLabel + [("source", source.rawValue)],
                        sync.blocksSynchronized(source).value)
        }
        p2p.render(into: &text, prefix: namespace + "_p2p_", chainLabel: chainLabel)
    }
}

/// ev-node's `operation` label values of `operation_duration_seconds`.
package enum Operation: String, Sendable, CaseIterable {
    case blockProduction = "block_production"
    case daSubmission = "da_submission"
    case blockRetrieval = "block_retrieval"
    case blockValidation = "block_validation"
    case stateUpdate = "state_update"
}

/// ev-node's `source` label values of `blocks_synchronized_total` (`raft`: evnode's HA
/// replication through etcd, the counterpart of ev-node's Raft recovery).
package enum SyncSource: String, Sendable, CaseIterable {
    case da, p2p, raft
}

/// ev-node's reasons for `da_submitter_failures_total` and `_last_failure_timestamp`.
package enum DASubmitterFailureReason: String, Sendable, CaseIterable {
    case alreadyRejected = "already_rejected"
    case insufficientFee = "insufficient_fee"
    case timeout
    case alreadyInMempool = "already_in_mempool"
    case notIncludedInBlock = "not_included_in_block"
    case tooBig = "too_big"
    case contextCanceled = "context_canceled"
    case unknown
}

package final class ChainSeries: Sendable {
    package let height = GaugeCell()
    package let numTxs = GaugeCell()
    package let blockSizeBytes = GaugeCell()
    package let totalTxs = GaugeCell()
    package let latestBlockHeight = GaugeCell()
    package let txsPerBlock = HistogramCell(upperBounds: [0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000])
    private let durations: [HistogramCell] = Operation.allCases.map { _ in
        HistogramCell(upperBounds: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
    }

    package func operationDuration(_ op: Operation) -> HistogramCell {
        durations[Operation.allCases.firstIndex(of: op)!]
    }

    /// A block this node produced and stored.
    package func produced(height: UInt64, txs: Int, txBytes: Int, took: Duration) {
        self.height.set(height)
        latestBlockHeight.set(height)
        numTxs.set(txs)
        blockSizeBytes.set(txBytes)
        totalTxs.set(totalTxs.value + Double(txs))
        txsPerBlock.observe(Double(txs))
        operationDuration(.blockProduction).observe(took)
    }
}

package final class SyncSeries: Sendable {
    private let synchronized: [CounterCell] = SyncSource.allCases.map { _ in CounterCell() }
    package let daRetrievalAttempts = CounterCell()
    package let daRetrievalSuccesses = CounterCell()
    package let daRetrievalFailures = CounterCell()
    package let daInclusionHeight = GaugeCell()

    package func blocksSynchronized(_ source: SyncSource) -> CounterCell {
        synchronized[SyncSource.allCases.firstIndex(of: source)!]
    }
}

package final class SubmitterSeries: Sendable {
    package let pendingBlobs = GaugeCell()
    package let resends = CounterCell()
    private let failureCounts: [CounterCell] = DASubmitterFailureReason.allCases.map { _ in CounterCell() }
    private let lastFailures: [GaugeCell] = DASubmitterFailureReason.allCases.map { _ in GaugeCell() }

    package func failures(_ reason: DASubmitterFailureReason) -> CounterCell {
        failureCounts[DASubmitterFailureReason.allCases.firstIndex(of: reason)!]
    }

    package func lastFailure(_ reason: DASubmitterFailureReason) -> GaugeCell {
        lastFailures[DASubmitterFailureReason.allCases.firstIndex(of: reason)!]
    }

    /// A failed submission at `unixTime` (seconds).
    package func failed(_ reason: DASubmitterFailureReason, unixTime: Double) {
        failures(reason).add(1)
        lastFailure(reason).set(unixTime)
    }
}

/// Forced inclusion: `txs_malicious_total` counts forced transactions a full node found omitted
/// past their grace boundary (`ForcedInclusionVerifier`). `txs_in_grace_period` is not fed
/// (ev-node defines it and never sets it either).
package final class ForcedInclusionSeries: Sendable {
    package let txsInGracePeriod = GaugeCell()
    package let txsMalicious = CounterCell()
}

/// `<namespace>_p2p_*`. ev-node defines these but never feeds them; evnode does. libp2p has no
/// CometBFT channel ids: `chID` is the connection's transport (`tcp`). Per-peer series are
/// bounded (`maxPeers`): peer ids are chosen by strangers.
package final class P2PSeries: Sendable {
    package static let maxPeers = 256
    package let peers = GaugeCell()
    package let peerReceiveBytes = LabeledCells<CounterCell>(labelNames: ["peer_id", "chID"], capacity: maxPeers) { CounterCell() }
    package let peerSendBytes = LabeledCells<CounterCell>(labelNames: ["peer_id", "chID"], capacity: maxPeers) { CounterCell() }
    package let peerPendingSendBytes = LabeledCells<GaugeCell>(labelNames: ["peer_id"], capacity: maxPeers) { GaugeCell() }
    /// Transactions each peer sent: evnode takes no transactions over P2P, so no series is made.
    package let numTxs = LabeledCells<GaugeCell>(labelNames: ["peer_id"], capacity: maxPeers) { GaugeCell() }
    package let messageReceiveBytes = LabeledCells<CounterCell>(labelNames: ["message_type"], capacity: 32) { CounterCell() }
    package let messageSendBytes = LabeledCells<CounterCell>(labelNames: ["message_type"], capacity: 32) { CounterCell() }

    /// The cells one connection counts into, looked up once when it is established.
    package func connection(peer: String) -> (received: CounterCell, sent: CounterCell) {
        (peerReceiveBytes.cell([peer, "tcp"]), peerSendBytes.cell([peer, "tcp"]))
    }

    func render(into text: inout PrometheusText, prefix: String, chainLabel: [(String, String)]) {
        text.family(prefix + "peers", .gauge, help: "Connected peers")
        text.sample(prefix + "peers", chainLabel, peers.value)
        func counters(_ name: String, _ help: String, _ cells: LabeledCells<CounterCell>) {
            text.family(prefix + name, .counter, help: help)
            for (values, cell) in cells.all {
                text.sample(prefix + name, chainLabel + Array(zip(cells.labelNames, values)), cell.value)
            }
        }
        func gauges(_ name: String, _ help: String, _ cells: LabeledCells<GaugeCell>) {
            text.family(prefix + name, .gauge, help: help)
            for (values, cell) in cells.all {
                text.sample(prefix + name, chainLabel + Array(zip(cells.labelNames, values)), cell.value)
            }
        }
        counters("peer_receive_bytes_total", "Bytes received from a peer", peerReceiveBytes)
        counters("peer_send_bytes_total", "Bytes sent to a peer", peerSendBytes)
        gauges("peer_pending_send_bytes", "Bytes queued for a peer and not yet written", peerPendingSendBytes)
        gauges("num_txs", "Transactions a peer sent", numTxs)
        counters("message_receive_bytes_total", "Bytes of messages received, by message type", messageReceiveBytes)
        counters("message_send_bytes_total", "Bytes of messages sent, by message type", messageSendBytes)
    }
}
