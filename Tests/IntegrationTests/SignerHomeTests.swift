import Primitives
import Config
import Foundation
import KeyStore
import ProcessKit
import Testing
import TestSupport

/// ev-node's encrypted `signer.json` against an independent writer and reader
/// (Tests/IntegrationTests/py/evnode_home.py: argon2-cffi and cryptography from PyPI, written
/// from the facts, not from evnode's code), through the real `evnode` executable.
@Suite struct SignerHomeTests {
    static var python: URL { BuiltProducts.packageRoot.appendingPathComponent(".build/venv-home/bin/python") }
    static var script: String { BuiltProducts.packageRoot.appendingPathComponent("Tests/IntegrationTests/py/evnode_home.py").path }

    /// Runs evnode_home.py; its stdout parsed as a JSON object.
    static func py(_ arguments: [String]) throws -> [String: String] {
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw TestFailure("\(python.path) is missing: run `make deps` (it makes the venv-home virtualenv)")
        }
        let r = try runCommand(python, [script] + arguments, timeout: .seconds(60))
        guard r.status == 0 else { throw TestFailure("evnode_home.py \(arguments.first ?? ""): exit \(r.status): \(r.stderr)") }
        guard let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String] else {
            throw TestFailure("evnode_home.py printed no JSON object: \(r.stdout)")
        }
        return object
    }

    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// Every file under `dir` with its bytes: what "nothing written" is checked against.
    static func snapshot(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: dir) else { return out }
        for case let relative as String in walker {
            let path = dir + "/" + relative
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            out[relative] = isDirectory.boolValue ? Data() : try Data(contentsOf: URL(fileURLWithPath: path))
        }
        return out
    }

    /// A signer.json written by Python decrypts in Swift, and through `evnode keys export`, to the
    /// key Python wrote; "secret\n" in the passphrase file is "secret".
    @Test func pythonWrittenSignerDecryptsInSwift() throws {
        let dir = TempDirectory("evnode-signer-py")
        let home = dir.sub("home")
        try FileIO.makeDirectories(home + "/config")
        try Self.write("secret\n", to: dir.sub("pass-newline"))
        try Self.write("  secret", to: dir.sub("pass-plain"))
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
        let written = try Self.py(["write-signer", "--out", home + "/config/signer.json",
                                   "--passphrase-file", dir.sub("pass-newline"), "--seed-hex", seed])
        let key = try SignerFile.decrypt(path: home + "/config/signer.json",
                                         passphrase: try Passphrase.read(file: dir.sub("pass-plain"), for: "signer.json"))
        #expect(Hex.encode(key.publicKey) == written["pub_key"])
        #expect(Hex.encode(key.address) == written["address"])
        #expect(Hex.encode(key.privateKey.rawRepresentation) == seed)

        let exported = try runCommand(BuiltProducts.evnode, ["keys", "export", "--home", home,
                                                             "--evnode.signer.passphrase_file", dir.sub("pass-plain")])
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(exported.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == seed + written["pub_key"]!)
        #expect(exported.stderr.contains("WARNING: EXPORTING PRIVATE KEY"))
    }

    /// The other way: `evnode init` and `evnode keys import` write files Python decrypts to the
    /// key evnode reports (the genesis proposer, the imported hex).
    @Test func evnodeWrittenSignerDecryptsInPython() throws {
        let dir = TempDirectory("evnode-signer-swift")
        let home = dir.sub("home")
        try Self.write("\u{00A0}swift side\t\n", to: dir.sub("pass"))
        let made = try runCommand(BuiltProducts.evnode, ["init", "--home", home, "--chain-id", "py-check", "--aggregator",
                                                         "--evnode.signer.passphrase_file", dir.sub("pass")])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(FileIO.mode(home + "/config/signer.json") == 0o600)
        try Self.write("swift side", to: dir.sub("pass-bare"))
        let read = try Self.py(["read-signer", "--file", home + "/config/signer.json", "--passphrase-file", dir.sub("pass-bare")])
        let genesis = try Genesis.load(path: home + "/config/genesis.json")
        #expect(read["address"] == Hex.encode(genesis.proposerAddress))

        // keys import --force replaces it with a key Python then reads back.
        let other = KeyFile.generate()
        let rawHex = Hex.encode(RawEd25519.bytes(of: other))
        let refused = try runCommand(BuiltProducts.evnode, ["keys", "import", "--home", home,
                                                            "--evnode.signer.passphrase_file", dir.sub("pass"), rawHex])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("already exists"), "\(refused.stderr)")
        let imported = try runCommand(BuiltProducts.evnode, ["keys", "import", "--home", home, "--force",
                                                             "--evnode.signer.passphrase_file", dir.sub("pass"), rawHex])
        #expect(imported.status == 0, "\(imported.stderr)")
        let reread = try Self.py(["read-signer", "--file", home + "/config/signer.json", "--passphrase-file", dir.sub("pass")])
        #expect(reread["private_key"] == rawHex)
        #expect(reread["address"] == Hex.encode(other.address))
    }

    /// An ev-node home written by Python (evnode.yaml, genesis.json with da_epoch_forced_inclusion,
    /// signer.json, node_key.json) starts as an aggregator unlocked by its passphrase file, and its
    /// blocks are signed by that key: a full node that checks every header's signature against the
    /// genesis proposer syncs them. A wrong passphrase, a flipped ciphertext byte, and no
    /// passphrase each exit 2 with one line naming the file, and write nothing.
    @Test func aggregatorOnAPythonWrittenHomeSignsWithItsKey() async throws {
        try await Testnet.run(chainID: "py-home") { net in
            try await net.startDA(blockTime: "300ms")
            let home = net.dir.sub("py-home")
            let passphrase = net.dir.sub("py-passphrase")
            try Self.write("ev-node operator passphrase\n", to: passphrase)
            let made = try Self.py(["write-home", "--home", home, "--chain-id", "py-home", "--aggregator",
                                    "--passphrase-file", passphrase, "--da-address", net.da!.url,
                                    "--block-time", "100ms", "--da-block-time", "300ms"])
            let config = home + "/config"
            let signerFile = config + "/signer.json"
            let genesisText = try String(contentsOfFile: config + "/genesis.json", encoding: .utf8)
            #expect(genesisText.contains("\"da_epoch_forced_inclusion\""))
            // The refusals pass ev-node's flags too (they repeat what the evnode.yaml Python wrote
            // says); the node itself then starts from the home alone.
            let flags = ["--evnode.node.aggregator", "--evnode.da.address", net.da!.url,
                         "--evnode.node.block_time", "100ms", "--evnode.da.block_time", "300ms"]

            // Refusals first: each exits 2, one line naming the file, nothing written.
            let pristine = try Self.snapshot(home)
            func refused(_ extra: [String], _ expected: String) throws {
                let r = try runCommand(BuiltProducts.evnode, ["start", "--home", home] + flags + extra)
                #expect(r.status == 2, "exit \(r.status): \(r.stderr)")
                let lines = r.stderr.split(separator: "\n")
                #expect(lines.count == 1, "one line: \(r.stderr)")
                #expect(r.stderr.contains(expected), "\(r.stderr)")
                #expect(try Self.snapshot(home) == pristine, "nothing written")
                #expect(!FileManager.default.fileExists(atPath: home + "/data/store"))
            }
            try Self.write("not the passphrase\n", to: net.dir.sub("wrong"))
            try refused(["--evnode.signer.passphrase_file", net.dir.sub("wrong")],
                        "\(signerFile): cannot decrypt the signer key: wrong passphrase")
            try refused([], "needs its passphrase: pass --evnode.signer.passphrase_file")
            try refused(["--evnode.signer.passphrase_file", net.dir.sub("absent")],
                        "\(signerFile): passphrase file \(net.dir.sub("absent")) does not exist")
            // One flipped byte of the encrypted key.
            let original = try Data(contentsOf: URL(fileURLWithPath: signerFile))
            var fields = try #require(try JSONSerialization.jsonObject(with: original) as? [String: String])
            var sealed = Array(try #require(Data(base64Encoded: fields["priv_key_encrypted"]!)))
            sealed[7] ^= 0x20
            fields["priv_key_encrypted"] = Data(sealed).base64EncodedString()
            try JSONSerialization.data(withJSONObject: fields).write(to: URL(fileURLWithPath: signerFile))
            let flipped = try Self.snapshot(home)
            let r = try runCommand(BuiltProducts.evnode, ["start", "--home", home, "--evnode.signer.passphrase_file", passphrase] + flags)
            #expect(r.status == 2, "exit \(r.status): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("\(signerFile): cannot decrypt"), "\(r.stderr)")
            #expect(try Self.snapshot(home) == flipped, "nothing written")
            try original.write(to: URL(fileURLWithPath: signerFile))

            // The home as Python wrote it, with only --home and the passphrase file (and the
            // harness's loopback ports): the aggregator signs with Python's key.
            let aggregator = try net.adoptNode(name: "py-agg", home: home, aggregator: true,
                                               passphraseFile: passphrase, flags: [])
            try await aggregator.start()
            try await aggregator.waitForHeight(5, timeout: .seconds(60))
            #expect(try await aggregator.status().proposer == made["address"])
            for height: UInt64 in 1...5 {
                #expect(try await aggregator.block(height)?.proposer == made["address"], "height \(height)")
            }
            // A full node on a second home Python wrote (its own evnode.yaml, node key and signer
            // file; the chain's genesis copied in, as an operator does), started with --home alone
            // (and the harness's loopback ports): it verifies every header's signature against the
            // proposer Python wrote, from DA alone.
            let fullHome = net.dir.sub("py-full-home")
            _ = try Self.py(["write-home", "--home", fullHome, "--chain-id", "py-home",
                             "--passphrase-file", passphrase, "--da-address", net.da!.url, "--da-block-time", "300ms"])
            try Self.write(genesisText, to: fullHome + "/config/genesis.json")
            let full = try net.adoptNode(name: "py-full", home: fullHome, aggregator: false, passphraseFile: nil, flags: [])
            try await full.start()
            try await full.waitForHeight(5, timeout: .seconds(90))
            for height: UInt64 in 1...5 {
                #expect(try await full.block(height) == (try await aggregator.block(height)), "height \(height)")
            }
        }
    }

    /// A home `evnode init` wrote: the key Python decrypts from its signer.json is the key the
    /// running aggregator signs with.
    @Test func theKeyPythonDecryptsIsTheKeyTheNodeSignsWith() async throws {
        try await Testnet.run(chainID: "init-home") { net in
            try await net.startDA(blockTime: "300ms")
            let aggregator = try net.makeNode(name: "agg", aggregator: true)
            try await aggregator.start()
            try await aggregator.waitForHeight(3, timeout: .seconds(60))
            let read = try Self.py(["read-signer", "--file", aggregator.layout.signerJSONFile,
                                    "--passphrase-file", net.passphraseFile])
            #expect(try await aggregator.block(3)?.proposer == read["address"])
            #expect(!aggregator.output.contains("migrate-home"), "no legacy notice")
        }
    }

    /// A home of an earlier evnode (plaintext config/signer.key, no signer.json) still starts as an
    /// aggregator, without a passphrase, with one notice saying how to convert it.
    @Test func aLegacyHomeStartsWithOneNotice() async throws {
        try await Testnet.run(chainID: "legacy-home") { net in
            try await net.startDA(blockTime: "300ms")
            let home = net.dir.sub("legacy")
            let made = try HomeInitializer.initialize(home: home, chainID: "legacy-home", aggregator: true,
                                                      startTimeNanoseconds: UInt64(Date().timeIntervalSince1970 * 1e9))
            #expect(FileManager.default.fileExists(atPath: made.layout.signerKeyFile))
            let node = try net.adoptNode(name: "legacy", home: home, aggregator: true, passphraseFile: nil,
                                         flags: ["--aggregator", "--block-time", "100ms", "--da.address", net.da!.url,
                                                 "--da.block-time", "300ms"])
            try await node.start()
            try await node.waitForHeight(2, timeout: .seconds(60))
            #expect(try await node.block(2)?.proposer == Hex.encode(made.signerAddress))
            let notices = node.output.split(separator: "\n").filter { $0.contains("plaintext signer key") }
            #expect(notices.count == 1, "\(notices)")
            #expect(notices.first?.contains("NOTICE") == true)
            #expect(notices.first?.contains("evnode migrate-home --home \(home)") == true)
        }
    }
}
