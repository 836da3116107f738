import Block
@testable import Config
import DA
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import P2PSync
import Testing

// Support for the catchup-then-aggregate tests (CatchupTests.swift): real `evnode local-da` and
// `evnode start` processes on loopback ports they pick themselves (port 0, read back from their
// output), their HTTP API, the local DA's content, and stores read back after a process ended.

struct CatchupTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `waitUntil` with the catchup suite's longer default deadline (catchups on a busy 2-core
/// machine take a while; the wait ends as soon as the condition holds).
func catchupEventually(_ what: String, timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(50),
                       _ condition: () async throws -> Bool) async throws {
    try await waitUntil(what, timeout: timeout, every: interval, condition)
}

// MARK: JSON log lines

/// One line of an `evnode` JSON log (`--log.format json`): message and metadata as strings.
struct CatchupLogLine {
    let fields: [String: String]
    var message: String { fields["msg"] ?? "" }
    subscript(key: String) -> String? { fields[key] }

    static func parse(_ text: String) -> [CatchupLogLine] {
        text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{"),
                  let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            var fields: [String: String] = [:]
            for (k, v) in object { fields[k] = "\(v)" }
            return CatchupLogLine(fields: fields)
        }
    }
}

extension ChildProcess {
    var catchupLog: [CatchupLogLine] { CatchupLogLine.parse(output) }

    /// Waits for the process to end by itself; returns its exit status.
    func catchupWaitForExit(_ what: String, timeout: Duration = .seconds(60)) async throws -> Int32 {
        try await catchupEventually(what, timeout: timeout) { !isRunning }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

// MARK: HTTP

enum CatchupHTTP {
    static let session: URLSession = {
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 10
        return URLSession(configuration: config)
    }()

    static func request(_ method: String, _ url: String, body: Data? = nil) async throws -> (status: Int, body: Data) {
        guard let u = URL(string: url) else { throw CatchupTestError("bad URL \(url)") }
        var request = URLRequest(url: u)
        request.httpMethod = method
        request.httpBody = body
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw CatchupTestError("no HTTP response from \(url)") }
        return (http.statusCode, data)
    }
}

/// `/status` as the tests read it (SPEC §10).
struct CatchupStatus: Decodable {
    struct Heights: Decodable {
        var store: UInt64
        var finalized: UInt64
        var da_head: UInt64
        var p2p_max: UInt64
    }
    struct Catchup: Decodable {
        var active: Bool
        var target: UInt64
        var blocks_per_second: Double
        var eta_seconds: Double?
        var elapsed_seconds: Double
        var da_head_reached: Bool
        var waiting_to_apply: Int
        var blocked_by: String?
    }
    var mode: String
    var phase: String
    var reason: String?
    var heights: Heights
    var catchup: Catchup
    var peers: Int
    var proposer: String
}

/// `/blocks/{h}` as the tests read it.
struct CatchupBlockView: Decodable, Equatable {
    var height: UInt64
    var hash: String
    var proposer: String
    var txs: [String]
}

// MARK: Processes

/// A running `evnode local-da` that picked its own port (or was given one) and printed it.
final class CatchupDA {
    let child: ChildProcess
    let home: String
    let address: String
    var url: String { "http://\(address)" }

    private init(child: ChildProcess, home: String, address: String) {
        self.child = child
        self.home = home
        self.address = address
    }

    static func start(name: String, home: String, logDirectory: String, listen: String = "127.0.0.1:0",
                      arguments: [String] = []) async throws -> CatchupDA {
        let child = try ChildProcess(name: name, executable: BuiltProducts.evnode,
                                     arguments: ["local-da", "--home", home, "--listen", listen, "--block-time", "500ms"]
                                         + arguments,
                                     logDirectory: logDirectory)
        var address: String?
        try await catchupEventually("\(name) to print its address", timeout: .seconds(30)) {
            if let line = child.output.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }) {
                address = String(line.dropFirst("listening on ".count))
                return true
            }
            if !child.isRunning { throw CatchupTestError("\(name) exited:\n\(child.output)") }
            return false
        }
        return CatchupDA(child: child, home: home, address: address!)
    }

    @discardableResult
    func stop() async -> Int32 { await child.stop() }
}

/// A running `evnode start` with its RPC and P2P on ports it picked itself (read from its log).
final class CatchupNode {
    let name: String
    let home: String
    let child: ChildProcess
    /// `127.0.0.1:port` of the RPC server and of the P2P listener.
    let rpc: String
    let p2p: String

    private init(name: String, home: String, child: ChildProcess, rpc: String, p2p: String) {
        self.name = name
        self.home = home
        self.child = child
        self.rpc = rpc
        self.p2p = p2p
    }

