@testable import Config
import Foundation
@testable import Node
import ProcessKit
import Testing
import ProcessKit
import TestSupport

/// The node's role is one value, and a producing role carries its producer (defect 10 of the
/// 2026-12-07 review: an aggregator without one returned at once and the process exited 0).
@Suite struct NodeRoleTests {
    func config(_ flags: [String: String], home: String) throws -> NodeConfig {
        try ConfigLoader.resolve(home: home, file: [:], flags: flags.mapValues { RawSetting(value: $0, source: "test") })
    }

    @Test func configYieldsOneRole() throws {
        let home = TempDirectory()
        #expect(try config([:], home: home.path).role == .full)
        #expect(try config(["node.aggregator": "true"], home: home.path).role == .aggregator)
        #expect(try config(["node.aggregator": "true", "node.catchup_timeout": "5s"], home: home.path).role
                == .aggregatorWithCatchup(timeout: .seconds(5)))
        #expect(try config(["node.promotable": "true"], home: home.path).role == .promotable(timeout: .seconds(30)))
        #expect(try config(["node.promotable": "true", "node.catchup_timeout": "7s"], home: home.path).role
                == .promotable(timeout: .seconds(7)))
    }

    /// A setup that says aggregator but holds no signer (only a setup built by hand can: the
    /// home loader refuses it) stops the node with the loader's configuration error, before it
    /// runs, instead of a node that never produces and exits 0.
    @Test func anAggregatorWithoutASignerIsAConfigurationError() async throws {
        let dir = TempDirectory()
        let chain = try TestChain(chainID: "role-no-signer", path: dir.sub("source"))
        let home = dir.sub("node")
        let rpcPort = try freeLoopbackPort()
        let p2pPort = try freeLoopbackPort(avoiding: [rpcPort])
        let config = try config(["node.aggregator": "true", "rpc.address": "127.0.0.1:\(rpcPort)",
                                 "p2p.listen_address": "127.0.0.1:\(p2pPort)"], home: home)
        let setup = NodeSetup(layout: HomeLayout(home: home), config: config, genesis: chain.genesis,
                              signer: nil, signerPath: nil, nodeKey: .generate(), notices: [])
        do throws(NodeFailure) {
            let node = try await NodeAssembly.node(setup: setup)
            Issue.record("an aggregator without a signer was built (role \(node.driver.role.kind))")
        } catch {
            guard case .config(let config) = error else { Issue.record("expected a configuration error, got \(error)"); return }
            #expect(config.description.contains("needs a signer key"), "\(config)")
            #expect(error.exitStatus == 2)
        }
        // Refused before anything was opened: the assembly asks for the signer first.
        #expect(!FileManager.default.fileExists(atPath: setup.layout.storeDirectory),
                "the store was opened for a node that could not be built")
    }

    /// Each role's assembly builds only that role's parts: a full node built from a home that
    /// holds a signer key has no producer, submitter or signer mark.
    @Test func aFullNodeIsBuiltWithoutProducingParts() async throws {
        let dir = TempDirectory()
        let chain = try TestChain(chainID: "role-full", path: dir.sub("source"))
        let home = dir.sub("node")
        let rpcPort = try freeLoopbackPort()
        let p2pPort = try freeLoopbackPort(avoiding: [rpcPort])
        let config = try config(["rpc.address": "127.0.0.1:\(rpcPort)", "p2p.listen_address": "127.0.0.1:\(p2pPort)"],
                                home: home)
        let setup = NodeSetup(layout: HomeLayout(home: home), config: config, genesis: chain.genesis,
                              signer: .generate(), signerPath: nil, nodeKey: .generate(), notices: [])
        let node = try await NodeAssembly.node(setup: setup)
        defer { node.store.close() }
        #expect(node.driver.role.kind == .full)
        #expect(node.submitter == nil)
        #expect(node.signerMark == nil)
        #expect(node.backPressure == nil)
    }
}
