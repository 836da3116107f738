import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Support for end-to-end tests: a local DA and `evnode start` nodes as real processes with temp
// homes and free loopback ports, read and driven over their HTTP API with /usr/bin/curl (a client
// independent of the node's own code).

struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A loopback TCP port for a node to listen on, free a moment ago. Taken below the kernel's
/// ephemeral range (32768…), so no outgoing connection (curl, P2P dials) can occupy it between
/// this probe and the node's bind, and never one of `taken` (ports handed out already).
func freeLoopbackPort(avoiding taken: Set<Int>) throws -> Int {
    for _ in 0..<200 {
        let port = Int.random(in: 20_000..<32_000)
        if taken.contains(port) { continue }
        if canBind(port: port) { return port }
    }
    throw HarnessFailure("no free loopback port found in 20000…31999")
}

private func canBind(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 }
    }
}

// MARK: HTTP over curl

/// HTTP requests made by running `/usr/bin/curl` on a thread of its own (never blocking Swift's
/// cooperative pool).
enum HTTP {
    struct Response: Sendable {
        let status: Int
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    static let curl = URL(fileURLWithPath: "/usr/bin/curl")

    static func get(_ url: String) async throws -> Response {
        try await perform([url], stdin: nil)
    }

    /// POSTs `body` as raw bytes (read by curl from stdin, so any bytes pass unchanged).
    static func post(_ url: String, body: Data) async throws -> Response {
        try await perform(["-X", "POST", "-H", "Content-Type: application/octet-stream", "--data-binary", "@-", url],
                          stdin: body)
    }

    /// Connection failures (node not up, or gone) are thrown; every HTTP status is returned.
    private static func perform(_ arguments: [String], stdin: Data?) async throws -> Response {
        // The status code goes to stderr so that stdout is exactly the body.
        let args = ["-sS", "--max-time", "15", "-o", "-", "-w", "%{stderr}%{http_code}"] + arguments
        let (status, out, err) = try await runOnThread(args, stdin: stdin)
        let errText = String(decoding: err, as: UTF8.self)
        guard status == 0, let code = Int(errText.suffix(3)) else {
            throw HarnessFailure("curl \(arguments.last ?? ""): exit \(status): \(errText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return Response(status: code, body: out)
    }

    private static func runOnThread(_ arguments: [String], stdin: Data?) async throws -> (Int32, Data, Data) {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                let process = Process()
                process.executableURL = curl
                process.arguments = arguments
                let out = Pipe(), err = Pipe(), input = Pipe()
                process.standardOutput = out
                process.standardError = err
                process.standardInput = stdin == nil ? FileHandle.nullDevice : input
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                if let stdin {
                    input.fileHandleForWriting.write(stdin)
                    try? input.fileHandleForWriting.close()
                }
                // stderr carries three digits (or a short curl message): it cannot fill its pipe
                // while stdout is read to the end.
                let body = out.fileHandleForReading.readDataToEndOfFile()
                let errData = err.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                continuation.resume(returning: (process.terminationStatus, body, errData))
            }
            thread.start()
        }
    }
}

// MARK: JSON documents of the node's RPC (SPEC §10)

struct StatusDocument: Decodable, Sendable {
    struct Heights: Decodable, Sendable {
        let store: UInt64
        let finalized: UInt64
        let da_head: UInt64
        let p2p_max: UInt64
    }

    let mode: String
    let phase: String
    let reason: String?
    let heights: Heights
    let peers: Int
    let evidence: Int
    let proposer: String
    let app_hash: String
    let ha: HA?
    let execution: Execution?

    struct Execution: Decodable, Sendable {
        let kind: String
        let reachable: Bool
        let last_error: String?
    }

    /// Present with `--raft.enable`.
    struct HA: Decodable, Sendable {
        let role: String
        let node_id: String
        let leader: String?
        let lease_id: String?
        let term: Int64?
        let last_replicated_height: UInt64
        let etcd_error: String?
    }
}

struct BlockDocument: Decodable, Sendable, Equatable {
    let height: UInt64
    let hash: String
    let time_ns: UInt64
    let proposer: String
    let app_hash: String
    let data_hash: String
    let txs: [String]

    /// The transactions as UTF-8 text.
    var txTexts: [String] {
        txs.map { String(decoding: Data(base64Encoded: $0) ?? Data(), as: UTF8.self) }
    }
}

// MARK: Processes

/// `evnode local-da` on a port it picked itself, with its database in a directory of the test.
final class LocalDANode {
    let child: ChildProcess
    let port: Int

