/// The whole configuration of `evnode start` (SPEC §2, §5, §8, §9, §10), after defaults, the
/// config file and flags have been merged and validated. Value type: hand it to whoever needs it.
public struct NodeConfig: Sendable, Equatable {
    public var home: String

    // node
    public var aggregator: Bool
    /// Zero means catchup is off: an aggregator produces from the first moment.
    public var catchupTimeout: Duration
    public var blockTime: Duration
    public var lazy: Bool
    public var lazyInterval: Duration
    /// Production pauses while more than this many produced blocks are not on DA; 0 = off.
    public var maxPendingBlocks: UInt64

    public var da: DAConfig
    public var p2p: P2PConfig
    public var rpc: RPCConfig
    public var raft: RaftConfig
    public var log: LogConfig
    public var execution: ExecutionConfig = ExecutionConfig()

    public var catchupEnabled: Bool { aggregator && catchupTimeout > .zero }

    public var mode: Mode {
        if raft.enable { return .ha }
        return aggregator ? .aggregator : .full
    }

    public enum Mode: String, Sendable { case full, aggregator, ha }
}

public struct DAConfig: Sendable, Equatable {
    public var address: HTTPEndpoint
    public var authToken: String
    /// Namespace name for header blobs; empty means "derive from the chain id".
    public var namespace: String
    /// Namespace name for data blobs; empty means "same as headers".
    public var dataNamespace: String
    public var blockTime: Duration
    /// Zero means "use genesis.da_start_height".
    public var startHeight: UInt64
    public var maxBlobSize: Int
    public var requestTimeout: Duration
    /// How many DA heights are fetched at once while following.
    public var fetchParallelism: Int
    /// Most bytes of data blobs the DA follower holds while they wait for their header.
    public var maxHeldData: Int = 64 << 20
    /// `blob.Submit` options (celestia-node's TxConfig) after `submit_options` and the flags.
    public var txConfig: DATxConfig
    /// Fee escalation step (≥ 1; 1 = never escalate).
    public var gasMultiplier: Double
    /// Used in turn as each submission's `signer_address`.
    public var signingAddresses: [String]
    /// PEM CA bundle for an https:// DA node; empty = the system's CAs.
    public var tlsCAFile: String
    /// Follow new DA heights with `blob.Subscribe`, falling back to polling.
    public var subscribe: Bool

    /// The highest gas price escalation may reach.
    public var maxGasPrice: Double { txConfig.maxGasPrice ?? DATxConfig.celestiaDefaultMaxGasPrice }

    /// Header namespace name after applying the chain-id default.
    public func headerNamespaceName(chainID: String) -> String {
        namespace.isEmpty ? chainID + "-headers" : namespace
    }

    public func dataNamespaceName(chainID: String) -> String {
        dataNamespace.isEmpty ? headerNamespaceName(chainID: chainID) : dataNamespace
    }
}

public struct P2PConfig: Sendable, Equatable {
    public var listen: HostPort
    /// Multiaddrs (`/ip4/…/tcp/…/p2p/<id>`) or `host:port` (see `P2PPeerAddress`).
    public var peers: [P2PPeerAddress]

    public init(listen: HostPort, peers: [P2PPeerAddress]) {
        self.listen = listen
        self.peers = peers
    }
}

public struct RPCConfig: Sendable, Equatable {
    public var address: HostPort
}

public struct RaftConfig: Sendable, Equatable {
    public var enable: Bool
    public var endpoints: [HTTPEndpoint]
    public var nodeID: String
    /// Zero means "a few block times" (resolved by the HA layer).
    public var leaseTTL: Duration
    /// How often the leader puts its heartbeat; zero: none (a dead leader is replaced when its
    /// lease expires).
    public var heartbeatInterval: Duration = .milliseconds(100)
    /// How long a follower waits without a heartbeat before it takes over. Zero means "five
    /// heartbeat intervals" (resolved here: `effectiveHeartbeatTimeout`).
    public var heartbeatTimeout: Duration = .zero

    public var effectiveHeartbeatTimeout: Duration {
        heartbeatTimeout > .zero ? heartbeatTimeout : heartbeatInterval * 5
    }
}

public struct LogConfig: Sendable, Equatable {
    public var level: String
    public var format: LogFormat
}

public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Which execution layer runs the chain's transactions.
public enum ExecutionKind: String, Sendable, CaseIterable {
    /// The built-in key/value application (SPEC §4), in the node's own store.
    case kv
    /// An EVM execution client (ev-reth) driven over the Engine API.
    case evm
}

public struct ExecutionConfig: Sendable, Equatable {
    public var kind: ExecutionKind = .kv
    public var evm: EVMConfig = EVMConfig()

    public init(kind: ExecutionKind = .kv, evm: EVMConfig = EVMConfig()) {
        self.kind = kind
        self.evm = evm
    }
}

/// ev-node's `--evm.*` settings.
public struct EVMConfig: Sendable, Equatable {
    public var engineURL: HTTPEndpoint?
    public var ethURL: HTTPEndpoint?
    /// Path of the JWT secret file (hex, optional 0x, whitespace trimmed).
    public var jwtSecretFile: String = ""
    /// The EL's genesis block hash; nil means "ask the EL for its block 0".
    public var genesisHash: [UInt8]?
    /// 20 bytes; zero when not set.
    public var feeRecipient: [UInt8] = [UInt8](repeating: 0, count: 20)

    public init() {}
}
