import Primitives
import Chain
import Store
import Execution
import Production
import Config
import KeyStore
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `evnode-testkit crash-producer`: the node's real `BlockProducer` on a home made by
/// `evnode init --aggregator`, with a crash point. It produces until the store holds
/// `--blocks` blocks; every block it publishes is appended to `--published` (fsynced) as
/// "<height> <hash>", standing for everything that leaves the process (gossip, the DA
/// submitter). With `--crash STEP --at H` it SIGKILLs itself right after that step of height H
/// (`after-mark`: the mark is durable, the store does not hold the block; `after-commit`: the
/// store holds it, nothing was published).
func crashProducer(_ args: [String]) async {
    guard let home = option("--home", in: args) else { fail("crash-producer needs --home DIR") }
    guard let publishedPath = option("--published", in: args) else { fail("crash-producer needs --published FILE") }
    let blocks = UInt64(intOption("--blocks", in: args, default: 5))
    let crash: (step: ProductionStep, height: UInt64)? = option("--crash", in: args).map { name in
        guard let step = ProductionStep(rawValue: name) else {
            fail("--crash takes \(ProductionStep.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"")
        }
        return (step, UInt64(intOption("--at", in: args, default: 1)))
    }
    let layout = HomeLayout(home: home)
    do {
        let genesis = try Genesis.load(path: layout.genesisFile)
        // The home's signer as the node unlocks it (signer.json with --passphrase-file).
        var config = try ConfigLoader.resolve(home: home, file: [:], flags: [:])
        config.aggregator = true
        config.signer.passphraseFile = option("--passphrase-file", in: args) ?? ""
        guard let loaded = try SignerKeyStore.loadForStart(layout: layout, config: config) else { fail("crash-producer: no signer") }
        let signer = BlockSigner(keyFile: loaded.key)
        let store = try BlockStore.open(path: layout.storeDirectory)
        let executor = KVExecutor(store: store)
        if store.state == nil { try ChainExecution(store: store, executor: executor).initialize(genesis: genesis) }
        let published = open(publishedPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard published >= 0 else { fail("cannot open \(publishedPath): \(FileIO.errnoText())") }
        var producer = BlockProducer(
            store: store, executor: executor, signer: signer, mark: SignerHighWaterMark(path: layout.signerStateFile),
            timing: .init(blockTime: .milliseconds(20)), logger: Logger(label: "crash-producer")) { block in
                var line = Array("\(block.height) \(Hex.encode(block.signedHeader.header.hash))\n".utf8)
                _ = line.withUnsafeMutableBytes { write(published, $0.baseAddress, $0.count) }
                fsync(published)
            }
        producer.onStep = { step, height in
            guard let crash, crash.step == step, crash.height == height else { return }
            FileHandleOut.line("crashing \(step.rawValue) \(height)")
            kill(getpid(), SIGKILL)
        }
        for i in 0..<Int(max(1, blocks)) {
            try executor.submit(Array("k\(i)=v\(i)".utf8))
        }
        let run = Task { [producer] in try await producer.run() }
        while store.height < blocks {
            try await Task.sleep(for: .milliseconds(5))
            if run.isCancelled { break }
        }
        run.cancel()
        do {
            try await run.value
        } catch ProductionError.stopped {
            // Cancelled while it waited for its thread: the stop asked for, not a failure.
        }
        FileHandleOut.line("produced \(store.height)")
        close(published)
        store.close()
    } catch {
        fail("\(error)")
    }
}
