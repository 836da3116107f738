/// The name of one `evnode start` setting (its dotted `evnode.yaml` key), as code names it: a
/// misspelt key does not compile. One constant per row of `Settings.all`; `SettingKey.all` lists
/// them and a test checks that both agree. Keys from outside (the file, flags, the environment)
/// are looked up in the table, never turned into a `SettingKey` unchecked.
public struct SettingKey: Hashable, Sendable, CustomStringConvertible {
    /// The dotted key (`da.block_time`).
    public let name: String

    private init(_ name: String) { self.name = name }

    public var description: String { name }

    public static let dbPath = SettingKey("db_path")
    public static let clearCache = SettingKey("clear_cache")
    public static let nodeAggregator = SettingKey("node.aggregator")
    public static let nodePromotable = SettingKey("node.promotable")
    public static let nodeBasedSequencer = SettingKey("node.based_sequencer")
    public static let nodeLight = SettingKey("node.light")
    public static let nodeBlockTime = SettingKey("node.block_time")
    public static let nodeLazyMode = SettingKey("node.lazy_mode")
    public static let nodeLazyBlockInterval = SettingKey("node.lazy_block_interval")
    public static let nodeMaxPendingHeadersAndData = SettingKey("node.max_pending_headers_and_data")
    public static let nodeReadinessWindowSeconds = SettingKey("node.readiness_window_seconds")
    public static let nodeReadinessMaxBlocksBehind = SettingKey("node.readiness_max_blocks_behind")
    public static let nodeScrapeInterval = SettingKey("node.scrape_interval")
    public static let nodeCatchupTimeout = SettingKey("node.catchup_timeout")
    public static let daAddress = SettingKey("da.address")
    public static let daAuthToken = SettingKey("da.auth_token")
    public static let daBlockTime = SettingKey("da.block_time")
    public static let daNamespace = SettingKey("da.namespace")
    public static let daDataNamespace = SettingKey("da.data_namespace")
    public static let daForcedInclusionNamespace = SettingKey("da.forced_inclusion_namespace")
    public static let daSubmitOptions = SettingKey("da.submit_options")
    public static let daSigningAddresses = SettingKey("da.signing_addresses")
    public static let daMempoolTtl = SettingKey("da.mempool_ttl")
    public static let daMaxSubmitAttempts = SettingKey("da.max_submit_attempts")
    public static let daRequestTimeout = SettingKey("da.request_timeout")
    public static let daBatchingStrategy = SettingKey("da.batching_strategy")
    public static let daBatchSizeThreshold = SettingKey("da.batch_size_threshold")
    public static let daBatchMaxDelay = SettingKey("da.batch_max_delay")
    public static let daBatchMinItems = SettingKey("da.batch_min_items")
    public static let daStartHeight = SettingKey("da.start_height")
    public static let daMaxBlobSize = SettingKey("da.max_blob_size")
    public static let daFetchParallelism = SettingKey("da.fetch_parallelism")
    public static let daMaxHeldData = SettingKey("da.max_held_data")
    public static let daGasPrice = SettingKey("da.gas_price")
    public static let daMaxGasPrice = SettingKey("da.max_gas_price")
    public static let daGasMultiplier = SettingKey("da.gas_multiplier")
    public static let daKeyName = SettingKey("da.key_name")
    public static let daFeeGranter = SettingKey("da.fee_granter")
    public static let daTxPriority = SettingKey("da.tx_priority")
    public static let daTlsCaFile = SettingKey("da.tls_ca_file")
    public static let daSubscribe = SettingKey("da.subscribe")
    public static let p2pListenAddress = SettingKey("p2p.listen_address")
    public static let p2pPeers = SettingKey("p2p.peers")
    public static let p2pBlockedPeers = SettingKey("p2p.blocked_peers")
    public static let p2pAllowedPeers = SettingKey("p2p.allowed_peers")
    public static let p2pDisableConnectionGater = SettingKey("p2p.disable_connection_gater")
    public static let rpcAddress = SettingKey("rpc.address")
    public static let rpcEnableDaVisualization = SettingKey("rpc.enable_da_visualization")
    public static let instrumentationPrometheus = SettingKey("instrumentation.prometheus")
    public static let instrumentationPrometheusListenAddr = SettingKey("instrumentation.prometheus_listen_addr")
    public static let instrumentationMaxOpenConnections = SettingKey("instrumentation.max_open_connections")
    public static let instrumentationNamespace = SettingKey("instrumentation.namespace")
    public static let instrumentationPprof = SettingKey("instrumentation.pprof")
    public static let instrumentationPprofListenAddr = SettingKey("instrumentation.pprof_listen_addr")
    public static let instrumentationTracing = SettingKey("instrumentation.tracing")
    public static let instrumentationTracingEndpoint = SettingKey("instrumentation.tracing_endpoint")
    public static let instrumentationTracingServiceName = SettingKey("instrumentation.tracing_service_name")
    public static let instrumentationTracingSampleRate = SettingKey("instrumentation.tracing_sample_rate")
    public static let logLevel = SettingKey("log.level")
    public static let logFormat = SettingKey("log.format")
    public static let logTrace = SettingKey("log.trace")
    public static let signerSignerType = SettingKey("signer.signer_type")
    public static let signerGrpcAddress = SettingKey("signer.grpc_address")
    public static let signerGrpcTokenFile = SettingKey("signer.grpc_token_file")
    public static let signerGrpcTlsCertFile = SettingKey("signer.grpc_tls_cert_file")
    public static let signerGrpcTlsKeyFile = SettingKey("signer.grpc_tls_key_file")
    public static let signerGrpcTlsCaFile = SettingKey("signer.grpc_tls_ca_file")
    public static let signerSignerPath = SettingKey("signer.signer_path")
    public static let signerPassphraseFile = SettingKey("signer.passphrase_file")
    public static let signerKmsProvider = SettingKey("signer.kms.provider")
    public static let signerKmsAwsKeyId = SettingKey("signer.kms.aws.key_id")
    public static let signerKmsAwsRegion = SettingKey("signer.kms.aws.region")
    public static let signerKmsAwsProfile = SettingKey("signer.kms.aws.profile")
    public static let signerKmsAwsTimeout = SettingKey("signer.kms.aws.timeout")
    public static let signerKmsAwsMaxRetries = SettingKey("signer.kms.aws.max_retries")
    public static let signerKmsGcpKeyName = SettingKey("signer.kms.gcp.key_name")
    public static let signerKmsGcpCredentialsFile = SettingKey("signer.kms.gcp.credentials_file")
    public static let signerKmsGcpTimeout = SettingKey("signer.kms.gcp.timeout")
    public static let signerKmsGcpMaxRetries = SettingKey("signer.kms.gcp.max_retries")
    public static let raftEnable = SettingKey("raft.enable")
    public static let raftNodeId = SettingKey("raft.node_id")
    public static let raftHeartbeatTimeout = SettingKey("raft.heartbeat_timeout")
    public static let raftEndpoints = SettingKey("raft.endpoints")
    public static let raftLeaseTtl = SettingKey("raft.lease_ttl")
    public static let raftHeartbeatInterval = SettingKey("raft.heartbeat_interval")
    public static let raftRaftAddr = SettingKey("raft.raft_addr")
    public static let raftRaftDir = SettingKey("raft.raft_dir")
    public static let raftBootstrap = SettingKey("raft.bootstrap")
    public static let raftPeers = SettingKey("raft.peers")
    public static let raftSnapCount = SettingKey("raft.snap_count")
    public static let raftSendTimeout = SettingKey("raft.send_timeout")
    public static let raftLeaderLeaseTimeout = SettingKey("raft.leader_lease_timeout")
    public static let raftElectionTimeout = SettingKey("raft.election_timeout")
    public static let raftSnapshotThreshold = SettingKey("raft.snapshot_threshold")
    public static let raftTrailingLogs = SettingKey("raft.trailing_logs")
    public static let pruningPruningMode = SettingKey("pruning.pruning_mode")
    public static let pruningPruningKeepRecent = SettingKey("pruning.pruning_keep_recent")
    public static let pruningPruningInterval = SettingKey("pruning.pruning_interval")
    public static let executionKind = SettingKey("execution.kind")
    public static let evmEngineUrl = SettingKey("evm.engine_url")
    public static let evmEthUrl = SettingKey("evm.eth_url")
    public static let evmJwtSecretFile = SettingKey("evm.jwt_secret_file")
    public static let evmGenesisHash = SettingKey("evm.genesis_hash")
    public static let evmFeeRecipient = SettingKey("evm.fee_recipient")
    public static let forceInclusionServer = SettingKey("force_inclusion_server")

