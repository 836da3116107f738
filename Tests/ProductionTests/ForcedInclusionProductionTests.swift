import DAClient
import Sync
import Chain
import Production
import Config
import Foundation
import Logging
import ProcessKit
import Testing
import TestSupport

/// A Swift aggregator includes forced transactions read from a real local DA (ev-node's numbers:
/// da_start_height 10, epoch 2), in order, filtered, timed by the formula, and resumes from the
/// persisted checkpoint after a restart without taking any twice.
@Suite struct ForcedInclusionProductionTests {
    let forced = namespace("fi")
    let other = namespace("t-headers")
    let epochs = ForcedInclusionEpochs(startHeight: 10, size: 2)
    let logger = Logger(label: "test.forced")

    func advance(_ client: CelestiaDAClient, to height: UInt64) async throws {
        while try await client.networkHead().height < height {
            _ = try await client.submit([DABlob(namespace: other, data: bytes("filler"))])
        }
    }

    func producer(_ chain: TestChain, _ queue: ForcedInclusionQueue) -> BlockProducer {
        BlockProducer(store: chain.store, executor: chain.executor, signer: chain.signer,
                      mark: SignerHighWaterMark(path: chain.dir.sub("signer.state")),
                      timing: .init(blockTime: .milliseconds(10)), forcedInclusion: queue, logger: logger) { _ in }
    }

    func queue(_ chain: TestChain, _ client: CelestiaDAClient) throws -> ForcedInclusionQueue {
        ForcedInclusionQueue(source: ForcedInclusionRetriever(client: client, namespace: forced, epochs: epochs),
                             epochs: epochs, checkpoint: try chain.store.forcedInclusionCheckpoint(),
                             startTime: chain.genesis.startTimeNanoseconds, logger: logger)
    }

    /// Lazy mode: an epoch with a forced tx that ended on DA wakes a lazy producer whose mempool
    /// is empty and whose lazy interval is far off (ev-node would wait for either).
    @Test func aLazyProducerMakesABlockForDueForcedTxsWithoutAMempoolTx() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h"]) { _, client, _ in
            let chain = try TestChain()
            try await advance(client, to: 9)
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("lazy=1"))]) == 10)
            let lazy = BlockProducer(store: chain.store, executor: chain.executor, signer: chain.signer,
                                     mark: SignerHighWaterMark(path: chain.dir.sub("signer.state")),
                                     timing: .init(blockTime: .milliseconds(50), lazy: true, lazyInterval: .seconds(600)),
                                     forcedInclusion: try queue(chain, client), logger: logger) { _ in }
            let running = Task { try await lazy.run() }
            // The epoch (DA 10…11) has not ended: nothing to do, no block.
            try await Task.sleep(for: .milliseconds(500))
            #expect(chain.store.height == 0)
            try await advance(client, to: 11)
            try await waitUntil("a block for the forced tx", timeout: .seconds(15)) { chain.store.height >= 1 }
            running.cancel()
            _ = await running.result
            #expect(try chain.store.block(at: 1)?.data.txs == [bytes("lazy=1")])
            #expect(chain.store.height == 1, "one block, none without transactions")
        }
    }

    @Test func forcedTxAtDA10IsIncludedFirstFilteredTimedAndNeverTwice() async throws {
        try await withLocalDA { _, client, _ in
            let chain = try TestChain()
            try await advance(client, to: 9)
            // DA 10: a good forced tx, a garbage one (no `=`, ev-node's testapp rule) and a blank key.
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("fk=1")),
                                             DABlob(namespace: forced, data: bytes("garbage")),
                                             DABlob(namespace: forced, data: bytes(" =blank"))]) == 10)
            let q1 = try queue(chain, client)
            let p1 = producer(chain, q1)
            // Epoch 1 (DA 10…11) has not ended: block 1 takes only the mempool, at wall-clock time.
            try await q1.refresh()
            try chain.executor.submit(bytes("m=1"))
            let b1 = try p1.produceOne()
            #expect(b1.data.txs == [bytes("m=1")])
            #expect(try chain.store.forcedInclusionCheckpoint() == ForcedInclusionCheckpoint(daHeight: 10, txIndex: 0))

            try await advance(client, to: 11)
            let end = try await client.header(height: 11).timeNanoseconds
            try await q1.refresh()
            try chain.executor.submit(bytes("m=2"))
            let b2 = try p1.produceOne()
            // Forced first, garbage and the blank key removed (consumed), then the mempool.
            #expect(b2.data.txs == [bytes("fk=1"), bytes("m=2")])
            // N = 3 forced txs in the epoch, k = 3 consumed: time = end − 3 ms + 3 ms, unless the
            // parent's (wall-clock) time is later, which the chain's time rule keeps.
            let formula = ForcedInclusionRules.blockTime(epochEndTime: end, epochTxCount: 3, consumed: 3)
            #expect(formula == end)
            #expect(b2.signedHeader.header.time == max(formula, b1.signedHeader.header.time))
            #expect(try chain.store.forcedInclusionCheckpoint() == ForcedInclusionCheckpoint(daHeight: 12, txIndex: 0))
            #expect(try chain.value("fk") == "1")

            // Restart: a new queue from the store's checkpoint does not take epoch 1 again.
            try chain.reopen()
            let q2 = try queue(chain, client)
            let p2 = producer(chain, q2)
            try await advance(client, to: 13)
            try await q2.refresh()
            let b3 = try p2.produceOne()
            #expect(b3.data.txs.isEmpty)
            #expect(try chain.store.forcedInclusionCheckpoint() == ForcedInclusionCheckpoint(daHeight: 14, txIndex: 0))
            for h in UInt64(1)...3 {
                let txs = try #require(try chain.store.block(at: h)).data.txs
                #expect(txs.filter { $0 == bytes("fk=1") }.count == (h == 2 ? 1 : 0))
            }
        }
    }

    @Test func postponedForcedTxsCarryOverInOrderAndResumeMidEpochAfterARestart() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--max-blob-size", "\(16 << 20)"]) { _, client, _ in
            let chain = try TestChain()
            try await advance(client, to: 9)
            // Three forced txs of 2 MiB each: two fit ev-node's 5 MiB batch, the third is postponed.
            func big(_ k: String) -> [UInt8] { bytes("\(k)=") + [UInt8](repeating: UInt8(ascii: "v"), count: 2 << 20) }
            #expect(try await client.submit([DABlob(namespace: forced, data: big("a")), DABlob(namespace: forced, data: big("b")),
                                             DABlob(namespace: forced, data: big("c"))]) == 10)
            try await advance(client, to: 11)
            let q1 = try queue(chain, client)
            try await q1.refresh()
            let b1 = try producer(chain, q1).produceOne()
            #expect(b1.data.txs.count == 2 && b1.data.txs.first == big("a") && b1.data.txs.last == big("b"))
            #expect(try chain.store.forcedInclusionCheckpoint() == ForcedInclusionCheckpoint(daHeight: 11, txIndex: 2))
            // Restart mid-epoch: the third comes next, once.
            try chain.reopen()
            let q2 = try queue(chain, client)
            try await q2.refresh()
            let b2 = try producer(chain, q2).produceOne()
            #expect(b2.data.txs.count == 1 && b2.data.txs.first == big("c"))
            #expect(try chain.store.forcedInclusionCheckpoint() == ForcedInclusionCheckpoint(daHeight: 12, txIndex: 0))
            #expect(b2.signedHeader.header.time >= b1.signedHeader.header.time)
        }
    }
}

