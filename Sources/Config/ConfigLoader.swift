import Foundation
import Yams

/// One raw setting value and where it came from (for error messages).
public struct RawSetting: Sendable, Equatable {
    public var value: String
    public var source: String

    public init(value: String, source: String) {
        self.value = value
        self.source = source
    }
}

/// Builds a `NodeConfig` from defaults, `config.yaml` and flags, in that order of precedence
/// (flags win), and validates it. Nothing is started here; errors are one-line `ConfigError`s.
public enum ConfigLoader {
    /// Reads `config.yaml` into flat dotted keys. Unknown keys are an error: a misspelt key
    /// silently falling back to a default is how nodes end up on the wrong DA namespace.
    public static func readFile(at path: String) throws(ConfigError) -> [String: RawSetting] {
        let text: String
        do {
            text = try FileIO.readString(path)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        return try parseYAML(text, path: path)
    }

    public static func parseYAML(_ text: String, path: String) throws(ConfigError) -> [String: RawSetting] {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw .file(path: path, reason: "not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        guard let root else { return [:] }
        guard let top = root as? [String: Any] else {
            throw .file(path: path, reason: "expected a mapping of sections (node, da, p2p, rpc, raft, log)")
        }
        var out: [String: RawSetting] = [:]
        for (section, body) in top {
            guard let fields = body as? [String: Any] else {
                if body is NSNull { continue }
                throw .file(path: path, reason: "section \"\(section)\" must be a mapping")
            }
            for (field, value) in fields {
                let key = "\(section).\(field)"
                guard Settings.byKey[key] != nil else { throw .unknownKey(key: key, path: path) }
                out[key] = RawSetting(value: scalarText(value), source: path)
            }
        }
        return out
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

    /// Merges defaults < file < flags and converts every value.
    public static func resolve(home: String,
                               file: [String: RawSetting],
                               flags: [String: RawSetting]) throws(ConfigError) -> NodeConfig {
        var merged: [String: RawSetting] = [:]
        for setting in Settings.all {
            merged[setting.key] = RawSetting(value: setting.defaultValue, source: "default")
        }
        for (k, v) in file { merged[k] = v }
        for (k, v) in flags {
            guard Settings.byKey[k] != nil else {
                throw .invalidValue(field: k, value: v.value, source: v.source, reason: "unknown setting")
            }
            merged[k] = v
        }
        let reader = ValueReader(values: merged)
        var config = NodeConfig(
            home: home,
            aggregator: try reader.bool("node.aggregator"),
            catchupTimeout: try reader.duration("node.catchup_timeout"),
            blockTime: try reader.duration("node.block_time", positive: true),
            lazy: try reader.bool("node.lazy"),
            lazyInterval: try reader.duration("node.lazy_interval", positive: true),
            maxPendingBlocks: try reader.uint("node.max_pending_blocks"),
            da: DAConfig(
                address: try reader.endpoint("da.address"),
                authToken: reader.string("da.auth_token"),
                namespace: try reader.namespaceName("da.namespace"),
                dataNamespace: try reader.namespaceName("da.data_namespace"),
                blockTime: try reader.duration("da.block_time", positive: true),
                startHeight: try reader.uint("da.start_height"),
                maxBlobSize: try reader.int("da.max_blob_size", range: 1024...(64 << 20)),
                requestTimeout: try reader.duration("da.request_timeout", positive: true),
                fetchParallelism: try reader.int("da.fetch_parallelism", range: 1...256),
                maxHeldData: try reader.int("da.max_held_data", range: (1 << 20)...(16 << 30)),

                txConfig: try reader.txConfig(),
                gasMultiplier: try reader.decimal("da.gas_multiplier", range: 1...100),
                signingAddresses: try reader.addressList("da.signing_addresses"),
                tlsCAFile: reader.string("da.tls_ca_file").trimmingWhitespace(),
                subscribe: try reader.bool("da.subscribe")),
            p2p: P2PConfig(
                listen: try reader.p2pListen("p2p.listen"),
                peers: try reader.p2pPeerList("p2p.peers")),
            rpc: RPCConfig(address: try reader.hostPort("rpc.address", allowPortZero: true)),
            raft: RaftConfig(
                enable: try reader.bool("raft.enable"),
                endpoints: try reader.endpointList("raft.endpoints"),
                nodeID: reader.string("raft.node_id"),
                leaseTTL: try reader.duration("raft.lease_ttl"),
                heartbeatInterval: try reader.duration("raft.heartbeat_interval"),
                heartbeatTimeout: try reader.duration("raft.heartbeat_timeout")),
            log: LogConfig(
                level: try reader.choice("log.level"),
                format: LogFormat(rawValue: try reader.choice("log.format")) ?? .text))
        config.execution = try resolveExecution(reader)
        config.rpc.enableDAVisualization = try reader.bool("rpc.enable_da_visualization")
        config.instrumentation.prometheus = try reader.bool("instrumentation.prometheus")
        config.instrumentation.prometheusListen = try reader.hostPort("instrumentation.prometheus_listen_addr", allowPortZero: true)
        config.instrumentation.namespace = try reader.metricNamespace("instrumentation.namespace")
        try validateCombination(config, values: merged)
        return config
    }

    /// `--execution` and the `--evm.*` settings: the EVM ones are checked (and the JWT secret
    /// file required) only when the EVM executor is chosen, as ev-node does.
    static func resolveExecution(_ reader: ValueReader) throws(ConfigError) -> ExecutionConfig {
        let kind = ExecutionKind(rawValue: try reader.choice("execution.kind")) ?? .kv
        var evm = EVMConfig()
        guard kind == .evm else { return ExecutionConfig(kind: kind, evm: evm) }
        evm.engineURL = try reader.endpoint("evm.engine_url")
        evm.ethURL = try reader.endpoint("evm.eth_url")
        evm.jwtSecretFile = reader.string("evm.jwt_secret_file")
        if evm.jwtSecretFile.isEmpty {
            throw .missing("--execution evm needs --evm.jwt-secret-file (the Engine API JWT secret the EL was started with)")
        }
        evm.genesisHash = try reader.hexBytes("evm.genesis_hash", count: 32)
        evm.feeRecipient = try reader.hexBytes("evm.fee_recipient", count: 20) ?? [UInt8](repeating: 0, count: 20)
        return ExecutionConfig(kind: kind, evm: evm)
    }

    /// Rules between settings (SPEC §2). Checks that need files (the signer key) are in
    /// `HomeLayout`, which knows where they live.
    /// A heartbeat is an etcd write: not more often than every 10 ms. A follower must miss at
    /// least two before it takes over, and the take-over must come before the lease would expire.
    static func validateHeartbeat(_ raft: RaftConfig, values: [String: RawSetting]) throws(ConfigError) {
        func source(_ key: String) -> String { values[key]?.source ?? "default" }
        let interval = raft.heartbeatInterval, timeout = raft.heartbeatTimeout
        if interval > .zero && interval < .milliseconds(10) {
            throw .invalidValue(field: "raft.heartbeat_interval", value: DurationParser.format(interval),
                                source: source("raft.heartbeat_interval"),
                                reason: "at least 10ms (each heartbeat is an etcd write), or 0s for none")
        }
        if timeout > .zero && interval == .zero {
            throw .conflict("--raft.heartbeat-timeout needs heartbeats: --raft.heartbeat-interval is 0s")
        }
        if timeout > .zero && timeout < interval * 2 {
            throw .invalidValue(field: "raft.heartbeat_timeout", value: DurationParser.format(timeout),
                                source: source("raft.heartbeat_timeout"),
                                reason: "at least two heartbeat intervals (\(DurationParser.format(interval * 2)))")
        }
        if interval > .zero, raft.leaseTTL > .zero, raft.effectiveHeartbeatTimeout >= raft.leaseTTL {
            throw .invalidValue(field: "raft.heartbeat_timeout", value: DurationParser.format(raft.effectiveHeartbeatTimeout),
                                source: timeout > .zero ? source("raft.heartbeat_timeout") : "five heartbeat intervals",
                                reason: "shorter than --raft.lease-ttl (\(DurationParser.format(raft.leaseTTL))), which replaces a dead leader anyway")
        }
    }

    static func validateCombination(_ c: NodeConfig, values: [String: RawSetting]) throws(ConfigError) {
        if c.catchupTimeout > .zero && !c.aggregator {
            throw .conflict("--catchup-timeout needs --aggregator (catchup is how an aggregator recovers)")
        }
        if c.catchupTimeout > .zero && c.raft.enable {
            throw .conflict("--catchup-timeout and --raft.enable are mutually exclusive: choose catchup failover or the HA group")
        }
        if c.raft.enable && !c.aggregator {
            throw .conflict("--raft.enable needs --aggregator (only aggregators take part in leader election)")
        }
        if c.raft.leaseTTL > .zero && c.raft.leaseTTL < .seconds(2) {
            throw .invalidValue(field: "raft.lease_ttl", value: DurationParser.format(c.raft.leaseTTL),
                           source: values["raft.lease_ttl"]?.source ?? "default",
                           reason: "etcd's shortest lease is 2s")
        }
        try validateHeartbeat(c.raft, values: values)
        if c.raft.enable && c.raft.endpoints.isEmpty {
            throw .missing("--raft.enable needs --raft.endpoints (etcd URLs, http://host:port,…)")
        }
        if c.lazy && !c.aggregator {
            throw .conflict("--lazy needs --aggregator")
        }
        if !c.da.tlsCAFile.isEmpty {
            if c.da.address.scheme != "https" {
                throw .conflict("--da.tls-ca-file needs an https:// --da.address (got \(c.da.address))")
            }
            if !FileManager.default.isReadableFile(atPath: c.da.tlsCAFile) {
                throw .invalidValue(field: "da.tls_ca_file (--da.tls-ca-file)", value: c.da.tlsCAFile,
                                    source: values["da.tls_ca_file"]?.source ?? "default",
                                    reason: "no readable file there")
            }
        }
        if let price = c.da.txConfig.gasPrice, price > c.da.maxGasPrice {
            throw .conflict("--da.gas-price \(DATxConfig.decimal(price)) is above --da.max-gas-price \(DATxConfig.decimal(c.da.maxGasPrice))")
        }
    }
}

/// Converts raw strings to typed values, naming the field, value and source on failure.
struct ValueReader {
    let values: [String: RawSetting]

    func raw(_ key: String) -> RawSetting {
        values[key] ?? RawSetting(value: Settings.byKey[key]?.defaultValue ?? "", source: "default")
    }

    func fail(_ key: String, _ reason: String) -> ConfigError {
        let r = raw(key)
        let flag = Settings.byKey[key].map { "--\($0.flag)" } ?? key
        return .invalidValue(field: "\(key) (\(flag))", value: r.value, source: r.source, reason: reason)
    }

    func string(_ key: String) -> String { raw(key).value }

    /// `0x`-prefixed (or bare) hex of exactly `count` bytes; nil when empty.
    func hexBytes(_ key: String, count: Int) throws(ConfigError) -> [UInt8]? {
        var text = raw(key).value.trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return nil }
        if text.hasPrefix("0x") || text.hasPrefix("0X") { text.removeFirst(2) }
        guard let bytes = Hex.decode(text) else { throw fail(key, "not hex") }
        guard bytes.count == count else { throw fail(key, "\(bytes.count) bytes, expected \(count)") }
        return bytes
    }

    func bool(_ key: String) throws(ConfigError) -> Bool {
        switch raw(key).value.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off", "": return false
        default: throw fail(key, "expected true or false")
        }
    }

    func duration(_ key: String, positive: Bool = false) throws(ConfigError) -> Duration {
        let d: Duration
        do {
            d = try DurationParser.duration(raw(key).value)
        } catch {
            throw fail(key, error.description)
        }
        if positive && d <= .zero { throw fail(key, "must be greater than zero") }
        return d
    }

    func uint(_ key: String) throws(ConfigError) -> UInt64 {
        guard let v = UInt64(raw(key).value.trimmingWhitespace()) else {
            throw fail(key, "expected a whole number ≥ 0")
        }
        return v
    }

    func int(_ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let v = Int(raw(key).value.trimmingWhitespace()) else { throw fail(key, "expected a whole number") }
        guard range.contains(v) else { throw fail(key, "must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    func choice(_ key: String) throws(ConfigError) -> String {
        let v = raw(key).value.lowercased()
        guard case .choice(let options) = Settings.byKey[key]?.kind, options.contains(v) else {
            if case .choice(let options) = Settings.byKey[key]?.kind {
                throw fail(key, "expected one of \(options.joined(separator: ", "))")
            }
            throw fail(key, "unexpected value")
        }
        return v
    }

    func hostPort(_ key: String, allowPortZero: Bool = false) throws(ConfigError) -> HostPort {
        do {
            return try HostPort(parsing: raw(key).value, allowPortZero: allowPortZero)
        } catch {
            throw fail(key, error.description)
        }
    }

    func hostPortList(_ key: String) throws(ConfigError) -> [HostPort] {
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

    func endpoint(_ key: String) throws(ConfigError) -> HTTPEndpoint {
        do {
            return try HTTPEndpoint(parsing: raw(key).value)
        } catch {
            throw fail(key, error.description)
        }
    }

    func endpointList(_ key: String) throws(ConfigError) -> [HTTPEndpoint] {
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

    func decimal(_ key: String, range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard let v = Double(raw(key).value.trimmingWhitespace()), v.isFinite else { throw fail(key, "expected a number") }
        guard range.contains(v) else {
            throw fail(key, "must be in \(DATxConfig.decimal(range.lowerBound))...\(DATxConfig.decimal(range.upperBound))")
        }
        return v
    }

    /// Set to something other than its default by the file or a flag. `evnode init` writes every
    /// default into config.yaml; those must not wipe what `submit_options` says.
    private func given(_ key: String) -> Bool {
        let r = raw(key)
        return r.source != "default" && r.value.trimmingWhitespace() != (Settings.byKey[key]?.defaultValue ?? "")
    }

    /// `da.submit_options` (celestia-node's TxConfig JSON), then every flag given on top of it.
    func txConfig() throws(ConfigError) -> DATxConfig {
        var tx: DATxConfig
        do {
            tx = try DATxConfig(json: raw("da.submit_options").value)
        } catch {
            throw fail("da.submit_options", error.description)
        }
        if given("da.gas_price") {
            let v = try decimal("da.gas_price", range: -1...1e9)
            guard v >= 0 || v == -1 else { throw fail("da.gas_price", "must be ≥ 0, or -1 to let the DA node estimate") }
            tx.gasPrice = v >= 0 ? v : nil
        }
        if given("da.max_gas_price") {
            let v = try decimal("da.max_gas_price", range: 0...1e9)
            tx.maxGasPrice = v == 0 ? nil : v
        }
        if given("da.key_name") {
            let v = raw("da.key_name").value.trimmingWhitespace()
            tx.keyName = v.isEmpty ? nil : v
        }
        if given("da.fee_granter") {
            let v = raw("da.fee_granter").value.trimmingWhitespace()
            if v.isEmpty {
                tx.feeGranterAddress = nil
            } else {
                do {
                    try Bech32.check(v, field: "address")
                } catch {
                    throw fail("da.fee_granter", error.description)
                }
                tx.feeGranterAddress = v
            }
        }
        if given("da.tx_priority") {
            let v = try choice("da.tx_priority")
            tx.txPriority = DATxConfig.priorities[v]
        }
        return tx
    }

    func addressList(_ key: String) throws(ConfigError) -> [String] {
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
    func namespaceName(_ key: String) throws(ConfigError) -> String {
        let v = raw(key).value
        if v.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw fail(key, "contains control characters")
        }
        if v.utf8.count > 256 { throw fail(key, "longer than 256 bytes") }
        return v
    }

    /// A Prometheus metric-name prefix: `[a-zA-Z_][a-zA-Z0-9_]*` (what the exposition format allows).
    func metricNamespace(_ key: String) throws(ConfigError) -> String {
        let v = raw(key).value
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