    /// Every key, in the order of the settings table.
    public static let all: [SettingKey] = [
        .dbPath, .clearCache, .nodeAggregator, .nodePromotable,
        .nodeBasedSequencer, .nodeLight, .nodeBlockTime, .nodeLazyMode,
        .nodeLazyBlockInterval, .nodeMaxPendingHeadersAndData, .nodeReadinessWindowSeconds, .nodeReadinessMaxBlocksBehind,
        .nodeScrapeInterval, .nodeCatchupTimeout, .daAddress, .daAuthToken,
        .daBlockTime, .daNamespace, .daDataNamespace, .daForcedInclusionNamespace,
        .daSubmitOptions, .daSigningAddresses, .daMempoolTtl, .daMaxSubmitAttempts,
        .daRequestTimeout, .daBatchingStrategy, .daBatchSizeThreshold, .daBatchMaxDelay,
        .daBatchMinItems, .daStartHeight, .daMaxBlobSize, .daFetchParallelism,
        .daMaxHeldData, .daGasPrice, .daMaxGasPrice, .daGasMultiplier,
        .daKeyName, .daFeeGranter, .daTxPriority, .daTlsCaFile,
        .daSubscribe, .p2pListenAddress, .p2pPeers, .p2pBlockedPeers,
        .p2pAllowedPeers, .p2pDisableConnectionGater, .rpcAddress, .rpcEnableDaVisualization,
        .instrumentationPrometheus, .instrumentationPrometheusListenAddr, .instrumentationMaxOpenConnections, .instrumentationNamespace,
        .instrumentationPprof, .instrumentationPprofListenAddr, .instrumentationTracing, .instrumentationTracingEndpoint,
        .instrumentationTracingServiceName, .instrumentationTracingSampleRate, .logLevel, .logFormat,
        .logTrace, .signerSignerType, .signerGrpcAddress, .signerGrpcTokenFile,
        .signerGrpcTlsCertFile, .signerGrpcTlsKeyFile, .signerGrpcTlsCaFile, .signerSignerPath,
        .signerPassphraseFile, .signerKmsProvider, .signerKmsAwsKeyId, .signerKmsAwsRegion,
        .signerKmsAwsProfile, .signerKmsAwsTimeout, .signerKmsAwsMaxRetries, .signerKmsGcpKeyName,
        .signerKmsGcpCredentialsFile, .signerKmsGcpTimeout, .signerKmsGcpMaxRetries, .raftEnable,
        .raftNodeId, .raftHeartbeatTimeout, .raftEndpoints, .raftLeaseTtl,
        .raftHeartbeatInterval, .raftRaftAddr, .raftRaftDir, .raftBootstrap,
        .raftPeers, .raftSnapCount, .raftSendTimeout, .raftLeaderLeaseTimeout,
        .raftElectionTimeout, .raftSnapshotThreshold, .raftTrailingLogs, .pruningPruningMode,
        .pruningPruningKeepRecent, .pruningPruningInterval, .executionKind, .evmEngineUrl,
        .evmEthUrl, .evmJwtSecretFile, .evmGenesisHash, .evmFeeRecipient,
        .forceInclusionServer,
    ]
}