    var url: String { "http://127.0.0.1:\(port)" }

    private init(child: ChildProcess, port: Int) {
        self.child = child
        self.port = port
    }

    static func start(home: String, logDirectory: String, blockTime: String = "300ms", port: Int = 0,
                      extra: [String] = [], name: String = "local-da") async throws -> LocalDANode {
        let child = try ChildProcess(
            name: name, executable: BuiltProducts.evnode,
            arguments: ["local-da", "--home", home, "--listen", "127.0.0.1:\(port)", "--block-time", blockTime] + extra,
            logDirectory: logDirectory)
        var port: Int?
        try await waitUntil("local DA to print its address", timeout: .seconds(60)) {
            if !child.isRunning { throw HarnessFailure("local-da exited:\n\(child.output)") }
            for line in child.output.split(separator: "\n") where line.hasPrefix("listening on ") {
                if let colon = line.lastIndex(of: ":") { port = Int(line[line.index(after: colon)...]) }
            }
            return port != nil
        }
        return LocalDANode(child: child, port: port!)
    }
}

/// One `evnode start` node: its home, its ports and its process (restartable with the same
/// arguments). Each run logs to a file of its own.
final class NodeProcess {
    let name: String
    let home: String
    let aggregator: Bool
    let rpcPort: Int
    let p2pPort: Int
    let arguments: [String]
    let logDirectory: String
    private(set) var child: ChildProcess?
    private(set) var runs = 0

    var rpc: String { "http://127.0.0.1:\(rpcPort)" }
    var p2pAddress: String { "127.0.0.1:\(p2pPort)" }

    init(name: String, home: String, aggregator: Bool, rpcPort: Int, p2pPort: Int, arguments: [String],
         logDirectory: String) {
        self.name = name
        self.home = home
        self.aggregator = aggregator
        self.rpcPort = rpcPort
        self.p2pPort = p2pPort
        self.arguments = arguments
        self.logDirectory = logDirectory
    }

    var isRunning: Bool { child?.isRunning ?? false }

    /// Starts the process and waits until its RPC answers.
    func start() async throws {
        precondition(!isRunning, "\(name) is already running")
        runs += 1
        let child = try ChildProcess(name: "\(name)-run\(runs)", executable: BuiltProducts.evnode,
                                     arguments: arguments, logDirectory: logDirectory)
        self.child = child
        try await waitUntil("\(name) to answer /health/live", timeout: .seconds(60), every: .milliseconds(100)) {
            if !child.isRunning {
                throw HarnessFailure("\(name) exited with status \(child.process.terminationStatus)")
            }
            return (try? await HTTP.get(rpc + "/health/live"))?.status == 200
        }
    }

    /// Sends `signal` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for the exit.
    /// Returns the exit status (for a signal death: the signal number).
    @discardableResult
    func stop(signal: Int32 = SIGTERM) async -> Int32 {
        guard let child else { return 0 }
        return await child.stop(signal: signal, timeout: .seconds(20))
    }

    /// True when the last run was ended by a signal rather than exiting by itself.
    var lastRunDiedOfSignal: Bool { child?.process.terminationReason == .uncaughtSignal }

    func status() async throws -> StatusDocument {
        let r = try await HTTP.get(rpc + "/status")
        guard r.status == 200 else { throw HarnessFailure("\(name) /status: HTTP \(r.status): \(r.text)") }
        return try JSONDecoder().decode(StatusDocument.self, from: r.body)
    }

    /// The block at `height`, nil on 404.
    func block(_ height: UInt64) async throws -> BlockDocument? {
        try await Self.fetchBlock(rpc: rpc, name: name, height: height)
    }

    /// The header hashes of heights `1...height` (throws if one is missing), fetched a few at a time.
    func hashes(through height: UInt64) async throws -> [String] {
        guard height > 0 else { return [] }
        var out = [String](repeating: "", count: Int(height))
        let (rpc, name) = (self.rpc, self.name)
        let width: UInt64 = 6
        var from: UInt64 = 1
        while from <= height {
            let to = min(height, from + width - 1)
            try await withThrowingTaskGroup(of: (UInt64, BlockDocument?).self) { group in
                for h in from...to {
                    group.addTask { (h, try await Self.fetchBlock(rpc: rpc, name: name, height: h)) }
                }
                for try await (h, block) in group {
                    guard let block else { throw HarnessFailure("\(name) has no block at height \(h)") }
                    guard block.height == h else {
                        throw HarnessFailure("\(name) /blocks/\(h) answered height \(block.height)")
                    }
                    out[Int(h - 1)] = block.hash
                }
            }
            from = to + 1
        }
        return out
    }

