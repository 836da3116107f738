// `evnode-testkit bench-evm`: the EVM catch-up figure of `make bench`. A chain of N blocks with K
// signed EIP-1559 transfers each is built on one py-evm test EL and posted to a local DA; a
// fresh full node with a fresh test EL then syncs it from DA. Figure: the node's blocks/s over
// the same chain's execution rate inside the EL alone (the time py-evm spent building the
// blocks, the EL's /stats), the floor no node in front of that EL can beat.

import Execution
import Primitives
import DAClient
import Submission
import Chain
import Store
import Production
import Config
import EVM
import Foundation
import ProcessKit
import KeyStore
import Logging
#if canImport(Glibc)
import Glibc
#endif

struct EVMBenchResult: Codable {
    var blocks: Int
    var txsPerBlock: Int
    var nodeBlocksPerSecond: Double
    var elBlocksPerSecond: Double
    var elExecSeconds: Double
    var nodeSeconds: Double
    /// node ÷ EL floor; 1.0 means no node overhead.
    var ratio: Double
    var buildSeconds: Double
}

func benchEVM(_ args: [String]) async {
    let blocks = intOption("--blocks", in: args, default: 2_000)
    let txsPerBlock = intOption("--txs", in: args, default: 10)
    let out = option("--out", in: args) ?? "bench-results"
    let root = option("--root", in: args) ?? FileManager.default.currentDirectoryPath
    let python = root + "/.build/venv-evm/bin/python"
    let server = root + "/Tests/EVM/test_el.py"
    let elGenesis = root + "/Tests/EVM/genesis.json"
    let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
    let evnode = option("--evnode", in: args) ?? bin + "/evnode"
    guard FileManager.default.isExecutableFile(atPath: python) else { fail("bench-evm: \(python) missing: run `make deps`") }

    let work = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-bench-evm-\(getpid())").path
    let logs = work + "/logs"
    try? FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
    defer { if !args.contains("--keep") { try? FileManager.default.removeItem(atPath: work) } }
    let secretFile = work + "/jwt.hex"
    try? (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        .write(toFile: secretFile, atomically: true, encoding: .utf8)

    func startEL(_ name: String) -> (ChildProcess, engine: Int, eth: Int) {
        let engine = loopbackPort(), eth = loopbackPort()
        let child = launchChild(name: name, executable: python,
                                 arguments: [server, "--genesis", elGenesis, "--jwt-secret", secretFile,
                                             "--engine-port", "\(engine)", "--eth-port", "\(eth)"], logDirectory: logs)
        let deadline = now() + 60
        while !child.output.contains("test EL ready") {
            if !child.isRunning || now() > deadline { fail("bench-evm: \(name) did not start:\n\(child.output)") }
            usleep(100_000)
        }
        return (child, engine, eth)
    }

    // The aggregator's home, with a genesis start time far enough back for N blocks 1 ms apart.
    let agg = work + "/agg"
    let chainID = "bench-evm"
    let passphraseFile = work + "/passphrase"
    guard FileManager.default.createFile(atPath: passphraseFile, contents: Data("bench-evm\n".utf8)) else {
        fail("bench-evm: cannot write \(passphraseFile)")
    }
    guard run(evnode, ["init", "--home", agg, "--chain-id", chainID, "--aggregator",
                       "--evnode.signer.passphrase_file", passphraseFile]) == 0 else { fail("bench-evm: evnode init failed") }
    let genesisPath = agg + "/config/genesis.json"
    let start = wallNanoseconds() - UInt64(blocks + 5_000) * 1_000_000
    guard var genesisJSON = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: genesisPath)))) as? [String: Any] else {
        fail("bench-evm: cannot read \(genesisPath)")
    }
    genesisJSON["start_time"] = RFC3339.format(unixNanoseconds: start)
    try? JSONSerialization.data(withJSONObject: genesisJSON).write(to: URL(fileURLWithPath: genesisPath))

    let daPort = loopbackPort()
    let da = launchChild(name: "local-da", executable: evnode,
                          arguments: ["local-da", "--home", work + "/da", "--listen", "127.0.0.1:\(daPort)", "--block-time", "100ms"],
                          logDirectory: logs)
    defer { da.terminate() }

    // Transfers, signed in Python with eth-account (one sender, consecutive nonces).
    FileHandleOut.line("bench-evm: signing \(blocks * txsPerBlock) transfers")
    let signed = Process()
    signed.executableURL = URL(fileURLWithPath: python)
    signed.arguments = [root + "/Tests/EVM/sign_transfers.py", "--key", "cece4f25ac74deb1468965160c7185e07dff413f23fcadb611b05ca37ab0a52e",
                        "--to", "0x944fDcD1c868E3cC566C78023CcB38A32cDA836E", "--count", "\(blocks * txsPerBlock)"]
    let pipe = Pipe()
    signed.standardOutput = pipe
    try? signed.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    signed.waitUntilExit()
    let txs = text.split(separator: "\n").map { EthHex.decodeData("0x" + $0) ?? [] }
    guard txs.count == blocks * txsPerBlock else { fail("bench-evm: signing produced \(txs.count) txs") }

    // Build the chain through the EVM executor on EL 1, then post it with the DA submitter.
    let (el1, engine1, eth1) = startEL("el-build")
    var flags: [String: RawSetting] = [SettingKey.daAddress.name: RawSetting(value: "http://127.0.0.1:\(daPort)", source: "bench")]
    flags[SettingKey.executionKind.name] = RawSetting(value: "kv", source: "bench")
    flags[SettingKey.signerPassphraseFile.name] = RawSetting(value: passphraseFile, source: "bench")
    let setup: NodeSetup
    do { setup = try NodeSetup.load(home: agg, flags: flags) } catch { fail("bench-evm: \(error)") }
    guard let key = setup.signer else { fail("bench-evm: no signer key") }
    let signer = BlockSigner(keyFile: key)
    let built = now()
    let store: BlockStore
    do { store = try BlockStore.open(path: work + "/chain-store") } catch { fail("bench-evm: \(error)") }
    do {
        let rpc = try EngineRPCClient(engineURL: "http://127.0.0.1:\(engine1)/", ethURL: "http://127.0.0.1:\(eth1)/",
                                      jwt: EngineJWT(secret: try EngineJWT.readSecret(path: secretFile)))
        let executor = EVMExecutor(rpc: rpc, store: store, options: .init(), logger: Logger(label: "bench.evm"))
        // The EL is awaited, the store written on a lane (as the producer does for an EL).
        try await BlockingLane.with(name: "bench-evm-build", threads: 1) { lane in
            var state = try await ChainExecution(store: store, executor: executor).initialize(genesis: setup.genesis, on: lane)
            let builder = BlockBuilder(signer: signer, executor: executor)
            for i in 0..<blocks {
                let h = state.nextHeight
                let draft = try builder.draft(on: state, txs: Array(txs[(i * txsPerBlock)..<((i + 1) * txsPerBlock)]),
                                              time: setup.genesis.startTimeNanoseconds + (h - 1) * 1_000_000)
                let result = try await executor.executeTxs(draft.data.txs, height: draft.height, time: draft.time,
                                                           previousRoot: state.appHash)
                let commit = try builder.finish(draft, result: result)
                try await lane.run { () throws(StoreError) in try store.commit(commit, sync: false) }
                state = commit.state
            }
        }
    } catch {
        fail("bench-evm: building the chain: \(error)")
    }
    let buildSeconds = now() - built
    el1.terminate(timeout: .seconds(3))
    FileHandleOut.line("bench-evm: built \(blocks) blocks in \(fixed(buildSeconds, 1)) s; posting to DA")
    do {
        let client = try CelestiaDAClient(options: DAClientOptions(config: setup.config.da))
        let submitter = DASubmitter(client: client, store: store, executor: nil, signer: signer,
                                    options: SubmitterOptions(config: setup.config.da, chainID: chainID))
        _ = try await submitter.submitPending()
        await client.shutdown()
    } catch {
        fail("bench-evm: posting: \(error)")
    }
    store.close()

    // A fresh full node with a fresh EL syncs the chain from DA.
    let (el2, engine2, eth2) = startEL("el-sync")
    defer { el2.terminate(timeout: .seconds(3)) }
    let full = work + "/full"
    guard run(evnode, ["init", "--home", full, "--chain-id", chainID]) == 0 else { fail("bench-evm: evnode init failed") }
    try? FileManager.default.removeItem(atPath: full + "/config/genesis.json")
    try? FileManager.default.copyItem(atPath: genesisPath, toPath: full + "/config/genesis.json")
    let rpcPort = loopbackPort()
    let node = launchChild(name: "full", executable: evnode, arguments: [
        "start", "--home", full, "--da.address", "http://127.0.0.1:\(daPort)", "--da.block-time", "100ms",
        "--p2p.listen", "127.0.0.1:\(loopbackPort())", "--rpc.address", "127.0.0.1:\(rpcPort)",
        "--execution", "evm", "--evm.engine-url", "http://127.0.0.1:\(engine2)", "--evm.eth-url", "http://127.0.0.1:\(eth2)",
        "--evm.jwt-secret-file", secretFile], logDirectory: logs)
    defer { node.terminate() }
    let http = LoopbackHTTPConnection(port: rpcPort)
    func storeHeight() -> UInt64 {
        guard let reply = try? http.get("/status"), reply.status == 200,
              let status = try? JSONDecoder().decode(StatusView.self, from: Data(reply.body)) else { return 0 }
        return status.heights.store
    }
    // From the node's start (it applies in batches: its height jumps, so no later start is seen).
    let deadline = now() + 3_600
    while true {
        let h = storeHeight()
        if h >= UInt64(blocks) { break }
        if !node.isRunning || now() > deadline { fail("bench-evm: the full node stopped at \(h):\n\(node.output.suffix(2000))") }
        usleep(50_000)
    }
    let nodeSeconds = Double(wallNanoseconds() - node.startedAt) / 1e9
    let ethHTTP = LoopbackHTTPConnection(port: eth2)
    guard let stats = try? ethHTTP.get("/stats"),
          let doc = (try? JSONSerialization.jsonObject(with: Data(stats.body))) as? [String: Any],
          let exec = doc["exec_seconds"] as? Double, let built2 = doc["blocks_built"] as? Int, built2 > 0 else {
        fail("bench-evm: cannot read the EL's /stats")
    }
    let nodeRate = Double(blocks) / max(nodeSeconds, 1e-9)
    let elRate = Double(built2) / max(exec, 1e-9)
    let result = EVMBenchResult(blocks: blocks, txsPerBlock: txsPerBlock, nodeBlocksPerSecond: nodeRate,
                                elBlocksPerSecond: elRate, elExecSeconds: exec, nodeSeconds: nodeSeconds,
                                ratio: nodeRate / elRate, buildSeconds: buildSeconds)
    try? FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    if let data = try? encoder.encode(result) { try? data.write(to: URL(fileURLWithPath: out + "/bench-evm.json")) }
    FileHandleOut.line("""
        figure                                   value            baseline (EL alone)   ratio
        EVM catch-up, \(blocks) blocks × \(txsPerBlock) transfers   \(fixed(nodeRate, 1)) blocks/s    \(fixed(elRate, 1)) blocks/s        \(fixed(nodeRate / elRate, 3))
        """)
}

/// Runs a short command to completion; its exit status.
private func run(_ executable: String, _ arguments: [String]) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return -1 }
    p.waitUntilExit()
    return p.terminationStatus
}
