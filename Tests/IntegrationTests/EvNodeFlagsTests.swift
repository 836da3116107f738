import Foundation
import Testing
import TestSupport

/// ev-node operators' scripts as they are (issue 28): an aggregator and a full node started with
/// `--rollkit.`- and `--evnode.`-prefixed flags only (beyond the harness's ports and passphrase),
/// Go-style booleans included, produce and follow one chain.
@Suite(.serialized) struct EvNodeFlagsTests {
    @Test func aggregatorAndFullNodeRunOnEvNodeAndRollkitFlags() async throws {
        try await Testnet.run { net in
            let da = try await net.startDA()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true)
            try await aggregator.start(flags: [
                "--rollkit.node.aggregator=true", "--rollkit.node.block_time", "100ms",
                "--evnode.da.address", da.url, "--evnode.da.block_time=300ms",
                "--rollkit.p2p.listen_address", "/ip4/127.0.0.1/tcp/\(aggregator.p2pPort)",
                "--evnode.rpc.address=127.0.0.1:\(aggregator.rpcPort)",
                // ev-node's keys for features evnode lacks, at their defaults: accepted.
                "--evnode.node.light=false", "--evnode.instrumentation.pprof=false", "--evnode.signer.signer_type", "file",
            ])
            let full = try net.makeNode(name: "full", peers: [aggregator], genesisFrom: aggregator)
            try await full.start(flags: [
                "--evnode.node.aggregator=false", "--rollkit.da.address=\(da.url)", "--rollkit.da.block_time", "300ms",
                "--evnode.p2p.peers", aggregator.p2pAddress, "--evnode.log.level", "warn",
            ])
            try await full.waitForHeight(8)
            try await expectSameChain(aggregator, full, through: 8)
            let a = try await aggregator.status(), f = try await full.status()
            #expect(a.mode == "aggregator" && f.mode == "full" && f.proposer == a.proposer)

            // A feature evnode lacks, asked for: refused at start, naming the flag (exit 2).
            let refused = try runCommand(BuiltProducts.evnode, ["start", "--home", full.home, "--rollkit.node.light=true"])
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("node.light (--evnode.node.light) \"true\" from --rollkit.node.light is refused"),
                    "\(refused.stderr)")
        }
    }
}
