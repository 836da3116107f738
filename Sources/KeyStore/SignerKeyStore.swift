import Primitives
import Config

/// Where a home keeps its block signer and how the node, `init`, `keys` and `migrate-home` reach
/// it: ev-node's encrypted `<signer.signer_path>/signer.json`, or the plaintext `config/signer.key`
/// of homes written by earlier evnode versions.
package enum SignerKeyStore {
    /// `<signer.path>/signer.json`. A relative `signer_path` is taken against the home (ev-node
    /// takes it against the working directory; README "Coming from ev-node"); a path that already
    /// ends in `signer.json` names the file itself, as ev-node allows.
    package static func signerFilePath(layout: HomeLayout, config: SignerConfig) -> String {
        var folder = config.path
        if folder.hasSuffix(SignerFile.fileName) { folder.removeLast(SignerFile.fileName.count) }
        while folder.count > 1 && folder.hasSuffix("/") { folder.removeLast() }
        if folder.isEmpty { folder = "." }
        let absolute = folder.hasPrefix("/") ? folder : layout.home + "/" + folder
        return (absolute.hasSuffix("/") ? absolute : absolute + "/") + SignerFile.fileName
    }

    /// The signer `evnode start` uses, for `NodeSetup.load`. A node that signs (an aggregator,
    /// with or without catchup or HA) must have one: `signer.json` unlocked by the passphrase file,
    /// or, on a home from an earlier evnode, `signer.key` with a notice. A full node signs nothing:
    /// it loads the legacy key when present (cheap), and `signer.json` only when given the
    /// passphrase, as a check; otherwise no signer, as in ev-node.
    package static func loadForStart(layout: HomeLayout, config: NodeConfig) throws(ConfigError) -> LoadedSigner? {
        // A based node signs nothing (its blocks carry no signature).
        let needed = config.aggregator && !config.basedSequencer
        // The remote signer holds the key: the home has none to load (the node connects to it).
        if config.signer.kind == .grpc { return nil }
        let jsonPath = signerFilePath(layout: layout, config: config.signer)
        let jsonExists: Bool
        let legacyExists: Bool
        do {
            jsonExists = try FileIO.existence(jsonPath)
            legacyExists = try FileIO.existence(layout.signerKeyFile)
        } catch {
            throw .file(path: error.path, reason: error.reason)
        }
        if jsonExists {
            if !needed && config.signer.passphraseFile.isEmpty { return nil }
            if needed && config.signer.passphraseFile.isEmpty {
                // ev-node: "passphrase file must be provided via --evnode.signer.passphrase_file".
                throw .missing("an aggregator with the file signer needs its passphrase: pass --evnode.signer.passphrase_file FILE to unlock \(jsonPath)")
            }
            do {
                let passphrase = try Passphrase.read(file: config.signer.passphraseFile, for: jsonPath)
                return LoadedSigner(key: try SignerFile.decrypt(path: jsonPath, passphrase: passphrase),
                                    path: jsonPath, notice: nil)
            } catch {
                throw ConfigError(error)
            }
        }
        if legacyExists {
            let key = try KeyFile.load(path: layout.signerKeyFile)
            return LoadedSigner(key: key, path: layout.signerKeyFile,
                                notice: "\(layout.signerKeyFile) is evnode's earlier plaintext signer key; ev-node keeps it encrypted in \(jsonPath): convert this home with `evnode migrate-home --home \(layout.home)`")
        }
        guard needed else { return nil }
        throw .missing("an aggregator needs its signer: \(jsonPath) is missing (create one with `evnode init --aggregator --evnode.signer.passphrase_file FILE`, or `evnode keys import`)")
    }

    /// `init`'s signer: a new key written to `config/signer.json` under the passphrase in `file`.
    /// The passphrase file is read (and refused if missing or empty) before anything is written.
    package static func newForInit(layout: HomeLayout, passphraseFile: String) throws(ConfigError) -> InitSigner {
        let path = layout.configDirectory + "/" + SignerFile.fileName
        let passphrase: Passphrase
        do {
            passphrase = try Passphrase.read(file: passphraseFile, for: path)
        } catch {
            throw ConfigError(error)
        }
        return InitSigner(key: KeyFile.generate(), path: path) { key throws(ConfigError) in
            do throws(SignerFileError) {
                try SignerFile.write(key, passphrase: passphrase, path: path, overwrite: false)
            } catch {
                throw ConfigError(error)
            }
        }
    }

    /// Converts a home's legacy `config/signer.key` into `config/signer.json` under the passphrase
    /// in `passphraseFile` (for `evnode migrate-home`). Writes only `signer.json` (atomically, 0600,
    /// refusing to replace one); `signer.key` is left for the caller to back up and remove, and
    /// `signer.state` (the high-water mark) stays where it is. Returns the path written.
    @discardableResult
    package static func convertLegacy(layout: HomeLayout, passphraseFile: String) throws(ConfigError) -> String {
        let path = layout.configDirectory + "/" + SignerFile.fileName
        let key = try KeyFile.load(path: layout.signerKeyFile)
        do {
            let passphrase = try Passphrase.read(file: passphraseFile, for: path)
            try SignerFile.write(key, passphrase: passphrase, path: path, overwrite: false)
        } catch {
            throw ConfigError(error)
        }
        return path
    }

    /// `keys export`: the raw 64-byte key (seed ‖ public key) of `<home>/config/signer.json`.
    package static func export(layout: HomeLayout, passphraseFile: String) throws(SignerFileError) -> [UInt8] {
        let path = layout.configDirectory + "/" + SignerFile.fileName
        let passphrase = try Passphrase.read(file: passphraseFile, for: path)
        return RawEd25519.bytes(of: try SignerFile.decrypt(path: path, passphrase: passphrase))
    }

    /// `keys import`: encrypts a raw key into `<home>/config/signer.json`; an existing file is
    /// replaced only with `force` (atomically: the old file stays whole until the new one is).
    @discardableResult
    package static func importKey(raw: [UInt8], layout: HomeLayout, passphraseFile: String,
                                 force: Bool) throws(SignerFileError) -> KeyFile {
        let path = layout.configDirectory + "/" + SignerFile.fileName
        let key = try RawEd25519.key(from: raw, path: path)
        if !force, FileIO.exists(path) { throw SignerFileError(path: path, problem: .alreadyExists) }
        let passphrase = try Passphrase.read(file: passphraseFile, for: path)
        do {
            try FileIO.makeDirectories(layout.configDirectory, mode: 0o700)
        } catch {
            throw SignerFileError(path: path, problem: .writeFailed(error.description))
        }
        try SignerFile.write(key, passphrase: passphrase, path: path, overwrite: force)
        return key
    }
}

extension ConfigError {
    /// The one line of a signer file problem, as the configuration error the CLI exits 2 with.
    package init(_ error: SignerFileError) {
        self = .file(path: error.path, reason: String(error.description.dropFirst(error.path.count + 2)))
    }
}

extension NodeSetup {
    /// `NodeSetup.load` with the node's signer from `SignerKeyStore`.
    package static func load(home: String, flags: [String: RawSetting],
                            environment: [String: String] = [:]) throws(ConfigError) -> NodeSetup {
        try load(home: home, flags: flags, environment: environment, signer: SignerKeyStore.loadForStart)
    }
}
