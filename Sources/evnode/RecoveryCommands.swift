import Primitives
import ArgumentParser
import Store
import Config
import Foundation
import KeyStore
import Libp2p
import P2PSync

#if canImport(Glibc)
import Glibc
#endif

/// `evnode unsafe-clean --home DIR`: ev-node's command of that name. Removes everything inside the
/// database folder (`db_path`, `data/` by default): the store, and with it the chain state; the
/// next start syncs from DA and peers. Never `config/` (genesis, keys, `signer.state`). Refused
/// while a node runs on the home (the store's lock tells), exit 2 and nothing removed.
struct UnsafeCleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unsafe-clean",
        abstract: "Remove all contents of the stopped node's database folder (db_path); configuration and keys stay. Cannot be undone.")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    func run() throws {
        let config = try NodeConfigReader.read(home: home)
        let layout = HomeLayout(home: home, dbPath: config.dbPath)
        guard FileIO.isDirectory(layout.home) else { throw ConfigError.missing("home directory \(layout.home) does not exist") }
        let signerDirectory = layout.resolve(config.signer.path)
        try DataDirectoryCleaner.check(layout: layout, signerDirectory: signerDirectory)
        print("Data directory: \(layout.dataDirectory)")
        if FileIO.isDirectory(layout.storeDirectory) {
            // Opened only to learn whether a node holds it; closed before anything is removed.
            do throws(StoreError) {
                try BlockStore.open(path: layout.storeDirectory).close()
            } catch {
                if case .locked = error {
                    FileIOStderr.write("error: refusing to clean \(layout.dataDirectory) while a node runs on \(layout.home) (its store is in use: \(error)); stop the node first (nothing removed)\n")
                    Glibc.exit(ExitStatus.configuration)
                }
                // A damaged store is exactly what an operator may clean: say so and go on.
                print("note: the store does not open (\(error)); removing it anyway")
            }
        }
        let removed = try DataDirectoryCleaner.clean(layout: layout, signerDirectory: signerDirectory)
        if removed.isEmpty {
            print("\(layout.dataDirectory) is already empty; nothing removed")
        } else {
            print("All contents of the data directory at \(layout.dataDirectory) have been removed (\(removed.joined(separator: ", "))); \(layout.configDirectory) is untouched")
        }
    }
}

/// `evnode net-info --home DIR [--output text|json]`: the node's libp2p identity and listen
/// addresses. ev-node's asks the running node over RPC; evnode reads them from the home
/// (`node_key.json` and the configured `p2p.listen_address`), so it answers for a stopped node
/// in a recovery too. Connected peers are the running node's business: `evnode status`.
struct NetInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-info",
        abstract: "Print the node's peer id and listen address (from node_key.json and the configuration).")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output format (text|json)")
    var output: String = "text"

    func run() throws {
        guard output == "text" || output == "json" else {
            throw ConfigError.invalidValue(field: "output (--output)", value: output, source: "command line",
                                           reason: "unsupported output format (supported: text, json)")
        }
        let config = try NodeConfigReader.read(home: home)
        let layout = HomeLayout(home: home, dbPath: config.dbPath)
        let key: KeyFile
        if FileIO.exists(layout.nodeKeyFile) {
            key = try NodeKeyFile.load(path: layout.nodeKeyFile)
        } else if FileIO.exists(layout.legacyNodeKeyFile) {
            key = try KeyFile.load(path: layout.legacyNodeKeyFile)
        } else {
            throw ConfigError.missing("\(layout.nodeKeyFile) is missing: this home has no P2P identity yet (`evnode start` makes one)")
        }
        print(NetInfo(peerID: PeerID(publicKey: key.publicKey).description, listen: config.p2p.listen).render(output))
    }
}

/// What `net-info` prints, in ev-node's two shapes.
struct NetInfo {
    let peerID: String
    let listen: HostPort

    var listenAddresses: [String] {
        let proto = listen.host.contains(":") ? "ip6" : "ip4"
        return ["/\(proto)/\(listen.host)/tcp/\(listen.port)"]
    }

    func render(_ format: String) -> String {
        if format == "json" {
            let addresses = listenAddresses.map { "\"\($0)\"" }.joined(separator: ", ")
            return "{\n  \"node_id\": \"\(peerID)\",\n  \"listen_addresses\": [\(addresses)]\n}"
        }
        var out = String(repeating: "=", count: 50) + "\nNODE INFORMATION\n"
        out += "Node ID:      \(peerID)\nListen Addrs:\n"
        for (i, address) in listenAddresses.enumerated() {
            out += "   [\(i + 1)] Addr: \(address)   (dial: \(address)/p2p/\(peerID))\n"
        }
        return out + String(repeating: "=", count: 50)
    }
}
