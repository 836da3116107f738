import Primitives
import Foundation
import Testing
@testable import Config

/// An `evnode.yaml` as ev-node's `init` (pkg/config/yaml.go SaveAsYaml over DefaultConfig) writes
/// it for an aggregator, composed from reference/ev-node-operator.md §1–§2: every group and key,
/// Go's duration spelling (`1m0s`), an empty list as `[]`, the absolute signer_path and raft_dir
/// init writes, and a random namespace.
let evNodeInitYAML = """
# Path inside the root directory where the database is located
db_path: data
p2p:
  # Address to listen for incoming connections (host:port)
  listen_address: /ip4/0.0.0.0/tcp/7676
  peers: ""
  blocked_peers: ""
  allowed_peers: ""
  disable_connection_gater: true
node:
  aggregator: true
  promotable: false
  based_sequencer: false
  light: false
  block_time: 1s
  max_pending_headers_and_data: 0
  lazy_mode: false
  lazy_block_interval: 1m0s
  scrape_interval: 1s
  catchup_timeout: 0s
  readiness_window_seconds: 15
  readiness_max_blocks_behind: 15
da:
  address: http://localhost:7980
  auth_token: ""
  submit_options: ""
  signing_addresses: []
  namespace: qX3fK9pLm2
  data_namespace: ""
  forced_inclusion_namespace: ""
  block_time: 6s
  mempool_ttl: 0
  max_submit_attempts: 30
  request_timeout: 1m0s
  batching_strategy: time
  batch_size_threshold: 0.8
  batch_max_delay: 0s
  batch_min_items: 1
rpc:
  address: 127.0.0.1:7331
  enable_da_visualization: false
instrumentation:
  prometheus: false
  prometheus_listen_addr: :26660
  max_open_connections: 3
  namespace: evnode
  pprof: false
  pprof_listen_addr: :6060
  tracing: false
  tracing_endpoint: localhost:4318
  tracing_service_name: ev-node
  tracing_sample_rate: 0.1
log:
  level: info
  format: text
  trace: false
signer:
  signer_type: file
  signer_path: /root/.evm/config
  kms:
    provider: ""
    aws:
      key_id: ""
      region: ""
      profile: ""
      timeout: 10s
      max_retries: 3
    gcp:
      key_name: ""
      credentials_file: ""
      timeout: 10s
      max_retries: 3
raft:
  enable: false
  node_id: ""
  raft_addr: ""
  raft_dir: /root/.evnode/raft
  bootstrap: false
  peers: ""
  snap_count: 3
  send_timeout: 200ms
  heartbeat_timeout: 350ms
  leader_lease_timeout: 175ms
  election_timeout: 1s
  snapshot_threshold: 500
  trailing_logs: 200
pruning:
  pruning_mode: disabled
  pruning_keep_recent: 100000
  pruning_interval: 15m0s

"""

@Suite struct EvNodeConfigTests {
    let path = "/h/config/evnode.yaml"

    func load(_ yaml: String = evNodeInitYAML, env: [String: String] = [:],
              flags: [String] = []) throws(ConfigError) -> LoadedConfig {
        let file = try ConfigLoader.parseFile(yaml, path: path)
        return try ConfigLoader.load(home: "/h", file: file.values, environment: try ConfigLoader.environmentSettings(env),
                                     flags: try SettingFlags.parse(flags))
    }

