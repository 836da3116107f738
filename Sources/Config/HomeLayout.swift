import Primitives
/// Where a node keeps its files: ev-node's home layout (SPEC §9, reference §1). Deleting the
/// database folder and keeping `config/` is how an operator simulates, or suffers, a lost disk.
package struct HomeLayout: Sendable, Equatable {
    package let home: String
    /// ev-node's `db_path` as configured: relative to the home unless absolute.
    package let dbPath: String

    package init(home: String, dbPath: String = "data") {
        // Keep paths in error messages short and stable: no trailing slash.
        var h = home
        while h.count > 1 && h.hasSuffix("/") { h.removeLast() }
        self.home = h
        self.dbPath = dbPath
    }

    /// A path of the configuration made absolute the way ev-node's `rootify` does for `db_path`:
    /// kept when absolute, else under the home. evnode resolves `signer.signer_path` the same way
    /// (ev-node resolves that one against the working directory; README says why evnode does not).
    package func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var relative = Substring(path)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2) }
        if relative.isEmpty || relative == "." { return home }
        return home + "/" + relative
    }

    package var configDirectory: String { home + "/config" }
    /// ev-node's config file.
    package var configFile: String { configDirectory + "/evnode.yaml" }
    /// The config file of homes written by earlier evnode versions (read with one notice;
    /// `evnode migrate-home` converts it).
    package var legacyConfigFile: String { configDirectory + "/config.yaml" }
    package var genesisFile: String { configDirectory + "/genesis.json" }
    /// The plaintext signer key of homes written by earlier evnode versions (read with a notice;
    /// `init` writes ev-node's encrypted `signer.json`, KeyStore's `SignerFile`).
    package var signerKeyFile: String { configDirectory + "/signer.key" }
    /// Where `init` writes ev-node's encrypted signer (`signer.signer_path` may name another
    /// folder: KeyStore's `SignerKeyStore.signerFilePath`).
    package var signerJSONFile: String { configDirectory + "/signer.json" }
    /// The signer's high-water mark: the last height it signed, written before a signature leaves.
    package var signerStateFile: String { configDirectory + "/signer.state" }
    /// The P2P identity, in ev-node's format (`NodeKeyFile`).
    package var nodeKeyFile: String { configDirectory + "/node_key.json" }
    /// Where earlier versions kept the node key (`KeyFile` format); read when `node_key.json` is absent.
    package var legacyNodeKeyFile: String { configDirectory + "/node.key" }
    /// The folder `db_path` names.
    package var dataDirectory: String { resolve(dbPath) }
    /// The block store (RocksDB): a subfolder of the database folder, where earlier evnode homes
    /// (`data/store`) already have it.
    package var storeDirectory: String { dataDirectory + "/store" }

    /// The config file this home is read from, if any: `evnode.yaml`, or an earlier evnode's
    /// `config.yaml` (`legacy`). Both at once is ambiguous and refused.
    package func configSource() throws(ConfigError) -> (path: String, legacy: Bool)? {
        let current = FileIO.exists(configFile), legacy = FileIO.exists(legacyConfigFile)
        if current && legacy {
            throw .file(path: legacyConfigFile, reason: "both \(configFile) and this earlier evnode config exist; keep one (`evnode migrate-home` converts the old one)")
        }
        if current { return (configFile, false) }
        if legacy { return (legacyConfigFile, true) }
        return nil
    }

    /// The layout of an existing home with its configured `db_path` (file, then environment,
    /// then `flags`), for the commands that work on a stopped node's store.
    package static func configured(home: String, environment: [String: String],
                                  flags: [String: RawSetting] = [:]) throws(ConfigError) -> HomeLayout {
        let bare = HomeLayout(home: home)
        var dbPath = Settings[.dbPath].defaultValue
        if let source = try bare.configSource(), let v = try ConfigLoader.readFile(at: source.path, legacy: source.legacy).values[SettingKey.dbPath.name] {
            dbPath = v.value
        }
        if let v = try ConfigLoader.environmentSettings(environment)[SettingKey.dbPath.name] { dbPath = v.value }
        if let v = flags[SettingKey.dbPath.name] { dbPath = v.value }
        dbPath = dbPath.trimmingWhitespace()
        guard !dbPath.isEmpty else {
            throw .invalidValue(field: "db_path (--evnode.db_path)", value: "", source: "configuration", reason: "empty (the default is data)")
        }
        return HomeLayout(home: home, dbPath: dbPath)
    }
}

