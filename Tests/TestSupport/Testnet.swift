import Config
import Foundation
import ProcessKit
import Testing

/// The one harness for tests that run real processes: a throwaway network in one temp
/// directory holding the local DA's database, etcd's, every node's home and every process log.
///
/// Declare what the scenario needs — a DA (`startDA`), etcd (`startEtcd`), EVM execution clients
/// (`makeEL`), nodes of any kind (`makeNode`, `makeHAGroup`) and who peers with whom — start
/// them, perturb them (`stop(signal: SIGKILL)`, `pause()`, `wipeStore()`, `start(flags:)` with
/// other peers), query them, and compare every height across nodes (`expectSameChain(a, b, c, through:)`).
///
/// `Testnet.run` stops every process afterwards, nodes first, by PID; a node still running must
/// stop cleanly on SIGTERM (SPEC §9). When the body fails, the error carries the tail of every
/// log and the directory is kept for reading.
package final class Testnet: @unchecked Sendable {
    package let dir: TempDirectory
    package let chainID: String
    package private(set) var da: LocalDAProcess?
    package private(set) var etcd: EtcdProcess?
    /// etcd clusters of their own besides `etcd` (a second HA group), stopped with it.
    package private(set) var otherEtcds: [EtcdProcess] = []
    package private(set) var els: [TestEL] = []
    package private(set) var nodes: [NodeProcess] = []
    /// Other processes the scenario started (proxies, peers); stopped after the nodes.
    package private(set) var others: [ChildProcess] = []
    private var portsInUse: Set<Int> = []
    package var logDirectory: String { dir.sub("logs") }
    /// The passphrase file every home's `signer.json` is encrypted with (`evnode init`), passed to
    /// every node as `--evnode.signer.passphrase_file`.
    package var passphraseFile: String { dir.sub("signer-passphrase") }

    package init(chainID: String = "e2e-chain") {
        dir = TempDirectory("evnode-net")
        self.chainID = chainID
        try? FileManager.default.createDirectory(atPath: dir.sub("logs"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: passphraseFile, contents: Data("testnet passphrase\n".utf8))
    }

    package static func run(chainID: String = "e2e-chain", _ body: (Testnet) async throws -> Void) async throws {
        let net = Testnet(chainID: chainID)
        do {
            try await body(net)
        } catch {
            let logs = net.logTails()
            await net.stopAll()
            net.dir.keep()
            throw TestFailure("\(error)\n\n--- process logs (tails; all kept in \(net.dir.path)) ---\n\(logs)")
        }
        for (name, status, signalled) in await net.stopAll() {
            #expect(status == 0 && !signalled, "\(name) did not stop cleanly on SIGTERM: status \(status)")
        }
    }

    /// A loopback port no other process of this network was given.
    package func freePort() throws -> Int {
        let port = try freeLoopbackPort(avoiding: portsInUse)
        portsInUse.insert(port)
        return port
    }

    // MARK: Infrastructure

    @discardableResult
    package func startDA(blockTime: String = "300ms", extra: [String] = []) async throws -> LocalDAProcess {
        let da = try await LocalDAProcess.start(home: dir.sub("da"), logDirectory: logDirectory, port: 0,
                                                blockTime: blockTime, arguments: extra)
        self.da = da
        return da
    }

    /// Stops the local DA (SIGTERM) and starts it again on the same port and database.
    package func restartDA(blockTime: String = "300ms", extra: [String] = []) async throws {
        guard let da else { throw TestFailure("start the DA first") }
        try await da.restart(blockTime: blockTime, arguments: extra)
    }

    /// Stops the local DA without starting it again: nodes see a dead DA.
    package func stopDA() async { await da?.stop() }

    @discardableResult
    package func startEtcd() async throws -> EtcdProcess {
        let etcd = try EtcdProcess(directory: dir.sub("etcd"), logDirectory: logDirectory, taken: portsInUse)
        portsInUse.formUnion([etcd.clientPort, etcd.peerPort])
        try await etcd.start()
        self.etcd = etcd
        return etcd
    }

    /// Another etcd cluster, with its own data and log directory (a second HA group that
    /// believes it leads the same chain).
    package func startAnotherEtcd(name: String) async throws -> EtcdProcess {
        let etcd = try EtcdProcess(directory: dir.sub(name), logDirectory: dir.sub(name + "-logs"), taken: portsInUse)
        portsInUse.formUnion([etcd.clientPort, etcd.peerPort])
        otherEtcds.append(etcd)
        try await etcd.start()
        return etcd
    }

    /// A py-evm test EL (not started), with a JWT secret file of its own unless `secret` is given,
    /// on the sample genesis unless `genesis` names another chainspec file.
    package func makeEL(name: String, secret: String? = nil, genesis: String = EVMFiles.genesis) throws -> TestEL {
        let el = try TestEL(name: name, directory: dir.path, logDirectory: logDirectory, taken: &portsInUse, secret: secret,
                            genesis: genesis)
        els.append(el)
        return el
    }

    /// `evnode-testkit faulty-da` in front of `upstream` (the DA by default).
    package func startFaultyDA(upstream: String? = nil, faultRate: Double, seed: Int,
                              extra: [String] = []) async throws -> FaultyDAProxy {
        guard let upstream = upstream ?? da?.url else { throw TestFailure("start the DA first") }
        let proxy = try await FaultyDAProxy.start(upstream: upstream, faultRate: faultRate, seed: seed,
                                                  logDirectory: logDirectory, name: "faulty-da-\(others.count + 1)",
                                                  extra: extra)
        others.append(proxy.child)
        return proxy
    }

    /// A process of the scenario's own (a Python peer, a TLS proxy): logged with the rest,
    /// stopped after the nodes.
    package func startProcess(name: String, executable: URL, arguments: [String],
                             environment: [String: String]? = nil) throws -> ChildProcess {
        let child = try ChildProcess(name: name, executable: executable, arguments: arguments,
                                     logDirectory: logDirectory, environment: environment)
        others.append(child)
        return child
    }

    // MARK: Nodes

    /// Initialises a home (`evnode init`) and declares its node; does not start it.
    ///
    /// A full node gets the genesis of `genesisFrom` (an aggregator's home) or `genesis` text.
    /// The node's flags: for an aggregator `--aggregator --block-time blockTime`; then the DA
    /// (`daURL`, the network's DA by default, with 300 ms DA blocks), `--p2p.peers` of `peers`,
    /// and `extra` last (so they may override). `start(flags:)` can replace them per run.
    /// With `signerFrom`, the node signs with that node's key (an HA group, or a double signer).
    package func makeNode(name: String, aggregator: Bool = false, blockTime: String = "100ms",
                         peers: [NodeProcess] = [], genesisFrom: NodeProcess? = nil, genesis: String? = nil,
                         signerFrom: NodeProcess? = nil, chainID: String? = nil, daURL: String? = nil,
                         jsonLogs: Bool = false, extra: [String] = []) throws -> NodeProcess {
        let home = dir.sub(name)
        var initArgs = ["init", "--home", home, "--chain-id", chainID ?? self.chainID,
                        "--evnode.signer.passphrase_file", passphraseFile]
        if aggregator { initArgs.append("--aggregator") }
        let made = try runCommand(BuiltProducts.evnode, initArgs)
        guard made.status == 0 else { throw TestFailure("evnode init \(name): \(made.stderr)") }
        let layout = HomeLayout(home: home)
        if let genesis {
            try genesis.write(toFile: layout.genesisFile, atomically: true, encoding: .utf8)
        } else if let source = genesisFrom {
            try FileManager.default.removeItem(atPath: layout.genesisFile)
            try FileManager.default.copyItem(atPath: source.layout.genesisFile, toPath: layout.genesisFile)
        }
        if let source = signerFrom {
            try FileManager.default.removeItem(atPath: layout.signerJSONFile)
            try FileManager.default.copyItem(atPath: source.layout.signerJSONFile, toPath: layout.signerJSONFile)
        }
        var flags: [String] = []
        if aggregator { flags += ["--aggregator", "--block-time", blockTime] }
        if let url = daURL ?? da?.url { flags += ["--da.address", url, "--da.block-time", "300ms"] }
        if !peers.isEmpty { flags += ["--p2p.peers", peers.map(\.p2pAddress).joined(separator: ",")] }
        flags += extra
        let node = NodeProcess(name: name, home: home, aggregator: aggregator, rpcPort: try freePort(),
                               p2pPort: try freePort(), flags: flags, logDirectory: logDirectory, jsonLogs: jsonLogs,
                               passphraseFile: passphraseFile)
        nodes.append(node)
        return node
    }

    /// A node on a home this harness did not make (e.g. an ev-node home written by another
    /// tool), started with `flags` and `--evnode.signer.passphrase_file passphraseFile`.
    package func adoptNode(name: String, home: String, aggregator: Bool, passphraseFile: String?,
                          flags: [String]) throws -> NodeProcess {
        let node = NodeProcess(name: name, home: home, aggregator: aggregator, rpcPort: try freePort(),
                               p2pPort: try freePort(), flags: flags, logDirectory: logDirectory, jsonLogs: false,
                               passphraseFile: passphraseFile)
        nodes.append(node)
        return node
    }

    /// The same home as `node` on two new ports, as a node of its own (`name`): the processes
    /// that dialled `node` no longer reach it (a cut link), while its store, keys and mark stay.
    package func movedToNewPorts(_ node: NodeProcess, name: String, flags: [String]? = nil) throws -> NodeProcess {
        guard !node.isRunning else { throw TestFailure("stop \(node.name) before moving its home") }
        let moved = NodeProcess(name: name, home: node.home, aggregator: node.aggregator, rpcPort: try freePort(),
                                p2pPort: try freePort(), flags: flags ?? node.flags, logDirectory: logDirectory,
                                jsonLogs: node.jsonLogs, passphraseFile: node.passphraseFile)
        nodes.append(moved)
        return moved
    }

    /// `count` aggregators in one HA group on the network's etcd, sharing the first one's signer
    /// key and genesis (each keeps its own node key); each dials the ones made before it.
    package func makeHAGroup(count: Int, blockTime: String, leaseTTL: String, extra: [String] = []) throws -> [NodeProcess] {
        guard let etcd else { throw TestFailure("start etcd first") }
        var group: [NodeProcess] = []
        for i in 0..<count {
            let name = "ha-\(i)"
            let node = try makeNode(name: name, aggregator: true, blockTime: blockTime, peers: group,
                                    genesisFrom: group.first, signerFrom: group.first,
                                    extra: ["--raft.enable", "--raft.endpoints", etcd.url, "--raft.lease-ttl", leaseTTL,
                                            "--raft.node-id", name] + extra)
            group.append(node)
        }
        return group
    }

    /// The node among `group` that reports itself HA leader; fails if two ever do at once.
    package func waitForLeader(among group: [NodeProcess], timeout: Duration = .seconds(60)) async throws -> NodeProcess {
        var leader: NodeProcess?
        try await waitUntil("one node to lead", timeout: timeout, every: .milliseconds(50)) {
            var leading: [NodeProcess] = []
            for node in group where node.isRunning {
                if let s = try? await node.status(), s.ha?.role == "leader" { leading.append(node) }
            }
            #expect(leading.count <= 1, "two nodes lead at once: \(leading.map(\.name))")
            leader = leading.first
            return leader != nil
        }
        return leader!
    }

    // MARK: Teardown

    /// Stops the nodes, then the other processes, the ELs, the DA and etcd, each with SIGTERM;
    /// returns (name, status, died of a signal) of those that were running.
    @discardableResult
    package func stopAll() async -> [(String, Int32, Bool)] {
        var out: [(String, Int32, Bool)] = []
        for node in nodes where node.isRunning {
            node.resume()   // a paused node cannot act on SIGTERM
            let status = await node.stop()
            out.append((node.name, status, node.lastRunDiedOfSignal))
        }
        for child in others where child.isRunning { await child.stop() }
        for el in els where el.isRunning { await el.stop() }
        if let da, da.isRunning {
            let status = await da.stop()
            out.append(("local-da", status, da.child.diedOfSignal))
        }
        if let etcd, etcd.isRunning { await etcd.stop() }
        for other in otherEtcds where other.isRunning { await other.stop() }
        return out
    }

    /// The last lines of every log in the network.
    ///
    /// Processes that ended without the test stopping them (a crash, an exit on an error) come
    /// first, named with how they ended and with a longer tail, so that a truncated report still
    /// shows them.
    package func logTails(lines: Int = 40) -> String {
        let current = nodes.compactMap(\.child) + others + els.compactMap(\.child)
            + [da?.child, etcd?.child].compactMap { $0 }
        let crashed = current.filter(\.endedUnasked)
        let crashedLogs = Set(crashed.map { ($0.logPath as NSString).lastPathComponent })
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: logDirectory)) ?? []).sorted()
        func tail(_ file: String, _ count: Int) -> String {
            let text = (try? String(contentsOfFile: logDirectory + "/" + file, encoding: .utf8)) ?? ""
            let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count)
            return "== \(file) ==\n" + tail.joined(separator: "\n")
        }
        var report = crashed.map { "!! \($0.name) (pid \($0.pid)) \($0.exitDescription) without being stopped\n" }.joined()
        report += files.filter(crashedLogs.contains).map { tail($0, lines * 2) }.joined(separator: "\n")
        if !crashed.isEmpty { report += "\n" }
        report += files.filter { !crashedLogs.contains($0) }.map { tail($0, lines) }.joined(separator: "\n")
        return report
    }
}

/// Expects every node to hold identical header hashes at every height `1...height`.
package func expectSameChain(_ nodes: NodeProcess..., through height: UInt64,
                            sourceLocation: SourceLocation = #_sourceLocation) async throws {
    guard let first = nodes.first else { return }
    let reference = try await first.hashes(through: height)
    for other in nodes.dropFirst() {
        let hashes = try await other.hashes(through: height)
        let differing = (0..<Int(height)).filter { reference[$0] != hashes[$0] }
        #expect(differing.isEmpty,
                "\(first.name) and \(other.name) differ at heights \(differing.prefix(10).map { $0 + 1 }) of 1…\(height)",
                sourceLocation: sourceLocation)
    }
}
