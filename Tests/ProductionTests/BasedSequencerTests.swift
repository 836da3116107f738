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

/// Based sequencing on a real local DA with ev-node's numbers (da_start_height 10, epoch 2):
/// two based nodes derive the same chain hash for hash, one of them restarted in the middle.
@Suite struct BasedSequencerTests {
    let forced = namespace("fi")
    let other = namespace("t-headers")
    let epochs = ForcedInclusionEpochs(startHeight: 10, size: 2)
    let logger = Logger(label: "test.based")

    func advance(_ client: CelestiaDAClient, to height: UInt64) async throws {
        while try await client.networkHead().height < height {
            _ = try await client.submit([DABlob(namespace: other, data: bytes("filler"))])
        }
    }

    func sequencer(_ chain: TestChain, _ client: CelestiaDAClient) throws -> BasedSequencer {
        let queue = ForcedInclusionQueue(source: ForcedInclusionRetriever(client: client, namespace: forced, epochs: epochs),
                                         epochs: epochs, checkpoint: try chain.store.forcedInclusionCheckpoint(),
                                         startTime: chain.genesis.startTimeNanoseconds, logger: logger)
        return BasedSequencer(store: chain.store, executor: chain.executor, queue: queue,
                              proposerAddress: chain.genesis.proposerAddress, pollInterval: .milliseconds(10), logger: logger)
    }

    /// Derives until nothing more is due; returns how many blocks were made.
    @discardableResult
    func derive(_ based: BasedSequencer, maxSteps: Int = 20) async throws -> Int {
        var blocks = 0
        for _ in 0..<maxSteps {
            try await based.queue.refresh()
            switch try await based.deriveOne() {
            case .block: blocks += 1
            case .consumedWithoutBlock: continue
            case .nothing: return blocks
            }
        }
        return blocks
    }

    @Test func twoBasedNodesDeriveTheSameChainNoBlockForAnEmptyEpochFinalAtOnce() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h"]) { _, client, _ in
            let key = BlockSigner(keyFile: KeyFile.generate())
            let a = try TestChain(chainID: "based", signer: key)
            let b = try TestChain(chainID: "based", signer: key)
            try await advance(client, to: 9)
            // Epoch 1 (DA 10…11): two good forced txs around garbage (removed by the KV filter).
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("a=1")),
                                             DABlob(namespace: forced, data: bytes("garbage")),
                                             DABlob(namespace: forced, data: bytes("b=2"))]) == 10)
            // Epoch 1 has not ended: nothing is derived yet.
            #expect(try await derive(try sequencer(a, client)) == 0)
            #expect(a.store.height == 0)
            try await advance(client, to: 11)
            // Node b derives epoch 1, then restarts before epoch 3.
            #expect(try await derive(try sequencer(b, client)) == 1)
            try b.reopen()
            // Epoch 2 (DA 12…13) holds nothing; epoch 3 (14…15): one tx at 14, one only garbage at 15.
            try await advance(client, to: 13)
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("c=3"))]) == 14)
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("junk"))]) == 15)
            let end3 = try await client.header(height: 15).timeNanoseconds
            #expect(try await derive(try sequencer(a, client)) == 2)
            #expect(try await derive(try sequencer(b, client)) == 1)

            for chain in [a, b] {
                #expect(chain.store.height == 2, "one block per epoch with txs, none for the empty epoch")
                #expect(chain.store.finalizedHeight == 2, "SetFinal at once")
                let first = try #require(try chain.store.block(at: 1))
                #expect(first.data.txs == [bytes("a=1"), bytes("b=2")])
                #expect(first.signedHeader.header.time == chain.genesis.startTimeNanoseconds, "the first block: genesis time")
                #expect(first.signedHeader.signature.isEmpty && first.signedHeader.signer.pubKey.isEmpty, "based blocks are unsigned")
                let second = try #require(try chain.store.block(at: 2))
                #expect(second.data.txs == [bytes("c=3")])
                // N = 2 (c=3, junk), k = 2 after the block consumed both: end − 2 ms + 2 ms.
                #expect(second.signedHeader.header.time == ForcedInclusionRules.blockTime(epochEndTime: end3, epochTxCount: 2, consumed: 2))
                #expect(try chain.store.forcedInclusionCheckpoint() == ForcedInclusionCheckpoint(daHeight: 16, txIndex: 0))
                #expect(try chain.value("c") == "3")
            }
            for h in UInt64(1)...2 {
                #expect(try a.store.headerHash(at: h) == b.store.headerHash(at: h), "height \(h): same hash on both nodes")
            }
        }
    }
}

