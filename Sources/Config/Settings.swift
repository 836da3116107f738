/// The table of every `evnode start` setting: its key in `evnode.yaml` (ev-node's key where
/// ev-node has one), its flag (`--evnode.<key>`, ev-node's spelling), the older evnode flag names
/// kept as aliases, its default and what it means. Defaults, the file loader, flag parsing, the
/// environment, `--help`, the file `init` writes and validation all read this one table, so a
/// setting cannot be documented with one default and behave with another.
package struct Setting: Sendable {
    package enum Kind: Sendable, Equatable {
        case bool, duration, string, uint, int, decimal, hostPort, hostPortList, endpoint, endpointList
        case choice([String])
    }

    /// Whether evnode acts on the setting. ev-node's `init` writes every key it knows, so a key of
    /// a feature evnode lacks must still load at its default value: refusing it there would brick
    /// the restore of a home that never used the feature.
    package enum Support: Sendable, Equatable {
        case supported
        /// A feature evnode does not have: accepted at its default, refused (with `reason`)
        /// otherwise, from any source.
        case unsupported(String)
        /// A knob of a feature that is off (a tracing endpoint while tracing is off, a KMS key
        /// while the signer is the file, hashicorp-raft's folders): in the file any value loads,
        /// as in ev-node, unless `enabler` is on; on the command line or in the environment a
        /// value other than the default is refused with `reason`, since someone meant it.
        case inert(enabler: String?, reason: String)
        /// Accepted; it has nothing to act on in evnode, and a notice at start says so when it is
        /// not at its default.
        case noEffect(String)
    }

    /// The setting's name as code names it.
    package let id: SettingKey
    /// Dotted path in `evnode.yaml` (`da.block_time` is `da:` → `block_time:`).
    package var key: String { id.name }
    /// Long flag name without the leading dashes.
    package let flag: String
    /// Older evnode spellings of the flag, still accepted (scripts and the test harness use them).
    package let aliases: [String]
    package let kind: Kind
    package let defaultValue: String
    package let help: String
    package let support: Support
    /// False for ev-node's command-line-only settings (`clear_cache`, `signer.passphrase_file`,
    /// apps/evm's `--force-inclusion-server`): a key of that name in the file is refused.
    package let inFile: Bool
    /// A setting of evnode's own, not ev-node's (marked in `--help` and README).
    package let evnodeOnly: Bool

    package init(_ id: SettingKey, flag: String? = nil, aliases: [String] = [], _ kind: Kind, _ defaultValue: String,
                _ help: String, support: Support = .supported, inFile: Bool = true, evnodeOnly: Bool = false) {
        self.id = id
        self.flag = flag ?? "evnode." + id.name
        self.aliases = aliases
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
        self.support = support
        self.inFile = inFile
        self.evnodeOnly = evnodeOnly
    }

    /// The group (`node`, `da`, …; `base` for top-level keys such as `db_path`).
    package var group: String {
        guard let dot = key.firstIndex(of: ".") else { return "base" }
        return String(key[..<dot])
    }

    /// The one environment variable of this setting: `EVNODE_` and the key in capitals, dots
    /// and dashes as underscores (`evnode.node.aggregator` → `EVNODE_NODE_AGGREGATOR`).
    package var environmentVariable: String {
        "EVNODE_" + key.uppercased().map { $0 == "." || $0 == "-" ? "_" : $0 }.map(String.init).joined()
    }

    /// Help text with the default appended, for `--help`.
    package var helpWithDefault: String {
        var text = help
        switch support {
        case .unsupported(let why): text += " [refused unless \(defaultValue.isEmpty ? "empty" : defaultValue): \(why)]"
        case .inert(_, let why): text += " [\(why)]"
        case .noEffect(let why): text += " [no effect: \(why)]"
        case .supported: break
        }
        switch kind {
        case .bool: return text + " (default: \(defaultValue))"
        default: return text + (defaultValue.isEmpty ? "" : " (default: \(defaultValue))")
        }
    }
}