    func refusal(_ body: () throws -> LoadedConfig) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func aHomeEvNodesInitWroteLoads() throws {
        let loaded = try load()
        let c = loaded.config
        #expect(loaded.notices.isEmpty, "\(loaded.notices)")
        #expect(c.aggregator && c.blockTime == .seconds(1) && c.lazyInterval == .seconds(60))
        #expect(c.da.namespace == "qX3fK9pLm2" && c.da.requestTimeout == .seconds(60) && c.da.address.hostPort.port == 7980)
        #expect(c.da.batching == DABatchingConfig() && c.da.maxSubmitAttempts == 30 && c.da.mempoolTTL == 0)
        #expect(c.p2p.listen == HostPort(host: "0.0.0.0", port: 7676))
        #expect(c.signer.path == "/root/.evm/config" && c.signer.kind == .file)
        #expect(c.instrumentation.prometheusListen == HostPort(host: "0.0.0.0", port: 26660))
        #expect(c.instrumentation.namespace == "evnode" && !c.instrumentation.prometheus)
        #expect(c.readiness == ReadinessConfig() && c.pruning == PruningConfig() && c.dbPath == "data")
        // ev-node's raft.heartbeat_timeout is read with the meaning evnode gives it.
        #expect(c.raft.heartbeatTimeout == .milliseconds(350) && !c.raft.enable)
        #expect(HomeLayout(home: "/h", dbPath: c.dbPath).storeDirectory == "/h/data/store")
    }

    @Test func flagsBeatEnvironmentBeatsFileBeatsDefaults() throws {
        let yaml = evNodeInitYAML.replacingOccurrences(of: "  block_time: 6s", with: "  block_time: 2s")
        #expect(try load(yaml).config.da.blockTime == .seconds(2))                       // file > default
        let env = ["EVNODE_DA_BLOCK_TIME": "3s", "EVNODE_NODE_BLOCK_TIME": "500ms", "EVNODE_OTHER_TOOL": "x"]
        let e = try load(yaml, env: env).config
        #expect(e.da.blockTime == .seconds(3) && e.blockTime == .milliseconds(500))      // env > file
        let f = try load(yaml, env: env, flags: ["--evnode.da.block_time", "4s"]).config
        #expect(f.da.blockTime == .seconds(4) && f.blockTime == .milliseconds(500))      // flag > env
        #expect(try load(yaml, flags: ["--rollkit.da.block_time=5s"]).config.da.blockTime == .seconds(5))
        #expect(try load(flags: ["--evnode.node.aggregator=false"]).config.aggregator == false)
        #expect(try load(env: ["EVNODE_NODE_AGGREGATOR": "false"]).config.aggregator == false)
        #expect(refusal { try load(env: ["EVNODE_NODE_AGGREGATR": "true"]) }.contains("EVNODE_NODE_AGGREGATR"))
    }

    @Test func unknownKeysNameTheKeyAndFile() throws {
        let typo = evNodeInitYAML.replacingOccurrences(of: "  lazy_mode: false", with: "  lazymode: false")
        #expect(refusal { try load(typo) } == "\(path): unknown key \"node.lazymode\"")
        let nested = evNodeInitYAML.replacingOccurrences(of: "      region: \"\"", with: "      regoin: \"\"")
        #expect(refusal { try load(nested) } == "\(path): unknown key \"signer.kms.aws.regoin\"")
        // A group from a newer ev-node is skipped, and said.
        let newer = try ConfigLoader.parseFile(evNodeInitYAML + "telemetry:\n  otlp: true\n", path: path)
        #expect(newer.skippedGroups == ["telemetry"])
        #expect(refusal { try load("signer:\n  passphrase_file: /p\n") }.contains("pass --evnode.signer.passphrase_file"))
    }

