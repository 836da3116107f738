import ArgumentParser
import Config
import Logging
import Node

#if canImport(Glibc)
import Glibc
#endif

/// `evnode start`: flags override config.yaml, which overrides the defaults.
/// Options are optional so that "not given" lets the file's value through.
struct StartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Run the node (full node by default; --aggregator produces blocks).")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Flag(name: .customLong("aggregator"), inversion: .prefixedNo, help: ArgumentHelp(Settings.help("node.aggregator")))
    var aggregator: Bool?
    @Option(name: .customLong("catchup-timeout"), help: ArgumentHelp(Settings.help("node.catchup_timeout")))
    var catchupTimeout: String?
    @Option(name: .customLong("block-time"), help: ArgumentHelp(Settings.help("node.block_time")))
    var blockTime: String?
    @Flag(name: .customLong("lazy"), inversion: .prefixedNo, help: ArgumentHelp(Settings.help("node.lazy")))
    var lazy: Bool?
    @Option(name: .customLong("lazy-interval"), help: ArgumentHelp(Settings.help("node.lazy_interval")))
    var lazyInterval: String?

    @Option(name: .customLong("da.address"), help: ArgumentHelp(Settings.help("da.address")))
    var daAddress: String?
    @Option(name: .customLong("da.auth-token"), help: ArgumentHelp(Settings.help("da.auth_token")))
    var daAuthToken: String?
    @Option(name: .customLong("da.namespace"), help: ArgumentHelp(Settings.help("da.namespace")))
    var daNamespace: String?
    @Option(name: .customLong("da.data-namespace"), help: ArgumentHelp(Settings.help("da.data_namespace")))
    var daDataNamespace: String?
    @Option(name: .customLong("da.block-time"), help: ArgumentHelp(Settings.help("da.block_time")))
    var daBlockTime: String?
    @Option(name: .customLong("da.start-height"), help: ArgumentHelp(Settings.help("da.start_height")))
    var daStartHeight: String?
    @Option(name: .customLong("da.max-blob-size"), help: ArgumentHelp(Settings.help("da.max_blob_size")))
    var daMaxBlobSize: String?
    @Option(name: .customLong("da.request-timeout"), help: ArgumentHelp(Settings.help("da.request_timeout")))
    var daRequestTimeout: String?
    @Option(name: .customLong("da.fetch-parallelism"), help: ArgumentHelp(Settings.help("da.fetch_parallelism")))
    var daFetchParallelism: String?
    @Option(name: .customLong("da.max-held-data"), help: ArgumentHelp(Settings.help("da.max_held_data")))
    var daMaxHeldData: String?

    // Celestia submission, transport and back-pressure (issue 17).
    @Option(name: .customLong("da.gas-price"), help: ArgumentHelp(Settings.help("da.gas_price")))
    var daGasPrice: String?
    @Option(name: .customLong("da.max-gas-price"), help: ArgumentHelp(Settings.help("da.max_gas_price")))
    var daMaxGasPrice: String?
    @Option(name: .customLong("da.gas-multiplier"), help: ArgumentHelp(Settings.help("da.gas_multiplier")))
    var daGasMultiplier: String?
    @Option(name: .customLong("da.key-name"), help: ArgumentHelp(Settings.help("da.key_name")))
    var daKeyName: String?
    @Option(name: .customLong("da.signing-addresses"), help: ArgumentHelp(Settings.help("da.signing_addresses")))
    var daSigningAddresses: String?
    @Option(name: .customLong("da.fee-granter"), help: ArgumentHelp(Settings.help("da.fee_granter")))
    var daFeeGranter: String?
    @Option(name: .customLong("da.tx-priority"), help: ArgumentHelp(Settings.help("da.tx_priority")))
    var daTxPriority: String?
    @Option(name: .customLong("da.submit-options"), help: ArgumentHelp(Settings.help("da.submit_options")))
    var daSubmitOptions: String?
    @Option(name: .customLong("da.tls-ca-file"), help: ArgumentHelp(Settings.help("da.tls_ca_file")))
    var daTLSCAFile: String?
    @Flag(name: .customLong("da.subscribe"), inversion: .prefixedNo, help: ArgumentHelp(Settings.help("da.subscribe")))
    var daSubscribe: Bool?
    @Option(name: .customLong("max-pending-blocks"), help: ArgumentHelp(Settings.help("node.max_pending_blocks")))
    var maxPendingBlocks: String?

    @Option(name: .customLong("p2p.listen"), help: ArgumentHelp(Settings.help("p2p.listen")))
    var p2pListen: String?
    @Option(name: .customLong("p2p.peers"), help: ArgumentHelp(Settings.help("p2p.peers")))
    var p2pPeers: String?

    @Option(name: .customLong("rpc.address"), help: ArgumentHelp(Settings.help("rpc.address")))
    var rpcAddress: String?
    @Flag(name: .customLong("rpc.enable-da-visualization"), inversion: .prefixedNo,
          help: ArgumentHelp(Settings.help("rpc.enable_da_visualization")))
    var rpcEnableDAVisualization: Bool?

    @Flag(name: .customLong("instrumentation.prometheus"), inversion: .prefixedNo,
          help: ArgumentHelp(Settings.help("instrumentation.prometheus")))
    var prometheus: Bool?
    @Option(name: .customLong("instrumentation.prometheus-listen-addr"),
            help: ArgumentHelp(Settings.help("instrumentation.prometheus_listen_addr")))
    var prometheusListen: String?
    @Option(name: .customLong("instrumentation.namespace"), help: ArgumentHelp(Settings.help("instrumentation.namespace")))
    var metricsNamespace: String?

    @Flag(name: .customLong("raft.enable"), inversion: .prefixedNo, help: ArgumentHelp(Settings.help("raft.enable")))
    var raftEnable: Bool?
    @Option(name: .customLong("raft.endpoints"), help: ArgumentHelp(Settings.help("raft.endpoints")))
    var raftEndpoints: String?
    @Option(name: .customLong("raft.node-id"), help: ArgumentHelp(Settings.help("raft.node_id")))
    var raftNodeID: String?
    @Option(name: .customLong("raft.lease-ttl"), help: ArgumentHelp(Settings.help("raft.lease_ttl")))
    var raftLeaseTTL: String?
    @Option(name: .customLong("raft.heartbeat-interval"), help: ArgumentHelp(Settings.help("raft.heartbeat_interval")))
    var raftHeartbeatInterval: String?
    @Option(name: .customLong("raft.heartbeat-timeout"), help: ArgumentHelp(Settings.help("raft.heartbeat_timeout")))
    var raftHeartbeatTimeout: String?

    @Option(name: .customLong("execution"), help: ArgumentHelp(Settings.help("execution.kind")))
    var execution: String?
    @Option(name: .customLong("evm.engine-url"), help: ArgumentHelp(Settings.help("evm.engine_url")))
    var evmEngineURL: String?
    @Option(name: .customLong("evm.eth-url"), help: ArgumentHelp(Settings.help("evm.eth_url")))
    var evmEthURL: String?
    @Option(name: .customLong("evm.jwt-secret-file"), help: ArgumentHelp(Settings.help("evm.jwt_secret_file")))
    var evmJWTSecretFile: String?
    @Option(name: .customLong("evm.genesis-hash"), help: ArgumentHelp(Settings.help("evm.genesis_hash")))
    var evmGenesisHash: String?
    @Option(name: .customLong("evm.fee-recipient"), help: ArgumentHelp(Settings.help("evm.fee_recipient")))
    var evmFeeRecipient: String?

    @Option(name: .customLong("log.level"), help: ArgumentHelp(Settings.help("log.level")))
    var logLevel: String?
    @Option(name: .customLong("log.format"), help: ArgumentHelp(Settings.help("log.format")))
    var logFormat: String?

    /// The flags that were given, keyed by config.yaml key.
    func givenFlags() -> [String: RawSetting] {
        let pairs: [(String, String?)] = [
            ("node.aggregator", aggregator.map { $0 ? "true" : "false" }),
            ("node.catchup_timeout", catchupTimeout),
            ("node.block_time", blockTime),
            ("node.lazy", lazy.map { $0 ? "true" : "false" }),
            ("node.lazy_interval", lazyInterval),
            ("da.address", daAddress),
            ("da.auth_token", daAuthToken),
            ("da.namespace", daNamespace),
            ("da.data_namespace", daDataNamespace),
            ("da.block_time", daBlockTime),
            ("da.start_height", daStartHeight),
            ("da.max_blob_size", daMaxBlobSize),
            ("da.request_timeout", daRequestTimeout),
            ("da.fetch_parallelism", daFetchParallelism),
            ("da.max_held_data", daMaxHeldData),
            ("da.gas_price", daGasPrice),
            ("da.max_gas_price", daMaxGasPrice),
            ("da.gas_multiplier", daGasMultiplier),
            ("da.key_name", daKeyName),
            ("da.signing_addresses", daSigningAddresses),
            ("da.fee_granter", daFeeGranter),
            ("da.tx_priority", daTxPriority),
            ("da.submit_options", daSubmitOptions),
            ("da.tls_ca_file", daTLSCAFile),
            ("da.subscribe", daSubscribe.map { $0 ? "true" : "false" }),
            ("node.max_pending_blocks", maxPendingBlocks),
            ("p2p.listen", p2pListen),
            ("p2p.peers", p2pPeers),
            ("rpc.address", rpcAddress),
            ("rpc.enable_da_visualization", rpcEnableDAVisualization.map { $0 ? "true" : "false" }),
            ("instrumentation.prometheus", prometheus.map { $0 ? "true" : "false" }),
            ("instrumentation.prometheus_listen_addr", prometheusListen),
            ("instrumentation.namespace", metricsNamespace),
            ("raft.enable", raftEnable.map { $0 ? "true" : "false" }),
            ("raft.endpoints", raftEndpoints),
            ("raft.node_id", raftNodeID),
            ("raft.lease_ttl", raftLeaseTTL),
            ("raft.heartbeat_interval", raftHeartbeatInterval),
            ("raft.heartbeat_timeout", raftHeartbeatTimeout),
            ("execution.kind", execution),
            ("evm.engine_url", evmEngineURL),
            ("evm.eth_url", evmEthURL),
            ("evm.jwt_secret_file", evmJWTSecretFile),
            ("evm.genesis_hash", evmGenesisHash),
            ("evm.fee_recipient", evmFeeRecipient),
            ("log.level", logLevel),
            ("log.format", logFormat),
        ]
        var out: [String: RawSetting] = [:]
        for (key, value) in pairs {
            if let value, let setting = Settings.byKey[key] {
                out[key] = RawSetting(value: value, source: "--\(setting.flag)")
            }
        }
        return out
    }

    func run() async throws {
        let setup = try NodeSetup.load(home: home, flags: givenFlags())
        LogBootstrap.bootstrap(level: setup.config.log.level, format: setup.config.log.format)
        let logger = Logger(label: "evnode")
        for warning in setup.keyPermissionWarnings() {
            logger.warning("\(warning)")
        }
        let c = setup.config
        logger.info("starting evnode", metadata: [
            "version": "\(EvnodeVersion.string)",
            "home": "\(setup.layout.home)",
            "chain_id": "\(setup.genesis.chainID)",
            "mode": "\(c.mode.rawValue)",
            "catchup_timeout": "\(DurationParser.format(c.catchupTimeout))",
            "da": "\(c.da.address)",
            "p2p_listen": "\(c.p2p.listen)",
            "peers": "\(c.p2p.peers.count)",
            "rpc": "\(c.rpc.address)",
            "execution": "\(c.execution.kind.rawValue)",
        ])
        let node: EvNode
        do throws(NodeFailure) {
            node = try await EvNode.make(setup: setup, logger: logger)
            try await node.run()
        } catch {
            logger.critical("\(error)")
            FileIOStderr.write("error: \(error)\n")
            Glibc.exit(error.exitStatus)
        }
    }
}
