import Libp2p
import Telemetry

/// The host's per-connection counters in ev-node's P2P series, labelled by the peer id.
struct P2PSeriesTraffic: ConnectionTrafficObserver {
    let series: P2PSeries

    func traffic(of peer: PeerID) -> any ConnectionTraffic {
        let label = peer.description
        let (received, sent) = series.connection(peer: label)
        return Cells(series: series, label: label, receivedBytes: received, sentBytes: sent,
                     pendingBytes: series.peerPendingSendBytes.cell([label]))
    }

    private struct Cells: ConnectionTraffic {
        let series: P2PSeries
        let label: String
        let receivedBytes: CounterCell
        let sentBytes: CounterCell
        let pendingBytes: GaugeCell

        func received(bytes: Int) { receivedBytes.add(bytes) }

        func sent(bytes: Int, pending: Int) {
            sentBytes.add(bytes)
            pendingBytes.set(pending)
        }

        // The byte counters stay (they are totals); the pending gauge of a gone connection would lie.
        func closed() { series.peerPendingSendBytes.remove([label]) }
    }
}
