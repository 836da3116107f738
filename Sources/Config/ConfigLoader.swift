import Primitives
import Foundation
import Yams

/// One raw setting value and where it came from (for error messages and for the rules that
/// depend on the source: a key of a feature evnode lacks loads from a file ev-node's `init` wrote,
/// but is refused when someone passes it on the command line).
package struct RawSetting: Sendable, Equatable {
    package enum Origin: Sendable, Equatable { case defaults, file, environment, commandLine }

    package var value: String
    /// The file path, the flag as typed, or the environment variable.
    package var source: String
    package var origin: Origin

    package init(value: String, source: String, origin: Origin = .commandLine) {
        self.value = value
        self.source = source
        self.origin = origin
    }
}

/// A parsed `evnode.yaml` (or an earlier evnode's `config.yaml`).
package struct ConfigFile: Sendable, Equatable {
    package var path: String
    package var values: [String: RawSetting]
    /// Top-level groups evnode does not know (a newer ev-node's, say): skipped with a notice,
    /// so a backup from a newer ev-node still starts.
    package var skippedGroups: [String]

    package init(path: String, values: [String: RawSetting] = [:], skippedGroups: [String] = []) {
        self.path = path
        self.values = values
        self.skippedGroups = skippedGroups
    }
}

/// A resolved configuration and the notices the operator should see once at start.
package struct LoadedConfig: Sendable {
    package var config: NodeConfig
    package var notices: [String]
}

