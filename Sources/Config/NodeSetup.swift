import Primitives
/// Everything `evnode start` needs from the home directory, loaded and validated before any
/// component starts: configuration (defaults < evnode.yaml < environment < flags), genesis and keys.
package struct NodeSetup: Sendable {
    package let layout: HomeLayout
    package let config: NodeConfig
    package let genesis: Genesis
    /// Required for aggregators; a full node has one only when it can be had without a secret
    /// (see `SignerLoader`).
    package let signer: KeyFile?
    /// The file `signer` came from.
    package let signerPath: String?
    package let nodeKey: KeyFile
    /// Lines for the operator, logged once at start: an earlier evnode home or key format,
    /// skipped groups of a newer ev-node's file, settings that have no effect.
    package let notices: [String]

    /// Finds and unlocks the block signer for a home and configuration (KeyStore's
    /// `SignerKeyStore.loadForStart`: the decryption of `signer.json` lives there, so that only
    /// what unlocks a signer links Argon2). Nil: this node has no signer.
    package typealias SignerLoader = (HomeLayout, NodeConfig) throws(ConfigError) -> LoadedSigner?

    /// `environment` is the process environment (only `EVNODE_<KEY>` variables are read).
    package static func load(home: String, flags: [String: RawSetting], environment: [String: String] = [:],
                            signer loadSigner: SignerLoader) throws(ConfigError) -> NodeSetup {
        let bare = HomeLayout(home: home)
        guard FileIO.isDirectory(bare.home) else {
            throw .missing("home directory \(bare.home) does not exist (create it with `evnode init --home \(bare.home) --chain_id ID`)")
        }
        var notices: [String] = []
        var legacyConfig = false
        var file = ConfigFile(path: bare.configFile)
        if let source = try bare.configSource() {
            file = try ConfigLoader.readFile(at: source.path, legacy: source.legacy)
            legacyConfig = source.legacy
            for group in file.skippedGroups {
                notices.append("\(file.path): group \"\(group)\" is not one evnode knows (a newer ev-node's?); its keys are ignored")
            }
        }
        let resolved = try ConfigLoader.load(home: bare.home, file: file.values,
                                             environment: try ConfigLoader.environmentSettings(environment), flags: flags)
        notices += resolved.notices
        let config = resolved.config
        let layout = HomeLayout(home: bare.home, dbPath: config.dbPath)
        guard FileIO.exists(layout.genesisFile) else {
            throw .missing("\(layout.genesisFile) is missing (copy the chain's genesis.json there, or run `evnode init`)")
        }
        let genesis = try Genesis.load(path: layout.genesisFile)
        // Before anything is written (the node key below): a signer that cannot be unlocked
        // leaves the home as it was.
        let loaded = try loadSigner(layout, config)
        if config.basedSequencer {
            // No signer (ev-node's based blocks carry no signature), and no genesis anchor is no
            // based chain: epochs would start at DA height 0 on one node and elsewhere on another.
            guard genesis.daStartHeight > 0 else {
                throw .conflict("--evnode.node.based_sequencer needs genesis da_start_height above 0 (it is 0 in \(layout.genesisFile)): based nodes derive the chain from the DA heights from there on")
            }
        } else if config.aggregator, config.signer.kind == .file {
            // With the remote signer the key is not here; the node checks the signer's key
            // against the genesis proposer when it connects.
            guard let loaded else {
                throw .missing("--evnode.node.aggregator needs a signer key (config/signer.json)")
            }
            // A promotable node's key is named by the chain's state, later: any key may wait.
            if !config.promotable, loaded.key.address != genesis.proposerAddress {
                throw .conflict("\(loaded.path) has address \(Hex.encode(loaded.key.address)) but genesis proposer is \(Hex.encode(genesis.proposerAddress)): this key cannot produce blocks for chain \(genesis.chainID)")
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
        return NodeSetup(layout: layout, config: config, genesis: genesis, signer: loaded?.key,
                         signerPath: loaded?.path, nodeKey: nodeKey,
                         notices: homeNotices(layout, legacyConfig: legacyConfig, signer: loaded) + notices)
    }

    /// One line for a home of an earlier evnode: its `config.yaml`, and its plaintext `signer.key`
    /// when that is the signer in use (otherwise the signer's own notice, if any).
    static func homeNotices(_ layout: HomeLayout, legacyConfig: Bool, signer: LoadedSigner?) -> [String] {
        guard legacyConfig else { return signer?.notice.map { [$0] } ?? [] }
        var files = ["config/config.yaml"]
        if signer?.path == layout.signerKeyFile { files.append("config/signer.key") }
        return ["NOTICE: \(layout.home) is an earlier evnode's home (\(files.joined(separator: ", "))); it runs as is, and `evnode migrate-home --home \(layout.home)` converts it to ev-node's layout (config/evnode.yaml\(files.count > 1 ? ", config/signer.json" : ""))"]
    }

    /// Permission bits wider than 0600 on a key file are worth a warning (not a refusal: restoring
    /// from a backup tool often loses modes, and refusing to start a sequencer then helps nobody).
    package func keyPermissionWarnings() -> [String] {
        var out: [String] = []
        for path in [signerPath, layout.nodeKeyFile].compactMap({ $0 }) {
            if let mode = FileIO.mode(path), mode & 0o077 != 0 {
                out.append("\(path) has mode \(String(mode, radix: 8)); it should be 600 (chmod 600 \(path))")
            }
        }
        return out
    }
}

/// A block signer found by a `NodeSetup.SignerLoader`.
package struct LoadedSigner: Sendable {
    package let key: KeyFile
    /// The file it was read from.
    package let path: String
    /// One line to log at start, e.g. how to convert a legacy key file.
    package let notice: String?

    package init(key: KeyFile, path: String, notice: String?) {
        self.key = key
        self.path = path
        self.notice = notice
    }
}