    /// `signer_type grpc` (issue 29): the remote signer's settings, and what is refused with them.
    @Test func remoteSignerSettings() throws {
        let grpc = "--evnode.signer.signer_type=grpc"
        #expect(refusal { try load(flags: [grpc]) }.contains("needs --evnode.signer.grpc_address"))
        #expect(refusal { try load(flags: [grpc, "--evnode.signer.grpc_address=10.0.0.5:7950"]) }
            .contains("is not a loopback address: reaching a remote signer over the network needs mutual TLS"))
        #expect(refusal { try load(flags: [grpc, "--evnode.signer.grpc_address=127.0.0.1:7950",
                                           "--evnode.signer.grpc_tls_cert_file=/c"]) }.contains("needs all of"))
        #expect(refusal { try load(flags: ["--evnode.signer.grpc_address=127.0.0.1:7950"]) }
            .contains("need --evnode.signer.signer_type grpc"))
        #expect(refusal { try load(flags: [grpc, "--evnode.signer.grpc_address=127.0.0.1"]) }.contains("signer.grpc_address"))
        // An HA group may share one remote signer (a new leader adopts the block kept at its mark).
        let shared = try load(flags: [grpc, "--evnode.signer.grpc_address=127.0.0.1:7950", "--evnode.raft.enable",
                                      "--evnode.raft.endpoints=http://127.0.0.1:2379"]).config
        #expect(shared.raft.enable && shared.signer.kind == .grpc)
        let remote = try load(flags: [grpc, "--evnode.signer.grpc_address=127.0.0.1:7950", "--evnode.signer.grpc_token_file=/t"]).config
        #expect(remote.signer.kind == .grpc && remote.signer.grpcAddress == HostPort(host: "127.0.0.1", port: 7950))
        #expect(remote.signer.grpcTokenFile == "/t")
        // Off loopback with the three TLS files; from the file as well as from flags.
        let yaml = evNodeInitYAML.replacingOccurrences(of: "  signer_type: file", with: """
              signer_type: grpc
              grpc_address: 10.0.0.5:7950
              grpc_tls_cert_file: node.pem
              grpc_tls_key_file: node.key
              grpc_tls_ca_file: ca.pem
            """)
        let tls = try load(yaml).config
        #expect(tls.signer.grpcAddress?.host == "10.0.0.5" && tls.signer.grpcTLSCAFile == "ca.pem")
    }

    @Test func featuresEvnodeLacksLoadAtTheirDefaultOnly() throws {
        for (from, to, key) in [("  light: false", "  light: true", "node.light"),
                                ("  pprof: false", "  pprof: true", "instrumentation.pprof"),
                                ("  tracing: false", "  tracing: true", "instrumentation.tracing"),
                                ("  signer_type: file", "  signer_type: kms", "signer.signer_type"),
                                ("  scrape_interval: 1s", "  scrape_interval: 500ms", "node.scrape_interval")] {
            // (a full node's file: light and aggregator are exclusive anyway)
            let yaml = evNodeInitYAML.replacingOccurrences(of: "  aggregator: true", with: "  aggregator: false")
                .replacingOccurrences(of: from, with: to)
            let message = refusal { try load(yaml) }
            #expect(message.hasPrefix("\(key) (--evnode.\(key)) ") && message.contains("from \(path) is refused"), "\(message)")
        }
        // Promotable is supported (issue 31): it decides over aggregator=false, and the node may
        // produce later, so it is configured as an aggregator that starts by following.
        let promotable = try load(flags: ["--evnode.node.promotable", "--evnode.node.aggregator=false"])
        #expect(promotable.config.promotable && promotable.config.aggregator && promotable.config.role == .promotable(timeout: .seconds(30)))
        #expect(refusal { try load(flags: ["--evnode.node.promotable", "--evnode.raft.enable"]) }
            .contains("mutually exclusive"))
        // Forced inclusion is supported: the namespace name loads from the file and from a flag.
        let fiYAML = evNodeInitYAML.replacingOccurrences(of: "  forced_inclusion_namespace: \"\"", with: "  forced_inclusion_namespace: fi")
        #expect(try load(fiYAML).config.da.forcedInclusionNamespace == "fi")
        #expect(try load(flags: ["--evnode.da.forced_inclusion_namespace", "fi2"]).config.da.forcedInclusionNamespace == "fi2")
        // Based sequencing is supported (the home ev-node's init wrote is an aggregator's); it
        // needs the forced-inclusion namespace it derives from.
        #expect(refusal { try load(flags: ["--evnode.node.based_sequencer=true"]) }
                .hasPrefix("--evnode.node.based_sequencer needs --evnode.da.forced_inclusion_namespace"))
        let based = try load(flags: ["--evnode.node.based_sequencer", "--evnode.da.forced_inclusion_namespace", "fi"]).config
        #expect(based.basedSequencer && based.role == .based && !based.catchupEnabled)
        // apps/evm's forced-inclusion server: EVM only, with the namespace it posts to; ":PORT" on loopback.
        #expect(refusal { try load(flags: ["--force-inclusion-server", "127.0.0.1:8547"]) }
                .hasPrefix("--force-inclusion-server is apps/evm's: it needs --evnode.execution.kind evm"))
        let evm = ["--evnode.execution.kind", "evm", "--evm.jwt-secret-file", "/nonexistent/jwt.hex"]
        #expect(refusal { try load(flags: evm + ["--force-inclusion-server", "127.0.0.1:8547"]) }
                .hasPrefix("--force-inclusion-server needs --evnode.da.forced_inclusion_namespace"))
        #expect(refusal { try load(flags: evm + ["--force-inclusion-server", "127.0.0.1", "--evnode.da.forced_inclusion_namespace", "fi"]) }
                .contains("expected host:port"))
        let fiServer = try load(flags: evm + ["--force-inclusion-server", ":8547", "--evnode.da.forced_inclusion_namespace", "fi"]).config
        #expect(fiServer.execution.evm.forceInclusionServer == HostPort(host: "127.0.0.1", port: 8547))
        #expect(try load(flags: evm).config.execution.evm.forceInclusionServer == nil)
        // At their defaults, from a flag too.
        _ = try load(flags: ["--evnode.node.light=false", "--evnode.instrumentation.tracing=false", "--evnode.node.scrape_interval=1s"])
        // A knob of a feature that is off: any value in the file (ev-node ignores it too), refused as a flag.
        let endpoint = evNodeInitYAML.replacingOccurrences(of: "tracing_endpoint: localhost:4318", with: "tracing_endpoint: otel:4318")
        _ = try load(endpoint)
        #expect(refusal { try load(flags: ["--evnode.instrumentation.tracing_endpoint=otel:4318"]) }.contains("no tracing"))
        // hashicorp-raft's keys: loaded while raft is off, refused with it on.
        let raft = evNodeInitYAML.replacingOccurrences(of: "  raft_addr: \"\"", with: "  raft_addr: 10.0.0.1:5001")
        _ = try load(raft)
        let on = raft.replacingOccurrences(of: "  enable: false", with: "  enable: true")
        #expect(refusal { try load(on, flags: ["--evnode.raft.endpoints", "http://127.0.0.1:2379"]) }.contains("etcd"))
        #expect(refusal { try load(flags: ["--evnode.raft.bootstrap"]) }.contains("hashicorp-raft"))
        // No effect, and a notice says so.
        let notices = try load(flags: ["--evnode.clear_cache", "--evnode.log.trace=true"]).notices
        #expect(notices.count == 2 && notices[0].contains("clear_cache"), "\(notices)")
    }

    @Test func validationNamesTheFlags() throws {
        #expect(refusal { try load(flags: ["--evnode.node.light"]) }
                == "--evnode.node.light and --evnode.node.aggregator are mutually exclusive")
        #expect(refusal { try load(flags: ["--evnode.node.aggregator=false", "--evnode.node.based_sequencer"]) }
                == "--evnode.node.based_sequencer needs --evnode.node.aggregator")
        #expect(refusal { try load(flags: ["--evnode.node.lazy_mode", "--evnode.node.lazy_block_interval=1s"]) }
                .hasPrefix("--evnode.node.lazy_block_interval (1s) must be longer than --evnode.node.block_time"))
        #expect(refusal { try load(flags: ["--evnode.pruning.pruning_mode=all", "--evnode.pruning.pruning_keep_recent=0"]) }
                .hasPrefix("--evnode.pruning.pruning_keep_recent must be above 0"))
        #expect(refusal { try load(flags: ["--evnode.pruning.pruning_mode=metadata", "--evnode.node.block_time=2s",
                                           "--evnode.pruning.pruning_interval=1s"]) }
                .hasPrefix("--evnode.pruning.pruning_interval (1s) must be at least --evnode.node.block_time (2s)"))
        #expect(refusal { try load(flags: ["--evnode.node.aggregator=false", "--evnode.node.catchup_timeout=5s"]) }
                .hasPrefix("--evnode.node.catchup_timeout needs --evnode.node.aggregator"))
        #expect(refusal { try load(flags: ["--evnode.da.address="]) }.contains("P2P-only full node"))
        let pruned = try load(flags: ["--evnode.pruning.pruning_mode=all", "--evnode.pruning.pruning_keep_recent=10",
                                      "--evnode.pruning.pruning_interval=1m"]).config.pruning
        #expect(pruned.mode == .all && pruned.keepRecent == 10 && pruned.interval == .seconds(60))
    }

    @Test func peerListsApplyOnlyWithTheGater() throws {
        let id = "12D3KooWGBXdxzhrKMLwzzcfHzzPneT25D4C6QLt7L6ZQ1wpWLKv"
        let off = try load(flags: ["--evnode.p2p.blocked_peers", id])
        #expect(off.config.p2p.blockedPeers.isEmpty && off.notices.count == 1)
        let on = try load(flags: ["--evnode.p2p.blocked_peers", "/ip4/1.2.3.4/tcp/1/p2p/\(id)",
                                  "--evnode.p2p.allowed_peers", id, "--evnode.p2p.disable_connection_gater=false"])
        #expect(on.config.p2p.blockedPeers == [id] && on.config.p2p.allowedPeers == [id] && on.notices.isEmpty)
        #expect(refusal { try load(flags: ["--evnode.p2p.blocked_peers", "nope"]) }.contains("not an Ed25519 peer id"))
    }

    @Test func settingsTableIsConsistent() {
        for s in Settings.all {
            #expect(ConfigLoader.isDefault(s, s.defaultValue), "\(s.key)'s default does not read as its default")
            #expect(ConfigLoader.byEnvironmentVariable[s.environmentVariable]?.key == s.key)
        }
    }
}

