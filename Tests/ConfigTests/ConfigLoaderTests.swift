import Testing
@testable import Config

@Suite struct ConfigLoaderTests {
    func flag(_ key: String, _ value: String) -> [String: RawSetting] {
        [key: RawSetting(value: value, source: "--\(Settings.byKey[key]!.flag)")]
    }

    @Test func defaultsMatchTheSpec() throws {
        let c = try ConfigLoader.resolve(home: "/h", file: [:], flags: [:])
        #expect(c.blockTime == .seconds(1))
        #expect(c.da.blockTime == .seconds(6))
        #expect(c.p2p.listen == HostPort(host: "0.0.0.0", port: 7676))
        #expect(c.rpc.address == HostPort(host: "127.0.0.1", port: 7331))
        #expect(c.da.address.hostPort == HostPort(host: "127.0.0.1", port: 7980))
        #expect(c.aggregator == false && c.catchupEnabled == false && c.role == .full)
        #expect(c.log.level == "info" && c.log.format == .text)
    }

    @Test func flagsOverrideFileOverridesDefaults() throws {
        let yaml = """
        node:
          block_time: 250ms
          aggregator: true
        da:
          block_time: 2s
          address: http://10.0.0.1:26658
        p2p:
          peers:
            - 127.0.0.1:7001
            - 127.0.0.1:7002
        """
        let file = try ConfigLoader.parseYAML(yaml, path: "config.yaml")
        let c = try ConfigLoader.resolve(home: "/h", file: file, flags: flag("node.block_time", "100ms"))
        #expect(c.blockTime == .milliseconds(100))          // flag beats file
        #expect(c.da.blockTime == .seconds(2))               // file beats default
        #expect(c.aggregator)
        #expect(c.da.address.hostPort.port == 26658)
        #expect(c.p2p.peers == [P2PPeerAddress(host: "127.0.0.1", port: 7001), P2PPeerAddress(host: "127.0.0.1", port: 7002)])
        #expect(c.lazyInterval == .seconds(60))              // untouched default
    }