/// `evnode init`: creates a new home in ev-node's layout with configuration, genesis and keys.
package enum HomeInitializer {
    package struct Result: Sendable {
        package let layout: HomeLayout
        package let genesis: Genesis
        package let config: NodeConfig
        /// Empty when the home got no signer.
        package let signerAddress: [UInt8]
        /// Where the signer was written; nil when the home got none.
        package let signerPath: String?
        /// The node key's raw Ed25519 public key (its libp2p peer id is derived from it).
        package let nodePublicKey: [UInt8]
    }

    /// `settings` are the setting flags (and environment) given to `init`; like ev-node's `init`,
    /// they are validated and written into `evnode.yaml`. `signer` makes the chain's signer (its
    /// address becomes the genesis proposer) once the home is known to be new: `evnode init`
    /// passes KeyStore's encrypted `signer.json`; in-process callers (benchmarks, tests) may keep
    /// the legacy plaintext key. Nil: no signer, and a genesis without a proposer, as ev-node's
    /// `init` writes for a non-aggregator (the full node's operator copies the chain's genesis in).
    package static func initialize(home: String, chainID: String, settings: [String: RawSetting] = [:],
                                  startTimeNanoseconds: UInt64, daStartHeight: UInt64 = 0,
                                  signer makeSigner: (HomeLayout, NodeConfig) throws(ConfigError) -> InitSigner? = InitSigner.legacyPlaintext)
        throws(ConfigError) -> Result {
        if let problem = Genesis.validateChainID(chainID) {
            throw .invalidValue(field: "chain id (--chain_id)", value: chainID, source: "command line", reason: problem)
        }
        var values = settings
        if values[SettingKey.daNamespace.name] == nil {
            // ev-node's init writes a random namespace; evnode writes the one its default derives
            // from the chain id, so that homes of one chain made apart agree on it (README).
            values[SettingKey.daNamespace.name] = RawSetting(value: chainID + "-headers", source: "init", origin: .commandLine)
        }
        let config = try ConfigLoader.load(home: home, file: [:], environment: [:], flags: values).config
        let layout = HomeLayout(home: home, dbPath: config.dbPath)
        for existing in [layout.configFile, layout.legacyConfigFile, layout.genesisFile, layout.signerKeyFile,
                         layout.signerJSONFile, layout.nodeKeyFile, layout.legacyNodeKeyFile]
        where FileIO.exists(existing) {
            throw .file(path: existing, reason: "already exists; refusing to overwrite an existing home")
        }
        // Made (and its passphrase read) before anything is written.
        let signer = try makeSigner(layout, config)
        do {
            try FileIO.makeDirectories(layout.configDirectory, mode: 0o700)
            try FileIO.makeDirectories(layout.dataDirectory, mode: 0o700)
        } catch {
            throw .file(path: error.path, reason: error.description)
        }
        // Keys first: a home with keys but no config is re-initialisable by hand; the reverse
        // (config pointing at a missing key) would confuse `start`.
        if let signer { try signer.write(signer.key) }
        let nodeKey = KeyFile.generate()
        try NodeKeyFile.save(nodeKey, path: layout.nodeKeyFile)
        let genesis = Genesis(chainID: chainID, initialHeight: 1, startTimeNanoseconds: startTimeNanoseconds,
                              proposerAddress: signer?.key.address ?? [], daStartHeight: daStartHeight)
        var written: [String: String] = [:]
        for (key, raw) in values where Settings.byKey[key]?.inFile == true { written[key] = raw.value }
        do {
            try FileIO.writeAtomically(layout.genesisFile, genesis.jsonText(), exclusive: true)
            try FileIO.writeAtomically(layout.configFile, ConfigTemplate.yaml(values: written), mode: 0o600, exclusive: true)
        } catch {
            throw .file(path: error.path, reason: error.description)
        }
        return Result(layout: layout, genesis: genesis, config: config, signerAddress: signer?.key.address ?? [],
                      signerPath: signer?.path, nodePublicKey: nodeKey.publicKey)
    }

    /// A home with every default but the aggregator flag (tools and benchmarks).
    package static func initialize(home: String, chainID: String, aggregator: Bool, startTimeNanoseconds: UInt64,
                                  daStartHeight: UInt64 = 0,
                                  signer makeSigner: (HomeLayout, NodeConfig) throws(ConfigError) -> InitSigner? = InitSigner.legacyPlaintext)
        throws(ConfigError) -> Result {
        try initialize(home: home, chainID: chainID,
                       settings: [SettingKey.nodeAggregator.name: RawSetting(value: aggregator ? "true" : "false", source: "init")],
                       startTimeNanoseconds: startTimeNanoseconds, daStartHeight: daStartHeight, signer: makeSigner)
    }
}

