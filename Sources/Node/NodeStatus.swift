import Sync
import Config

/// What the node is doing right now (SPEC §6, §10). `recovering` is the divergence recovery of §7.
package enum NodePhase: String, Sendable, CaseIterable, Codable {
    case starting, syncing, caughtUp, aggregating, recovering, halted
}

/// The `/status` document (SPEC §10). Field names are the JSON names operators' tooling reads.
package struct NodeStatus: Sendable, Codable, Equatable {
    package struct Heights: Sendable, Codable, Equatable {
        package var store: UInt64
        package var finalized: UInt64
        package var da_head: UInt64
        package var p2p_max: UInt64

        package init(store: UInt64 = 0, finalized: UInt64 = 0, da_head: UInt64 = 0, p2p_max: UInt64 = 0) {
            self.store = store
            self.finalized = finalized
            self.da_head = da_head
            self.p2p_max = p2p_max
        }
    }

    /// Progress of the sync before promotion; zeros when not catching up.
    package struct Catchup: Sendable, Codable, Equatable {
        package var active: Bool
        package var target: UInt64
        package var blocks_per_second: Double
        package var eta_seconds: Double?
        package var elapsed_seconds: Double
        package var da_head_reached: Bool
        package var waiting_to_apply: Int
        /// The condition that still holds promotion back, in words; nil when none does.
        package var blocked_by: String?

        package init(active: Bool = false, target: UInt64 = 0, blocks_per_second: Double = 0,
                    eta_seconds: Double? = nil, elapsed_seconds: Double = 0, da_head_reached: Bool = false,
                    waiting_to_apply: Int = 0, blocked_by: String? = nil) {
            self.active = active
            self.target = target
            self.blocks_per_second = blocks_per_second
            self.eta_seconds = eta_seconds
            self.elapsed_seconds = elapsed_seconds
            self.da_head_reached = da_head_reached
            self.waiting_to_apply = waiting_to_apply
            self.blocked_by = blocked_by
        }
    }

    /// The DA follower's view of the DA node (absent where no follower reads DA).
    package struct DA: Sendable, Codable, Equatable {
        /// Every request since `failing_seconds` ago failed.
        package var failing: Bool
        package var failing_seconds: Double?
        package var last_error: String?
        /// The DA node refuses the credentials (HTTP 401/403): a configuration problem.
        package var auth_error: String?
        /// Failed requests in the current episode of trouble.
        package var failed_attempts: Int
        /// Blobs in the namespaces that are no block of this chain (junk, other signers).
        package var bad_blobs: Int
        /// Bytes of data blobs held while they wait for their header.
        package var held_data_bytes: Int
        /// DA heights in flight or held ahead now (adapts up to `--da.fetch-parallelism`), and the most so far.
        package var fetch_window = 0
        package var fetch_window_peak = 0
        /// A DA height that keeps failing (the follower retries it and cannot go past it): the
        /// height, its failed attempts, for how long, and the last error. Absent otherwise.
        package var stalled_da_height: UInt64?
        package var stalled_attempts: Int?
        package var stalled_seconds: Double?
        package var stalled_error: String?

        // Submission and subscription (aggregators: fees, back-pressure).
        /// Gas price the next submission offers; nil while the DA node estimates.
        package var gas_price: Double?
        package var fee_escalations = 0
        package var last_signer: String?
        package var submit_error: String?
        /// Produced blocks not yet on DA.
        package var pending_blocks: UInt64 = 0
        /// `--max-pending-blocks` (0: off).
        package var max_pending_blocks: UInt64 = 0
        package var production_paused = false
        package var paused_reason: String?
        /// `live`, `polling`, `connecting` or `off`.
        package var subscription = "off"
        /// `blob.Subscribe` notifications received since start.
        package var subscription_notifications = 0

        package init(failing: Bool = false, failing_seconds: Double? = nil, last_error: String? = nil,
                    auth_error: String? = nil, failed_attempts: Int = 0, bad_blobs: Int = 0, held_data_bytes: Int = 0) {
            self.failing = failing
            self.failing_seconds = failing_seconds
            self.last_error = last_error
            self.auth_error = auth_error
            self.failed_attempts = failed_attempts
            self.bad_blobs = bad_blobs
            self.held_data_bytes = held_data_bytes
        }

        package init(_ follower: DAFollowerStatus, now: ContinuousClock.Instant) {
            self.init(failing: follower.failingSince != nil,
                      failing_seconds: follower.failingSince.map { Double((now - $0).components.seconds) },
                      last_error: follower.lastError, auth_error: follower.authError,
                      failed_attempts: follower.failedAttempts, bad_blobs: follower.badBlobs,
                      held_data_bytes: follower.heldDataBytes)
            fetch_window = follower.fetchWindow
            fetch_window_peak = follower.fetchWindowPeak
            if let stalled = follower.stalled {
                stalled_da_height = stalled.daHeight
                stalled_attempts = stalled.attempts
                stalled_seconds = Double((now - stalled.since).components.seconds)
                stalled_error = stalled.lastError
            }
        }
    }

    package var mode: String
    package var phase: NodePhase
    /// Why the node halted, or what it is recovering from.
    package var reason: String?
    package var chain_id: String
    package var heights: Heights
    package var catchup: Catchup
    package var peers: Int
    package var evidence: Int
    /// Lowercase hex of the genesis proposer address.
    package var proposer: String
    /// Lowercase hex of the state root after the last stored block.
    package var app_hash: String
    /// The HA group (role, leader, lease, last replicated height); absent unless `--raft.enable`.
    package var ha: HAStatus?
    package var da: DA?
    /// The execution layer and, for an EL, whether it answers.
    package var execution: ExecutionStatus?
    /// This node's libp2p peer id (`12D3KooW…`).
    package var peer_id: String?
    /// This node's P2P listen multiaddrs, each ending in `/p2p/<peer id>`.
    package var p2p_listen: [String]?

    package init(mode: String, phase: NodePhase, reason: String? = nil, chain_id: String, heights: Heights,
                catchup: Catchup, peers: Int, evidence: Int, proposer: String, app_hash: String, ha: HAStatus? = nil,
                da: DA? = nil, execution: ExecutionStatus? = nil, peer_id: String? = nil, p2p_listen: [String]? = nil) {
        self.da = da
        self.execution = execution
        self.peer_id = peer_id
        self.p2p_listen = p2p_listen
        self.app_hash = app_hash
        self.ha = ha
        self.mode = mode
        self.phase = phase
        self.reason = reason
        self.chain_id = chain_id
        self.heights = heights
        self.catchup = catchup
        self.peers = peers
        self.evidence = evidence
        self.proposer = proposer
    }
}