    @Test func errorsNameFieldValueAndSource() throws {
        let yaml = "node:\n  block_time: soon\n"
        let file = try ConfigLoader.parseYAML(yaml, path: "/h/config/config.yaml")
        do {
            _ = try ConfigLoader.resolve(home: "/h", file: file, flags: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "invalid node.block_time (--evnode.node.block_time) \"soon\" (from /h/config/config.yaml): malformed number \"soon\"")
        }
        #expect(throws: ConfigError.unknownKey(key: "node.blok_time", path: "c.yaml")) {
            try ConfigLoader.parseYAML("node:\n  blok_time: 1s\n", path: "c.yaml")
        }
        #expect(throws: ConfigError.self) { try ConfigLoader.parseYAML("node: [1, 2]\n", path: "c.yaml") }
        #expect(throws: ConfigError.self) { try ConfigLoader.parseYAML("node:\n  a: [\n", path: "c.yaml") }
        #expect(throws: ConfigError.self) {
            try ConfigLoader.resolve(home: "/h", file: [:], flags: flag("node.block_time", "0s"))
        }
        #expect(throws: ConfigError.self) {
            try ConfigLoader.resolve(home: "/h", file: [:], flags: flag("da.max_blob_size", "12"))
        }
        #expect(throws: ConfigError.self) {
            try ConfigLoader.resolve(home: "/h", file: [:], flags: flag("log.level", "loud"))
        }
        #expect(throws: ConfigError.self) {
            try ConfigLoader.resolve(home: "/h", file: [:], flags: flag("rpc.address", "localhost"))
        }
    }

    @Test func modeRules() throws {
        var f = flag("node.catchup_timeout", "30s")
        #expect(throws: ConfigError.conflict("--evnode.node.catchup_timeout needs --evnode.node.aggregator (catchup is how an aggregator recovers)")) {
            try ConfigLoader.resolve(home: "/h", file: [:], flags: f)
        }
        f.merge(flag("node.aggregator", "true")) { a, _ in a }
        let c = try ConfigLoader.resolve(home: "/h", file: [:], flags: f)
        #expect(c.catchupEnabled && c.catchupTimeout == .seconds(30))

        f.merge(flag("raft.enable", "true")) { a, _ in a }
        f.merge(flag("raft.endpoints", "http://127.0.0.1:2379")) { a, _ in a }
        #expect(throws: ConfigError.self) { try ConfigLoader.resolve(home: "/h", file: [:], flags: f) }

        var ha = flag("raft.enable", "true")
        ha.merge(flag("node.aggregator", "true")) { a, _ in a }
        #expect(throws: ConfigError.missing("--evnode.raft.enable needs --evnode.raft.endpoints (etcd URLs, http://host:port,…)")) {
            try ConfigLoader.resolve(home: "/h", file: [:], flags: ha)
        }
        ha.merge(flag("raft.endpoints", "http://127.0.0.1:2379,http://127.0.0.1:2380")) { a, _ in a }
        let h = try ConfigLoader.resolve(home: "/h", file: [:], flags: ha)
        #expect(h.role == .ha && h.raft.endpoints.count == 2)
    }

    @Test func heartbeatSettings() throws {
        var ha = flag("raft.enable", "true")
        ha.merge(flag("node.aggregator", "true")) { a, _ in a }
        ha.merge(flag("raft.endpoints", "http://127.0.0.1:2379")) { a, _ in a }
        let d = try ConfigLoader.resolve(home: "/h", file: [:], flags: ha)
        #expect(d.raft.heartbeatInterval == .milliseconds(100) && d.raft.effectiveHeartbeatTimeout == .milliseconds(500))
        func with(_ extra: [(String, String)]) throws(ConfigError) -> NodeConfig {
            var f = ha
            for (k, v) in extra { f.merge(flag(k, v)) { _, b in b } }
            return try ConfigLoader.resolve(home: "/h", file: [:], flags: f)
        }
        let slow = try with([("raft.heartbeat_interval", "1s"), ("raft.lease_ttl", "10s")])
        #expect(slow.raft.effectiveHeartbeatTimeout == .seconds(5))
        let off = try with([("raft.heartbeat_interval", "0s")])
        #expect(off.raft.heartbeatInterval == .zero)
        #expect(throws: ConfigError.conflict("--evnode.raft.heartbeat_timeout needs heartbeats: --evnode.raft.heartbeat_interval is 0s")) {
            try with([("raft.heartbeat_interval", "0s"), ("raft.heartbeat_timeout", "1s")])
        }
        do {
            _ = try with([("raft.heartbeat_timeout", "150ms")])
            Issue.record("a timeout under two intervals must be refused")
        } catch {
            #expect(error.description.contains("raft.heartbeat_timeout") && error.description.contains("150ms")
                    && error.description.contains("two heartbeat intervals"), "\(error)")
        }
        #expect(throws: ConfigError.self) { try with([("raft.heartbeat_interval", "5ms")]) }
        do {
            _ = try with([("raft.heartbeat_timeout", "3s"), ("raft.lease_ttl", "2s")])
            Issue.record("a timeout past the lease TTL must be refused")
        } catch {
            #expect(error.description.contains("shorter than --evnode.raft.lease_ttl"), "\(error)")
        }
        #expect(try SettingFlags.parse(["--evnode.raft.heartbeat_timeout=800ms"])["raft.heartbeat_timeout"]?.value == "800ms")
    }

    @Test func templateParsesBackToDefaults() throws {
        let file = try ConfigLoader.parseYAML(ConfigTemplate.yaml(values: ["node.aggregator": "true"]), path: "t")
        let c = try ConfigLoader.resolve(home: "/h", file: file, flags: [:])
        var expected = try ConfigLoader.resolve(home: "/h", file: [:], flags: [:])
        expected.aggregator = true
        #expect(c == expected)
        #expect(Set(file.keys) == Set(Settings.all.filter(\.inFile).map(\.key)))
    }
}

@Suite struct FlagAliasTests {
    @Test func evNodeSpellingsAndOlderOnesReadTheSameSettings() throws {
        let out = try SettingFlags.parse([
            "--evnode.node.aggregator", "--rollkit.node.catchup_timeout=30s",
            "--evnode.raft.enable=false", "--da.address", "http://x:1", "--block-time=2s",
            "--lazy=true", "--no-da.subscribe", "--p2p.listen", "127.0.0.1:1",
        ])
        #expect(out.mapValues(\.value) == ["node.aggregator": "true", "node.catchup_timeout": "30s", "raft.enable": "false",
                                            "da.address": "http://x:1", "node.block_time": "2s", "node.lazy_mode": "true",
                                            "da.subscribe": "false", "p2p.listen_address": "127.0.0.1:1"])
        #expect(out["node.catchup_timeout"]?.source == "--rollkit.node.catchup_timeout")
        // Other commands: Go booleans of their own flags; setting flags left as typed.
        #expect(try FlagAliases.normalize(["rollback", "--rollkit.db_path", "x", "--sync-node=true", "--json=false"])
                == ["rollback", "--rollkit.db_path", "x", "--sync-node"])
    }

    @Test func badBooleanIsAnError() {
        #expect(throws: ConfigError.self) { try SettingFlags.parse(["--evnode.node.aggregator=maybe"]) }
        #expect(throws: FlagAliases.Failure(flag: "sync-node", value: "maybe")) {
            try FlagAliases.normalize(["--sync-node=maybe"])
        }
    }
}