@Suite struct EvNodeHomeTests {
    func tempHome() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("evnode-home-\(UUID().uuidString)").path
    }

    @Test func initThenLoadGivesTheDefaults() throws {
        let home = tempHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let r = try HomeInitializer.initialize(home: home, chainID: "rt-chain", startTimeNanoseconds: 1_700_000_000_000_000_000)
        #expect(FileIO.exists(home + "/config/evnode.yaml") && !FileIO.exists(home + "/config/config.yaml"))
        let setup = try NodeSetup.load(home: home, flags: [:])
        var expected = try ConfigLoader.resolve(home: setup.layout.home, file: [:], flags: [:])
        expected.da.namespace = "rt-chain-headers"
        #expect(setup.config == expected)
        // In-process homes keep the plaintext signer.key (`evnode init` writes signer.json): its notice only.
        #expect(setup.notices.count == 1 && setup.notices[0].contains("signer.key"), "\(setup.notices)")
        #expect(setup.genesis == r.genesis && setup.genesis.daEpochForcedInclusion == 50)
        // Flags given to init are written into evnode.yaml, as ev-node's init writes them.
        let other = tempHome()
        defer { try? FileManager.default.removeItem(atPath: other) }
        _ = try HomeInitializer.initialize(home: other, chainID: "rt-chain", settings: try SettingFlags.parse(
            ["--evnode.node.aggregator", "--evnode.node.block_time=250ms", "--rollkit.db_path", "db"]), startTimeNanoseconds: 1)
        let loaded = try NodeSetup.load(home: other, flags: [:])
        #expect(loaded.config.aggregator && loaded.config.blockTime == .milliseconds(250))
        #expect(loaded.layout.storeDirectory == loaded.layout.home + "/db/store" && FileIO.isDirectory(other + "/db"))
        #expect(throws: ConfigError.self) {
            try HomeInitializer.initialize(home: tempHome(), chainID: "c", settings: try SettingFlags.parse(["--evnode.node.light"]),
                                           startTimeNanoseconds: 1)
        }
    }

    @Test func dbPathIsResolvedAsEvNodeDoes() {
        #expect(HomeLayout(home: "/h/").storeDirectory == "/h/data/store")
        #expect(HomeLayout(home: "/h", dbPath: "./db").dataDirectory == "/h/db")
        #expect(HomeLayout(home: "/h", dbPath: "/var/lib/evnode").storeDirectory == "/var/lib/evnode/store")
        #expect(HomeLayout(home: "/h").resolve("config") == "/h/config")
        #expect(HomeLayout(home: "/h").resolve("/keys") == "/keys")
    }

    @Test func anEarlierEvnodeHomeStartsWithOneNotice() throws {
        let home = tempHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let r = try HomeInitializer.initialize(home: home, chainID: "old-chain", startTimeNanoseconds: 1)
        try FileManager.default.removeItem(atPath: r.layout.configFile)
        // config.yaml as evnode 0.1 wrote it: its own key names.
        try FileIO.writeAtomically(r.layout.legacyConfigFile, """
        node:
          aggregator: false
          lazy_interval: 2m
          max_pending_blocks: 7
        p2p:
          listen: 127.0.0.1:7999
        execution:
          kind: kv
        """)
        let genesis = try String(contentsOfFile: r.layout.genesisFile, encoding: .utf8)
        try FileIO.writeAtomically(r.layout.genesisFile, genesis.replacingOccurrences(of: ",\n  \"da_epoch_forced_inclusion\": 50", with: ""))
        let setup = try NodeSetup.load(home: home, flags: [:])
        #expect(setup.notices.count == 1 && setup.notices[0].hasPrefix("NOTICE: ") && setup.notices[0].contains("migrate-home")
                && setup.notices[0].contains("config/config.yaml, config/signer.key"), "\(setup.notices)")
        #expect(setup.config.lazyInterval == .seconds(120) && setup.config.maxPendingBlocks == 7)
        #expect(setup.config.p2p.listen == HostPort(host: "127.0.0.1", port: 7999))
        #expect(setup.genesis.daEpochForcedInclusion == 50)
        // Both files at once is ambiguous.
        try FileIO.writeAtomically(r.layout.configFile, "node:\n  aggregator: false\n")
        #expect(throws: ConfigError.self) { try NodeSetup.load(home: home, flags: [:]) }
    }
}