/// Builds a `NodeConfig` from defaults, `evnode.yaml`, the environment and flags, in that order of
/// precedence (flags win), and validates it. Nothing is started here; errors are one-line
/// `ConfigError`s.
package enum ConfigLoader {
    /// Reads a config file into flat dotted keys. `legacy` reads an earlier evnode's
    /// `config.yaml`, whose few renamed keys (`Settings.legacyKeys`) are read under ev-node's name.
    package static func readFile(at path: String, legacy: Bool = false) throws(ConfigError) -> ConfigFile {
        let text: String
        do {
            text = try FileIO.readString(path, limit: 1 << 20)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        return try parseFile(text, path: path, legacy: legacy)
    }

    /// The values of `text` only (tests and tools that do not care about skipped groups).
    package static func parseYAML(_ text: String, path: String) throws(ConfigError) -> [String: RawSetting] {
        try parseFile(text, path: path).values
    }

    /// Unknown keys under a known group are an error naming the key and the file: a misspelt key
    /// silently falling back to a default is how nodes end up on the wrong DA namespace. An
    /// unknown top-level group is skipped with a notice instead: a group a newer ev-node adds
    /// must not stop the restore of its home. (ev-node's Viper ignores unknown keys everywhere.)
    package static func parseFile(_ text: String, path: String, legacy: Bool = false) throws(ConfigError) -> ConfigFile {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw .file(path: path, reason: "not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        var file = ConfigFile(path: path)
        guard let root else { return file }
        guard let top = root as? [String: Any] else {
            throw .file(path: path, reason: "expected a mapping of groups (db_path, node, da, p2p, rpc, instrumentation, log, signer, raft, pruning)")
        }
        try flatten(top, prefix: "", into: &file, legacy: legacy)
        file.skippedGroups.sort()
        return file
    }

    private static func flatten(_ mapping: [String: Any], prefix: String, into file: inout ConfigFile,
                                legacy: Bool) throws(ConfigError) {
        for (name, body) in mapping {
            var key = prefix + name
            if legacy, let renamed = Settings.legacyKeys[key] { key = renamed }
            if let setting = Settings.byKey[key] {
                guard setting.inFile else {
                    throw .file(path: file.path, reason: "\"\(key)\" is not read from the file (as in ev-node); pass --\(setting.flag)")
                }
                if body is [String: Any] {
                    throw .file(path: file.path, reason: "\"\(key)\" must be a value, not a mapping")
                }
                file.values[key] = RawSetting(value: scalarText(body), source: file.path, origin: .file)
            } else if Settings.groups.contains(key) {
                if body is NSNull { continue }
                guard let fields = body as? [String: Any] else {
                    throw .file(path: file.path, reason: "\"\(key)\" must be a mapping")
                }
                try flatten(fields, prefix: key + ".", into: &file, legacy: legacy)
            } else if prefix.isEmpty {
                file.skippedGroups.append(key)
            } else {
                throw .unknownKey(key: key, path: file.path)
            }
        }
    }

    private static func scalarText(_ value: Any) -> String {
        switch value {
        case let list as [Any]: return list.map(scalarText).joined(separator: ",")
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return String(d)
        case let s as String: return s
        default:
            if value is NSNull { return "" }
            return String(describing: value)
        }
    }

    /// The settings given as environment variables, in the one form evnode reads:
    /// `EVNODE_<KEY>` (`EVNODE_NODE_AGGREGATOR=true`, `EVNODE_DA_ADDRESS=…`, `EVNODE_DB_PATH=…`).
    /// A variable that starts like a setting's (`EVNODE_DA_…`) but names none is an error, as an
    /// unknown key in the file is; other `EVNODE_*` variables (the test harness's) are not ours.
    package static func environmentSettings(_ environment: [String: String]) throws(ConfigError) -> [String: RawSetting] {
        var out: [String: RawSetting] = [:]
        for (name, value) in environment where name.hasPrefix("EVNODE_") {
            if let setting = byEnvironmentVariable[name] {
                out[setting.key] = RawSetting(value: value, source: "$\(name)", origin: .environment)
            } else if environmentPrefixes.contains(where: { name.hasPrefix($0) }) {
                throw .invalidValue(field: "environment variable \(name)", value: value, source: "environment",
                                    reason: "no such setting (the form is EVNODE_ and the evnode.yaml key in capitals, e.g. EVNODE_NODE_AGGREGATOR)")
            }
        }
        return out
    }

    static let byEnvironmentVariable: [String: Setting] =
        Dictionary(uniqueKeysWithValues: Settings.all.map { ($0.environmentVariable, $0) })
    static let environmentPrefixes: [String] =
        Settings.groupOrder.filter { $0 != "base" }.map { "EVNODE_\($0.uppercased())_" }

    /// Merges defaults < file < flags and converts every value (no environment: tests and tools).
    package static func resolve(home: String,
                               file: [String: RawSetting],
                               flags: [String: RawSetting]) throws(ConfigError) -> NodeConfig {
        try load(home: home, file: file, environment: [:], flags: flags).config
    }

    /// Merges defaults < file < environment < flags, applies evnode's rules for ev-node keys it
    /// has no feature for, converts every value and validates the combination.
    package static func load(home: String, file: [String: RawSetting], environment: [String: RawSetting],
                            flags: [String: RawSetting]) throws(ConfigError) -> LoadedConfig {
        var merged: [String: RawSetting] = [:]
        for setting in Settings.all {
            merged[setting.key] = RawSetting(value: setting.defaultValue, source: "default", origin: .defaults)
        }
        for layer in [file, environment, flags] {
            for (k, v) in layer {
                guard Settings.byKey[k] != nil else {
                    throw .invalidValue(field: k, value: v.value, source: v.source, reason: "unknown setting")
                }
                merged[k] = v
            }
        }
        try validatePairs(merged)
        var notices = try checkSupport(merged)
        let reader = ValueReader(values: merged)
        if reader.string(.daAddress).trimmingWhitespace().isEmpty {
            throw reader.fail(.daAddress, "empty: evnode follows and posts to a DA node; ev-node's P2P-only full node (an empty da.address) is not supported")
        }
        var config = NodeConfig(
            home: home,
            aggregator: try reader.bool(.nodeAggregator),
            catchupTimeout: try reader.duration(.nodeCatchupTimeout),
            blockTime: try reader.duration(.nodeBlockTime, positive: true),
            lazy: try reader.bool(.nodeLazyMode),
            lazyInterval: try reader.duration(.nodeLazyBlockInterval, positive: true),
            maxPendingBlocks: try reader.uint(.nodeMaxPendingHeadersAndData),
            da: DAConfig(
                address: try reader.endpoint(.daAddress),
                authToken: reader.string(.daAuthToken),
                namespace: try reader.namespaceName(.daNamespace),
                dataNamespace: try reader.namespaceName(.daDataNamespace),
                blockTime: try reader.duration(.daBlockTime, positive: true),
                startHeight: try reader.uint(.daStartHeight),
                maxBlobSize: try reader.int(.daMaxBlobSize, range: 1024...(64 << 20)),
                requestTimeout: try reader.duration(.daRequestTimeout, positive: true),
                fetchParallelism: try reader.int(.daFetchParallelism, range: 1...256),
                maxHeldData: try reader.int(.daMaxHeldData, range: (1 << 20)...(16 << 30)),
                txConfig: try reader.txConfig(),
                gasMultiplier: try reader.decimal(.daGasMultiplier, range: 1...100),
                signingAddresses: try reader.addressList(.daSigningAddresses),
                tlsCAFile: reader.string(.daTlsCaFile).trimmingWhitespace(),
                subscribe: try reader.bool(.daSubscribe)),
            p2p: P2PConfig(
                listen: try reader.p2pListen(.p2pListenAddress),
                peers: try reader.p2pPeerList(.p2pPeers)),
            rpc: RPCConfig(address: try reader.hostPort(.rpcAddress, allowPortZero: true),
                           enableDAVisualization: try reader.bool(.rpcEnableDaVisualization)),
            raft: RaftConfig(
                enable: try reader.bool(.raftEnable),
                endpoints: try reader.endpointList(.raftEndpoints),
                nodeID: reader.string(.raftNodeId),
                leaseTTL: try reader.duration(.raftLeaseTtl),
                heartbeatInterval: try reader.duration(.raftHeartbeatInterval),
                heartbeatTimeout: try reader.duration(.raftHeartbeatTimeout)),
            log: LogConfig(
                level: try reader.logLevel(.logLevel),
                format: LogFormat(rawValue: try reader.choice(.logFormat)) ?? .text))
        config.da.mempoolTTL = try reader.uint(.daMempoolTtl)
        config.da.forcedInclusionNamespace = try reader.namespaceName(.daForcedInclusionNamespace)
        config.basedSequencer = try reader.bool(.nodeBasedSequencer)
        config.da.maxSubmitAttempts = try reader.int(.daMaxSubmitAttempts, range: 1...1_000_000)
        config.da.batching.strategy = DABatchingConfig.Strategy(rawValue: try reader.choice(.daBatchingStrategy)) ?? .time
        config.da.batching.sizeThreshold = try reader.decimal(.daBatchSizeThreshold, range: 0...1)
        if config.da.batching.sizeThreshold <= 0 {
            throw reader.fail(.daBatchSizeThreshold, "must be above 0 (a fraction of da.max_blob_size)")
        }
        config.da.batching.maxDelay = try reader.duration(.daBatchMaxDelay)
        config.da.batching.minItems = try reader.int(.daBatchMinItems, range: 1...1_000_000)

        let blocked = try reader.peerIDList(.p2pBlockedPeers)
        let allowed = try reader.peerIDList(.p2pAllowedPeers)
        if try reader.bool(.p2pDisableConnectionGater) {
            // ev-node applies the lists only through its connection gater, which is off by
            // default; a home that ran with lists and the gater off must behave the same here.
            if !blocked.isEmpty || !allowed.isEmpty {
                notices.append("p2p.blocked_peers and p2p.allowed_peers are not applied: p2p.disable_connection_gater is true (ev-node's default); set it to false to apply them")
            }
        } else {
            config.p2p.blockedPeers = blocked
            config.p2p.allowedPeers = allowed
        }

        config.dbPath = reader.string(.dbPath).trimmingWhitespace()
        if config.dbPath.isEmpty { throw reader.fail(.dbPath, "empty (the default is data)") }

        config.readiness.windowSeconds = try reader.uint(.nodeReadinessWindowSeconds)
        config.readiness.maxBlocksBehind = try reader.uint(.nodeReadinessMaxBlocksBehind)

        config.pruning.mode = PruningConfig.Mode(rawValue: try reader.choice(.pruningPruningMode)) ?? .disabled
        config.pruning.keepRecent = try reader.uint(.pruningPruningKeepRecent)
        config.pruning.interval = try reader.duration(.pruningPruningInterval)

        config.instrumentation.prometheus = try reader.bool(.instrumentationPrometheus)
        config.instrumentation.prometheusListen = try reader.listenAddress(.instrumentationPrometheusListenAddr)
        config.instrumentation.namespace = try reader.metricNamespace(.instrumentationNamespace)

        config.execution = try resolveExecution(reader)
        config.signer.kind = SignerConfig.Kind(rawValue: try reader.choice(.signerSignerType)) ?? .file
        config.signer.path = reader.string(.signerSignerPath).trimmingWhitespace()
        if config.signer.path.isEmpty { throw reader.fail(.signerSignerPath, "must name a folder") }
        config.signer.passphraseFile = reader.string(.signerPassphraseFile).trimmingWhitespace()
        // ev-node: promotable decides whatever node.aggregator says (a home made with
        // `init --aggregator` says true): the node starts as a follower and may produce later,
        // so it needs what an aggregator needs.
        config.promotable = try reader.bool(.nodePromotable)
        if config.promotable { config.aggregator = true }
        let grpcAddress = reader.string(.signerGrpcAddress).trimmingWhitespace()
        if !grpcAddress.isEmpty {
            do throws(HostPort.Failure) {
                config.signer.grpcAddress = try HostPort(parsing: grpcAddress)
            } catch {
                throw reader.fail(.signerGrpcAddress, error.description)
            }
        }
        config.signer.grpcTokenFile = reader.string(.signerGrpcTokenFile).trimmingWhitespace()
        config.signer.grpcTLSCertFile = reader.string(.signerGrpcTlsCertFile).trimmingWhitespace()
        config.signer.grpcTLSKeyFile = reader.string(.signerGrpcTlsKeyFile).trimmingWhitespace()
        config.signer.grpcTLSCAFile = reader.string(.signerGrpcTlsCaFile).trimmingWhitespace()
        try validateCombination(config, values: merged)
        return LoadedConfig(config: config, notices: notices)
    }

    /// Whether `value` means the setting's default (`1m` and `1m0s`, `0.80` and `0.8`, `True`
    /// and `true` do).
    static func isDefault(_ setting: Setting, _ value: String) -> Bool {
        let v = value.trimmingWhitespace(), d = setting.defaultValue
        switch setting.kind {
        case .bool: return ValueReader.parseBool(v) == ValueReader.parseBool(d)
        case .duration: return (try? DurationParser.nanoseconds(v)) == (try? DurationParser.nanoseconds(d))
        case .uint, .int, .decimal: return Double(v) != nil && Double(v) == Double(d)
        case .choice: return v.lowercased() == d
        default: return v == d
        }
    }

    /// ev-node's keys for features evnode does not have (`Setting.Support`): refused with the
    /// reason when they ask for the feature, accepted (with a notice where the value is simply
    /// without effect) when they do not.
    static func checkSupport(_ values: [String: RawSetting]) throws(ConfigError) -> [String] {
        var notices: [String] = []
        for setting in Settings.all {
            guard let raw = values[setting.key], raw.origin != .defaults, !isDefault(setting, raw.value) else { continue }
            func refuse(_ reason: String) -> ConfigError {
                .unsupported(key: setting.key, flag: "--" + setting.flag, value: raw.value, source: raw.source, reason: reason)
            }
            switch setting.support {
            case .supported:
                if setting.key == "signer.signer_type" {
                    switch raw.value.trimmingWhitespace().lowercased() {
                    case "kms": throw refuse("evnode has no KMS signer; it signs with signer.json (the file signer)")
                    default: break
                    }
                }
            case .unsupported(let reason):
                throw refuse(reason)
            case .inert(let enabler, let reason):
                if raw.origin != .file { throw refuse(reason) }
                if let enabler, let on = values[enabler], ValueReader.parseBool(on.value) == true {
                    throw refuse(reason + " (\(enabler) is on)")
                }
            case .noEffect(let why):
                notices.append("\(setting.key) (--\(setting.flag)) = \(raw.value) from \(raw.source) has no effect: \(why)")
            }
        }
        return notices
    }

    /// ev-node's exclusive and dependent pairs, checked on the raw values before anything else so
    /// that the message names both flags (as ev-node's does) even when one is a feature evnode
    /// refuses anyway.
    static func validatePairs(_ values: [String: RawSetting]) throws(ConfigError) {
        func on(_ key: SettingKey) -> Bool {
            values[key.name].flatMap { ValueReader.parseBool($0.value) } ?? false
        }
        func flag(_ key: SettingKey) -> String { "--" + Settings[key].flag }
        let exclusive: [(SettingKey, SettingKey)] = [(.nodeLight, .nodeAggregator), (.nodeBasedSequencer, .nodePromotable),
                         (.nodeLight, .nodePromotable), (.nodePromotable, .raftEnable)]
        for (a, b) in exclusive where on(a) && on(b) {
            throw .conflict("\(flag(a)) and \(flag(b)) are mutually exclusive")
        }
        if on(.nodeBasedSequencer) && !on(.nodeAggregator) {
            throw .conflict("\(flag(.nodeBasedSequencer)) needs \(flag(.nodeAggregator))")
        }
    }

    /// `--execution` and the `--evm.*` settings: the EVM ones are checked (and the JWT secret
    /// file required) only when the EVM executor is chosen, as ev-node does.
    static func resolveExecution(_ reader: ValueReader) throws(ConfigError) -> ExecutionConfig {
        let kind = ExecutionKind(rawValue: try reader.choice(.executionKind)) ?? .kv
        var evm = EVMConfig()
        let fiServer = reader.string(.forceInclusionServer).trimmingWhitespace()
        guard kind == .evm else {
            if !fiServer.isEmpty {
                throw .conflict("--force-inclusion-server is apps/evm's: it needs --evnode.execution.kind evm (it proxies to the EL's eth RPC)")
            }
            return ExecutionConfig(kind: kind, evm: evm)
        }
        if !fiServer.isEmpty {
            // ev-node's ":8547" would listen on every interface; evnode keeps an address without
            // a host on loopback (README): the server posts to DA with the node's DA account.
            do {
                evm.forceInclusionServer = try HostPort(parsing: fiServer.hasPrefix(":") ? "127.0.0.1" + fiServer : fiServer)
            } catch {
                throw .invalidValue(field: "force_inclusion_server", value: fiServer, source: "flag", reason: error.description)
            }
        }
        evm.engineURL = try reader.endpoint(.evmEngineUrl)
        evm.ethURL = try reader.endpoint(.evmEthUrl)
        evm.jwtSecretFile = reader.string(.evmJwtSecretFile)
        if evm.jwtSecretFile.isEmpty {
            throw .missing("--evnode.execution.kind evm needs --evm.jwt-secret-file (the Engine API JWT secret the EL was started with)")
        }
        evm.genesisHash = try reader.hexBytes(.evmGenesisHash, count: 32)
        evm.feeRecipient = try reader.hexBytes(.evmFeeRecipient, count: 20) ?? [UInt8](repeating: 0, count: 20)
        return ExecutionConfig(kind: kind, evm: evm)
    }

    /// A heartbeat is an etcd write: not more often than every 10 ms. A follower must miss at
    /// least two before it takes over, and the take-over must come before the lease would expire.
    static func validateHeartbeat(_ raft: RaftConfig, values: [String: RawSetting]) throws(ConfigError) {
        func source(_ key: SettingKey) -> String { values[key.name]?.source ?? "default" }
        let interval = raft.heartbeatInterval, timeout = raft.heartbeatTimeout
        if interval > .zero && interval < .milliseconds(10) {
            throw .invalidValue(field: "raft.heartbeat_interval", value: DurationParser.format(interval),
                                source: source(.raftHeartbeatInterval),
                                reason: "at least 10ms (each heartbeat is an etcd write), or 0s for none")
        }
        if timeout > .zero && interval == .zero {
            throw .conflict("--evnode.raft.heartbeat_timeout needs heartbeats: --evnode.raft.heartbeat_interval is 0s")
        }
        if timeout > .zero && timeout < interval * 2 {
            throw .invalidValue(field: "raft.heartbeat_timeout", value: DurationParser.format(timeout),
                                source: source(.raftHeartbeatTimeout),
                                reason: "at least two heartbeat intervals (\(DurationParser.format(interval * 2)))")
        }
        if interval > .zero, raft.leaseTTL > .zero, raft.effectiveHeartbeatTimeout >= raft.leaseTTL {
            throw .invalidValue(field: "raft.heartbeat_timeout", value: DurationParser.format(raft.effectiveHeartbeatTimeout),
                                source: timeout > .zero ? source(.raftHeartbeatTimeout) : "five heartbeat intervals",
                                reason: "shorter than --evnode.raft.lease_ttl (\(DurationParser.format(raft.leaseTTL))), which replaces a dead leader anyway")
        }
    }

    /// Rules between settings (SPEC §2, ev-node's `Config.Validate`). Checks that need files (the
    /// signer) are in `NodeSetup`, which knows where they live.
    /// `signer_type grpc`: an address to reach; TLS all or nothing, and required off loopback
    /// (the token would otherwise cross the network in the clear). An HA group may share one
    /// signer: a new leader adopts the block kept beside the signer's mark (README).
    static func validateRemoteSigner(_ s: SignerConfig, aggregator: Bool) throws(ConfigError) {
        let tls = [s.grpcTLSCertFile, s.grpcTLSKeyFile, s.grpcTLSCAFile]
        let tlsGiven = tls.filter { !$0.isEmpty }.count
        guard s.kind == .grpc else {
            if s.grpcAddress != nil || !s.grpcTokenFile.isEmpty || tlsGiven > 0 {
                throw .conflict("--evnode.signer.grpc_* settings need --evnode.signer.signer_type grpc (the signer type is \(s.kind.rawValue))")
            }
            return
        }
        guard aggregator else { return }
        guard let address = s.grpcAddress else {
            throw .missing("--evnode.signer.signer_type grpc needs --evnode.signer.grpc_address HOST:PORT (where `evnode signer serve` listens)")
        }
        if tlsGiven != 0 && tlsGiven != 3 {
            throw .missing("mutual TLS with the remote signer needs all of --evnode.signer.grpc_tls_cert_file, --evnode.signer.grpc_tls_key_file and --evnode.signer.grpc_tls_ca_file")
        }
        if tlsGiven == 0 && !HostPort.isLoopbackHost(address.host) {
            throw .conflict("--evnode.signer.grpc_address \(address) is not a loopback address: reaching a remote signer over the network needs mutual TLS (--evnode.signer.grpc_tls_cert_file, _key_file, _ca_file)")
        }
    }

    static func validateCombination(_ c: NodeConfig, values: [String: RawSetting]) throws(ConfigError) {
        try validateRemoteSigner(c.signer, aggregator: c.aggregator)
        if c.catchupTimeout > .zero && !c.aggregator {
            throw .conflict("--evnode.node.catchup_timeout needs --evnode.node.aggregator (catchup is how an aggregator recovers)")
        }
        if c.catchupTimeout > .zero && c.raft.enable {
            throw .conflict("--evnode.node.catchup_timeout and --evnode.raft.enable are mutually exclusive: choose catchup failover or the HA group")
        }
        if c.raft.enable && !c.aggregator {
            throw .conflict("--evnode.raft.enable needs --evnode.node.aggregator (only aggregators take part in leader election)")
        }
        if c.raft.leaseTTL > .zero && c.raft.leaseTTL < .seconds(2) {
            throw .invalidValue(field: "raft.lease_ttl", value: DurationParser.format(c.raft.leaseTTL),
                           source: values[SettingKey.raftLeaseTtl.name]?.source ?? "default",
                           reason: "etcd's shortest lease is 2s")
        }
        try validateHeartbeat(c.raft, values: values)
        if c.raft.enable && c.raft.endpoints.isEmpty {
            throw .missing("--evnode.raft.enable needs --evnode.raft.endpoints (etcd URLs, http://host:port,…)")
        }
        if c.basedSequencer && c.da.forcedInclusionNamespace.isEmpty {
            throw .missing("--evnode.node.based_sequencer needs --evnode.da.forced_inclusion_namespace: a based chain's blocks come from that namespace alone")
        }
        if c.execution.evm.forceInclusionServer != nil && c.da.forcedInclusionNamespace.isEmpty {
            throw .missing("--force-inclusion-server needs --evnode.da.forced_inclusion_namespace: it posts transactions to that namespace")
        }
        if c.basedSequencer && c.raft.enable {
            throw .conflict("--evnode.node.based_sequencer and --evnode.raft.enable are mutually exclusive: a based node signs nothing, there is no leader to elect")
        }
        if c.lazy && !c.aggregator {
            throw .conflict("--evnode.node.lazy_mode needs --evnode.node.aggregator")
        }
        if c.lazy && c.lazyInterval <= c.blockTime {
            throw .conflict("--evnode.node.lazy_block_interval (\(DurationParser.format(c.lazyInterval))) must be longer than --evnode.node.block_time (\(DurationParser.format(c.blockTime))) in lazy mode")
        }
        if c.pruning.mode != .disabled {
            if c.pruning.keepRecent == 0 {
                throw .conflict("--evnode.pruning.pruning_keep_recent must be above 0 when --evnode.pruning.pruning_mode is \(c.pruning.mode.rawValue) (use pruning_mode disabled to keep every block)")
            }
            if c.pruning.interval < .seconds(1) {
                throw .conflict("--evnode.pruning.pruning_interval must be at least 1s when --evnode.pruning.pruning_mode is \(c.pruning.mode.rawValue)")
            }
            if c.pruning.interval < c.blockTime {
                throw .conflict("--evnode.pruning.pruning_interval (\(DurationParser.format(c.pruning.interval))) must be at least --evnode.node.block_time (\(DurationParser.format(c.blockTime)))")
            }
        }
        if !c.da.tlsCAFile.isEmpty {
            if c.da.address.scheme != "https" {
                throw .conflict("--evnode.da.tls_ca_file needs an https:// --evnode.da.address (got \(c.da.address))")
            }
            if !FileManager.default.isReadableFile(atPath: c.da.tlsCAFile) {
                throw .invalidValue(field: "da.tls_ca_file (--evnode.da.tls_ca_file)", value: c.da.tlsCAFile,
                                    source: values[SettingKey.daTlsCaFile.name]?.source ?? "default",
                                    reason: "no readable file there")
            }
        }
        if let price = c.da.txConfig.gasPrice, price > c.da.maxGasPrice {
            throw .conflict("--evnode.da.gas_price \(DATxConfig.decimal(price)) is above --evnode.da.max_gas_price \(DATxConfig.decimal(c.da.maxGasPrice))")
        }
    }
}

/// Converts raw strings to typed values, naming the field, value and source on failure.
struct ValueReader {
    let values: [String: RawSetting]

    func raw(_ key: SettingKey) -> RawSetting {
        values[key.name] ?? RawSetting(value: Settings[key].defaultValue, source: "default", origin: .defaults)
    }

    func fail(_ key: SettingKey, _ reason: String) -> ConfigError {
        let r = raw(key)
        return .invalidValue(field: "\(key) (--\(Settings[key].flag))", value: r.value, source: r.source, reason: reason)
    }

    func string(_ key: SettingKey) -> String { raw(key).value }

    /// `0x`-prefixed (or bare) hex of exactly `count` bytes; nil when empty.
    func hexBytes(_ key: SettingKey, count: Int) throws(ConfigError) -> [UInt8]? {
        var text = raw(key).value.trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return nil }
        if text.hasPrefix("0x") || text.hasPrefix("0X") { text.removeFirst(2) }
        guard let bytes = Hex.decode(text) else { throw fail(key, "not hex") }
        guard bytes.count == count else { throw fail(key, "\(bytes.count) bytes, expected \(count)") }
        return bytes
    }

    /// Go's `strconv.ParseBool` spellings (what pflag and Viper accept), plus yes/no and on/off.
    static func parseBool(_ text: String) -> Bool? {
        switch text.trimmingWhitespace().lowercased() {
        case "true", "1", "t", "yes", "on": return true
        case "false", "0", "f", "no", "off", "": return false
        default: return nil
        }
    }

    func bool(_ key: SettingKey) throws(ConfigError) -> Bool {
        guard let b = Self.parseBool(raw(key).value) else { throw fail(key, "expected true or false") }
        return b
    }

    /// swift-log's level names, and ev-node's (zerolog's) `warn`, `fatal`, `panic`.
    func logLevel(_ key: SettingKey) throws(ConfigError) -> String {
        let v = try choice(key)
        return LogLevelName.zerolog[v] ?? v
    }

    /// A listen address as ev-node writes it: `host:port`, or `:port` for every interface.
    func listenAddress(_ key: SettingKey) throws(ConfigError) -> HostPort {
        var text = raw(key).value.trimmingWhitespace()
        if text.hasPrefix(":") { text = "0.0.0.0" + text }
        do {
            return try HostPort(parsing: text, allowPortZero: true)
        } catch {
            throw fail(key, error.description)
        }
    }

    /// ev-node's `p2p.blocked_peers` / `allowed_peers`: comma-separated peer ids, or multiaddrs
    /// whose `/p2p/<id>` names one. At most 1,000 entries.
    func peerIDList(_ key: SettingKey) throws(ConfigError) -> [String] {
        let parts = splitList(raw(key).value)
        guard parts.count <= 1000 else { throw fail(key, "more than 1000 peer ids") }
        var out: [String] = []
        for part in parts {
            if part.hasPrefix("/") {
                guard let address = try? P2PPeerAddress(parsing: part), let id = address.peerID else {
                    throw fail(key, "\"\(part)\" is neither a peer id nor a multiaddr ending in /p2p/<peer id>")
                }
                out.append(id)
            } else {
                guard P2PPeerAddress.isEd25519PeerID(part) else {
                    throw fail(key, "\"\(part)\" is not an Ed25519 peer id (12D3KooW…)")
                }
                out.append(part)
            }
        }
        return out
    }

    func duration(_ key: SettingKey, positive: Bool = false) throws(ConfigError) -> Duration {
        let d: Duration
        do {
            d = try DurationParser.duration(raw(key).value)
        } catch {
            throw fail(key, error.description)
        }
        if positive && d <= .zero { throw fail(key, "must be greater than zero") }
        return d
    }

    func uint(_ key: SettingKey) throws(ConfigError) -> UInt64 {
        guard let v = UInt64(raw(key).value.trimmingWhitespace()) else {
            throw fail(key, "expected a whole number ≥ 0")
        }
        return v
    }

    func int(_ key: SettingKey, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let v = Int(raw(key).value.trimmingWhitespace()) else { throw fail(key, "expected a whole number") }
        guard range.contains(v) else { throw fail(key, "must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    func choice(_ key: SettingKey) throws(ConfigError) -> String {
        let v = raw(key).value.trimmingWhitespace().lowercased()
        guard case .choice(let options) = Settings[key].kind, options.contains(v) else {
            if case .choice(let options) = Settings[key].kind {
                throw fail(key, "expected one of \(options.joined(separator: ", "))")
            }
            throw fail(key, "unexpected value")
        }
        return v
    }

    func hostPort(_ key: SettingKey, allowPortZero: Bool = false) throws(ConfigError) -> HostPort {
        do {
            return try HostPort(parsing: raw(key).value, allowPortZero: allowPortZero)
        } catch {
            throw fail(key, error.description)
        }
    }

    func hostPortList(_ key: SettingKey) throws(ConfigError) -> [HostPort] {
        var out: [HostPort] = []
        for part in splitList(raw(key).value) {
            do {
                out.append(try HostPort(parsing: part))
            } catch {
                throw fail(key, "\"\(part)\": \(error.description)")
            }
        }
        return out
    }

    func endpoint(_ key: SettingKey) throws(ConfigError) -> HTTPEndpoint {
        do {
            return try HTTPEndpoint(parsing: raw(key).value)
        } catch {
            throw fail(key, error.description)
        }
    }

    func endpointList(_ key: SettingKey) throws(ConfigError) -> [HTTPEndpoint] {
        var out: [HTTPEndpoint] = []
        for part in splitList(raw(key).value) {
            do {
                out.append(try HTTPEndpoint(parsing: part))
            } catch {
                throw fail(key, "\"\(part)\": \(error.description)")
            }
        }
        return out
    }

    func decimal(_ key: SettingKey, range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard let v = Double(raw(key).value.trimmingWhitespace()), v.isFinite else { throw fail(key, "expected a number") }
        guard range.contains(v) else {
            throw fail(key, "must be in \(DATxConfig.decimal(range.lowerBound))...\(DATxConfig.decimal(range.upperBound))")
        }
        return v
    }

    /// Set to something other than its default by the file or a flag. `evnode init` writes every
    /// default into config.yaml; those must not wipe what `submit_options` says.
    private func given(_ key: SettingKey) -> Bool {
        let r = raw(key)
        return r.origin != .defaults && r.value.trimmingWhitespace() != Settings[key].defaultValue
    }

    /// `da.submit_options` (celestia-node's TxConfig JSON), then every flag given on top of it.
    func txConfig() throws(ConfigError) -> DATxConfig {
        var tx: DATxConfig
        do {
            tx = try DATxConfig(json: raw(.daSubmitOptions).value)
        } catch {
            throw fail(.daSubmitOptions, error.description)
        }
        if given(.daGasPrice) {
            let v = try decimal(.daGasPrice, range: -1...1e9)
            guard v >= 0 || v == -1 else { throw fail(.daGasPrice, "must be ≥ 0, or -1 to let the DA node estimate") }
            tx.gasPrice = v >= 0 ? v : nil
        }
        if given(.daMaxGasPrice) {
            let v = try decimal(.daMaxGasPrice, range: 0...1e9)
            tx.maxGasPrice = v == 0 ? nil : v
        }
        if given(.daKeyName) {
            let v = raw(.daKeyName).value.trimmingWhitespace()
            tx.keyName = v.isEmpty ? nil : v
        }
        if given(.daFeeGranter) {
            let v = raw(.daFeeGranter).value.trimmingWhitespace()
            if v.isEmpty {
                tx.feeGranterAddress = nil
            } else {
                do {
                    try Bech32.check(v, field: "address")
                } catch {
                    throw fail(.daFeeGranter, error.description)
                }
                tx.feeGranterAddress = v
            }
        }
        if given(.daTxPriority) {
            let v = try choice(.daTxPriority)
            tx.txPriority = DATxConfig.priorities[v]
        }
        return tx
    }

    func addressList(_ key: SettingKey) throws(ConfigError) -> [String] {
        var out: [String] = []
        for part in splitList(raw(key).value) {
            do {
                try Bech32.check(part, field: "address")
            } catch {
                throw fail(key, error.description)
            }
            out.append(part)
        }
        return out
    }

    /// Namespace names become part of blob namespaces; control characters there are always a
    /// copy-paste accident.
    func namespaceName(_ key: SettingKey) throws(ConfigError) -> String {
        let v = raw(key).value
        if v.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw fail(key, "contains control characters")
        }
        if v.utf8.count > 256 { throw fail(key, "longer than 256 bytes") }
        return v
    }

    /// A Prometheus metric-name prefix: `[a-zA-Z_][a-zA-Z0-9_]*` (what the exposition format allows).
    func metricNamespace(_ key: SettingKey) throws(ConfigError) -> String {
        let v = raw(key).value.trimmingWhitespace()
        guard let first = v.unicodeScalars.first, first.isASCII, first == "_" || first.properties.isAlphabetic,
              v.unicodeScalars.allSatisfy({ $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }),
              v.utf8.count <= 64 else {
            throw fail(key, "a metric name prefix: letters, digits and _, not starting with a digit, at most 64 bytes")
        }
        return v
    }

    func splitList(_ s: String) -> [String] {
        s.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
    }
}