    private static func fetchBlock(rpc: String, name: String, height: UInt64) async throws -> BlockDocument? {
        let r = try await HTTP.get(rpc + "/blocks/\(height)")
        if r.status == 404 { return nil }
        guard r.status == 200 else { throw HarnessFailure("\(name) /blocks/\(height): HTTP \(r.status): \(r.text)") }
        return try JSONDecoder().decode(BlockDocument.self, from: r.body)
    }

    /// `POST /tx`; returns the HTTP status.
    func send(tx: String) async throws -> Int {
        try await HTTP.post(rpc + "/tx", body: Data(tx.utf8)).status
    }

    /// `GET /kv?key=`; nil on 404.
    func value(forKey key: String) async throws -> String? {
        let escaped = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? key
        let r = try await HTTP.get(rpc + "/kv?key=\(escaped)")
        if r.status == 404 { return nil }
        guard r.status == 200 else { throw HarnessFailure("\(name) /kv?key=\(key): HTTP \(r.status): \(r.text)") }
        return r.text
    }

    /// Everything this node logged over all its runs.
    var allLogs: String {
        (1...max(1, runs)).map { run in
            (try? String(contentsOfFile: "\(logDirectory)/\(name)-run\(run).log", encoding: .utf8)) ?? ""
        }.joined(separator: "\n")
    }
}

/// A throwaway network: one temp directory with the local DA's database, every node's home and
/// every process log. `Testnet.run` stops all processes afterwards and, when the body fails,
/// attaches the tail of every log to the error.
final class Testnet {
    let dir = TempDirectory("evnode-e2e")
    let chainID: String
    private(set) var da: LocalDANode?
    private(set) var nodes: [NodeProcess] = []
    private var portsInUse: Set<Int> = []
    var logDirectory: String { dir.path + "/logs" }

    init(chainID: String = "e2e-chain") {
        self.chainID = chainID
        try? FileManager.default.createDirectory(atPath: dir.path + "/logs", withIntermediateDirectories: true)
    }

    static func run(chainID: String = "e2e-chain", _ body: (Testnet) async throws -> Void) async throws {
        let net = Testnet(chainID: chainID)
        do {
            try await body(net)
        } catch {
            let logs = net.logTails()
            await net.stopAll()
            throw HarnessFailure("\(error)\n\n--- process logs (tails) ---\n\(logs)")
        }
        // SIGINT/SIGTERM stop every phase cleanly (SPEC §9): each process exits 0.
        for (name, status, signalled) in await net.stopAll() {
            #expect(status == 0 && !signalled, "\(name) did not stop cleanly on SIGTERM: status \(status)")
        }
    }

    func startDA(blockTime: String = "300ms", extra: [String] = []) async throws -> LocalDANode {
        let da = try await LocalDANode.start(home: dir.path + "/da", logDirectory: logDirectory, blockTime: blockTime,
                                             extra: extra)
        self.da = da
        daRuns = 1
        return da
    }

    private var daRuns = 0

    /// Stops the local DA (SIGTERM) and starts it again on the same port and database, with
    /// `extra` arguments; nodes pointed at it keep their address.
    @discardableResult
    func restartDA(blockTime: String = "300ms", extra: [String] = []) async throws -> LocalDANode {
        guard let old = da else { throw HarnessFailure("start the DA first") }
        await old.child.stop()
        daRuns += 1
        let da = try await LocalDANode.start(home: dir.path + "/da", logDirectory: logDirectory, blockTime: blockTime,
                                             port: old.port, extra: extra, name: "local-da-run\(daRuns)")
        self.da = da
        return da
    }

    /// Stops the local DA (SIGTERM) without starting it again: nodes see a dead DA.
    func stopDA() async {
        await da?.child.stop()
    }