/// A crash after the signer's mark recorded a block with forced transactions and before the
/// store committed it: the next start commits the kept block, which carries no checkpoint; the
/// forced transactions must not come again.
@Suite struct ForcedInclusionCrashTests {
    let forced = namespace("fi")
    let other = namespace("t-headers")
    let epochs = ForcedInclusionEpochs(startHeight: 10, size: 2)
    let logger = Logger(label: "test.forced-crash")

    @Test func aKeptBlockWithForcedTxsMovesTheCheckpointPastThem() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h"]) { _, client, _ in
            let chain = try TestChain()
            while try await client.networkHead().height < 9 {
                _ = try await client.submit([DABlob(namespace: other, data: bytes("filler"))])
            }
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("fk=1")),
                                             DABlob(namespace: forced, data: bytes("garbage"))]) == 10)
            while try await client.networkHead().height < 11 {
                _ = try await client.submit([DABlob(namespace: other, data: bytes("filler"))])
            }
            // What the producer signed at height 1 (the forced tx first, then a mempool tx) and
            // kept beside its mark before the crash; the store never got it.
            let markPath = chain.dir.sub("signer.state")
            let kept = try chain.builder.build(on: chain.store.state!, txs: [bytes("fk=1"), bytes("m=1")],
                                               time: chain.genesis.startTimeNanoseconds)
            try SignerHighWaterMark(path: markPath).record(1, block: SignedBlockBytes.encode(kept.signedHeader, kept.data))
            #expect(try chain.store.forcedInclusionCheckpoint() == nil && chain.store.height == 0)

            let queue = ForcedInclusionQueue(source: ForcedInclusionRetriever(client: client, namespace: forced, epochs: epochs),
                                             epochs: epochs, checkpoint: nil, startTime: chain.genesis.startTimeNanoseconds,
                                             logger: logger)
            let producer = BlockProducer(store: chain.store, executor: chain.executor, signer: chain.signer,
                                         mark: SignerHighWaterMark(path: markPath), timing: .init(blockTime: .milliseconds(20)),
                                         forcedInclusion: queue, logger: logger) { _ in }
            let running = Task { try await producer.run() }
            try await waitUntil("three blocks", timeout: .seconds(30)) { chain.store.height >= 3 }
            running.cancel()
            _ = await running.result
            #expect(try chain.store.headerHash(at: 1) == kept.signedHeader.header.hash, "the kept block is block 1")
            var count = 0
            for h in UInt64(1)...chain.store.height {
                count += try #require(try chain.store.block(at: h)).data.txs.filter { $0 == bytes("fk=1") }.count
            }
            #expect(count == 1, "the forced tx is in the chain once")
            #expect(try chain.store.forcedInclusionCheckpoint() == ForcedInclusionCheckpoint(daHeight: 12, txIndex: 0))
        }
    }
}