    /// Starts the node and waits until its RPC and P2P listen. `arguments` come after the
    /// test defaults (loopback port 0 for RPC and P2P, JSON logs), so they may override them.
    static func start(name: String, home: String, logDirectory: String, arguments: [String]) async throws -> CatchupNode {
        let child = try launch(name: name, home: home, logDirectory: logDirectory, arguments: arguments)
        var rpc: String?
        var p2p: String?
        try await catchupEventually("\(name) to listen on RPC and P2P", timeout: .seconds(30)) {
            for line in child.catchupLog {
                if line.message == "RPC listening", let a = line["address"] { rpc = String(a.dropFirst("http://".count)) }
                if line.message == "P2P listening", let a = line["address"] { p2p = a }
            }
            if rpc != nil && p2p != nil { return true }
            if !child.isRunning { throw CatchupTestError("\(name) exited before listening:\n\(child.output)") }
            return false
        }
        return CatchupNode(name: name, home: home, child: child, rpc: rpc!, p2p: p2p!)
    }

    /// Starts the node without waiting for anything (for runs expected to end by themselves).
    static func launch(name: String, home: String, logDirectory: String, arguments: [String]) throws -> ChildProcess {
        try ChildProcess(name: name, executable: BuiltProducts.evnode,
                         arguments: ["start", "--home", home, "--rpc.address", "127.0.0.1:0",
                                     "--p2p.listen", "127.0.0.1:0", "--log.format", "json"] + arguments,
                         logDirectory: logDirectory)
    }

    var log: [CatchupLogLine] { child.catchupLog }

    func status() async throws -> CatchupStatus {
        let (code, body) = try await CatchupHTTP.request("GET", "http://\(rpc)/status")
        guard code == 200 else { throw CatchupTestError("\(name) /status answered \(code)") }
        return try JSONDecoder().decode(CatchupStatus.self, from: body)
    }

    func block(_ height: UInt64) async throws -> CatchupBlockView? {
        let (code, body) = try await CatchupHTTP.request("GET", "http://\(rpc)/blocks/\(height)")
        if code == 404 { return nil }
        guard code == 200 else { throw CatchupTestError("\(name) /blocks/\(height) answered \(code)") }
        return try JSONDecoder().decode(CatchupBlockView.self, from: body)
    }

    /// Header hashes (lowercase hex) of heights `1...top`, failing if one is missing.
    func hashes(through top: UInt64) async throws -> [String] {
        var out: [String] = []
        guard top >= 1 else { return out }
        for h in UInt64(1)...top {
            guard let b = try await block(h) else { throw CatchupTestError("\(name) has no block \(h)") }
            out.append(b.hash)
        }
        return out
    }

    func readiness() async throws -> (status: Int, text: String) {
        let (code, body) = try await CatchupHTTP.request("GET", "http://\(rpc)/health/ready")
        return (code, String(decoding: body, as: UTF8.self))
    }

    func metrics() async throws -> String {
        String(decoding: try await CatchupHTTP.request("GET", "http://\(rpc)/metrics").body, as: UTF8.self)
    }

    func submit(tx: String) async throws {
        let (code, body) = try await CatchupHTTP.request("POST", "http://\(rpc)/tx", body: Data(tx.utf8))
        guard code == 202 else { throw CatchupTestError("\(name) refused tx \(tx): \(code) \(String(decoding: body, as: UTF8.self))") }
    }

    /// In lazy mode (one block per tick while transactions wait): sends one transaction at a
    /// time and waits for the block holding it, so that every block carries a transaction.
    func produceBlocksWithTxs(_ count: Int, tag: String) async throws {
        for i in 0..<count {
            let before = try await status().heights.store
            try await submit(tx: "\(tag)-\(i)=value-\(i)")
            try await catchupEventually("\(name) to make a block for tx \(i)", timeout: .seconds(30), every: .milliseconds(20)) {
                try await status().heights.store > before
            }
        }
    }

    func waitForPhase(_ phase: String, timeout: Duration = .seconds(60)) async throws {
        try await catchupEventually("\(name) phase \(phase)", timeout: timeout) {
            if !child.isRunning { throw CatchupTestError("\(name) exited:\n\(child.output.suffix(4000))") }
            return (try? await status().phase) == phase
        }
    }

    func waitForHeight(_ height: UInt64, timeout: Duration = .seconds(60)) async throws {
        try await catchupEventually("\(name) store height \(height)", timeout: timeout) {
            if !child.isRunning { throw CatchupTestError("\(name) exited:\n\(child.output.suffix(4000))") }
            return ((try? await status().heights.store) ?? 0) >= height
        }
    }

