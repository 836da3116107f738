/// The table of every `evnode start` setting: its key in config.yaml, its flag, its default and
/// what it means. Defaults, the file loader, flag help and validation all read this one table, so
/// a setting cannot be documented with one default and behave with another.
public struct Setting: Sendable {
    public enum Kind: Sendable, Equatable {
        case bool, duration, string, uint, int, decimal, hostPort, hostPortList, endpoint, endpointList
        case choice([String])
    }

    /// Dotted path in config.yaml (`da.block_time` is `da:` → `block_time:`).
    public let key: String
    /// Long flag name without the leading dashes.
    public let flag: String
    public let kind: Kind
    public let defaultValue: String
    public let help: String

    /// Help text with the default appended, for `--help`.
    public var helpWithDefault: String {
        switch kind {
        case .bool: return help + " (default: \(defaultValue))"
        default: return help + (defaultValue.isEmpty ? "" : " (default: \(defaultValue))")
        }
    }
}

public enum Settings {
    public static let all: [Setting] = [
        Setting(key: "node.aggregator", flag: "aggregator", kind: .bool, defaultValue: "false",
                help: "Produce blocks (needs a signer key and a DA address)"),
        Setting(key: "node.catchup_timeout", flag: "catchup-timeout", kind: .duration, defaultValue: "0s",
                help: "With --aggregator: sync from DA and peers first, promote when caught up; peers silent this long are ignored (0s = off)"),
        Setting(key: "node.block_time", flag: "block-time", kind: .duration, defaultValue: "1s",
                help: "Time between blocks"),
        Setting(key: "node.lazy", flag: "lazy", kind: .bool, defaultValue: "false",
                help: "Produce a block only when transactions wait, or every --lazy-interval"),
        Setting(key: "node.lazy_interval", flag: "lazy-interval", kind: .duration, defaultValue: "1m",
                help: "Longest time between blocks in lazy mode"),
        // Back-pressure (issue 17).
        Setting(key: "node.max_pending_blocks", flag: "max-pending-blocks", kind: .uint, defaultValue: "0",
                help: "Most produced blocks not yet on DA; at this many, production pauses until DA catches up (ev-node's max_pending_headers_and_data; 0: off)"),
        Setting(key: "da.address", flag: "da.address", kind: .endpoint, defaultValue: "http://127.0.0.1:7980",
                help: "DA node JSON-RPC URL"),
        Setting(key: "da.auth_token", flag: "da.auth-token", kind: .string, defaultValue: "",
                help: "Bearer token for the DA node"),
        Setting(key: "da.namespace", flag: "da.namespace", kind: .string, defaultValue: "",
                help: "Namespace name for header blobs (empty: <chain id>-headers)"),
        Setting(key: "da.data_namespace", flag: "da.data-namespace", kind: .string, defaultValue: "",
                help: "Namespace name for data blobs (empty: same as headers)"),
        Setting(key: "da.block_time", flag: "da.block-time", kind: .duration, defaultValue: "6s",
                help: "Expected time between DA blocks"),
        Setting(key: "da.start_height", flag: "da.start-height", kind: .uint, defaultValue: "0",
                help: "First DA height to read (0: genesis da_start_height)"),
        Setting(key: "da.max_blob_size", flag: "da.max-blob-size", kind: .int, defaultValue: "1500000",
                help: "Largest blob batch posted in one submission, in bytes"),
        Setting(key: "da.request_timeout", flag: "da.request-timeout", kind: .duration, defaultValue: "30s",
                help: "Timeout of one DA request"),
        Setting(key: "da.fetch_parallelism", flag: "da.fetch-parallelism", kind: .int, defaultValue: "64",
                help: "Most DA heights fetched at once while syncing; the number in flight adapts below it to the DA node's latency and faults (1: one at a time)"),
        Setting(key: "da.max_held_data", flag: "da.max-held-data", kind: .int, defaultValue: "67108864",
                help: "Most bytes of DA data blobs held while they wait for their header"),
        // Celestia submission and transport (issue 17). The TxConfig fields are celestia-node's
        // (state/txclient/tx_config.go, jsonTxConfig).
        Setting(key: "da.gas_price", flag: "da.gas-price", kind: .decimal, defaultValue: "-1",
                help: "Gas price in utia per gas unit for blob.Submit (-1: let the DA node estimate)"),
        Setting(key: "da.max_gas_price", flag: "da.max-gas-price", kind: .decimal, defaultValue: "0",
                help: "Highest gas price escalation may reach, also sent as max_gas_price (0: celestia-node's default, 0.4)"),
        Setting(key: "da.gas_multiplier", flag: "da.gas-multiplier", kind: .decimal, defaultValue: "1.3",
                help: "Fee escalation step: the gas price is multiplied by this after a too-low fee or a submission not included in time (1: no escalation)"),
        Setting(key: "da.key_name", flag: "da.key-name", kind: .string, defaultValue: "",
                help: "Keyring key of the DA node that signs blob transactions (TxConfig key_name)"),
        Setting(key: "da.signing_addresses", flag: "da.signing-addresses", kind: .string, defaultValue: "",
                help: "celestia1… addresses used in turn as each submission's signer_address, a,b,c"),
        Setting(key: "da.fee_granter", flag: "da.fee-granter", kind: .string, defaultValue: "",
                help: "celestia1… address that pays the fees through a fee grant (TxConfig fee_granter_address)"),
        Setting(key: "da.tx_priority", flag: "da.tx-priority", kind: .choice(["", "low", "medium", "high"]), defaultValue: "",
                help: "Gas price estimation priority: low, medium or high (empty: the DA node's default, medium)"),
        Setting(key: "da.submit_options", flag: "da.submit-options", kind: .string, defaultValue: "",
                help: "celestia-node TxConfig JSON sent as is with every blob.Submit (ev-node's submit_options); the flags above override its fields"),
        Setting(key: "da.tls_ca_file", flag: "da.tls-ca-file", kind: .string, defaultValue: "",
                help: "PEM file of the CA that signed an https:// DA node's certificate (empty: the system's CAs)"),
        Setting(key: "da.subscribe", flag: "da.subscribe", kind: .bool, defaultValue: "true",
                help: "Follow new DA heights with blob.Subscribe over WebSocket, falling back to polling"),
        Setting(key: "p2p.listen", flag: "p2p.listen", kind: .hostPort, defaultValue: "0.0.0.0:7676",
                help: "P2P listen address: host:port or /ip4/<ip>/tcp/<port>"),
        Setting(key: "p2p.peers", flag: "p2p.peers", kind: .hostPortList, defaultValue: "",
                help: "Peers to dial: multiaddrs /ip4/<ip>/tcp/<port>/p2p/<peer id>,… (host:port accepted: the id is then learned in the handshake)"),
        Setting(key: "rpc.address", flag: "rpc.address", kind: .hostPort, defaultValue: "127.0.0.1:7331",
                help: "RPC listen address"),
        // Observability (issue 30). ev-node's keys; the config work of issue 28 owns their flags.
        Setting(key: "rpc.enable_da_visualization", flag: "rpc.enable-da-visualization", kind: .bool, defaultValue: "false",
                help: "Serve ev-node's DA visualizer on the RPC port (/da, /da/submissions, /da/blob, /da/stats, /da/health)"),
        Setting(key: "instrumentation.prometheus", flag: "instrumentation.prometheus", kind: .bool, defaultValue: "false",
                help: "Serve Prometheus metrics (ev-node's series and evnode's own) on --instrumentation.prometheus-listen-addr"),
        Setting(key: "instrumentation.prometheus_listen_addr", flag: "instrumentation.prometheus-listen-addr", kind: .hostPort,
                defaultValue: "0.0.0.0:26660", help: "Prometheus listen address"),
        Setting(key: "instrumentation.namespace", flag: "instrumentation.namespace", kind: .string, defaultValue: "evnode",
                help: "Prefix of ev-node's metric names (<namespace>_sequencer_*, <namespace>_p2p_*)"),
        Setting(key: "raft.enable", flag: "raft.enable", kind: .bool, defaultValue: "false",
                help: "HA aggregator: elect the single producer through etcd"),
        Setting(key: "raft.endpoints", flag: "raft.endpoints", kind: .endpointList, defaultValue: "",
                help: "etcd endpoints, http://host:port,…"),
        Setting(key: "raft.node_id", flag: "raft.node-id", kind: .string, defaultValue: "",
                help: "This node's name in the HA group (empty: derived from the node key)"),
        Setting(key: "raft.lease_ttl", flag: "raft.lease-ttl", kind: .duration, defaultValue: "0s",
                help: "Leader lease TTL (0s: five block times, at least 2s)"),
        Setting(key: "raft.heartbeat_interval", flag: "raft.heartbeat-interval", kind: .duration, defaultValue: "100ms",
                help: "How often the leader puts its heartbeat in etcd (0s: no heartbeats; a dead leader is replaced when its lease expires)"),
        Setting(key: "raft.heartbeat_timeout", flag: "raft.heartbeat-timeout", kind: .duration, defaultValue: "0s",
                help: "How long a follower that holds the latest block waits without a heartbeat before it takes over (0s: five heartbeat intervals)"),
        // Execution layer (ev-node's --evm.* flags, apps/evm/cmd/run.go).
        Setting(key: "execution.kind", flag: "execution", kind: .choice(ExecutionKind.allCases.map(\.rawValue)),
                defaultValue: "kv", help: "Execution layer: kv (built-in key/value application) or evm (an EL such as ev-reth over the Engine API)"),
        Setting(key: "evm.engine_url", flag: "evm.engine-url", kind: .endpoint, defaultValue: "http://localhost:8551",
                help: "With --execution evm: the EL's Engine API URL (JWT-authenticated)"),
        Setting(key: "evm.eth_url", flag: "evm.eth-url", kind: .endpoint, defaultValue: "http://localhost:8545",
                help: "With --execution evm: the EL's eth JSON-RPC URL"),
        Setting(key: "evm.jwt_secret_file", flag: "evm.jwt-secret-file", kind: .string, defaultValue: "",
                help: "With --execution evm (required): file holding the Engine API JWT secret, hex (e.g. `openssl rand -hex 32`)"),
        Setting(key: "evm.genesis_hash", flag: "evm.genesis-hash", kind: .string, defaultValue: "",
                help: "With --execution evm: the EL's genesis block hash, 0x-hex (empty: taken from the EL's block 0)"),
        Setting(key: "evm.fee_recipient", flag: "evm.fee-recipient", kind: .string, defaultValue: "",
                help: "With --execution evm: suggestedFeeRecipient of built blocks, 0x-hex 20 bytes (empty: the zero address)"),
        Setting(key: "log.level", flag: "log.level", kind: .choice(LogLevelName.all), defaultValue: "info",
                help: "Log level: \(LogLevelName.all.joined(separator: ", "))"),
        Setting(key: "log.format", flag: "log.format", kind: .choice(LogFormat.allCases.map(\.rawValue)),
                defaultValue: "text", help: "Log format: text or json"),
    ]

    public static let byKey: [String: Setting] = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0) })
    public static let byFlag: [String: Setting] = Dictionary(uniqueKeysWithValues: all.map { ($0.flag, $0) })

    public static func help(_ key: String) -> String {
        byKey[key]?.helpWithDefault ?? ""
    }
}

public enum LogLevelName {
    public static let all = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}
