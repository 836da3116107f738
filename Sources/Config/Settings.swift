/// The table of every `evnode start` setting: its key in config.yaml, its flag, its default and
/// what it means. Defaults, the file loader, flag help and validation all read this one table, so
/// a setting cannot be documented with one default and behave with another.
public struct Setting: Sendable {
    public enum Kind: Sendable, Equatable {
        case bool, duration, string, uint, int, hostPort, hostPortList, endpoint, endpointList
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
        Setting(key: "da.fetch_parallelism", flag: "da.fetch-parallelism", kind: .int, defaultValue: "8",
                help: "DA heights fetched at once while syncing"),
        Setting(key: "p2p.listen", flag: "p2p.listen", kind: .hostPort, defaultValue: "0.0.0.0:7676",
                help: "P2P listen address: host:port or /ip4/<ip>/tcp/<port>"),
        Setting(key: "p2p.peers", flag: "p2p.peers", kind: .hostPortList, defaultValue: "",
                help: "Peers to dial: multiaddrs /ip4/<ip>/tcp/<port>/p2p/<peer id>,… (host:port accepted: the id is then learned in the handshake)"),
        Setting(key: "rpc.address", flag: "rpc.address", kind: .hostPort, defaultValue: "127.0.0.1:7331",
                help: "RPC listen address"),
        Setting(key: "raft.enable", flag: "raft.enable", kind: .bool, defaultValue: "false",
                help: "HA aggregator: elect the single producer through etcd"),
        Setting(key: "raft.endpoints", flag: "raft.endpoints", kind: .endpointList, defaultValue: "",
                help: "etcd endpoints, http://host:port,…"),
        Setting(key: "raft.node_id", flag: "raft.node-id", kind: .string, defaultValue: "",
                help: "This node's name in the HA group (empty: derived from the node key)"),
        Setting(key: "raft.lease_ttl", flag: "raft.lease-ttl", kind: .duration, defaultValue: "0s",
                help: "Leader lease TTL (0s: five block times, at least 2s)"),
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