    @discardableResult
    func stop(signal: Int32 = SIGTERM) async -> Int32 { await child.stop(signal: signal) }
}

// MARK: Homes, stores, DA content

/// A chain's homes in one temporary directory: the aggregator's and, optionally, a full node's
/// with the same genesis.
struct CatchupChain {
    let dir: TempDirectory
    let chainID: String
    let aggregatorHome: String
    let fullNodeHome: String

    init(_ label: String) throws {
        dir = TempDirectory("evnode-catchup-\(label)")
        chainID = "catchup-\(label)"
        aggregatorHome = dir.path + "/aggregator"
        fullNodeHome = dir.path + "/fullnode"
        let a = try runCommand(BuiltProducts.evnode, ["init", "--home", aggregatorHome, "--chain-id", chainID, "--aggregator"])
        guard a.status == 0 else { throw CatchupTestError("init failed: \(a.stderr)") }
        let f = try runCommand(BuiltProducts.evnode, ["init", "--home", fullNodeHome, "--chain-id", chainID])
        guard f.status == 0 else { throw CatchupTestError("init failed: \(f.stderr)") }
        let genesis = HomeLayout(home: aggregatorHome).genesisFile
        try FileManager.default.removeItem(atPath: HomeLayout(home: fullNodeHome).genesisFile)
        try FileManager.default.copyItem(atPath: genesis, toPath: HomeLayout(home: fullNodeHome).genesisFile)
    }

    var logs: String { dir.path }
    var genesis: Genesis { get throws { try Genesis.load(path: HomeLayout(home: aggregatorHome).genesisFile) } }
    var proposerHex: String { get throws { Hex.encode(try genesis.proposerAddress) } }
    var signerStateFile: String { HomeLayout(home: aggregatorHome).signerStateFile }

    /// The last height the aggregator's key signed, from `config/signer.state`.
    func signerMark() throws -> UInt64? {
        try SignerHighWaterMark(path: signerStateFile).load()
    }

    /// A lost disk: the store goes, `config/` (keys and the signer's mark) stays.
    func wipeAggregatorStore() throws {
        try FileManager.default.removeItem(atPath: HomeLayout(home: aggregatorHome).dataDirectory)
    }

    /// Header hashes (lowercase hex) of a stopped node's store, heights 1 up to its height.
    /// What a stopped node's store says of KV pruning (SPEC §4 executor state).
    static func kvPruning(home: String) throws -> (finalized: UInt64, prunedThrough: UInt64, lowestUndoRecord: UInt64?) {
        let store = try BlockStore.open(path: HomeLayout(home: home).storeDirectory)
        defer { store.close() }
        func height(_ bytes: some Collection<UInt8>) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }
        let mark = try store.executorValue(forKey: [UInt8(ascii: "p")]).map(height) ?? 0
        let lowest = try store.executorEntries(withPrefix: [UInt8(ascii: "u")], limit: 1).first.map { height($0.key.dropFirst()) }
        return (store.finalizedHeight, mark, lowest)
    }

    static func storedHashes(home: String) throws -> [String] {
        let store = try BlockStore.open(path: HomeLayout(home: home).storeDirectory)
        defer { store.close() }
        var out: [String] = []
        var h: UInt64 = 1
        while h <= store.height {
            guard let hash = try store.headerHash(at: h) else { throw CatchupTestError("store of \(home) lacks \(h)") }
            out.append(Hex.encode(hash))
            h += 1
        }
        return out
    }

    /// Every header blob of this chain on the DA layer: for each rollup height, the header
    /// hashes (lowercase hex) in DA order, one entry per blob.
    func headersOnDA(_ da: CatchupDA) async throws -> [UInt64: [String]] {
        let client = try CelestiaDAClient(options: DAClientOptions(url: da.url))
        let namespace = DANamespace(name: chainID + "-headers")
        let proposer = try genesis.proposerAddress
        var out: [UInt64: [String]] = [:]
        let head = try await client.networkHead().height
        var height: UInt64 = 1
        while height <= head {
            let blobs: [DABlob]
            do {
                blobs = try await client.getAll(height: height, namespaces: [namespace])
            } catch {
                guard case .notFound = error else { throw error }
                blobs = []   // an empty height is an answer, not a fault
            }
            for blob in blobs {
                // Data blobs share the namespace; only header envelopes of this chain count.
                guard let envelope = try? DAHeaderEnvelope(decoding: blob.data),
                      envelope.signedHeader.header.chainID == chainID,
                      envelope.signedHeader.header.proposerAddress == proposer else { continue }
                let header = envelope.signedHeader.header
                out[header.height, default: []].append(Hex.encode(header.hash))
            }
            height += 1
        }
        await client.shutdown()
        return out
    }
}

