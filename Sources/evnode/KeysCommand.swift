import Primitives
import ArgumentParser
import Config
import Foundation
import KeyStore

/// `evnode keys export|import`, as ev-node's `keys` commands (pkg/cmd/keys.go): the signer key
/// between `<home>/config/signer.json` and its raw form, 64 bytes (seed ‖ public key) in hex.
/// Like ev-node they use `<home>/config` whatever `signer.signer_path` says.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Move the signer key between the encrypted config/signer.json and its raw hex form.",
        subcommands: [KeysExportCommand.self, KeysImportCommand.self])
}

struct KeysExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Print the signer's private key (hex, 64 bytes: seed ‖ public key). Handle it with extreme care.")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Option(name: [.customLong("evnode.signer.passphrase_file"), .customLong("signer.passphrase-file")],
            help: "File whose content (white space trimmed) unlocks config/signer.json (--evnode.signer.passphrase_file)")
    var passphraseFile: String = ""

    func run() throws {
        let raw: [UInt8]
        do {
            raw = try SignerKeyStore.export(layout: HomeLayout(home: home), passphraseFile: passphraseFile)
        } catch {
            throw ConfigError(error)
        }
        FileIOStderr.write("WARNING: EXPORTING PRIVATE KEY. HANDLE WITH EXTREME CARE.\nANYONE WITH ACCESS TO THIS KEY CAN SIGN MESSAGES ON YOUR BEHALF.\n")
        print(Hex.encode(raw))
    }
}

struct KeysImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Encrypt a raw private key (hex, 64 bytes: seed ‖ public key) into config/signer.json.")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Option(name: [.customLong("evnode.signer.passphrase_file"), .customLong("signer.passphrase-file")],
            help: "File whose content (white space trimmed) encrypts config/signer.json (--evnode.signer.passphrase_file)")
    var passphraseFile: String = ""

    @Flag(name: .customLong("force"), help: "Replace an existing config/signer.json")
    var force = false

    @Argument(help: "The private key in hex (as `keys export` prints it)")
    var hexKey: String

    func run() throws {
        let layout = HomeLayout(home: home)
        let path = layout.configDirectory + "/" + SignerFile.fileName
        var text = hexKey.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("0x") || text.hasPrefix("0X") { text.removeFirst(2) }
        // Bounded before decoding: a key is 64 bytes (96 in libp2p's old redundant form).
        guard text.utf8.count <= 2 * 96, let raw = Hex.decode(text) else {
            throw ConfigError.invalidValue(field: "private key", value: "(not shown: a private key)",
                                           source: "command line", reason: "expected the hex of a 64-byte raw Ed25519 key (seed ‖ public key), as `keys export` prints it")
        }
        let key: KeyFile
        do {
            key = try SignerKeyStore.importKey(raw: raw, layout: layout, passphraseFile: passphraseFile, force: force)
        } catch {
            throw ConfigError(error)
        }
        print("Successfully imported key and saved to \(path)")
        print("  address: \(Hex.encode(key.address))")
    }
}
