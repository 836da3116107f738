import Primitives
import Store
import Config
import Foundation
import KeyStore
import ProcessKit

/// One `evnode start` node of a `Testnet`: its home, its two loopback ports (RPC and P2P) and
/// its process. A node can be run many times on the same home — stopped, killed with -9,
/// paused, its store wiped, restarted with other flags — and each run logs to a file of its own.
package final class NodeProcess: @unchecked Sendable {
    package let name: String
    package let home: String
    package let aggregator: Bool
    package let rpcPort: Int
    package let p2pPort: Int
    package let logDirectory: String
    /// JSON log lines (`--log.format json`), which `log` parses.
    package let jsonLogs: Bool
    /// The flags after the harness's own (home, ports, log format): the mode, DA, peers and the
    /// test's extras. `start(flags:)` replaces them for that run and the ones after it.
    package var flags: [String]
    /// Unlocks the home's `signer.json`; passed on every run, before `flags`.
    package let passphraseFile: String?
    package private(set) var child: ChildProcess?
    package private(set) var runs = 0

    /// `http://127.0.0.1:<rpc port>`.
    package var rpc: String { "http://127.0.0.1:\(rpcPort)" }
    /// `127.0.0.1:<p2p port>`, as `--p2p.peers` takes it.
    package var p2pAddress: String { "127.0.0.1:\(p2pPort)" }
    package var layout: HomeLayout { HomeLayout(home: home) }

    init(name: String, home: String, aggregator: Bool, rpcPort: Int, p2pPort: Int, flags: [String],
         logDirectory: String, jsonLogs: Bool, passphraseFile: String? = nil) {
        self.passphraseFile = passphraseFile
        self.name = name
        self.home = home
        self.aggregator = aggregator
        self.rpcPort = rpcPort
        self.p2pPort = p2pPort
        self.flags = flags
        self.logDirectory = logDirectory
        self.jsonLogs = jsonLogs
    }

    /// Every argument of the next run.
    package var arguments: [String] {
        ["start", "--home", home, "--rpc.address", "127.0.0.1:\(rpcPort)", "--p2p.listen", "127.0.0.1:\(p2pPort)"]
            + (jsonLogs ? ["--log.format", "json"] : [])
            + (passphraseFile.map { ["--evnode.signer.passphrase_file", $0] } ?? []) + flags
    }

    package var isRunning: Bool { child?.isRunning ?? false }

    /// The home's block signer, unlocked as the node unlocks it.
    package func signerKey() throws -> KeyFile {
        var config = try ConfigLoader.resolve(home: home, file: [:], flags: [:])
        config.aggregator = true
        config.signer.passphraseFile = passphraseFile ?? ""
        guard let loaded = try SignerKeyStore.loadForStart(layout: layout, config: config) else {
            throw TestFailure("\(name) has no signer")
        }
        return loaded.key
    }

    // MARK: Running

    /// Starts a run and waits until its RPC answers.
    package func start(flags: [String]? = nil) async throws {
        let child = try launch(flags: flags)
        try await waitUntil("\(name) to answer /health/live", every: .milliseconds(100)) {
            if !child.isRunning {
                throw TestFailure("\(name) exited with status \(child.terminationStatus):\n\(child.output.suffix(3000))")
            }
            return (try? await HTTP.get(rpc + "/health/live"))?.status == 200
        }
    }

    /// Starts a run without waiting for anything (for runs expected to end by themselves).
    @discardableResult
    package func launch(flags: [String]? = nil) throws -> ChildProcess {
        guard !isRunning else { throw TestFailure("\(name) is already running") }
        if let flags { self.flags = flags }
        runs += 1
        let child = try ChildProcess(name: "\(name)-run\(runs)", executable: BuiltProducts.evnode,
                                     arguments: arguments, logDirectory: logDirectory)
        self.child = child
        return child
    }

    /// Sends `signal` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for the exit; returns
    /// the exit status (for a signal death: the signal number).
    @discardableResult
    package func stop(signal: Int32 = SIGTERM) async -> Int32 {
        guard let child else { return 0 }
        return await child.stop(signal: signal)
    }

    /// SIGSTOP: the process is alive but does nothing (a hung machine) until `resume()`.
    package func pause() { child?.signal(SIGSTOP) }
    package func resume() { child?.signal(SIGCONT) }

    /// Waits for the run to end by itself; returns its exit status.
    package func waitForExit(_ what: String, timeout: Duration = .seconds(60)) async throws -> Int32 {
        guard let child else { throw TestFailure("\(name) was never started") }
        return try await child.waitForExit(what, timeout: timeout)
    }

    /// True when the last run was ended by a signal rather than exiting by itself.
    package var lastRunDiedOfSignal: Bool { child?.diedOfSignal ?? false }

    /// A lost disk: the store goes, `config/` (keys and the signer's mark) stays.
    package func wipeStore() throws {
        guard !isRunning else { throw TestFailure("stop \(name) before wiping its store") }
        try FileManager.default.removeItem(atPath: layout.dataDirectory)
    }

    // MARK: Logs

    /// What the current (last) run logged.
    package var output: String { child?.output ?? "" }

    /// The current run's JSON log lines.
    package var log: [LogLine] { LogLine.parse(output) }

    /// Everything this node logged over all its runs.
    package var allLogs: String {
        (1...max(1, runs)).map { run in
            (try? String(contentsOfFile: "\(logDirectory)/\(name)-run\(run).log", encoding: .utf8)) ?? ""
        }.joined(separator: "\n")
    }

    // MARK: RPC

    package func status() async throws -> StatusDocument {
        let r = try await HTTP.get(rpc + "/status")
        guard r.status == 200 else { throw TestFailure("\(name) /status: HTTP \(r.status): \(r.text)") }
        return try JSONDecoder().decode(StatusDocument.self, from: r.body)
    }

    /// `/status` as raw JSON, for fields the test reads by name.
    package func statusObject() async throws -> [String: Any] {
        let r = try await HTTP.get(rpc + "/status")
        guard r.status == 200, let object = try JSONSerialization.jsonObject(with: r.body) as? [String: Any] else {
            throw TestFailure("\(name) /status: HTTP \(r.status): \(r.text)")
        }
        return object
    }

    /// The block at `height`, nil on 404.
    package func block(_ height: UInt64) async throws -> BlockDocument? {
        let r = try await HTTP.get(rpc + "/blocks/\(height)")
        if r.status == 404 { return nil }
        guard r.status == 200 else { throw TestFailure("\(name) /blocks/\(height): HTTP \(r.status): \(r.text)") }
        let block = try JSONDecoder().decode(BlockDocument.self, from: r.body)
        guard block.height == height else { throw TestFailure("\(name) /blocks/\(height) answered height \(block.height)") }
        return block
    }

    /// The header hashes (lowercase hex) of heights `1...height`, fetched a few at a time;
    /// throws if one is missing.
    package func hashes(through height: UInt64) async throws -> [String] {
        guard height > 0 else { return [] }
        var out = [String](repeating: "", count: Int(height))
        let width: UInt64 = 6
        var from: UInt64 = 1
        while from <= height {
            let to = min(height, from + width - 1)
            try await withThrowingTaskGroup(of: (UInt64, BlockDocument?).self) { group in
                for h in from...to { group.addTask { (h, try await self.block(h)) } }
                for try await (h, block) in group {
                    guard let block else { throw TestFailure("\(name) has no block at height \(h)") }
                    out[Int(h - 1)] = block.hash
                }
            }
            from = to + 1
        }
        return out
    }

    /// `POST /tx`; returns the HTTP status.
    package func send(tx: String) async throws -> Int {
        try await HTTP.post(rpc + "/tx", body: Data(tx.utf8)).status
    }

    /// `POST /tx`, which must be accepted (202).
    package func submit(tx: String) async throws {
        let r = try await HTTP.post(rpc + "/tx", body: Data(tx.utf8))
        guard r.status == 202 else { throw TestFailure("\(name) refused tx \(tx): \(r.status) \(r.text)") }
    }

    /// `GET /kv?key=`; nil on 404.
    package func value(forKey key: String) async throws -> String? {
        let escaped = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? key
        let r = try await HTTP.get(rpc + "/kv?key=\(escaped)")
        if r.status == 404 { return nil }
        guard r.status == 200 else { throw TestFailure("\(name) /kv?key=\(key): HTTP \(r.status): \(r.text)") }
        return r.text
    }

    package func readiness() async throws -> (status: Int, text: String) {
        let r = try await HTTP.get(rpc + "/health/ready")
        return (r.status, r.text)
    }

    package func metrics() async throws -> String {
        try await HTTP.get(rpc + "/metrics").text
    }

    // MARK: Conditions

    /// Waits until the status satisfies `condition`; returns that status. Fails at once when
    /// the process exits, naming the last status seen.
    @discardableResult
    package func waitForStatus(_ what: String, timeout: Duration = .seconds(90),
                              _ condition: (StatusDocument) -> Bool) async throws -> StatusDocument {
        var last: StatusDocument?
        do {
            try await waitUntil("\(name): \(what)", timeout: timeout, every: .milliseconds(100)) {
                if let child, !child.isRunning {
                    throw TestFailure("\(name) exited with status \(child.terminationStatus) while waiting for \(what):\n\(child.output.suffix(3000))")
                }
                guard let s = try? await status() else { return false }
                last = s
                return condition(s)
            }
        } catch let failure as TestFailure where last != nil {
            throw TestFailure("\(failure) (last status: \(last!.summary))")
        }
        return last!
    }

    package func waitForPhase(_ phase: String, timeout: Duration = .seconds(90)) async throws {
        try await waitForStatus("phase \(phase)", timeout: timeout) { $0.phase == phase }
    }

    package func waitForHeight(_ height: UInt64, timeout: Duration = .seconds(90)) async throws {
        try await waitForStatus("store height \(height)", timeout: timeout) { $0.heights.store >= height }
    }

    /// In lazy mode (one block per tick while transactions wait): sends one transaction at a
    /// time and waits for the block holding it, so that every block carries a transaction.
    package func produceBlocksWithTxs(_ count: Int, tag: String) async throws {
        for i in 0..<count {
            let before = try await status().heights.store
            try await submit(tx: "\(tag)-\(i)=value-\(i)")
            try await waitForStatus("a block for tx \(i)", timeout: .seconds(30)) { $0.heights.store > before }
        }
    }

    // MARK: The home, read while the node is stopped

    package var genesis: Genesis { get throws { try Genesis.load(path: layout.genesisFile) } }
    package var proposerHex: String { get throws { Hex.encode(try genesis.proposerAddress) } }

    /// The last height this home's key signed, from `config/signer.state`.
    package func signerMark() throws -> UInt64? {
        try SignerHighWaterMark(path: layout.signerStateFile).load()
    }

    /// Header hashes (lowercase hex) of the stopped node's store, heights 1 up to its height.
    package func storedHashes() throws -> [String] { try TestSupport.storedHashes(home: home) }

    /// What the stopped node's store says of KV pruning (SPEC §4 executor state).
    package func kvPruning() throws -> (finalized: UInt64, prunedThrough: UInt64, lowestUndoRecord: UInt64?) {
        let store = try BlockStore.open(path: layout.storeDirectory)
        defer { store.close() }
        func height(_ bytes: some Collection<UInt8>) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }
        let mark = try store.executorValue(forKey: [UInt8(ascii: "p")]).map(height) ?? 0
        let lowest = try store.executorEntries(withPrefix: [UInt8(ascii: "u")], limit: 1).first.map { height($0.key.dropFirst()) }
        return (store.finalizedHeight, mark, lowest)
    }
}

/// Header hashes (lowercase hex) of the store in a stopped node's `home`, heights 1 up to its height.
package func storedHashes(home: String) throws -> [String] {
    let store = try BlockStore.open(path: HomeLayout(home: home).storeDirectory)
    defer { store.close() }
    var out: [String] = []
    var h: UInt64 = 1
    while h <= store.height {
        guard let hash = try store.headerHash(at: h) else { throw TestFailure("store of \(home) lacks \(h)") }
        out.append(Hex.encode(hash))
        h += 1
    }
    return out
}
