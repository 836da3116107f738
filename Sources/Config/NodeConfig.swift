/// The whole configuration of `evnode start` (SPEC §2, §5, §8, §9, §10), after defaults, the
/// config file and flags have been merged and validated. Value type: hand it to whoever needs it.
package struct NodeConfig: Sendable, Equatable {
    package var home: String

    // node
    package var aggregator: Bool
    /// Zero means catchup is off: an aggregator produces from the first moment.
    package var catchupTimeout: Duration
    package var blockTime: Duration
    package var lazy: Bool
    package var lazyInterval: Duration
    /// Production pauses while more than this many produced blocks are not on DA; 0 = off.
    package var maxPendingBlocks: UInt64

    package var da: DAConfig
    package var p2p: P2PConfig
    package var rpc: RPCConfig
    package var raft: RaftConfig
    package var log: LogConfig
    package var execution: ExecutionConfig = ExecutionConfig()
    /// ev-node's `db_path`: the store's folder, relative to the home unless absolute.
    package var dbPath: String = "data"
    package var signer: SignerConfig = SignerConfig()
    package var readiness: ReadinessConfig = ReadinessConfig()
    package var pruning: PruningConfig = PruningConfig()
    package var instrumentation: InstrumentationConfig = InstrumentationConfig()

    /// ev-node's `node.promotable` (v1.2 rotation): follow, and produce while the chain's
    /// state names this node's key as the next proposer. Implies `aggregator` (the loader sets
    /// it): the producer and submitter exist, they run only while this node leads.
    package var promotable: Bool = false
    /// ev-node's `node.based_sequencer` (with `aggregator`): blocks derived from the
    /// forced-inclusion namespace alone; no signer, no DA submission (issue 32).
    package var basedSequencer: Bool = false

    package var catchupEnabled: Bool { aggregator && !basedSequencer && catchupTimeout > .zero }

    /// What this node is, one value for the whole node: the flags that make it (aggregator,
    /// catchup timeout, promotable, raft, based sequencer) read once, in one place.
    package var role: Role {
        if raft.enable { return .ha }
        if aggregator && basedSequencer { return .based }
        // SPEC §6 applies to every promotion; without --catchup-timeout the gate's own deadline
        // is 30s (how long to wait for peers and stalled heights).
        if promotable { return .promotable(timeout: catchupTimeout > .zero ? catchupTimeout : .seconds(30)) }
        if !aggregator { return .full }
        return catchupTimeout > .zero ? .aggregatorWithCatchup(timeout: catchupTimeout) : .aggregator
    }

    /// The node's role (ev-node's `block/components.go` builds one set of components per role).
    package enum Role: Sendable, Equatable {
        /// Syncs from DA and peers; never signs.
        case full
        /// Produces from the first moment.
        case aggregator
        /// Syncs until every catchup condition holds (SPEC §6), then produces.
        case aggregatorWithCatchup(timeout: Duration)
        /// Follows; produces while the chain names this node's key and the catchup conditions
        /// hold (`timeout` as the catchup's).
        case promotable(timeout: Duration)
        /// One of an etcd-fenced group sharing the key (`--evnode.raft.enable`).
        case ha
        /// Derives blocks from the forced-inclusion namespace; no signer.
        case based

        /// The name `/status` gives it.
        package var name: String {
            switch self {
            case .full: return "full"
            case .aggregator, .aggregatorWithCatchup: return "aggregator"
            case .promotable: return "promotable"
            case .ha: return "ha"
            case .based: return "based"
            }
        }

        /// Roles that sync from DA before (or instead of) producing.
        package var syncs: Bool {
            switch self {
            case .full, .aggregatorWithCatchup, .promotable, .ha: return true
            case .aggregator, .based: return false
            }
        }
    }
}

