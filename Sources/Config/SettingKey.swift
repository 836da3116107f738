/// The name of one `evnode start` setting (its dotted `evnode.yaml` key), as code names it: a
/// misspelt key does not compile. One constant per row of `Settings.all`; `SettingKey.all` lists
/// them and a test checks that both agree. Keys from outside (the file, flags, the environment)
/// are looked up in the table, never turned into a `SettingKey` unchecked.
package struct SettingKey: Hashable, Sendable, CustomStringConvertible {
    /// The dotted key (`da.block_time`).
    package let name: String

    private init(_ name: String) { self.name = name }

    package var description: String { name }

    package static let dbPath = SettingKey("db_path")
    package static let clearCache = SettingKey("clear_cache")
    package static let nodeAggregator = SettingKey("node.aggregator")
    package static let nodePromotable = SettingKey("node.promotable")
    package static let nodeBasedSequencer = SettingKey("node.based_sequencer")
    package static let nodeLight = SettingKey("node.light")
    package static let nodeBlockTime = SettingKey("node.block_time")
    package static let nodeLazyMode = SettingKey("node.lazy_mode")
    package static let nodeLazyBlockInterval = SettingKey("node.lazy_block_interval")
    package static let nodeMaxPendingHeadersAndData = SettingKey("node.max_pending_headers_and_data")
    package static let nodeReadinessWindowSeconds = SettingKey("node.readiness_window_seconds")
    package static let nodeReadinessMaxBlocksBehind = SettingKey("node.readiness_max_blocks_behind")
    package static let nodeScrapeInterval = SettingKey("node.scrape_interval")
    package static let nodeCatchupTimeout = SettingKey("node.catchup_timeout")
    package static let daAddress = SettingKey("da.address")
    package static let daAuthToken = SettingKey("da.auth_token")
    package static let daBlockTime = SettingKey("da.block_time")
    package static let daNamespace = SettingKey("da.namespace")
    package static let daDataNamespace = SettingKey("da.data_namespace")
    package static let daForcedInclusionNamespace = SettingKey("da.forced_inclusion_namespace")
    package static let daSubmitOptions = SettingKey("da.submit_options")
    package static let daSigningAddresses = SettingKey("da.signing_addresses")
    package static let daMempoolTtl = SettingKey("da.mempool_ttl")
    package static let daMaxSubmitAttempts = SettingKey("da.max_submit_attempts")
    package static let daRequestTimeout = SettingKey("da.request_timeout")
    package static let daBatchingStrategy = SettingKey("da.batching_strategy")
    package static let daBatchSizeThreshold = SettingKey("da.batch_size_threshold")
    package static let daBatchMaxDelay = SettingKey("da.batch_max_delay")
    package static let daBatchMinItems = SettingKey("da.batch_min_items")
    package static let daStartHeight = SettingKey("da.start_height")
    package static let daMaxBlobSize = SettingKey("da.max_blob_size")
    package static let daFetchParallelism = SettingKey("da.fetch_parallelism")
    package static let daMaxHeldData = SettingKey("da.max_held_data")
    package static let daGasPrice = SettingKey("da.gas_price")
    package static let daMaxGasPrice = SettingKey("da.max_gas_price")
    package static let daGasMultiplier = SettingKey("da.gas_multiplier")
    package static let daKeyName = SettingKey("da.key_name")
    package static let daFeeGranter = SettingKey("da.fee_granter")
    package static let daTxPriority = SettingKey("da.tx_priority")
    package static let daTlsCaFile = SettingKey("da.tls_ca_file")
    package static let daSubscribe = SettingKey("da.subscribe")
    package static let p2pListenAddress = SettingKey("p2p.listen_address")
    package static let p2pPeers = SettingKey("p2p.peers")
    package static let p2pBlockedPeers = SettingKey("p2p.blocked_peers")
    package static let p2pAllowedPeers = SettingKey("p2p.allowed_peers")
    package static let p2pDisableConnectionGater = SettingKey("p2p.disable_connection_gater")
    package static let rpcAddress = SettingKey("rpc.address")
    package static let rpcEnableDaVisualization = SettingKey("rpc.enable_da_visualization")
    package static let instrumentationPrometheus = SettingKey("instrumentation.prometheus")
    package static let instrumentationPrometheusListenAddr = SettingKey("instrumentation.prometheus_listen_addr")
    package static let instrumentationMaxOpenConnections = SettingKey("instrumentation.max_open_connections")
    package static let instrumentationNamespace = SettingKey("instrumentation.namespace")
    package static let instrumentationPprof = SettingKey("instrumentation.pprof")
    package static let instrumentationPprofListenAddr = SettingKey("instrumentation.pprof_listen_addr")
    package static let instrumentationTracing = SettingKey("instrumentation.tracing")
    package static let instrumentationTracingEndpoint = SettingKey("instrumentation.tracing_endpoint")
    package static let instrumentationTracingServiceName = SettingKey("instrumentation.tracing_service_name")
    package static let instrumentationTracingSampleRate = SettingKey("instrumentation.tracing_sample_rate")
    package static let logLevel = SettingKey("log.level")
    package static let logFormat = SettingKey("log.format")
    package static let logTrace = SettingKey("log.trace")
    package static let signerSignerType = SettingKey("signer.signer_type")
    package static let signerGrpcAddress = SettingKey("signer.grpc_address")
    package static let signerGrpcTokenFile = SettingKey("signer.grpc_token_file")
    package static let signerGrpcTlsCertFile = SettingKey("signer.grpc_tls_cert_file")
    package static let signerGrpcTlsKeyFile = SettingKey("signer.grpc_tls_key_file")
    package static let signerGrpcTlsCaFile = SettingKey("signer.grpc_tls_ca_file")
    package static let signerSignerPath = SettingKey("signer.signer_path")
    package static let signerPassphraseFile = SettingKey("signer.passphrase_file")
    package static let signerKmsProvider = SettingKey("signer.kms.provider")
    package static let signerKmsAwsKeyId = SettingKey("signer.kms.aws.key_id")
    package static let signerKmsAwsRegion = SettingKey("signer.kms.aws.region")
    package static let signerKmsAwsProfile = SettingKey("signer.kms.aws.profile")
    package static let signerKmsAwsTimeout = SettingKey("signer.kms.aws.timeout")
    package static let signerKmsAwsMaxRetries = SettingKey("signer.kms.aws.max_retries")
    package static let signerKmsGcpKeyName = SettingKey("signer.kms.gcp.key_name")
    package static let signerKmsGcpCredentialsFile = SettingKey("signer.kms.gcp.credentials_file")
    package static let signerKmsGcpTimeout = SettingKey("signer.kms.gcp.timeout")
    package static let signerKmsGcpMaxRetries = SettingKey("signer.kms.gcp.max_retries")
    package static let raftEnable = SettingKey("raft.enable")
    package static let raftNodeId = SettingKey("raft.node_id")
    package static let raftHeartbeatTimeout = SettingKey("raft.heartbeat_timeout")
    package static let raftEndpoints = SettingKey("raft.endpoints")
    package static let raftLeaseTtl = SettingKey("raft.lease_ttl")
    package static let raftHeartbeatInterval = SettingKey("raft.heartbeat_interval")
    package static let raftRaftAddr = SettingKey("raft.raft_addr")
    package static let raftRaftDir = SettingKey("raft.raft_dir")
    package static let raftBootstrap = SettingKey("raft.bootstrap")
    package static let raftPeers = SettingKey("raft.peers")
    package static let raftSnapCount = SettingKey("raft.snap_count")
    package static let raftSendTimeout = SettingKey("raft.send_timeout")
    package static let raftLeaderLeaseTimeout = SettingKey("raft.leader_lease_timeout")
    package static let raftElectionTimeout = SettingKey("raft.election_timeout")
    package static let raftSnapshotThreshold = SettingKey("raft.snapshot_threshold")
    package static let raftTrailingLogs = SettingKey("raft.trailing_logs")
    package static let pruningPruningMode = SettingKey("pruning.pruning_mode")
    package static let pruningPruningKeepRecent = SettingKey("pruning.pruning_keep_recent")
    package static let pruningPruningInterval = SettingKey("pruning.pruning_interval")
    package static let executionKind = SettingKey("execution.kind")
    package static let evmEngineUrl = SettingKey("evm.engine_url")
    package static let evmEthUrl = SettingKey("evm.eth_url")
    package static let evmJwtSecretFile = SettingKey("evm.jwt_secret_file")
    package static let evmGenesisHash = SettingKey("evm.genesis_hash")
    package static let evmFeeRecipient = SettingKey("evm.fee_recipient")
    package static let forceInclusionServer = SettingKey("force_inclusion_server")

    /// Every key, in the order of the settings table.
    package static let all: [SettingKey] = [
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
