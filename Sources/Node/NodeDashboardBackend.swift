import DAClient
import Submission
import Foundation
import Telemetry

extension EvNode {
    /// The dashboard's view of this moment, built once a second by `MetricsRefresher`.
    func dashboardSnapshot(_ status: NodeStatus) -> DashboardSnapshot {
        let peers = p2p.peers.map { p in
            DashboardSnapshot.Peer(id: p.id.description, address: p.remoteAddress, direction: p.direction.rawValue,
                                   proven_height: p.announcedHeight)
        }.sorted { $0.id < $1.id }
        var submissions: DashboardSnapshot.Submissions?
        if let submitter {
            let s = submitter.status
            let log = self.submissions.all
            let series = metrics.evnode.submitter
            var failures: [String: UInt64] = [:]
            for reason in DASubmitterFailureReason.allCases where series.failures(reason).value > 0 {
                failures[reason.rawValue] = series.failures(reason).value
            }
            submissions = .init(
                pending_blocks: status.da?.pending_blocks ?? 0,
                pending_blobs: UInt64(series.pendingBlobs.value),
                submitted: s.submissions, consecutive_failures: s.consecutiveFailures,
                last_success: log.last { $0.status == .success }?.timestamp.timeIntervalSince1970,
                last_da_height: s.lastDAHeight, gas_price: s.gasPrice, fee_escalations: s.feeEscalations,
                last_error: s.lastError, failures: failures,
                recent: log.suffix(10).reversed().map(DashboardSnapshot.Submission.init))
        }
        return DashboardSnapshot(time: Date().timeIntervalSince1970, status: status, blocks_per_second: 0,
                                 peers: peers, submissions: submissions,
                                 signer_mark: (try? signerMark?.load()) ?? nil,
                                 da_visualization: setup.config.rpc.enableDAVisualization)
    }
}

/// What the dashboard and the DA visualizer routes read from a running node.
struct NodeDashboardBackend: DashboardBackend {
    let node: EvNode

    var feed: DashboardFeed { node.dashboard }
    var daVisualizationEnabled: Bool { node.setup.config.rpc.enableDAVisualization }
    var submitsToDA: Bool { node.submitter != nil }
    var submissions: [DASubmissionRecord] { node.submissions.all }
    var daConnected: Bool { (node.submitter?.status.consecutiveFailures ?? 0) < 3 }

    func blob(daHeight: UInt64, namespace: DANamespace, commitment: [UInt8]) async throws(DAError) -> DABlob {
        try await node.daClient.get(height: daHeight, namespace: namespace, commitment: commitment)
    }
}
