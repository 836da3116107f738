import Libp2p
@testable import P2PSync
import ProcessKit
@testable import Telemetry
import Testing
import TestSupport

/// The host counts each connection's bytes through `Libp2p`'s `ConnectionTrafficObserver`; the
/// service hands it ev-node's P2P series (`P2PSeriesTraffic`): per peer id, `chID` "tcp".
@Suite struct TrafficMetricsTests {
    static func count(_ cells: LabeledCells<CounterCell>, _ values: [String]) -> UInt64 {
        cells.all.first { $0.values == values }?.cell.value ?? 0
    }

    @Test func aConnectionsBytesLandInItsPeersSeriesAndItsPendingGaugeGoesWithIt() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        let series = P2PSeries()
        let a = try await TestNode.start("a", chain: chain, metrics: series)
        let b = try await TestNode.start("b", chain: chain, peers: [a.multiaddr])
        let peer = b.id.description
        try await waitUntil("a counts b's connection both ways") {
            Self.count(series.peerReceiveBytes, [peer, "tcp"]) > 0 && Self.count(series.peerSendBytes, [peer, "tcp"]) > 0
        }
        #expect(series.peerPendingSendBytes.all.contains { $0.values == [peer] }, "a gauge while connected")
        await b.stop()
        try await waitUntil("b's pending gauge goes when its connection closes") {
            !series.peerPendingSendBytes.all.contains { $0.values == [peer] }
        }
        #expect(Self.count(series.peerReceiveBytes, [peer, "tcp"]) > 0, "the byte totals stay")
        await a.stop()
    }
}