/// What ev-node's readiness checks read besides `/status`: its configuration and the chain's
/// clock. Built by the node for each `/health/ready`.
package struct ReadinessFacts: Sendable, Equatable {
    /// ev-node's `node.aggregator`: an aggregator needs no peers.
    package var aggregator: Bool
    /// The P2P host listens on at least one address.
    package var p2pListening: Bool
    /// `p2p.peers` is not empty. A full node that was given no peers syncs from DA alone, a mode
    /// ev-node does not have; it is not held unready for having none.
    package var peersConfigured: Bool
    /// Header time of the newest stored block (unix ns), and now.
    package var lastBlockTime: UInt64
    package var now: UInt64
    package var blockTime: Duration
    package var lazy: Bool
    package var lazyInterval: Duration
    package var readiness: ReadinessConfig

    package init(aggregator: Bool, p2pListening: Bool, peersConfigured: Bool, lastBlockTime: UInt64, now: UInt64,
                blockTime: Duration, lazy: Bool = false, lazyInterval: Duration = .seconds(60),
                readiness: ReadinessConfig = ReadinessConfig()) {
        self.aggregator = aggregator
        self.p2pListening = p2pListening
        self.peersConfigured = peersConfigured
        self.lastBlockTime = lastBlockTime
        self.now = now
        self.blockTime = blockTime
        self.lazy = lazy
        self.lazyInterval = lazyInterval
        self.readiness = readiness
    }
}

