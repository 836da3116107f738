import Node
import Primitives
import ArgumentParser
import Foundation
import Config
import KeyStore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `evnode start`: flags override the `EVNODE_*` environment, which overrides `evnode.yaml`, which
/// overrides the defaults. Every setting flag is read by `SettingFlags` against the settings table
/// (ev-node's names, `--rollkit.*`, evnode's older spellings); ArgumentParser only sees `--home`.
struct StartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Run the node (full node by default; --evnode.node.aggregator produces blocks).",
        discussion: Settings.flagHelp(),
        aliases: ["node", "run"])

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Setting flags (listed below)", visibility: .hidden))
    var settingArguments: [String] = []

    /// Unlocking `signer.json` runs Argon2id (32 MiB, a fraction of a second of CPU) besides the
    /// file reads: on a thread of its own, not on the cooperative pool.
    static func loadOffPool(home: String, flags: [String: RawSetting], environment: [String: String]) async throws -> NodeSetup {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<NodeSetup, any Error>) in
            Thread {
                do {
                    done.resume(returning: try NodeSetup.load(home: home, flags: flags, environment: environment))
                } catch {
                    done.resume(throwing: error)
                }
            }.start()
        }
    }

    func run() async throws {
        let setup = try await Self.loadOffPool(home: home, flags: try SettingFlags.parse(settingArguments),
                                               environment: ProcessInfo.processInfo.environment)
        LogBootstrap.bootstrap(level: setup.config.log.level, format: setup.config.log.format)
        let logger = Logger(label: "evnode")
        for notice in setup.notices {
            logger.notice("\(notice)")
        }
        for warning in setup.keyPermissionWarnings() {
            logger.warning("\(warning)")
        }
        let c = setup.config
        logger.info("starting evnode", metadata: [
            "version": "\(EvnodeVersion.string)",
            "home": "\(setup.layout.home)",
            "chain_id": "\(setup.genesis.chainID)",
            "mode": "\(c.role.name)",
            "catchup_timeout": "\(DurationParser.format(c.catchupTimeout))",
            "da": "\(c.da.address)",
            "p2p_listen": "\(c.p2p.listen)",
            "peers": "\(c.p2p.peers.count)",
            "rpc": "\(c.rpc.address)",
            "execution": "\(c.execution.kind.rawValue)",
        ])
        let node: EvNode
        do throws(NodeFailure) {
            node = try await NodeAssembly.node(setup: setup, logger: logger)
            try await node.run()
        } catch {
            logger.critical("\(error)")
            FileIOStderr.write("error: \(error)\n")
            Glibc.exit(error.exitStatus)
        }
    }
}
