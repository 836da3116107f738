import Store
import Foundation
import Testing
import TestSupport

/// The `evnode` executable as an operator uses it: init, config errors, exit statuses.
@Suite struct CLITests {
    let evnode = BuiltProducts.evnode

    @Test func initCreatesAHomeAndRefusesToOverwriteIt() throws {
        let dir = TempDirectory()
        let home = dir.path + "/node"
        let passphrase = dir.path + "/passphrase"
        try "it secret\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        let unprotected = try runCommand(evnode, ["init", "--home", home, "--chain-id", "it-chain", "--aggregator"])
        #expect(unprotected.status == 2)
        #expect(unprotected.stderr.contains("init --evnode.node.aggregator needs --evnode.signer.passphrase_file"), "\(unprotected.stderr)")
        #expect(!FileManager.default.fileExists(atPath: home), "nothing written")
        let first = try runCommand(evnode, ["init", "--home", home, "--chain-id", "it-chain", "--aggregator",
                                            "--evnode.signer.passphrase_file", passphrase])
        #expect(first.status == 0, "\(first.stderr)")
        for file in ["evnode.yaml", "genesis.json", "signer.json", "node_key.json"] {
            #expect(FileManager.default.fileExists(atPath: "\(home)/config/\(file)"))
        }
        #expect(!FileManager.default.fileExists(atPath: "\(home)/config/signer.key"))
        let attrs = try FileManager.default.attributesOfItem(atPath: "\(home)/config/signer.json")
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let genesis = try String(contentsOfFile: "\(home)/config/genesis.json", encoding: .utf8)
        #expect(genesis.contains("\"chain_id\": \"it-chain\""))

        let second = try runCommand(evnode, ["init", "--home", home, "--chain-id", "other"])
        #expect(second.status == 2)
        #expect(second.stderr.contains("refusing to overwrite"))
        #expect(try String(contentsOfFile: "\(home)/config/genesis.json", encoding: .utf8) == genesis)
    }

    @Test(arguments: [
        (["--catchup-timeout", "30s"], "--evnode.node.catchup_timeout needs --evnode.node.aggregator"),
        (["--aggregator", "--catchup-timeout", "30s", "--raft.enable", "--raft.endpoints", "http://127.0.0.1:2379"],
         "mutually exclusive"),
        (["--evnode.node.aggregator", "--evnode.node.catchup_timeout=30s", "--evnode.raft.enable=true",
          "--raft.endpoints", "http://127.0.0.1:2379"], "mutually exclusive"),
        (["--block-time", "fast"], "invalid node.block_time (--evnode.node.block_time) \"fast\" (from --block-time)"),
        (["--da.address", "127.0.0.1:7980"], "invalid da.address"),
        (["--p2p.peers", "127.0.0.1"], "invalid p2p.peers"),
        (["--log.format", "xml"], "invalid log.format"),
        (["--aggregator", "--raft.enable", "--raft.endpoints", "http://127.0.0.1:2379", "--raft.lease-ttl", "500ms"],
         "etcd's shortest lease is 2s"),
        (["--raft.enable", "--raft.endpoints", "http://127.0.0.1:2379"], "--evnode.raft.enable needs --evnode.node.aggregator"),
        (["--aggregator", "--raft.enable"], "--evnode.raft.enable needs --evnode.raft.endpoints"),
        (["--evnode.node.light=true"], "node.light (--evnode.node.light) \"true\" from --evnode.node.light is refused: evnode has no light mode"),
        (["--evnode.node.aggregator", "false"], "a boolean flag takes its value after '='"),
        (["--no-such-flag"], "unknown flag"),
    ])
    func badFlagsExitWithStatus2(arguments: [String], message: String) throws {
        let dir = TempDirectory()
        let home = dir.path + "/node"
        _ = try runCommand(evnode, ["init", "--home", home, "--chain-id", "it-chain"])
        let r = try runCommand(evnode, ["start", "--home", home] + arguments)
        #expect(r.status == 2)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count <= 3, "one-line error expected: \(r.stderr)")
    }