package struct DAConfig: Sendable, Equatable {
    package var address: HTTPEndpoint
    package var authToken: String
    /// Namespace name for header blobs; empty means "derive from the chain id".
    package var namespace: String
    /// Namespace name for data blobs; empty means "same as headers".
    package var dataNamespace: String
    package var blockTime: Duration
    /// Zero means "use genesis.da_start_height".
    package var startHeight: UInt64
    package var maxBlobSize: Int
    package var requestTimeout: Duration
    /// How many DA heights are fetched at once while following.
    package var fetchParallelism: Int
    /// Most bytes of data blobs the DA follower holds while they wait for their header.
    package var maxHeldData: Int = 64 << 20
    /// `blob.Submit` options (celestia-node's TxConfig) after `submit_options` and the flags.
    package var txConfig: DATxConfig
    /// Fee escalation step (≥ 1; 1 = never escalate).
    package var gasMultiplier: Double
    /// Used in turn as each submission's `signer_address`.
    package var signingAddresses: [String]
    /// PEM CA bundle for an https:// DA node; empty = the system's CAs.
    package var tlsCAFile: String
    /// Follow new DA heights with `blob.Subscribe`, falling back to polling.
    package var subscribe: Bool
    /// ev-node's `da.mempool_ttl`: DA blocks a submitted blob may wait unincluded before it is
    /// submitted again; 0 = never give up on a submission by age.
    package var mempoolTTL: UInt64 = 0
    /// ev-node's `da.max_submit_attempts`: failed submissions of one batch before the node stops
    /// with an error naming it.
    package var maxSubmitAttempts: Int = 30
    package var batching: DABatchingConfig = DABatchingConfig()
    /// ev-node's `da.forced_inclusion_namespace`: the namespace name forced transactions are
    /// posted under (bytes derived like the others). Empty: forced inclusion is off.
    package var forcedInclusionNamespace: String = ""

    /// The highest gas price escalation may reach.
    package var maxGasPrice: Double { txConfig.maxGasPrice ?? DATxConfig.celestiaDefaultMaxGasPrice }

    /// Header namespace name after applying the chain-id default.
    package func headerNamespaceName(chainID: String) -> String {
        namespace.isEmpty ? chainID + "-headers" : namespace
    }

    package func dataNamespaceName(chainID: String) -> String {
        dataNamespace.isEmpty ? headerNamespaceName(chainID: chainID) : dataNamespace
    }
}

package struct P2PConfig: Sendable, Equatable {
    package var listen: HostPort
    /// Multiaddrs (`/ip4/…/tcp/…/p2p/<id>`) or `host:port` (see `P2PPeerAddress`).
    package var peers: [P2PPeerAddress]
    /// ev-node's `p2p.blocked_peers`: libp2p peer ids (base58) never accepted or dialled.
    package var blockedPeers: [String] = []
    /// ev-node's `p2p.allowed_peers`: when not empty, only these peer ids (and the configured
    /// peers) are accepted.
    package var allowedPeers: [String] = []

    package init(listen: HostPort, peers: [P2PPeerAddress]) {
        self.listen = listen
        self.peers = peers
    }
}

package struct RPCConfig: Sendable, Equatable {
    package var address: HostPort
    /// ev-node's `rpc.enable_da_visualization`: serve `/da`, `/da/submissions`, `/da/blob`,
    /// `/da/stats`, `/da/health`.
    package var enableDAVisualization: Bool = false

    package init(address: HostPort, enableDAVisualization: Bool = false) {
        self.address = address
        self.enableDAVisualization = enableDAVisualization
    }
}

/// ev-node's `signer.*`.
package struct SignerConfig: Sendable, Equatable {
    package enum Kind: String, Sendable, CaseIterable { case file, grpc }
    package var kind: Kind = .file
    /// The folder of `signer.json`, relative to the home unless absolute (ev-node resolves it
    /// against the working directory; evnode against the home, see README).
    package var path: String = "config"
    /// `--evnode.signer.passphrase_file`: the file whose trimmed content unlocks `signer.json`.
    package var passphraseFile: String = ""
    /// `signer_type grpc` (issue 29): the remote signer (`evnode signer serve`) at this address;
    /// the key and its high-water mark live there, not in the home.
    package var grpcAddress: HostPort?
    /// A file whose trimmed content is the remote signer's bearer token.
    package var grpcTokenFile: String = ""
    /// Mutual TLS with the remote signer: this node's certificate and key, and the CA the
    /// signer's certificate must chain to. All three or none.
    package var grpcTLSCertFile: String = ""
    package var grpcTLSKeyFile: String = ""
    package var grpcTLSCAFile: String = ""

    package init() {}
}