/// The signer `init` creates: the key, the file it goes to, and how it is written there.
package struct InitSigner: Sendable {
    package let key: KeyFile
    package let path: String
    package let write: @Sendable (KeyFile) throws(ConfigError) -> Void

    package init(key: KeyFile, path: String, write: @escaping @Sendable (KeyFile) throws(ConfigError) -> Void) {
        self.key = key
        self.path = path
        self.write = write
    }

    /// The plaintext `config/signer.key` of earlier evnode versions (for in-process homes of
    /// benchmarks and tests; `evnode init` writes `signer.json`).
    package static func legacyPlaintext(_ layout: HomeLayout, _ config: NodeConfig) -> InitSigner? {
        InitSigner(key: KeyFile.generate(), path: layout.signerKeyFile) { key throws(ConfigError) in
            try key.save(path: layout.signerKeyFile)
        }
    }
}

/// The commented `evnode.yaml` that `init` and `migrate-home` write: every key of the settings
/// table that lives in the file, in ev-node's group order and nesting, with its meaning and flag.
package enum ConfigTemplate {
    /// `values` overrides defaults (keys of the table; others are ignored).
    package static func yaml(values: [String: String] = [:]) -> String {
        var out = "# evnode configuration, in ev-node's evnode.yaml layout. Precedence: flags >\n"
        out += "# EVNODE_* environment variables > this file > defaults. `evnode start --help` lists every flag.\n"
        var open: [Substring] = []
        for group in Settings.groupOrder {
            for setting in Settings.all where setting.group == group && setting.inFile {
                let parts = setting.key.split(separator: ".")
                let parents = Array(parts.dropLast())
                var common = 0
                while common < min(open.count, parents.count) && open[common] == parents[common] { common += 1 }
                open = Array(open.prefix(common))
                if common == 0 { out += "\n" }
                while open.count < parents.count {
                    out += indent(open.count) + parents[open.count] + ":\n"
                    open.append(parents[open.count])
                }
                let value = values[setting.key] ?? setting.defaultValue
                let pad = indent(open.count)
                out += pad + "# " + setting.helpWithDefault + " (--" + setting.flag + ")\n"
                out += pad + String(parts.last ?? "") + ": " + yamlScalar(value, kind: setting.kind) + "\n"
            }
        }
        return out
    }

    static func indent(_ level: Int) -> String { String(repeating: "  ", count: level) }

    static func yamlScalar(_ value: String, kind: Setting.Kind) -> String {
        switch kind {
        case .bool, .uint, .int, .decimal:
            let v = value.trimmingWhitespace()
            return v.isEmpty || Double(v) == nil && ValueReader.parseBool(v) == nil ? jsonQuoted(value) : v
        default: return jsonQuoted(value)
        }
    }
}
