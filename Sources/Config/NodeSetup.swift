/// Everything `evnode start` needs from the home directory, loaded and validated before any
/// component starts: configuration (defaults < evnode.yaml < environment < flags), genesis and keys.
public struct NodeSetup: Sendable {
    public let layout: HomeLayout
    public let config: NodeConfig
    public let genesis: Genesis
    /// Present on every initialised home; required for aggregators.
    public let signer: KeyFile?
    public let nodeKey: KeyFile
    /// Lines for the operator, logged once at start: an earlier evnode home, skipped groups of
    /// a newer ev-node's file, settings that have no effect.
    public let notices: [String]

    /// `environment` is the process environment (only `EVNODE_<KEY>` variables are read).
    public static func load(home: String, flags: [String: RawSetting],
                            environment: [String: String] = [:]) throws(ConfigError) -> NodeSetup {
        let bare = HomeLayout(home: home)
        guard FileIO.isDirectory(bare.home) else {
            throw .missing("home directory \(bare.home) does not exist (create it with `evnode init --home \(bare.home) --chain_id ID`)")
        }
        var notices: [String] = []
        var file = ConfigFile(path: bare.configFile)
        if let source = try bare.configSource() {
            file = try ConfigLoader.readFile(at: source.path, legacy: source.legacy)
            if source.legacy {
                notices.append(legacyNotice(bare))
            }
            for group in file.skippedGroups {
                notices.append("\(file.path): group \"\(group)\" is not one evnode knows (a newer ev-node's?); its keys are ignored")
            }
        }
        let loaded = try ConfigLoader.load(home: bare.home, file: file.values,
                                           environment: try ConfigLoader.environmentSettings(environment), flags: flags)
        notices += loaded.notices
        let config = loaded.config
        let layout = HomeLayout(home: bare.home, dbPath: config.dbPath)
        guard FileIO.exists(layout.genesisFile) else {
            throw .missing("\(layout.genesisFile) is missing (copy the chain's genesis.json there, or run `evnode init`)")
        }
        let genesis = try Genesis.load(path: layout.genesisFile)
        var signer: KeyFile? = nil
        if FileIO.exists(layout.signerKeyFile) {
            signer = try KeyFile.load(path: layout.signerKeyFile)
        }
        if config.aggregator {
            guard let signer else {
                throw .missing("--evnode.node.aggregator needs a signer key at \(layout.signerKeyFile)")
            }
            if signer.address != genesis.proposerAddress {
                throw .conflict("\(layout.signerKeyFile) has address \(Hex.encode(signer.address)) but genesis proposer is \(Hex.encode(genesis.proposerAddress)): this key cannot produce blocks for chain \(genesis.chainID)")
            }
        }
        let nodeKey: KeyFile
        if FileIO.exists(layout.nodeKeyFile) {
            nodeKey = try NodeKeyFile.load(path: layout.nodeKeyFile)
        } else if FileIO.exists(layout.legacyNodeKeyFile) {
            // A home from before node_key.json: keep its identity.
            nodeKey = try KeyFile.load(path: layout.legacyNodeKeyFile)
        } else {
            // A node key is an identity, not a secret that matters to the chain: make one on
            // first start so that a hand-assembled full-node home (genesis only) just works.
            nodeKey = KeyFile.generate()
            do {
                try FileIO.makeDirectories(layout.configDirectory, mode: 0o700)
            } catch {
                throw .file(path: error.path, reason: error.description)
            }
            try NodeKeyFile.save(nodeKey, path: layout.nodeKeyFile)
        }
        return NodeSetup(layout: layout, config: config, genesis: genesis, signer: signer, nodeKey: nodeKey,
                         notices: notices)
    }

    /// The one line an earlier evnode's home gets at start.
    static func legacyNotice(_ layout: HomeLayout) -> String {
        var files = ["config/config.yaml"]
        if FileIO.exists(layout.signerKeyFile) { files.append("config/signer.key") }
        return "NOTICE: \(layout.home) is an earlier evnode's home (\(files.joined(separator: ", "))); it runs as is, and `evnode migrate-home --home \(layout.home)` converts it to ev-node's layout (config/evnode.yaml)"
    }

    /// Permission bits wider than 0600 on a key file are worth a warning (not a refusal: restoring
    /// from a backup tool often loses modes, and refusing to start a sequencer then helps nobody).
    public func keyPermissionWarnings() -> [String] {
        var out: [String] = []
        for path in [layout.signerKeyFile, layout.nodeKeyFile] {
            if let mode = FileIO.mode(path), mode & 0o077 != 0 {
                out.append("\(path) has mode \(String(mode, radix: 8)); it should be 600 (chmod 600 \(path))")
            }
        }
        return out
    }
}
