import Submission
import Foundation
import Synchronization

/// One moment of the node as the dashboard (`GET /`) and `evnode status --watch` show it: the
/// `/status` document plus what only they show (peers with their proven heights, DA submissions,
/// the signer's mark, the block rate). Sent as JSON in `GET /events`.
package struct DashboardSnapshot: Codable, Sendable, Equatable {
    package struct Peer: Codable, Sendable, Equatable {
        package var id: String
        package var address: String
        package var direction: String
        /// The height of the peer's last head answer whose header verified; nil until then.
        package var proven_height: UInt64?
    }

    package struct Submission: Codable, Sendable, Equatable {
        package var id: String
        package var da_height: UInt64
        package var status_code: String
        package var message: String?
        package var num_blobs: UInt64
        package var blob_size: UInt64
        package var gas_price: Double
        /// Unix seconds.
        package var time: Double
    }

    package struct Submissions: Codable, Sendable, Equatable {
        /// Blocks produced and not yet on DA.
        package var pending_blocks: UInt64
        /// Headers and data blobs waiting (ev-node's `da_submitter_pending_blobs`).
        package var pending_blobs: UInt64
        package var submitted: Int
        package var consecutive_failures: Int
        /// Unix seconds of the last included submission; nil before the first.
        package var last_success: Double?
        package var last_da_height: UInt64?
        package var gas_price: Double?
        package var fee_escalations: Int
        package var last_error: String?
        /// Failures since start by ev-node's reason (only reasons that happened).
        package var failures: [String: UInt64]
        /// The last few attempts, newest first.
        package var recent: [Submission]
    }

    /// Unix seconds.
    package var time: Double
    package var status: NodeStatus
    /// Store height gained per second over the last ten seconds of samples.
    package var blocks_per_second: Double
    package var peers: [Peer]
    /// Absent on a node that does not submit to DA.
    package var submissions: Submissions?
    /// The highest height the signer's key signed, as `config/signer.state` records it.
    package var signer_mark: UInt64?
    /// Whether `/da*` (ev-node's DA visualizer) answers (`rpc.enable_da_visualization`).
    package var da_visualization: Bool
}

/// A point of the heights chart.
package struct HeightSample: Codable, Sendable, Equatable {
    /// Unix seconds.
    package var t: Double
    package var store: UInt64
    package var finalized: UInt64
    package var da_head: UInt64
    package var p2p_max: UInt64
}

/// What `GET /events` streams: the node samples itself once a second (`MetricsRefresher`); the
/// feed keeps the last `historyCapacity` height samples (five minutes) for the chart and the
/// newest snapshot, encoded once, for every subscriber. Subscribers are counted and bounded:
/// the RPC port may face strangers, and each stream is held open.
package final class DashboardFeed: Sendable {
    package static let historyCapacity = 300
    package static let maxSubscribers = 16
    /// Samples the block rate is measured over.
    static let rateWindow = 10

    struct State {
        var history: [HeightSample] = []
        var latest: [UInt8]?
        var latestSnapshot: DashboardSnapshot?
        var sequence: UInt64 = 0
    }

    private let state = Mutex(State())
    private let subscribers = Atomic<Int>(0)
    private let finished = Atomic<Bool>(false)
    package let maxSubscribers: Int

    package init(maxSubscribers: Int = DashboardFeed.maxSubscribers) {
        self.maxSubscribers = maxSubscribers
    }

    /// Records a sample: its heights join the history, the block rate is measured, and the
    /// snapshot becomes the one subscribers receive next.
    package func sample(_ snapshot: DashboardSnapshot) {
        var snapshot = snapshot
        let h = snapshot.status.heights
        let point = HeightSample(t: snapshot.time, store: h.store, finalized: h.finalized, da_head: h.da_head,
                                 p2p_max: h.p2p_max)
        state.withLock { s in
            s.history.append(point)
            if s.history.count > Self.historyCapacity { s.history.removeFirst(s.history.count - Self.historyCapacity) }
            let window = s.history.suffix(Self.rateWindow + 1)
            if let first = window.first, let last = window.last, last.t > first.t, last.store >= first.store {
                snapshot.blocks_per_second = Double(last.store - first.store) / (last.t - first.t)
            } else {
                snapshot.blocks_per_second = 0
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            s.latest = (try? encoder.encode(snapshot)).map { Array($0) }
            s.latestSnapshot = snapshot
            s.sequence += 1
        }
    }

    /// Ends every stream (the node is stopping: an open stream must not hold the RPC server's
    /// graceful shutdown).
    package func finish() {
        finished.store(true, ordering: .releasing)
    }

    package var isFinished: Bool { finished.load(ordering: .acquiring) }

    package var history: [HeightSample] { state.withLock { $0.history } }
    package var latestSnapshot: DashboardSnapshot? { state.withLock { $0.latestSnapshot } }

    /// The newest encoded snapshot if it is newer than `after`.
    func latest(after sequence: UInt64) -> (sequence: UInt64, json: [UInt8])? {
        state.withLock { s in
            guard s.sequence > sequence, let json = s.latest else { return nil }
            return (s.sequence, json)
        }
    }

    /// A slot for one stream, or nil when `maxSubscribers` streams are open.
    func subscribe() -> Subscription? {
        while true {
            let current = subscribers.load(ordering: .relaxed)
            guard current < maxSubscribers else { return nil }
            if subscribers.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing).exchanged {
                return Subscription(feed: self)
            }
        }
    }

    package var subscriberCount: Int { subscribers.load(ordering: .relaxed) }

    fileprivate func release() {
        subscribers.wrappingSubtract(1, ordering: .acquiringAndReleasing)
    }

    /// One open stream; `close()` gives its slot back.
    final class Subscription: Sendable {
        private let feed: DashboardFeed
        private let closed = Atomic<Bool>(false)

        fileprivate init(feed: DashboardFeed) {
            self.feed = feed
        }

        func close() {
            if !closed.exchange(true, ordering: .acquiringAndReleasing) { feed.release() }
        }

        deinit { close() }
    }
}

extension DashboardSnapshot.Submission {
    init(_ r: DASubmissionRecord) {
        self.init(id: r.id, da_height: r.daHeight, status_code: r.status.rawValue, message: r.message,
                  num_blobs: r.numBlobs, blob_size: r.blobSize, gas_price: r.gasPrice,
                  time: r.timestamp.timeIntervalSince1970)
    }
}
