import ArgumentParser
import Config
import KeyStore
import P2PSync
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a node home: config.yaml, genesis.json, the encrypted signer.json and the node key.")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String

    @Option(name: .customLong("chain-id"), help: "Chain id written to genesis.json")
    var chainID: String

    @Flag(name: .customLong("aggregator"), help: "Write a config that produces blocks")
    var aggregator = false

    @Option(name: .customLong("da.start-height"), help: "First DA height of the chain, written to genesis.json")
    var daStartHeight: UInt64 = 0

    @Option(name: .customLong("signer.passphrase-file"),
            help: "File whose content (white space trimmed) encrypts the new config/signer.json (--evnode.signer.passphrase_file); required with --aggregator")
    var passphraseFile: String?

    func run() throws {
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        let result = try HomeInitializer.initialize(home: home, chainID: chainID, aggregator: aggregator,
                                                    startTimeNanoseconds: now, daStartHeight: daStartHeight,
                                                    signer: signerChoice)
        print("initialised \(result.layout.home) for chain \(result.genesis.chainID)")
        print("  config:   \(result.layout.configFile)")
        if result.signerAddress.isEmpty {
            print("  genesis:  \(result.layout.genesisFile) (no proposer: replace it with the chain's genesis.json)")
        } else {
            print("  genesis:  \(result.layout.genesisFile) (proposer \(Hex.encode(result.signerAddress)))")
        }
        if let signerPath = result.signerPath {
            print("  signer:   \(signerPath) (encrypted, mode 600; back it up with its passphrase file, and signer.state beside it)")
        } else {
            print("  signer:   none (a full node's home: copy the chain's genesis.json into config/)")
        }
        let peerID = PeerID(publicKey: result.nodePublicKey)
        print("  node key: \(result.layout.nodeKeyFile) (ev-node node_key.json format)")
        print("  peer id:  \(peerID)")
        // What the node will listen on with the written config (p2p.listen default).
        let listen = (try? ConfigLoader.resolve(home: result.layout.home,
                                                file: (try? ConfigLoader.readFile(at: result.layout.configFile)) ?? [:],
                                                flags: [:]))?.p2p.listen ?? HostPort(host: "0.0.0.0", port: 7676)
        print("  p2p:      \(Multiaddr(hostPort: listen.host, port: UInt16(clamping: listen.port), peerID: peerID))")
    }

    /// The signer part of `init`, as ev-node's `CreateSigner`: an aggregator gets a new key in
    /// `config/signer.json`, encrypted with the passphrase file, which it must be given. Without
    /// `--aggregator` ev-node writes no signer; evnode writes one when given a passphrase file
    /// (so that the home can later produce) and none otherwise.
    var signerChoice: (HomeLayout) throws(ConfigError) -> InitSigner? {
        let passphraseFile = passphraseFile ?? ""
        let aggregator = aggregator
        return { layout throws(ConfigError) in
            if passphraseFile.isEmpty {
                guard !aggregator else {
                    throw .missing("init --aggregator needs --evnode.signer.passphrase_file FILE: the new signer key is written to config/signer.json encrypted with that file's content")
                }
                return nil
            }
            return try SignerKeyStore.newForInit(layout: layout, passphraseFile: passphraseFile)
        }
    }
}