/// Whether `/health/ready` answers `200 READY`, and if not, the reason after `UNREADY: `.
package enum Readiness: Sendable, Equatable {
    case ready
    case notReady(String)

    /// How many DA heights a following node may lag behind the newest DA head it saw: the
    /// follower polls once per DA block time, so one or two is waiting, not being behind.
    static let allowedDALag: UInt64 = 3
    /// How long DA may fail before a node that has no peers to tell it the chain's height stops
    /// calling itself ready: a short DA outage is retried quietly.
    static let allowedDAOutage: Duration = .seconds(30)

    /// `GET /health/ready`: first evnode's phases that no block check can see (halted,
    /// recovering, catching up, promoting, DA refusing the credentials, the EL gone), then
    /// ev-node's checks in ev-node's order (`pkg/rpc/server/http.go`), then evnode's checks of a
    /// following node against DA.
    static func of(_ status: NodeStatus, follower da: DAFollowerStatus, facts: ReadinessFacts,
                   now: ContinuousClock.Instant) -> Readiness {
        if let gate = phaseGate(status, follower: da) { return gate }
        if let unready = evNodeChecks(status, facts) { return namingTheDA(unready, status, follower: da, now: now) }
        guard status.phase == .syncing else { return .ready }
        if !da.headReached {
            return .notReady("syncing: DA head not reached yet (height \(status.heights.store))")
        }
        // A block or two behind a peer is gossip in flight, not being behind.
        if status.heights.p2p_max > status.heights.store + 2 {
            return .notReady("behind: peers are at \(status.heights.p2p_max), store at \(status.heights.store)")
        }
        let readThrough = max(da.nextDAHeight, 1) - 1
        if da.daHead > readThrough + allowedDALag {
            return .notReady("behind DA: read through DA height \(readThrough), DA is at \(da.daHead)")
        }
        if status.peers == 0, let since = da.failingSince, now - since > allowedDAOutage {
            let seconds = Int((now - since).components.seconds)
            return .notReady("DA unavailable for \(seconds) s and no peers: \(da.lastError ?? "unknown error")")
        }
        return .ready
    }

    /// A following node without peers has DA as its only source of blocks: when one of ev-node's
    /// checks fails while DA is failing, DA is the likely cause, and the body names it after
    /// ev-node's words (probes match on those). Without this, a node cut off from DA said only
    /// "node not executing blocks": ev-node's window (15 s) runs out before `allowedDAOutage`.
    static func namingTheDA(_ unready: Readiness, _ status: NodeStatus, follower da: DAFollowerStatus,
                            now: ContinuousClock.Instant) -> Readiness {
        guard case .notReady(let reason) = unready, status.phase == .syncing, status.peers == 0,
              let since = da.failingSince else { return unready }
        let seconds = Int((now - since).components.seconds)
        return .notReady("\(reason); DA unavailable for \(seconds) s and no peers: \(da.lastError ?? "unknown error")")
    }

    /// evnode's own reasons, which come before any of ev-node's.
    static func phaseGate(_ status: NodeStatus, follower da: DAFollowerStatus) -> Readiness? {
        if let execution = status.execution, !execution.reachable {
            return .notReady("execution layer unreachable: \(execution.last_error ?? "no answer")")
        }
        switch status.phase {
        case .aggregating:
            return nil
        case .starting:
            return .notReady("starting")
        case .caughtUp:
            return .notReady("caught up, promoting to block producer")
        case .recovering:
            return .notReady("recovering from a divergence: \(status.reason ?? "")")
        case .halted:
            return .notReady("halted: \(status.reason ?? "")")
        case .syncing:
            if let auth = da.authError {
                return .notReady("DA refuses this node's credentials, a configuration problem (check da.auth_token); retrying: \(auth)")
            }
            if status.catchup.active {
                let why = status.catchup.blocked_by ?? "catching up"
                return .notReady("catching up (height \(status.heights.store) of \(status.catchup.target)): \(why)")
            }
            return nil
        }
    }

    /// ev-node's four checks, in its order and with its words: P2P listening (and a peer for a
    /// non-aggregator), a block at all, a recent block (5 × block time for the producer, 2 ×
    /// the lazy interval in lazy mode; `readiness_window_seconds` for a follower), and no more
    /// than `readiness_max_blocks_behind` behind the best height known.
    static func evNodeChecks(_ status: NodeStatus, _ facts: ReadinessFacts) -> Readiness? {
        if !facts.p2pListening { return .notReady("P2P not listening for connections") }
        if !facts.aggregator, facts.peersConfigured, status.peers == 0 { return .notReady("no peers connected") }
        let local = status.heights.store
        if local == 0 { return .notReady("no blocks yet") }
        let sinceLastBlock = facts.now > facts.lastBlockTime ? Duration.nanoseconds(Int64(facts.now - facts.lastBlockTime)) : .zero
        if status.phase == .aggregating {
            let allowed = facts.lazy ? facts.lazyInterval * 2 : facts.blockTime * 5
            if sinceLastBlock > allowed { return .notReady("aggregator not producing blocks at expected rate") }
        } else {
            let window = facts.readiness.windowSeconds == 0 ? 15 : facts.readiness.windowSeconds
            if sinceLastBlock > .seconds(Int64(window)) { return .notReady("node not executing blocks") }
        }
        let bestKnown = max(local, status.heights.p2p_max, status.catchup.target)
        if bestKnown - local > facts.readiness.maxBlocksBehind { return .notReady("behind best-known head") }
        return nil
    }
}

