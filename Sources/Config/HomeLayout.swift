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
    /// The plaintext signer key of homes written by earlier evnode versions (read with a notice;
    /// `init` writes ev-node's encrypted `signer.json`, KeyStore's `SignerFile`).
    public var signerKeyFile: String { configDirectory + "/signer.key" }
    /// Where `init` writes ev-node's encrypted signer (`signer.signer_path` may name another folder).
    public var signerJSONFile: String { configDirectory + "/signer.json" }
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
        /// Empty when the home got no signer.
        public let signerAddress: [UInt8]
        public let signerPath: String?
        /// The node key's raw Ed25519 public key (its libp2p peer id is derived from it).
        public let nodePublicKey: [UInt8]
    }

    /// `signer` makes the chain's signer (its address becomes the genesis proposer) once the home
    /// is known to be new: `evnode init` passes KeyStore's encrypted `signer.json`; in-process
    /// callers (benchmarks, tests) may keep the legacy plaintext key. Nil: no signer, and a genesis
    /// without a proposer, as ev-node's `init` writes for a non-aggregator (the full node's
    /// operator copies the chain's genesis in).
    public static func initialize(home: String, chainID: String, aggregator: Bool,
                                  startTimeNanoseconds: UInt64,
                                  daStartHeight: UInt64 = 0,
                                  signer makeSigner: (HomeLayout) throws(ConfigError) -> InitSigner? = InitSigner.legacyPlaintext)
        throws(ConfigError) -> Result {
        if let problem = Genesis.validateChainID(chainID) {
            throw .invalidValue(field: "chain id (--chain-id)", value: chainID, source: "command line", reason: problem)
        }
        let layout = HomeLayout(home: home)
        for existing in [layout.configFile, layout.genesisFile, layout.signerKeyFile, layout.nodeKeyFile,
                         layout.legacyNodeKeyFile, layout.signerJSONFile]
        where FileIO.exists(existing) {
            throw .file(path: existing, reason: "already exists; refusing to overwrite an existing home")
        }
        // Made (and its passphrase read) before anything is written.
        let signer = try makeSigner(layout)
        do {
            try FileIO.makeDirectories(layout.configDirectory, mode: 0o700)
            try FileIO.makeDirectories(layout.dataDirectory, mode: 0o700)
        } catch {
            throw .file(path: error.path, reason: error.description)
        }
        let nodeKey = KeyFile.generate()
        let genesis = Genesis(chainID: chainID, initialHeight: 1, startTimeNanoseconds: startTimeNanoseconds,
                              proposerAddress: signer?.key.address ?? [], daStartHeight: daStartHeight)
        // Keys first: a home with keys but no config is re-initialisable by hand; the reverse
        // (config pointing at a missing key) would confuse `start`.
        if let signer { try signer.write(signer.key) }
        try NodeKeyFile.save(nodeKey, path: layout.nodeKeyFile)
        do {
            try FileIO.writeAtomically(layout.genesisFile, genesis.jsonText(), exclusive: true)
            try FileIO.writeAtomically(layout.configFile, ConfigTemplate.yaml(aggregator: aggregator, chainID: chainID),
                                       exclusive: true)
        } catch {
            throw .file(path: error.path, reason: error.description)
        }
        return Result(layout: layout, genesis: genesis, signerAddress: signer?.key.address ?? [],
                      signerPath: signer?.path, nodePublicKey: nodeKey.publicKey)
    }
}

/// The signer `init` creates: the key, the file it goes to, and how it is written there.
public struct InitSigner: Sendable {
    public let key: KeyFile
    public let path: String
    public let write: @Sendable (KeyFile) throws(ConfigError) -> Void

    public init(key: KeyFile, path: String, write: @escaping @Sendable (KeyFile) throws(ConfigError) -> Void) {
        self.key = key
        self.path = path
        self.write = write
    }

    /// The plaintext `config/signer.key` of earlier evnode versions (for in-process homes of
    /// benchmarks and tests; `evnode init` writes `signer.json`).
    public static func legacyPlaintext(_ layout: HomeLayout) -> InitSigner? {
        InitSigner(key: KeyFile.generate(), path: layout.signerKeyFile) { key throws(ConfigError) in
            try key.save(path: layout.signerKeyFile)
        }
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
