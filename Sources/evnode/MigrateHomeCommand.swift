import Primitives
import ArgumentParser
import Store
import Config
import Foundation
import KeyStore

#if canImport(Glibc)
import Glibc
#endif

/// `evnode migrate-home --home DIR [--evnode.signer.passphrase_file FILE]`: converts a home written
/// by an earlier evnode (`config/config.yaml`, `config/signer.key`) to ev-node's layout in place,
/// keeping the old files in `config/pre-migrate-<n>/`. The config always; the plaintext signer
/// key when a passphrase file is given (it becomes `signer.json`, encrypted as ev-node's file
/// signer). Refused while a node runs on the home. `signer.state` and the node key stay.
struct MigrateHomeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate-home",
        abstract: "Convert an earlier evnode home (config.yaml, signer.key) to ev-node's layout (evnode.yaml, signer.json), keeping a backup.")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Option(name: [.customLong("evnode.signer.passphrase_file"), .customLong("signer.passphrase-file")],
            help: "Encrypt config/signer.key into config/signer.json with this file's content (whitespace trimmed); without it the key stays as it is")
    var passphraseFile: String?

    func run() throws {
        let bare = HomeLayout(home: home)
        guard FileIO.isDirectory(bare.configDirectory) else {
            throw ConfigError.missing("\(bare.configDirectory) does not exist: \(bare.home) is not a node home")
        }
        let layout = try HomeLayout.configured(home: home, environment: [:])
        if FileIO.isDirectory(layout.storeDirectory) {
            do throws(StoreError) {
                try BlockStore.open(path: layout.storeDirectory).close()
            } catch {
                if case .locked = error {
                    FileIOStderr.write("error: refusing to migrate \(layout.home) while a node runs on it (its store is in use); stop the node first (nothing changed)\n")
                    Glibc.exit(ExitStatus.configuration)
                }
            }
        }
        if FileIO.exists(layout.legacyConfigFile) || !FileIO.exists(layout.signerKeyFile) {
            let result = try HomeMigration.migrateConfig(layout: layout)
            print("migrated \(result.configFile) (backup of the old files in \(result.backupDirectory))")
            if !result.renamedKeys.isEmpty {
                print("  renamed to ev-node's keys: \(result.renamedKeys.map { "\($0) → \(Settings.legacyKeys[$0] ?? $0)" }.joined(separator: ", "))")
            }
        }
        guard FileIO.exists(layout.signerKeyFile) else { return }
        guard let passphraseFile, !passphraseFile.isEmpty else {
            print("  \(layout.signerKeyFile) is kept as it is (it still starts, with a notice); convert it with --evnode.signer.passphrase_file FILE")
            return
        }
        // The key into signer.json (atomic, refusing to replace one), then signer.key to the
        // backup: a stop in between leaves both, and the node uses signer.json.
        let backup = layout.configDirectory + "/pre-migrate-signer"
        do {
            try FileIO.makeDirectories(backup, mode: 0o700)
            try FileIO.writeAtomically(backup + "/signer.key", try FileIO.readBytes(layout.signerKeyFile, limit: 64 << 10), mode: 0o600)
        } catch {
            throw ConfigError.file(path: error.path, reason: "backup of the signer key failed, nothing changed: \(error.description)")
        }
        let written = try SignerKeyStore.convertLegacy(layout: layout, passphraseFile: passphraseFile)
        if unlink(layout.signerKeyFile) != 0 {
            throw ConfigError.file(path: layout.signerKeyFile, reason: "\(written) is written but this file could not be removed; remove it by hand")
        }
        print("converted \(layout.signerKeyFile) into \(written) (encrypted; the plaintext key is kept in \(backup))")
    }
}