@Suite struct EvNodeGenesisTests {
    @Test func everyEvNodeFieldIsRead() throws {
        // As Go's json.MarshalIndent writes ev-node's Genesis, plus a field of a newer version.
        let text = """
        {
          "chain_id": "evolve-test",
          "start_time": "2025-06-01T12:30:00.123456789+02:00",
          "initial_height": 1,
          "proposer_address": "\(Data(repeating: 7, count: 32).base64EncodedString())",
          "da_start_height": 42,
          "da_epoch_forced_inclusion": 100,
          "app_state": {"x": 1}
        }
        """
        let g = try Genesis.parse(text, path: "g")
        #expect(g.chainID == "evolve-test" && g.daStartHeight == 42 && g.daEpochForcedInclusion == 100)
        #expect(g.proposerAddress == [UInt8](repeating: 7, count: 32))
        #expect(try Genesis.parse(g.jsonText(), path: "g") == g)
        let zero = text.replacingOccurrences(of: "\"da_epoch_forced_inclusion\": 100", with: "\"da_epoch_forced_inclusion\": 0")
        #expect(throws: ConfigError.file(path: "g", reason: "da_epoch_forced_inclusion must be at least 1 (got 0)")) {
            try Genesis.parse(zero, path: "g")
        }
        let absent = text.replacingOccurrences(of: "\"da_epoch_forced_inclusion\": 100,", with: "")
        #expect(try Genesis.parse(absent, path: "g").daEpochForcedInclusion == 50)
        let null = text.replacingOccurrences(of: "\"\(Data(repeating: 7, count: 32).base64EncodedString())\"", with: "null")
        do {
            _ = try Genesis.parse(null, path: "g")
            Issue.record("a null proposer must be refused")
        } catch {
            #expect(error.description.contains("proposer_address is null"))
        }
    }
}