/// ev-node's `/health/ready` thresholds (`node.readiness_*`).
package struct ReadinessConfig: Sendable, Equatable {
    /// A full node that applied no block for this long is not ready.
    package var windowSeconds: UInt64 = 15
    /// A node more than this many blocks behind the best height it knows is not ready.
    package var maxBlocksBehind: UInt64 = 15

    package init() {}
}

/// ev-node's `pruning.*`.
package struct PruningConfig: Sendable, Equatable {
    package enum Mode: String, Sendable, CaseIterable {
        /// Keep everything.
        case disabled
        /// Delete blocks (headers, data, signatures) and their metadata below the kept window.
        case all
        /// Delete only per-height metadata below the kept window.
        case metadata
    }
    package var mode: Mode = .disabled
    /// Heights kept below the head (> 0). Never prunes above the DA-included or finalized height.
    package var keepRecent: UInt64 = 100_000
    package var interval: Duration = .seconds(15 * 60)

    package init() {}
}

/// ev-node's `instrumentation.*`.
package struct InstrumentationConfig: Sendable, Equatable {
    package var prometheus: Bool = false
    package var prometheusListen: HostPort = HostPort(host: "0.0.0.0", port: 26660)
    /// Metric name prefix (`instrumentation.namespace`, YAML only).
    package var namespace: String = "evnode"

    package init() {}
}

package struct RaftConfig: Sendable, Equatable {
    package var enable: Bool
    package var endpoints: [HTTPEndpoint]
    package var nodeID: String
    /// Zero means "a few block times" (resolved by the HA layer).
    package var leaseTTL: Duration
    /// How often the leader puts its heartbeat; zero: none (a dead leader is replaced when its
    /// lease expires).
    package var heartbeatInterval: Duration = .milliseconds(100)
    /// How long a follower waits without a heartbeat before it takes over. Zero means "five
    /// heartbeat intervals" (resolved here: `effectiveHeartbeatTimeout`).
    package var heartbeatTimeout: Duration = .zero

    package var effectiveHeartbeatTimeout: Duration {
        heartbeatTimeout > .zero ? heartbeatTimeout : heartbeatInterval * 5
    }
}

/// ev-node's `da.batching_strategy` and its knobs: when pending blocks are posted to DA.
package struct DABatchingConfig: Sendable, Equatable {
    package enum Strategy: String, Sendable, CaseIterable {
        /// Post as soon as anything is pending.
        case immediate
        /// Post when pending bytes reach `sizeThreshold` of the largest blob batch.
        case size
        /// Post every `maxDelay` (default: DA block time), when at least `minItems` wait.
        case time
        /// Post on size or on time, whichever comes first.
        case adaptive
    }
    package var strategy: Strategy = .time
    /// Fraction (0, 1] of `da.max_blob_size` that makes a size-triggered post.
    package var sizeThreshold: Double = 0.8
    /// Longest wait before a post; zero means one DA block time.
    package var maxDelay: Duration = .zero
    /// Fewest pending items a time-triggered post waits for.
    package var minItems: Int = 1

    package init() {}
}

package struct LogConfig: Sendable, Equatable {
    package var level: String
    package var format: LogFormat
}

package enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Which execution layer runs the chain's transactions.
package enum ExecutionKind: String, Sendable, CaseIterable {
    /// The built-in key/value application (SPEC §4), in the node's own store.
    case kv
    /// An EVM execution client (ev-reth) driven over the Engine API.
    case evm
}

package struct ExecutionConfig: Sendable, Equatable {
    package var kind: ExecutionKind = .kv
    package var evm: EVMConfig = EVMConfig()

    package init(kind: ExecutionKind = .kv, evm: EVMConfig = EVMConfig()) {
        self.kind = kind
        self.evm = evm
    }
}

/// ev-node's `--evm.*` settings.
package struct EVMConfig: Sendable, Equatable {
    package var engineURL: HTTPEndpoint?
    package var ethURL: HTTPEndpoint?
    /// Path of the JWT secret file (hex, optional 0x, whitespace trimmed).
    package var jwtSecretFile: String = ""
    /// The EL's genesis block hash; nil means "ask the EL for its block 0".
    package var genesisHash: [UInt8]?
    /// 20 bytes; zero when not set.
    package var feeRecipient: [UInt8] = [UInt8](repeating: 0, count: 20)
    /// apps/evm's `--force-inclusion-server`; nil: no server.
    package var forceInclusionServer: HostPort?

    package init() {}
}
