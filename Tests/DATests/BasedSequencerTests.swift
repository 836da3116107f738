import Block
import Config
import DA
import Foundation
import Logging
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
            switch try based.deriveOne() {
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