@Suite struct RecoveryToolTests {
    func legacyHome() throws -> HomeLayout {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-mig-\(UUID().uuidString)").path
        let r = try HomeInitializer.initialize(home: home, chainID: "old-chain", startTimeNanoseconds: 1)
        try FileManager.default.removeItem(atPath: r.layout.configFile)
        try FileIO.writeAtomically(r.layout.legacyConfigFile, "node:\n  lazy_interval: 2m\np2p:\n  listen: 127.0.0.1:7999\n")
        return r.layout
    }

    @Test func migrateHomeConvertsKeepsABackupAndAFailureChangesNothing() throws {
        let layout = try legacyHome()
        defer { try? FileManager.default.removeItem(atPath: layout.home) }
        let old = try String(contentsOfFile: layout.legacyConfigFile, encoding: .utf8)
        // A failure midway (the new file cannot be written: a folder holds its place): old home intact.
        try FileIO.makeDirectories(layout.configDirectory + "/" + HomeMigration.stagingName)
        #expect(throws: ConfigError.self) { try HomeMigration.migrateConfig(layout: layout) }
        let kept = try String(contentsOfFile: layout.legacyConfigFile, encoding: .utf8)
        #expect(!FileIO.exists(layout.configFile) && kept == old)
        #expect(try NodeSetup.load(home: layout.home, flags: [:]).config.lazyInterval == .seconds(120))
        try FileManager.default.removeItem(atPath: layout.configDirectory + "/" + HomeMigration.stagingName)

        let result = try HomeMigration.migrateConfig(layout: layout)
        #expect(!FileIO.exists(layout.legacyConfigFile) && FileIO.exists(layout.configFile))
        #expect(try String(contentsOfFile: result.backupDirectory + "/config.yaml", encoding: .utf8) == old)
        #expect(result.renamedKeys == ["node.lazy_interval", "p2p.listen"])
        let setup = try NodeSetup.load(home: layout.home, flags: [:])
        #expect(setup.config.lazyInterval == .seconds(120) && setup.config.p2p.listen == HostPort(host: "127.0.0.1", port: 7999))
        #expect(!setup.notices.contains { $0.contains("config.yaml") })
        // Run again: nothing to migrate.
        #expect(throws: ConfigError.self) { try HomeMigration.migrateConfig(layout: layout) }
        // A migration stopped between its commit and the removal of config.yaml is finished.
        try FileIO.writeAtomically(layout.legacyConfigFile, old)
        #expect(throws: ConfigError.self) { try NodeSetup.load(home: layout.home, flags: [:]) }
        _ = try HomeMigration.migrateConfig(layout: layout)
        #expect(!FileIO.exists(layout.legacyConfigFile))
    }