/// The returning sequencer's catch-up from base (issue 32, step 5), in process on a real local
/// DA: a checkpoint three epochs behind the DA head replays the missed forced transactions in
/// blocks of their own (no mempool, no block for an epoch that includes nothing, times by the
/// formula), then produces normally; on a fresh chain its blocks equal the based derivation.
@Suite struct CatchUpFromBaseTests {
    let forced = namespace("fi")
    let other = namespace("t-headers")
    let epochs = ForcedInclusionEpochs(startHeight: 10, size: 2)
    let logger = Logger(label: "test.catchup-from-base")

    func advance(_ client: CelestiaDAClient, to height: UInt64) async throws {
        while try await client.networkHead().height < height {
            _ = try await client.submit([DABlob(namespace: other, data: bytes("filler"))])
        }
    }

    func queue(_ chain: TestChain, _ client: CelestiaDAClient) throws -> ForcedInclusionQueue {
        ForcedInclusionQueue(source: ForcedInclusionRetriever(client: client, namespace: forced, epochs: epochs),
                             epochs: epochs, checkpoint: try chain.store.forcedInclusionCheckpoint(),
                             startTime: chain.genesis.startTimeNanoseconds, logger: logger)
    }

    @Test func threeEpochsBehindReplaysForcedTxsThenProducesNormallyLikeTheBasedNodes() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h"]) { _, client, _ in
            let key = BlockSigner(keyFile: KeyFile.generate())
            let sequencer = try TestChain(chainID: "cub", signer: key)
            let based = try TestChain(chainID: "cub", signer: key)
            try await advance(client, to: 9)
            // Epochs 1…4 (DA 10…17) pass with nobody sequencing: forced txs in 1, 2 and 4;
            // epoch 3 holds only garbage.
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("f1=1"))]) == 10)
            try await advance(client, to: 11)
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("f2=2"))]) == 12)
            try await advance(client, to: 13)
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("junk"))]) == 14)
            try await advance(client, to: 15)
            #expect(try await client.submit([DABlob(namespace: forced, data: bytes("f3=3"))]) == 16)
            try await advance(client, to: 17)
            try sequencer.executor.submit(bytes("m=1"))

            let q = try queue(sequencer, client)
            let producer = BlockProducer(store: sequencer.store, executor: sequencer.executor, signer: key,
                                         mark: SignerHighWaterMark(path: sequencer.dir.sub("signer.state")),
                                         timing: .init(blockTime: .milliseconds(20)), forcedInclusion: q, logger: logger) { _ in }
            let running = Task { try await producer.run() }
            try await waitUntil("the mempool tx in a block after the catch-up", timeout: .seconds(30)) {
                try (1...max(1, sequencer.store.height)).contains { h in
                    try sequencer.store.block(at: h)?.data.txs.contains(bytes("m=1")) ?? false
                }
            }
            running.cancel()
            _ = await running.result
            #expect(q.catchUp == .done)
            let txs = try (1...3).map { try #require(try sequencer.store.block(at: UInt64($0))).data.txs }
            #expect(txs == [[bytes("f1=1")], [bytes("f2=2")], [bytes("f3=3")]], "forced txs only, one block per epoch that includes any")
            #expect(try sequencer.store.block(at: 4)?.data.txs == [bytes("m=1")], "then the mempool, normally")
            #expect(try sequencer.store.forcedInclusionCheckpoint() == ForcedInclusionCheckpoint(daHeight: 18, txIndex: 0))

            // Based nodes derive the same blocks 1…3 from DA: same header hashes (the signature
            // is not part of the hash; the proposer is the genesis proposer in both).
            let derive = BasedSequencer(store: based.store, executor: based.executor, queue: try queue(based, client),
                                        proposerAddress: based.genesis.proposerAddress, pollInterval: .milliseconds(10),
                                        logger: logger)
            for _ in 0..<10 {
                try await derive.queue.refresh()
                if case .nothing = try await derive.deriveOne() { break }
            }
            #expect(based.store.height == 3)
            for h in UInt64(1)...3 {
                #expect(try sequencer.store.headerHash(at: h) == based.store.headerHash(at: h), "height \(h)")
            }
        }
    }
}