// MARK: Peers that claim heights they cannot serve

/// Blocks the genesis proposer signed beyond what DA holds, as a peer that got them by gossip
/// would hold them: signed with the aggregator's own key (read from its `config/`), chained to
/// nothing in particular, data empty. Enough to prove a height; never applied by the node.
func catchupSignedBlocks(chain: CatchupChain, heights: ClosedRange<UInt64>) throws -> [P2PBlock] {
    let genesis = try chain.genesis
    let signer = BlockSigner(keyFile: try KeyFile.load(path: HomeLayout(home: chain.aggregatorHome).signerKeyFile))
    return try heights.map { h in
        let header = Header(height: h, time: genesis.startTimeNanoseconds + h * 1_000_000_000,
                            lastHeaderHash: Array(repeating: 0xee, count: 32), dataHash: BlockData.emptyDataHash,
                            appHash: Array(repeating: 0, count: 32), proposerAddress: signer.address,
                            chainID: genesis.chainID)
        let signed = try signer.sign(header: header)
        let data = BlockData(metadata: Metadata(chainID: genesis.chainID, height: h, time: header.time, lastDataHash: []),
                             txs: [])
        return P2PBlock(signedHeader: signed, data: data)
    }
}

/// What a peer serves when it claims a height whose blocks it will not give: its head is
/// `head` at `announced` (its proof, SPEC §6; nil with an empty chain), every other range
/// request gets nothing (NOT_FOUND).
struct CatchupUnservableSource: BlockSource {
    let announced: UInt64
    let head: P2PBlock?
    func currentHeight() -> UInt64 { announced }
    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        guard let head, from == announced, count == 1 else { return [] }
        return [head]
    }
}

/// A real P2P node (the project's `P2PService`, libp2p over TCP) whose head is `head` at
/// `height` — with a block the proposer signed, a proven height it cannot serve — and which
/// answers every other range request with nothing. Returns it and its multiaddr.
func catchupStartUnservablePeer(chain: CatchupChain, announcing height: UInt64,
                                head: P2PBlock?) async throws -> (P2PService, String) {
    let genesis = try chain.genesis
    let service = P2PService(config: P2PConfig(listen: HostPort(host: "127.0.0.1", port: 0), peers: []),
                             nodeKey: KeyFile.generate(), chainID: genesis.chainID,
                             source: CatchupUnservableSource(announced: height, head: head),
                             validator: SignedBlockValidator(genesis: genesis),
                             provenHeights: ProvenPeerHeights(validator: BlockValidator(genesis: genesis)))
    let address = try await service.start()
    return (service, "/ip4/127.0.0.1/tcp/\(address.port ?? 0)/p2p/\(service.localID)")
}

/// A liar: its head answer claims `height` with a header that names the genesis proposer but is
/// signed by another key — an unproven claim (SPEC §6) — and it serves nothing.
func catchupStartLiar(chain: CatchupChain, claiming height: UInt64) async throws -> (P2PService, String) {
    let genesis = try chain.genesis
    let impostor = BlockSigner(keyFile: KeyFile.generate())
    let header = Header(height: height, time: genesis.startTimeNanoseconds + 1_000_000_000,
                        lastHeaderHash: [UInt8](repeating: 1, count: 32), dataHash: BlockData(metadata: nil, txs: []).dataHash,
                        appHash: [UInt8](repeating: 0, count: 32), proposerAddress: genesis.proposerAddress,
                        chainID: genesis.chainID)
    var signed = try impostor.sign(header: header)
    // The signer claims to be the proposer; only the signature gives it away.
    signed = SignedHeader(header: signed.header, signature: signed.signature,
                          signer: Signer(address: genesis.proposerAddress, pubKey: signed.signer.pubKey))
    let head = P2PBlock(signedHeader: signed, data: BlockData(metadata: nil, txs: []))
    let service = P2PService(config: P2PConfig(listen: HostPort(host: "127.0.0.1", port: 0), peers: []),
                             nodeKey: KeyFile.generate(), chainID: genesis.chainID,
                             source: CatchupUnservableSource(announced: height, head: head),
                             validator: SignedBlockValidator(genesis: genesis),
                             provenHeights: ProvenPeerHeights(validator: BlockValidator(genesis: genesis)))
    let address = try await service.start()
    return (service, "/ip4/127.0.0.1/tcp/\(address.port ?? 0)/p2p/\(service.localID)")
}