    @Test func badConfigFileNamesTheFileAndKey() throws {
        let dir = TempDirectory()
        let home = dir.path + "/node"
        _ = try runCommand(evnode, ["init", "--home", home, "--chain-id", "it-chain"])
        try "node:\n  blocktime: 1s\n".write(toFile: "\(home)/config/evnode.yaml", atomically: true, encoding: .utf8)
        let r = try runCommand(evnode, ["start", "--home", home])
        #expect(r.status == 2)
        #expect(r.stderr.contains("evnode.yaml: unknown key \"node.blocktime\""), "\(r.stderr)")
    }

    @Test func missingHomeIsAClearError() throws {
        let r = try runCommand(evnode, ["start", "--home", "/nonexistent/evnode-home"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("does not exist"))
    }

    @Test func versionAndHelp() throws {
        let v = try runCommand(evnode, ["version"])
        #expect(v.status == 0 && v.stdout.hasPrefix("evnode "))
        let h = try runCommand(evnode, ["start", "--help"])
        #expect(h.status == 0)
        for flag in ["--evnode.node.catchup_timeout, --catchup-timeout", "--evnode.da.address", "--p2p.peers", "--evnode.raft.enable",
                     "--evnode.log.format", "(default: 1s)", "--evm.jwt-secret-file", "--evnode.pruning.pruning_mode", "--force-inclusion-server", "refused unless"] {
            #expect(h.stdout.contains(flag), "help lacks \(flag)")
        }
    }

    @Test func statusNamesTheNodeItCannotReach() throws {
        let r = try runCommand(evnode, ["status", "--rpc", "http://127.0.0.1:1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("cannot reach the node at http://127.0.0.1:1"), "\(r.stderr)")
    }

    /// `net-info` prints the home's peer id and listen address in ev-node's text and JSON shapes;
    /// `unsafe-clean` empties data/ but never config/, and is refused while the store is in use.
    @Test func netInfoAndUnsafeClean() throws {
        let dir = TempDirectory()
        let home = dir.path + "/node"
        let made = try runCommand(evnode, ["init", "--home", home, "--chain_id", "it-chain", "--evnode.p2p.listen_address", "/ip4/127.0.0.1/tcp/7123"])
        #expect(made.status == 0, "\(made.stderr)")
        let peerID = made.stdout.split(separator: "\n").first { $0.contains("peer id:") }.map { String($0.split(separator: " ").last ?? "") } ?? ""
        let text = try runCommand(evnode, ["net-info", "--home", home])
        #expect(text.status == 0 && text.stdout.contains("Node ID:      \(peerID)") && text.stdout.contains("/ip4/127.0.0.1/tcp/7123"), "\(text.stdout)")
        let json = try runCommand(evnode, ["net-info", "--home", home, "-o", "json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["node_id"] as? String == peerID && (object?["listen_addresses"] as? [String]) == ["/ip4/127.0.0.1/tcp/7123"])
        #expect(try runCommand(evnode, ["net-info", "--home", home, "--output", "xml"]).status == 2)

        try FileManager.default.createDirectory(atPath: home + "/data/store", withIntermediateDirectories: true)
        let store = try BlockStore.open(path: home + "/data/store")
        let refused = try runCommand(evnode, ["unsafe-clean", "--home", home])
        #expect(refused.status == 2 && refused.stderr.contains("while a node runs"), "\(refused.stderr)")
        #expect(FileManager.default.fileExists(atPath: home + "/data/store"))
        store.close()
        let cleaned = try runCommand(evnode, ["unsafe-clean", "--home", home])
        #expect(cleaned.status == 0, "\(cleaned.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: home + "/data").isEmpty)
        for file in ["evnode.yaml", "genesis.json", "node_key.json"] {
            #expect(FileManager.default.fileExists(atPath: "\(home)/config/\(file)"))
        }
    }
}
