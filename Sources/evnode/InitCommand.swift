import Primitives
import ArgumentParser
import Config
import KeyStore
import Libp2p
import P2PSync
import Foundation

/// `evnode init`: writes a home in ev-node's layout, with ev-node's command-line shape
/// (`--home`, `--chain_id`, and every setting flag of `start`, written into `evnode.yaml`).
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a node home in ev-node's layout: config/evnode.yaml, genesis.json, the signer and node_key.json.",
        discussion: "Every setting flag of `evnode start` (see `evnode start --help`) is accepted and written into evnode.yaml, as ev-node's init does.")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Option(name: [.customLong("chain_id"), .customLong("chain-id")], help: "Chain id written to genesis.json")
    var chainID: String = "evolve-test"

    @Option(name: .customLong("da.start-height"), help: "First DA height of the chain, written to genesis.json as da_start_height")
    var daStartHeight: UInt64 = 0

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Setting flags", visibility: .hidden))
    var settingArguments: [String] = []

    func run() throws {
        var settings = try ConfigLoader.environmentSettings(ProcessInfo.processInfo.environment)
        for (key, value) in try SettingFlags.parse(settingArguments) { settings[key] = value }
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        let result = try HomeInitializer.initialize(home: home, chainID: chainID, settings: settings,
                                                    startTimeNanoseconds: now, daStartHeight: daStartHeight,
                                                    signer: Self.makeSigner)
        let layout = result.layout
        print("initialised \(layout.home) for chain \(result.genesis.chainID)")
        print("  config:   \(layout.configFile)")
        if result.signerAddress.isEmpty {
            print("  genesis:  \(layout.genesisFile) (no proposer: replace it with the chain's genesis.json)")
        } else {
            print("  genesis:  \(layout.genesisFile) (proposer \(Hex.encode(result.signerAddress)))")
        }
        if let signerPath = result.signerPath {
            print("  signer:   \(signerPath) (encrypted, mode 600; back it up with its passphrase file, and signer.state beside it)")
        } else {
            print("  signer:   none (a full node's home: copy the chain's genesis.json into config/)")
        }
        let peerID = PeerID(publicKey: result.nodePublicKey)
        print("  node key: \(layout.nodeKeyFile) (ev-node node_key.json format)")
        print("  peer id:  \(peerID)")
        let listen = result.config.p2p.listen
        print("  p2p:      \(Multiaddr(hostPort: listen.host, port: UInt16(clamping: listen.port), peerID: peerID))")
    }

    /// The signer part of `init`, as ev-node's `CreateSigner`: an aggregator gets a new key in
    /// `config/signer.json`, encrypted with `--evnode.signer.passphrase_file`, which it must be
    /// given. Without the aggregator flag ev-node writes no signer; evnode writes one when given a
    /// passphrase file (so that the home can later produce) and none otherwise.
    static func makeSigner(layout: HomeLayout, config: NodeConfig) throws(ConfigError) -> InitSigner? {
        if config.signer.passphraseFile.isEmpty {
            guard !config.aggregator else {
                throw .missing("init --evnode.node.aggregator needs --evnode.signer.passphrase_file FILE: the new signer key is written to config/signer.json encrypted with that file's content")
            }
            return nil
        }
        return try SignerKeyStore.newForInit(layout: layout, passphraseFile: config.signer.passphraseFile)
    }
}