package enum Settings {
    static let kmsOnly = "a KMS signer setting; evnode signs with the file signer only"
    static let tracingOnly = "an OpenTelemetry setting; evnode has no tracing"
    static let hashicorpRaft = "hashicorp-raft's setting; evnode's HA elects its leader through etcd (--evnode.raft.endpoints)"

    package static let all: [Setting] = [
        // Base.
        Setting(.dbPath, .string, "data",
                "Folder of the node's database, relative to --home unless absolute (the RocksDB store is its subfolder store/)"),
        Setting(.clearCache, .bool, "false", "ev-node: clear its block cache at start",
                support: .noEffect("evnode keeps no cache outside its store"), inFile: false),

        // Node.
        Setting(.nodeAggregator, aliases: ["aggregator"], .bool, "false",
                "Produce blocks (needs the signer and a DA address)"),
        Setting(.nodePromotable, .bool, "false",
                "Run as a full node that takes over as aggregator when the chain names its key (ev-node v1.2 rotation; needs the signer; not with raft)"),
        Setting(.nodeBasedSequencer, .bool, "false",
                "With node.aggregator: derive blocks from the DA forced-inclusion namespace alone (no signer, no DA submission)"),
        Setting(.nodeLight, .bool, "false", "Light node",
                support: .unsupported("evnode has no light mode")),
        Setting(.nodeBlockTime, aliases: ["block-time"], .duration, "1s", "Time between blocks"),
        Setting(.nodeLazyMode, aliases: ["lazy"], .bool, "false",
                "Produce a block only when transactions wait, or every lazy_block_interval"),
        Setting(.nodeLazyBlockInterval, aliases: ["lazy-interval"], .duration, "1m",
                "Longest time between blocks in lazy mode (must exceed block_time)"),
        Setting(.nodeMaxPendingHeadersAndData, aliases: ["max-pending-blocks"], .uint, "0",
                "Most produced blocks not yet on DA; at this many, production pauses until DA catches up (0: no limit)"),
        Setting(.nodeReadinessWindowSeconds, .uint, "15",
                "/health/ready: a full node that applied no block for this many seconds is not ready"),
        Setting(.nodeReadinessMaxBlocksBehind, .uint, "15",
                "/health/ready: most blocks behind the best known height a ready node may be"),
        Setting(.nodeScrapeInterval, .duration, "1s", "ev-node: how often its reaper polls the executor for transactions",
                support: .unsupported("evnode asks the executor for transactions when it builds a block; there is no reaper to pace")),
        Setting(.nodeCatchupTimeout, aliases: ["catchup-timeout"], .duration, "0s",
                "With the aggregator: sync from DA and peers first, promote when caught up; peers silent this long are ignored (0s: off)"),

        // DA.
        Setting(.daAddress, aliases: ["da.address"], .endpoint, "http://127.0.0.1:7980",
                "DA node JSON-RPC URL"),
        Setting(.daAuthToken, aliases: ["da.auth-token"], .string, "", "Bearer token for the DA node"),
        Setting(.daBlockTime, aliases: ["da.block-time"], .duration, "6s", "Expected time between DA blocks"),
        Setting(.daNamespace, aliases: ["da.namespace"], .string, "",
                "Namespace name of header blobs (empty: <chain id>-headers)"),
        Setting(.daDataNamespace, aliases: ["da.data-namespace"], .string, "",
                "Namespace name of data blobs (empty: same as headers)"),
        Setting(.daForcedInclusionNamespace, .string, "",
                "Namespace name of forced-inclusion transactions (empty: forced inclusion off, neither included nor checked)"),
        Setting(.daSubmitOptions, aliases: ["da.submit-options"], .string, "",
                "celestia-node TxConfig JSON sent with every blob.Submit; the gas and key flags below override its fields"),
        Setting(.daSigningAddresses, aliases: ["da.signing-addresses"], .string, "",
                "celestia1… addresses used in turn as each submission's signer_address, a,b,c"),
        Setting(.daMempoolTtl, .uint, "0",
                "DA blocks a submitted blob may wait unincluded before it is submitted again (0: never by age)"),
        Setting(.daMaxSubmitAttempts, .int, "30",
                "Failed submissions of one batch before the node stops with an error naming it"),
        Setting(.daRequestTimeout, aliases: ["da.request-timeout"], .duration, "1m", "Timeout of one DA request"),
        Setting(.daBatchingStrategy, .choice(DABatchingConfig.Strategy.allCases.map(\.rawValue)), "time",
                "When pending blocks are posted: immediate, size, time or adaptive"),
        Setting(.daBatchSizeThreshold, .decimal, "0.8",
                "size and adaptive: fraction (0, 1] of max_blob_size that triggers a post"),
        Setting(.daBatchMaxDelay, .duration, "0s",
                "time and adaptive: longest wait before a post (0s: one DA block time)"),
        Setting(.daBatchMinItems, .int, "1", "time and adaptive: fewest pending items a post waits for"),
        Setting(.daStartHeight, aliases: ["da.start-height"], .uint, "0",
                "First DA height to read (0: genesis da_start_height)"),
        Setting(.daMaxBlobSize, aliases: ["da.max-blob-size"], .int, "1500000",
                "Largest blob batch posted in one submission, in bytes", evnodeOnly: true),
        Setting(.daFetchParallelism, aliases: ["da.fetch-parallelism"], .int, "64",
                "Most DA heights fetched at once while syncing; the number in flight adapts below it to the DA node's latency and faults (1: one at a time)",
                evnodeOnly: true),
        Setting(.daMaxHeldData, aliases: ["da.max-held-data"], .int, "67108864",
                "Most bytes of DA data blobs held while they wait for their header", evnodeOnly: true),
        // Celestia submission and transport (issue 17). The TxConfig fields are celestia-node's
        // (state/txclient/tx_config.go, jsonTxConfig).
        Setting(.daGasPrice, aliases: ["da.gas-price"], .decimal, "-1",
                "Gas price in utia per gas unit for blob.Submit (-1: let the DA node estimate)", evnodeOnly: true),
        Setting(.daMaxGasPrice, aliases: ["da.max-gas-price"], .decimal, "0",
                "Highest gas price escalation may reach, also sent as max_gas_price (0: celestia-node's default, 0.4)",
                evnodeOnly: true),
        Setting(.daGasMultiplier, aliases: ["da.gas-multiplier"], .decimal, "1.3",
                "Fee escalation step: the gas price is multiplied by this after a too-low fee or a submission not included in time (1: no escalation)",
                evnodeOnly: true),
        Setting(.daKeyName, aliases: ["da.key-name"], .string, "",
                "Keyring key of the DA node that signs blob transactions (TxConfig key_name)", evnodeOnly: true),
        Setting(.daFeeGranter, aliases: ["da.fee-granter"], .string, "",
                "celestia1… address that pays the fees through a fee grant (TxConfig fee_granter_address)", evnodeOnly: true),
        Setting(.daTxPriority, aliases: ["da.tx-priority"], .choice(["", "low", "medium", "high"]), "",
                "Gas price estimation priority: low, medium or high (empty: the DA node's default, medium)", evnodeOnly: true),
        Setting(.daTlsCaFile, aliases: ["da.tls-ca-file"], .string, "",
                "PEM file of the CA that signed an https:// DA node's certificate (empty: the system's CAs)", evnodeOnly: true),
        Setting(.daSubscribe, aliases: ["da.subscribe"], .bool, "true",
                "Follow new DA heights with blob.Subscribe over WebSocket, falling back to polling", evnodeOnly: true),

        // P2P.
        Setting(.p2pListenAddress, aliases: ["p2p.listen"], .hostPort, "/ip4/0.0.0.0/tcp/7676",
                "P2P listen address: /ip4/<ip>/tcp/<port> (host:port accepted)"),
        Setting(.p2pPeers, aliases: ["p2p.peers"], .hostPortList, "",
                "Peers to dial: multiaddrs /ip4/<ip>/tcp/<port>/p2p/<peer id>,… (host:port accepted: the id is then learned in the handshake)"),
        Setting(.p2pBlockedPeers, .string, "",
                "Peer ids (or multiaddrs ending in /p2p/<id>) never accepted or dialled, a,b,c; applied when disable_connection_gater is false"),
        Setting(.p2pAllowedPeers, .string, "",
                "When not empty, only these peer ids (and the configured peers) are accepted, a,b,c; applied when disable_connection_gater is false"),
        Setting(.p2pDisableConnectionGater, .bool, "true",
                "Leave blocked_peers and allowed_peers unapplied (ev-node's default); false applies them"),

        // RPC.
        Setting(.rpcAddress, aliases: ["rpc.address"], .hostPort, "127.0.0.1:7331", "RPC listen address (host:port)"),
        Setting(.rpcEnableDaVisualization, .bool, "false",
                "Serve the DA submission views (/da, /da/submissions, /da/blob, /da/stats, /da/health)"),

        // Instrumentation.
        Setting(.instrumentationPrometheus, .bool, "false", "Serve Prometheus metrics on prometheus_listen_addr"),
        Setting(.instrumentationPrometheusListenAddr, .hostPort, ":26660", "Prometheus metrics listen address"),
        Setting(.instrumentationMaxOpenConnections, .int, "3", "ev-node: most simultaneous metrics connections",
                support: .unsupported("evnode's metrics server does not cap its connections")),
        Setting(.instrumentationNamespace, .string, "evnode", "Prefix of every metric name"),
        Setting(.instrumentationPprof, .bool, "false", "Go's pprof profiling server",
                support: .unsupported("evnode is not a Go program: there is no pprof")),
        Setting(.instrumentationPprofListenAddr, .string, ":6060", "pprof listen address",
                support: .inert(enabler: nil, reason: "a pprof setting; evnode has no pprof")),
        Setting(.instrumentationTracing, .bool, "false", "OpenTelemetry tracing",
                support: .unsupported("evnode has no OpenTelemetry tracing")),
        Setting(.instrumentationTracingEndpoint, .string, "localhost:4318", "OTLP endpoint",
                support: .inert(enabler: nil, reason: tracingOnly)),
        Setting(.instrumentationTracingServiceName, .string, "ev-node", "OpenTelemetry service.name",
                support: .inert(enabler: nil, reason: tracingOnly)),
        Setting(.instrumentationTracingSampleRate, .decimal, "0.1", "Trace sampling rate",
                support: .inert(enabler: nil, reason: tracingOnly)),

        // Log.
        Setting(.logLevel, aliases: ["log.level"], .choice(LogLevelName.accepted), "info",
                "Log level: \(LogLevelName.all.joined(separator: ", ")) (ev-node's warn is warning)"),
        Setting(.logFormat, aliases: ["log.format"], .choice(LogFormat.allCases.map(\.rawValue)), "text",
                "Log format: text or json"),
        Setting(.logTrace, .bool, "false", "ev-node: stack traces in error logs",
                support: .noEffect("evnode's errors name their context instead of carrying stack traces")),

        // Signer.
        Setting(.signerSignerType, aliases: ["signer.signer-type"], .choice(["file", "grpc", "kms"]), "file",
                "Where the block signer's key lives: file (signer.json under signer_path) or grpc (a remote `evnode signer serve` at signer.grpc_address, which keeps the key and its high-water mark)"),
        Setting(.signerGrpcAddress, .string, "",
                "The remote signer's host:port (signer_type grpc); a non-loopback address needs the grpc_tls_* files",
                evnodeOnly: true),
        Setting(.signerGrpcTokenFile, .string, "",
                "File whose content (surrounding whitespace trimmed) is the remote signer's bearer token", evnodeOnly: true),
        Setting(.signerGrpcTlsCertFile, .string, "",
                "Mutual TLS with the remote signer: this node's certificate (PEM)", evnodeOnly: true),
        Setting(.signerGrpcTlsKeyFile, .string, "",
                "Mutual TLS with the remote signer: this node's private key (PEM)", evnodeOnly: true),
        Setting(.signerGrpcTlsCaFile, .string, "",
                "Mutual TLS with the remote signer: the CA its certificate must chain to (PEM)", evnodeOnly: true),
        Setting(.signerSignerPath, aliases: ["signer.signer-path"], .string, "config",
                "Folder of signer.json, relative to --home unless absolute (ev-node resolves it against the working directory)"),
        Setting(.signerPassphraseFile, aliases: ["signer.passphrase-file"], .string, "",
                "File whose content (surrounding whitespace trimmed) unlocks signer.json; needed by an aggregator",
                inFile: false),
        Setting(.signerKmsProvider, .string, "", "KMS provider (aws, gcp)", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsAwsKeyId, .string, "", "AWS KMS key id", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsAwsRegion, .string, "", "AWS region", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsAwsProfile, .string, "", "AWS profile", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsAwsTimeout, .duration, "10s", "AWS KMS sign timeout", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsAwsMaxRetries, .int, "3", "AWS KMS retries", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsGcpKeyName, .string, "", "GCP KMS key version", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsGcpCredentialsFile, .string, "", "GCP credentials file", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsGcpTimeout, .duration, "10s", "GCP KMS sign timeout", support: .inert(enabler: nil, reason: kmsOnly)),
        Setting(.signerKmsGcpMaxRetries, .int, "3", "GCP KMS retries", support: .inert(enabler: nil, reason: kmsOnly)),

        // Raft: evnode's HA group elects its leader through etcd; ev-node's hashicorp-raft keys
        // load (ev-node's init writes them all) but cannot configure it.
        Setting(.raftEnable, aliases: ["raft.enable"], .bool, "false",
                "HA aggregator: elect the single producer through etcd (raft.endpoints)"),
        Setting(.raftNodeId, aliases: ["raft.node-id"], .string, "",
                "This node's name in the HA group (empty: derived from the node key)"),
        Setting(.raftHeartbeatTimeout, aliases: ["raft.heartbeat-timeout"], .duration, "0s",
                "How long a follower that holds the latest block waits without a heartbeat before it takes over (0s: five heartbeat intervals)"),
        Setting(.raftEndpoints, aliases: ["raft.endpoints"], .endpointList, "",
                "etcd endpoints, http://host:port,…", evnodeOnly: true),
        Setting(.raftLeaseTtl, aliases: ["raft.lease-ttl"], .duration, "0s",
                "Leader lease TTL (0s: five block times, at least 2s)", evnodeOnly: true),
        Setting(.raftHeartbeatInterval, aliases: ["raft.heartbeat-interval"], .duration, "100ms",
                "How often the leader puts its heartbeat in etcd (0s: no heartbeats; a dead leader is replaced when its lease expires)",
                evnodeOnly: true),
        Setting(.raftRaftAddr, .string, "", "hashicorp-raft address", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),
        Setting(.raftRaftDir, .string, "", "hashicorp-raft folder (ev-node's default is ~/.evnode/raft)",
                support: .inert(enabler: nil, reason: hashicorpRaft)),
        Setting(.raftBootstrap, .bool, "false", "hashicorp-raft bootstrap", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),
        Setting(.raftPeers, .string, "", "hashicorp-raft peers id@host:port", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),
        Setting(.raftSnapCount, .uint, "3", "hashicorp-raft snapshots kept", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),
        Setting(.raftSendTimeout, .duration, "200ms", "hashicorp-raft send timeout", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),
        Setting(.raftLeaderLeaseTimeout, .duration, "175ms", "hashicorp-raft leader lease", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),
        Setting(.raftElectionTimeout, .duration, "1s", "hashicorp-raft election timeout", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),
        Setting(.raftSnapshotThreshold, .uint, "500", "hashicorp-raft snapshot threshold", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),
        Setting(.raftTrailingLogs, .uint, "200", "hashicorp-raft trailing logs", support: .inert(enabler: "raft.enable", reason: hashicorpRaft)),

        // Pruning.
        Setting(.pruningPruningMode, .choice(PruningConfig.Mode.allCases.map(\.rawValue)), "disabled",
                "disabled; all (blocks and their metadata below the kept window); metadata (only per-height metadata)"),
        Setting(.pruningPruningKeepRecent, .uint, "100000", "Heights kept below the head when pruning (> 0)"),
        Setting(.pruningPruningInterval, .duration, "15m", "How often pruning runs (≥ block_time)"),

        // Execution layer (apps/evm's --evm.* flags).
        Setting(.executionKind, aliases: ["execution"], .choice(ExecutionKind.allCases.map(\.rawValue)), "kv",
                "Execution layer: kv (built-in key/value application) or evm (an EL such as ev-reth over the Engine API)",
                evnodeOnly: true),
        Setting(.evmEngineUrl, flag: "evm.engine-url", .endpoint, "http://localhost:8551",
                "With execution evm: the EL's Engine API URL (JWT-authenticated)"),
        Setting(.evmEthUrl, flag: "evm.eth-url", .endpoint, "http://localhost:8545",
                "With execution evm: the EL's eth JSON-RPC URL"),
        Setting(.evmJwtSecretFile, flag: "evm.jwt-secret-file", .string, "",
                "With execution evm (required): file holding the Engine API JWT secret, hex"),
        Setting(.evmGenesisHash, flag: "evm.genesis-hash", .string, "",
                "With execution evm: the EL's genesis block hash, 0x-hex (empty: taken from the EL's block 0)"),
        Setting(.evmFeeRecipient, flag: "evm.fee-recipient", .string, "",
                "With execution evm: suggestedFeeRecipient of built blocks, 0x-hex 20 bytes (empty: the zero address)"),
        Setting(.forceInclusionServer, flag: "force-inclusion-server", .string, "",
                "With execution evm: HOST:PORT of the forced-inclusion JSON-RPC server (eth_sendRawTransaction posts to the forced-inclusion namespace, other methods go to the EL; :PORT listens on 127.0.0.1; empty: off)",
                inFile: false),
    ]

    package static let byKey: [String: Setting] = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0) })

    /// The row of `key`. Every `SettingKey` has one (`SettingKeyTests` checks it).
    package static subscript(key: SettingKey) -> Setting {
        guard let setting = byKey[key.name] else { preconditionFailure("SettingKey \(key) has no row in Settings.all") }
        return setting
    }

    /// Every accepted flag spelling (primary and aliases) → its setting.
    package static let byFlag: [String: Setting] = {
        var out: [String: Setting] = [:]
        for s in all {
            for name in [s.flag] + s.aliases {
                precondition(out[name] == nil, "flag --\(name) named twice in the settings table")
                out[name] = s
            }
        }
        return out
    }()

    /// Groups in `evnode.yaml`, with the nested ones (`signer.kms`, `signer.kms.aws`, …).
    package static let groups: Set<String> = {
        var out: Set<String> = []
        for s in all where s.inFile {
            var parts = s.key.split(separator: ".").dropLast()
            while !parts.isEmpty {
                out.insert(parts.joined(separator: "."))
                parts = parts.dropLast()
            }
        }
        return out
    }()

    /// The order groups are written and listed in: ev-node's `evnode.yaml` order, then evnode's own.
    package static let groupOrder = ["base", "node", "da", "p2p", "rpc", "instrumentation", "log", "signer", "raft",
                                    "pruning", "execution", "evm"]

    /// Keys of `config/config.yaml` (earlier evnode versions) that ev-node spells differently.
    package static let legacyKeys: [String: String] = [
        "node.lazy": "node.lazy_mode",
        "node.lazy_interval": "node.lazy_block_interval",
        "node.max_pending_blocks": "node.max_pending_headers_and_data",
        "p2p.listen": "p2p.listen_address",
    ]

    package static func help(_ key: String) -> String {
        byKey[key]?.helpWithDefault ?? ""
    }

    /// `--help`'s list of every setting flag, grouped, with aliases, defaults and what evnode
    /// does with ev-node's keys it has no feature for.
    package static func flagHelp() -> String {
        var out = "Settings (flags > EVNODE_* environment > config/evnode.yaml > defaults). Booleans take"
        out += " --flag, --flag=true or --flag=false; --rollkit.* is read as --evnode.*; each setting's"
        out += " environment variable is EVNODE_ and its key in capitals (EVNODE_NODE_AGGREGATOR=true)."
        for group in groupOrder {
            let members = all.filter { $0.group == group }
            guard !members.isEmpty else { continue }
            out += "\n\n\(group):"
            for s in members {
                let names = (["--" + s.flag] + s.aliases.map { "--" + $0 }).joined(separator: ", ")
                let value = s.kind == .bool ? "" : " <\(kindName(s.kind))>"
                out += "\n  \(names)\(value)\(s.evnodeOnly ? " (evnode)" : "")"
                out += "\n      \(s.helpWithDefault)"
            }
        }
        return out
    }

    static func kindName(_ kind: Setting.Kind) -> String {
        switch kind {
        case .bool: return "bool"
        case .duration: return "duration"
        case .string: return "string"
        case .uint, .int: return "n"
        case .decimal: return "number"
        case .hostPort: return "address"
        case .hostPortList: return "addresses"
        case .endpoint: return "url"
        case .endpointList: return "urls"
        case .choice(let options): return options.filter { !$0.isEmpty }.joined(separator: "|")
        }
    }
}

package enum LogLevelName {
    package static let all = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// ev-node's (zerolog's) level names, read as the nearest swift-log level.
    package static let zerolog: [String: String] = ["warn": "warning", "fatal": "critical", "panic": "critical"]
    package static let accepted = all + ["warn", "fatal", "panic"]
}