    /// Initialises a home (`evnode init`) and describes its node; does not start it. A full node
    /// gets the genesis of `genesisFrom` (the aggregator's home), or `genesis` text when given.
    func makeNode(name: String, aggregator: Bool, blockTime: String = "100ms", peers: [NodeProcess] = [],
                  genesisFrom: NodeProcess? = nil, genesis: String? = nil, chainID: String? = nil,
                  extra: [String] = []) throws -> NodeProcess {
        guard let da else { throw HarnessFailure("start the DA first") }
        let home = dir.path + "/" + name
        var initArgs = ["init", "--home", home, "--chain-id", chainID ?? self.chainID]
        if aggregator { initArgs.append("--aggregator") }
        let made = try runCommand(BuiltProducts.evnode, initArgs)
        guard made.status == 0 else { throw HarnessFailure("evnode init \(name): \(made.stderr)") }
        let genesisPath = home + "/config/genesis.json"
        if let genesis {
            try genesis.write(toFile: genesisPath, atomically: true, encoding: .utf8)
        } else if let source = genesisFrom {
            let text = try String(contentsOfFile: source.home + "/config/genesis.json", encoding: .utf8)
            try text.write(toFile: genesisPath, atomically: true, encoding: .utf8)
        }
        let rpcPort = try freeLoopbackPort(avoiding: portsInUse)
        portsInUse.insert(rpcPort)
        let p2pPort = try freeLoopbackPort(avoiding: portsInUse)
        portsInUse.insert(p2pPort)
        var args = ["start", "--home", home]
        if aggregator { args += ["--aggregator", "--block-time", blockTime] }
        args += ["--da.address", da.url, "--da.block-time", "300ms",
                 "--p2p.listen", "127.0.0.1:\(p2pPort)", "--rpc.address", "127.0.0.1:\(rpcPort)"]
        if !peers.isEmpty {
            args += ["--p2p.peers", peers.map(\.p2pAddress).joined(separator: ",")]
        }
        args += extra
        let node = NodeProcess(name: name, home: home, aggregator: aggregator, rpcPort: rpcPort, p2pPort: p2pPort,
                               arguments: args, logDirectory: logDirectory)
        nodes.append(node)
        return node
    }

    /// Stops the nodes, then the DA, each with SIGTERM; returns (name, status, died of a signal).
    @discardableResult
    func stopAll() async -> [(String, Int32, Bool)] {
        var out: [(String, Int32, Bool)] = []
        for node in nodes where node.isRunning {
            let status = await node.stop()
            out.append((node.name, status, node.lastRunDiedOfSignal))
        }
        if let da, da.child.isRunning {
            let status = await da.child.stop()
            out.append(("local-da", status, da.child.process.terminationReason == .uncaughtSignal))
        }
        return out
    }

    /// The last lines of every log in the network.
    func logTails(lines: Int = 40) -> String {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: logDirectory)) ?? []).sorted()
        return files.map { file in
            let text = (try? String(contentsOfFile: logDirectory + "/" + file, encoding: .utf8)) ?? ""
            let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
            return "== \(file) ==\n" + tail.joined(separator: "\n")
        }.joined(separator: "\n")
    }
}

// MARK: Conditions

/// Waits until `node`'s status satisfies `condition`; returns that status.
@discardableResult
func waitForStatus(_ node: NodeProcess, _ what: String, timeout: Duration = .seconds(90),
                   _ condition: (StatusDocument) -> Bool) async throws -> StatusDocument {
    var last: StatusDocument?
    do {
        try await waitUntil("\(node.name): \(what)", timeout: timeout, every: .milliseconds(150)) {
            if let child = node.child, !child.isRunning {
                throw HarnessFailure("\(node.name) exited with status \(child.process.terminationStatus) while waiting for \(what)")
            }
            guard let s = try? await node.status() else { return false }
            last = s
            return condition(s)
        }
    } catch let failure as ProcessFailure {
        let seen = last.map { "phase \($0.phase), store \($0.heights.store), finalized \($0.heights.finalized), da_head \($0.heights.da_head), p2p_max \($0.heights.p2p_max), peers \($0.peers)" } ?? "no status"
        throw HarnessFailure("\(failure) (last status: \(seen))")
    }
    return last!
}

/// Expects `a` and `b` to hold identical header hashes at every height `1...height`.
func expectSameChain(_ a: NodeProcess, _ b: NodeProcess, through height: UInt64,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let ha = try await a.hashes(through: height)
    let hb = try await b.hashes(through: height)
    let differing = (0..<Int(height)).filter { ha[$0] != hb[$0] }
    #expect(differing.isEmpty,
            "\(a.name) and \(b.name) differ at heights \(differing.prefix(10).map { $0 + 1 }) of 1…\(height)",
            sourceLocation: sourceLocation)
}
