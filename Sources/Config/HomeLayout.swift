/// Where a node keeps its files (SPEC §9). Deleting `data/` and keeping `config/` is how an
/// operator simulates, or suffers, a lost disk.
public struct HomeLayout: Sendable, Equatable {
    public let home: String

    public init(home: String) {
        // Keep paths in error messages short and stable: no trailing slash.
        var h = home
        while h.count > 1 && h.hasSuffix("/") { h.removeLast() }
        self.home = h
    }

    public var configDirectory: String { home + "/config" }
    public var dataDirectory: String { home + "/data" }
    public var configFile: String { configDirectory + "/config.yaml" }
    public var genesisFile: String { configDirectory + "/genesis.json" }
    public var signerKeyFile: String { configDirectory + "/signer.key" }
    /// The signer's high-water mark: the last height it signed, written before a signature leaves.
    public var signerStateFile: String { configDirectory + "/signer.state" }
    /// The P2P identity, in ev-node's format (`NodeKeyFile`).
    public var nodeKeyFile: String { configDirectory + "/node_key.json" }
    /// Where earlier versions kept the node key (`KeyFile` format); read when `node_key.json` is absent.
    public var legacyNodeKeyFile: String { configDirectory + "/node.key" }
    /// The block store (RocksDB).
    public var storeDirectory: String { dataDirectory + "/store" }
}

/// `evnode init`: creates a new home with configuration, genesis and keys.
public enum HomeInitializer {
    public struct Result: Sendable {
        public let layout: HomeLayout
        public let genesis: Genesis
        public let signerAddress: [UInt8]
        /// The node key's raw Ed25519 public key (its libp2p peer id is derived from it).
        public let nodePublicKey: [UInt8]
    }

    public static func initialize(home: String, chainID: String, aggregator: Bool,
                                  startTimeNanoseconds: UInt64,
                                  daStartHeight: UInt64 = 0) throws(ConfigError) -> Result {
        if let problem = Genesis.validateChainID(chainID) {
            throw .invalidValue(field: "chain id (--chain-id)", value: chainID, source: "command line", reason: problem)
        }
        let layout = HomeLayout(home: home)
        for existing in [layout.configFile, layout.genesisFile, layout.signerKeyFile, layout.nodeKeyFile,
                         layout.legacyNodeKeyFile]
        where FileIO.exists(existing) {
            throw .file(path: existing, reason: "already exists; refusing to overwrite an existing home")
        }
        do {
            try FileIO.makeDirectories(layout.configDirectory, mode: 0o700)
            try FileIO.makeDirectories(layout.dataDirectory, mode: 0o700)
        } catch {
            throw .file(path: error.path, reason: error.description)
        }
        let signer = KeyFile.generate()
        let nodeKey = KeyFile.generate()
        let genesis = Genesis(chainID: chainID, initialHeight: 1, startTimeNanoseconds: startTimeNanoseconds,
                              proposerAddress: signer.address, daStartHeight: daStartHeight)
        // Keys first: a home with keys but no config is re-initialisable by hand; the reverse
        // (config pointing at a missing key) would confuse `start`.
        try signer.save(path: layout.signerKeyFile)
        try NodeKeyFile.save(nodeKey, path: layout.nodeKeyFile)
        do {
            try FileIO.writeAtomically(layout.genesisFile, genesis.jsonText(), exclusive: true)
            try FileIO.writeAtomically(layout.configFile, ConfigTemplate.yaml(aggregator: aggregator, chainID: chainID),
                                       exclusive: true)
        } catch {
            throw .file(path: error.path, reason: error.description)
        }
        return Result(layout: layout, genesis: genesis, signerAddress: signer.address, nodePublicKey: nodeKey.publicKey)
    }
}

/// The commented config.yaml that `init` writes: every setting with its default and meaning.
public enum ConfigTemplate {
    public static func yaml(aggregator: Bool, chainID: String) -> String {
        var out = "# evnode configuration. Flags given to `evnode start` override these values.\n"
        var section = ""
        for setting in Settings.all {
            let parts = setting.key.split(separator: ".", maxSplits: 1)
            let (sec, field) = (String(parts[0]), String(parts[1]))
            if sec != section {
                out += "\n\(sec):\n"
                section = sec
            }
            var value = setting.defaultValue
            if setting.key == "node.aggregator" { value = aggregator ? "true" : "false" }
            out += "  # \(setting.help) (--\(setting.flag))\n"
            out += "  \(field): \(yamlScalar(value, kind: setting.kind))\n"
        }
        return out
    }

    static func yamlScalar(_ value: String, kind: Setting.Kind) -> String {
        switch kind {
        case .bool, .uint, .int, .decimal: return value
        default: return jsonQuoted(value)
        }
    }
}