    @Test func unsafeCleanEmptiesTheDatabaseFolderOnly() throws {
        let layout = try legacyHome()
        defer { try? FileManager.default.removeItem(atPath: layout.home) }
        try FileIO.makeDirectories(layout.storeDirectory)
        try FileIO.writeAtomically(layout.storeDirectory + "/CURRENT", "x")
        try FileIO.writeAtomically(layout.dataDirectory + "/other", "y")
        let configBefore = try FileManager.default.contentsOfDirectory(atPath: layout.configDirectory).sorted()
        #expect(try DataDirectoryCleaner.clean(layout: layout, signerDirectory: layout.configDirectory) == ["other", "store"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: layout.dataDirectory).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: layout.configDirectory).sorted() == configBefore)
        // A db_path that holds the configuration is refused before anything goes. Only `check`
        // runs on these: were it wrong, `clean` would empty `/` or `/tmp` of the machine running
        // the test (an earlier version of the check missed "/" and removed /bin).
        for dbPath in [".", "/", "//", "/..", layout.home + "/..", "./"] {
            #expect(throws: ConfigError.self, "\(dbPath)") {
                try DataDirectoryCleaner.check(layout: HomeLayout(home: layout.home, dbPath: dbPath),
                                               signerDirectory: layout.configDirectory)
            }
        }
        #expect(throws: ConfigError.self) {
            try DataDirectoryCleaner.clean(layout: layout, signerDirectory: layout.dataDirectory + "/keys")
        }
        #expect(FileIO.exists(layout.genesisFile))
    }
}
