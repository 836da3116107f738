import Submission
import Foundation
import Synchronization

/// One moment of the node as the dashboard (`GET /`) and `evnode status --watch` show it: the
/// `/status` document plus what only they show (peers with their proven heights, DA submissions,
/// the signer's mark, the block rate). Sent as JSON in `GET /events`.
public struct DashboardSnapshot: Codable, Sendable, Equatable {
    public struct Peer: Codable, Sendable, Equatable {
        public var id: String
        public var address: String
        public var direction: String
        /// The height of the peer's last head answer whose header verified; nil until then.
        public var proven_height: UInt64?
    }

    public struct Submission: Codable, Sendable, Equatable {
        public var id: String
        public var da_height: UInt64
        public var status_code: String
        public var message: String?
        public var num_blobs: UInt64
        public var blob_size: UInt64
        public var gas_price: Double
        /// Unix seconds.
        public var time: Double
    }

    public struct Submissions: Codable, Sendable, Equatable {
        /// Blocks produced and not yet on DA.
        public var pending_blocks: UInt64
        /// Headers and data blobs waiting (ev-node's `da_submitter_pending_blobs`).
        public var pending_blobs: UInt64
        public var submitted: Int
        public var consecutive_failures: Int
        /// Unix seconds of the last included submission; nil before the first.
        public var last_success: Double?
        public var last_da_height: UInt64?
        public var gas_price: Double?
        public var fee_escalations: Int
        public var last_error: String?
        /// Failures since start by ev-node's reason (only reasons that happened).
        public var failures: [String: UInt64]
        /// The last few attempts, newest first.
        public var recent: [Submission]
    }

    /// Unix seconds.
    public var time: Double
    public var status: NodeStatus
    /// Store height gained per second over the last ten seconds of samples.
    public var blocks_per_second: Double
    public var peers: [Peer]
    /// Absent on a node that does not submit to DA.
    public var submissions: Submissions?
    /// The highest height the signer's key signed, as `config/signer.state` records it.
    public var signer_mark: UInt64?
    /// Whether `/da*` (ev-node's DA visualizer) answers (`rpc.enable_da_visualization`).
    public var da_visualization: Bool
}

/// A point of the heights chart.
public struct HeightSample: Codable, Sendable, Equatable {
    /// Unix seconds.
    public var t: Double
    public var store: UInt64
    public var finalized: UInt64
    public var da_head: UInt64
    public var p2p_max: UInt64
}

/// What `GET /events` streams: the node samples itself once a second (`MetricsRefresher`); the
/// feed keeps the last `historyCapacity` height samples (five minutes) for the chart and the
/// newest snapshot, encoded once, for every subscriber. Subscribers are counted and bounded:
/// the RPC port may face strangers, and each stream is held open.
public final class DashboardFeed: Sendable {
    public static let historyCapacity = 300
    public static let maxSubscribers = 16
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
    public let maxSubscribers: Int

    public init(maxSubscribers: Int = DashboardFeed.maxSubscribers) {
        self.maxSubscribers = maxSubscribers
    }

    /// Records a sample: its heights join the history, the block rate is measured, and the
    /// snapshot becomes the one subscribers receive next.
    public func sample(_ snapshot: DashboardSnapshot) {
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
    public func finish() {
        finished.store(true, ordering: .releasing)
    }

    public var isFinished: Bool { finished.load(ordering: .acquiring) }

    public var history: [HeightSample] { state.withLock { $0.history } }
    public var latestSnapshot: DashboardSnapshot? { state.withLock { $0.latestSnapshot } }

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

    public var subscriberCount: Int { subscribers.load(ordering: .relaxed) }

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
