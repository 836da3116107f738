import ArgumentParser
import Config
import P2PSync
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a node home: config.yaml, genesis.json, signer key and node key.")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String

    @Option(name: .customLong("chain-id"), help: "Chain id written to genesis.json")
    var chainID: String

    @Flag(name: .customLong("aggregator"), help: "Write a config that produces blocks")
    var aggregator = false

    @Option(name: .customLong("da.start-height"), help: "First DA height of the chain, written to genesis.json")
    var daStartHeight: UInt64 = 0

    func run() throws {
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        let result = try HomeInitializer.initialize(home: home, chainID: chainID, aggregator: aggregator,
                                                    startTimeNanoseconds: now, daStartHeight: daStartHeight)
        print("initialised \(result.layout.home) for chain \(result.genesis.chainID)")
        print("  config:   \(result.layout.configFile)")
        print("  genesis:  \(result.layout.genesisFile) (proposer \(Hex.encode(result.signerAddress)))")
        print("  signer:   \(result.layout.signerKeyFile) (mode 600; back it up, and signer.state beside it)")
        let peerID = PeerID(publicKey: result.nodePublicKey)
        print("  node key: \(result.layout.nodeKeyFile) (ev-node node_key.json format)")
        print("  peer id:  \(peerID)")
        // What the node will listen on with the written config (p2p.listen default).
        let listen = (try? ConfigLoader.resolve(home: result.layout.home,
                                                file: (try? ConfigLoader.readFile(at: result.layout.configFile)) ?? [:],
                                                flags: [:]))?.p2p.listen ?? HostPort(host: "0.0.0.0", port: 7676)
        print("  p2p:      \(Multiaddr(hostPort: listen.host, port: UInt16(clamping: listen.port), peerID: peerID))")
    }
}