/// One block as `/blocks/{height}` shows it.
package struct BlockView: Sendable, Codable, Equatable {
    package var height: UInt64
    package var hash: String
    package var time_ns: UInt64
    package var proposer: String
    package var app_hash: String
    package var data_hash: String
    /// Base64 of each transaction.
    package var txs: [String]

    package init(height: UInt64, hash: String, time_ns: UInt64, proposer: String, app_hash: String,
                data_hash: String, txs: [String]) {
        self.height = height
        self.hash = hash
        self.time_ns = time_ns
        self.proposer = proposer
        self.app_hash = app_hash
        self.data_hash = data_hash
        self.txs = txs
    }
}

/// `GET /evidence`: the double-sign evidence the node holds (SPEC §7, §10).
package struct EvidenceList: Sendable, Codable, Equatable {
    /// One signed header of a pair.
    package struct SignedHeaderView: Sendable, Codable, Equatable {
        /// Lowercase hex of the header hash.
        package var hash: String
        /// Lowercase hex of the encoded `SignedHeader` (header, signature, signer): the proof.
        package var signed_header: String
        /// Where the node saw it: "store", "DA height N", "peer …".
        package var seen: String

        package init(hash: String, signed_header: String, seen: String) {
            self.hash = hash
            self.signed_header = signed_header
            self.seen = seen
        }
    }

    package struct Item: Sendable, Codable, Equatable {
        package var height: UInt64
        package var first: SignedHeaderView
        package var second: SignedHeaderView
        /// When this node recorded it (unix ns).
        package var recorded_at_ns: UInt64

        package init(height: UInt64, first: SignedHeaderView, second: SignedHeaderView, recorded_at_ns: UInt64) {
            self.height = height
            self.first = first
            self.second = second
            self.recorded_at_ns = recorded_at_ns
        }
    }

    package var count: Int
    package var evidence: [Item]

    package init(count: Int, evidence: [Item]) {
        self.count = count
        self.evidence = evidence
    }
}

/// `/status` → `execution`: which execution layer runs the chain and whether it answers.
package struct ExecutionStatus: Sendable, Codable, Equatable {
    /// `kv` or `evm`.
    package var kind: String
    package var engine_url: String?
    package var eth_url: String?
    package var reachable: Bool
    package var last_error: String?
    /// Unix seconds since when the EL does not answer.
    package var unreachable_since: UInt64?

    package init(kind: String, engine_url: String? = nil, eth_url: String? = nil, reachable: Bool = true,
                last_error: String? = nil, unreachable_since: UInt64? = nil) {
        self.kind = kind
        self.engine_url = engine_url
        self.eth_url = eth_url
        self.reachable = reachable
        self.last_error = last_error
        self.unreachable_since = unreachable_since
    }
}
