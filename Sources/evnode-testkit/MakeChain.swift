// `evnode-testkit make-chain`: fills a DA layer with a chain signed by a home's signer key, the
// way its aggregator would have posted it. The benchmark's catch-up and recovery runs sync it.

import DAClient
import Submission
import Chain
import Store
import Execution
import Production
import Config
import Foundation
import KeyStore

/// The transactions of the benchmark chain: `k<NNNNNN>=v<height>.<index>` over a key space of
/// 100,000 keys, so the KV state grows and keys get overwritten as in a real workload.
enum BenchTransactions {
    static let keySpace: UInt64 = 100_000

    static func txs(height: UInt64, count: Int) -> [[UInt8]] {
        (0..<count).map { i in
            let key = (height &* UInt64(count) &+ UInt64(i)) &* 7919 % keySpace
            let digits = String(key)
            return Array("k\(String(repeating: "0", count: 6 - digits.count))\(digits)=v\(height).\(i)".utf8)
        }
    }
}

struct ChainMaker {
    let setup: NodeSetup
    let blocks: Int
    let txsPerBlock: Int
    /// Block n carries time genesis start + (n - 1) × interval.
    let intervalNanoseconds: UInt64
    let storePath: String

    /// Builds the chain into a throwaway store (sign, execute, commit in batches), then posts it
    /// with the node's own DA submitter, then records the signer's high-water mark as the
    /// aggregator that made the chain would have. Prints one `chain …` summary line.
    func run() async {
        guard let key = setup.signer else { fail("make-chain: \(setup.layout.signerKeyFile) is missing") }
        let signer = BlockSigner(keyFile: key)
        let genesis = setup.genesis
        guard signer.address == genesis.proposerAddress else {
            fail("make-chain: the signer key of \(setup.layout.home) is not the genesis proposer")
        }
        let lastTime = genesis.startTimeNanoseconds + UInt64(max(blocks - 1, 0)) * intervalNanoseconds
        guard lastTime <= wallNanoseconds() else {
            fail("make-chain: block \(blocks) would be in the future: the genesis start time must be at least \(blocks) × \(intervalNanoseconds) ns ago")
        }

        let store: BlockStore
        do {
            store = try BlockStore.open(path: storePath)
        } catch {
            fail("make-chain: \(error)")
        }
        let built = now()
        do {
            let executor = KVExecutor(store: store)
            var state = try ChainExecution(store: store, executor: executor).initialize(genesis: genesis)
            guard state.lastBlockHeight == 0 else { fail("make-chain: \(storePath) already holds blocks") }
            let builder = BlockBuilder(signer: signer, executor: executor)
            var pending: [BlockCommit] = []
            pending.reserveCapacity(1000)
            for _ in 0..<blocks {
                let h = state.nextHeight
                let commit = try builder.build(on: state, txs: BenchTransactions.txs(height: h, count: txsPerBlock),
                                               time: genesis.startTimeNanoseconds + (h - 1) * intervalNanoseconds)
                pending.append(commit)
                state = commit.state
                if pending.count == 1000 {
                    try store.commit(pending, sync: false)
                    pending.removeAll(keepingCapacity: true)
                }
            }
            try store.commit(pending, sync: true)
        } catch {
            fail("make-chain: building the chain: \(error)")
        }
        let buildSeconds = now() - built
        FileHandleOut.line("built \(blocks) blocks of \(txsPerBlock) txs in \(fixed(buildSeconds, 2)) s")

        let posted = now()
        let client: CelestiaDAClient
        do {
            client = try CelestiaDAClient(options: DAClientOptions(config: setup.config.da))
        } catch {
            fail("make-chain: \(error)")
        }
        var firstDAHeight: UInt64 = 0
        var lastDAHeight: UInt64 = 0
        var submissions = 0
        do {
            firstDAHeight = try await client.networkHead().height + 1
            let submitter = DASubmitter(client: client, store: store, executor: nil, signer: signer,
                                        options: SubmitterOptions(config: setup.config.da, chainID: genesis.chainID))
            submissions = try await submitter.submitPending()
            lastDAHeight = submitter.status.lastDAHeight ?? 0
        } catch {
            await client.shutdown()
            fail("make-chain: posting to DA at \(setup.config.da.address.url): \(error)")
        }
        await client.shutdown()
        let postSeconds = now() - posted
        store.close()
        do {
            try SignerHighWaterMark(path: setup.layout.signerStateFile).record(UInt64(blocks))
        } catch {
            fail("make-chain: \(error)")
        }
        FileHandleOut.line("posted in \(fixed(postSeconds, 2)) s: \(submissions) submissions, DA heights \(firstDAHeight)…\(lastDAHeight)")
        FileHandleOut.line("chain blocks=\(blocks) txs=\(txsPerBlock) build_s=\(fixed(buildSeconds, 3)) post_s=\(fixed(postSeconds, 3)) submissions=\(submissions) da_first=\(firstDAHeight) da_last=\(lastDAHeight)")
    }
}

func makeChain(_ args: [String]) async {
    guard let home = option("--home", in: args) else { fail("make-chain needs --home DIR (an aggregator home)") }
    let blocks = intOption("--blocks", in: args, default: 100_000)
    let txs = intOption("--txs", in: args, default: 10)
    let intervalMicros = intOption("--interval-us", in: args, default: 1000)
    var flags: [String: RawSetting] = [:]
    if let da = option("--da", in: args) { flags[SettingKey.daAddress.name] = RawSetting(value: da, source: "--da") }
    if let size = option("--max-blob-size", in: args) { flags[SettingKey.daMaxBlobSize.name] = RawSetting(value: size, source: "--max-blob-size") }
    // A home with signer.json: its passphrase file (a full node's setup unlocks it when given one).
    if let file = option("--passphrase-file", in: args) { flags[SettingKey.signerPassphraseFile.name] = RawSetting(value: file, source: "--passphrase-file") }
    let setup: NodeSetup
    do {
        setup = try NodeSetup.load(home: home, flags: flags)
    } catch {
        fail("make-chain: \(error)")
    }
    let temporary = option("--store", in: args) == nil
    let storePath = option("--store", in: args)
        ?? FileManager.default.temporaryDirectory.appendingPathComponent("evnode-make-chain-\(getpid())").path
    await ChainMaker(setup: setup, blocks: blocks, txsPerBlock: txs,
                     intervalNanoseconds: UInt64(intervalMicros) * 1000, storePath: storePath).run()
    if temporary { try? FileManager.default.removeItem(atPath: storePath) }
}
