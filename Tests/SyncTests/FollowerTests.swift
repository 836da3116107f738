import DAClient
import Submission
import Chain
import Store
import Execution
@testable import Sync
import Config
import Foundation
import Logging
import ProcessKit
import Testing
import TestSupport

/// The DA follower against a real `evnode local-da`: a chain posted by the real submitter, read
/// back into a fresh store through the real sync pipeline.
@Suite struct FollowerTests {
    let headerNS = DANamespace(name: "follow-headers")
    let dataNS = DANamespace(name: "follow-data")

    /// Heights and data spread over many DA heights (small blobs), junk in both namespaces: the
    /// fresh store ends with the source's state, every block finalized, inclusion recorded where
    /// the submitter posted it, the junk counted as bad, and the resume height saved.
    @Test func rebuildsTheChainFromDAAndFinalizesIt() async throws {
        try await withLocalDA(arguments: ["--block-time", "200ms"]) { da, client, dir in
            let source = try TestChain(chainID: "da-test", path: dir.path + "/source")
            defer { source.close() }
            for h in 1...240 {
                try source.produce(h % 4 == 0 ? [] : ["k\(h % 17)=v\(h)", "n\(h)=\(h)"])
            }
            // Junk first: data naming the proposer that no header claims (dropped once height 1
            // is final) and a header signed by another key.
            let stranger = BlockSigner(keyFile: KeyFile.generate())
            let block = try source.store.block(at: 1)!
            let forgedData = SignedData(data: BlockData(metadata: block.data.metadata, txs: [Array("k=forged".utf8)]),
                                        signature: [UInt8](repeating: 7, count: 64), signer: source.signer.signer)
            var foreign = block.signedHeader
            foreign.header.height = 241
            let foreignEnvelope = try stranger.envelope(for: try stranger.sign(header: foreign.header))
            _ = try await client.submit([DABlob(namespace: dataNS, data: forgedData.encoded()),
                                         DABlob(namespace: headerNS, data: foreignEnvelope.encoded())])
            let submitter = DASubmitter(client: client, store: source.store, executor: source.executor,
                                        signer: source.signer,
                                        options: SubmitterOptions(headerNamespace: headerNS, dataNamespace: dataNS,
                                                                  maxBlobSize: 6_000, interval: .milliseconds(50)))
            let submissions = try await submitter.submitPending()
            #expect(submissions > 10, "the chain is spread over many DA heights")

            let follow = try FollowingStore(source: source, client: client, path: dir.path + "/target",
                                            namespaces: (headerNS, dataNS), parallelism: 4, pollInterval: .milliseconds(50))
            try await follow.close(after: {
                let (target, pipeline, follower) = (follow.store, follow.pipeline, follow.follower)
                try await waitUntil("the store holds and finalizes the chain", timeout: .seconds(60)) {
                    target.height == 240 && target.finalizedHeight == 240
                }
                #expect(target.state == source.store.state)
                for h in UInt64(1)...240 {
                    let posted = try source.store.daInclusion(at: h)
                    let recorded = try target.daInclusion(at: h)
                    #expect(recorded.headerDAHeight == posted.headerDAHeight, "header inclusion of \(h)")
                    #expect(recorded.dataDAHeight == posted.dataDAHeight, "data inclusion of \(h)")
                }
                #expect(follower.status.badBlobs == 2)
                #expect(follower.status.unresolved == 0, "the unclaimed data is not held once its height is final")
                #expect(try target.metadata("da_follower_resume_height") != nil)
                try await waitUntil("the follower to reach DA's head", timeout: .seconds(60)) { follower.status.headReached }
                #expect(follower.status.failingSince == nil && follower.status.lastError == nil)

                // DA goes away: the follower says since when it fails (readiness uses it).
                await da.stop()
                try await waitUntil("the follower to report DA failing", timeout: .seconds(30)) {
                    follower.status.failingSince != nil && follower.status.lastError != nil
                }
            })
        }
    }

    /// ev-node's envelope strict mode (reference §5 scenario): a legacy header (no envelope
    /// signature) is taken, an enveloped one switches strict mode on, and a legacy header after
    /// it is dropped; so is an envelope signed over other bytes. The same block with a valid
    /// envelope is then taken: dropping is not halting.
    @Test func strictModeDropsLegacyHeadersAfterTheFirstValidEnvelope() async throws {
        try await withLocalDA { _, client, dir in
            let source = try TestChain(chainID: "da-strict", path: dir.path + "/source")
            defer { source.close() }
            for h in 1...3 { try source.produce(["k\(h)=v\(h)"]) }
            func parts(_ h: UInt64) throws -> (signed: SignedHeader, data: DABlob) {
                let block = try source.store.block(at: h)!
                return (block.signedHeader, DABlob(namespace: dataNS, data: try source.signer.sign(data: block.data).encoded()))
            }
            let follow = try FollowingStore(source: source, client: client, path: dir.path + "/target",
                                            namespaces: (headerNS, dataNS), parallelism: 2, pollInterval: .milliseconds(50))
            try await follow.close(after: {
                let (target, pipeline, follower) = (follow.store, follow.pipeline, follow.follower)

                let one = try parts(1), two = try parts(2), three = try parts(3)
                _ = try await client.submit([DABlob(namespace: headerNS, data: one.signed.encoded()), one.data])
                try await waitUntil("the legacy header 1 to be applied", timeout: .seconds(30)) { target.height == 1 }
                #expect(!follower.status.strictEnvelopes)

                _ = try await client.submit([DABlob(namespace: headerNS, data: try source.signer.envelope(for: two.signed).encoded()),
                                             two.data])
                try await waitUntil("the enveloped header 2 to be applied", timeout: .seconds(30)) { target.height == 2 }
                #expect(follower.status.strictEnvelopes)

                let legacy = try await client.submit([DABlob(namespace: headerNS, data: three.signed.encoded()), three.data])
                var wrongBytes = try source.signer.envelope(for: two.signed)
                wrongBytes = DAHeaderEnvelope(signedHeader: three.signed, envelopeSignature: wrongBytes.envelopeSignature)
                let forged = try await client.submit([DABlob(namespace: headerNS, data: wrongBytes.encoded())])
                try await waitUntil("the follower to read past both", timeout: .seconds(30)) {
                    follower.status.nextDAHeight > max(legacy, forged)
                }
                #expect(follower.status.droppedWithoutEnvelope == 1)
                #expect(target.height == 2, "neither the legacy header nor the envelope over other bytes is taken")

                _ = try await client.submit([DABlob(namespace: headerNS, data: try source.signer.envelope(for: three.signed).encoded())])
                try await waitUntil("the enveloped header 3 to be applied", timeout: .seconds(30)) { target.height == 3 }
                #expect(target.state == source.store.state)
            })
        }
    }

    /// A block the node already has from a peer, posted to DA while the follower waits at the
    /// head with a long poll: the peer's DA height hint makes its inclusion known (and the block
    /// final) well before the next poll, without changing the applied chain. A flood of junk
    /// hints afterwards wakes the follower at most once per 500 ms and holds at most 1024.
    @Test func anHonestHintConfirmsInclusionBeforeThePollAndJunkHintsStayBounded() async throws {
        try await withLocalDA { _, client, dir in
            let source = try TestChain(chainID: "da-hints", path: dir.path + "/source")
            defer { source.close() }
            try source.produce(["k=v"])
            let block = try source.store.block(at: 1)!
            let follow = try FollowingStore(source: source, client: client, path: dir.path + "/target",
                                            namespaces: (headerNS, dataNS), parallelism: 2, pollInterval: .seconds(120))
            try await follow.close(after: {
                let (target, pipeline, follower) = (follow.store, follow.pipeline, follow.follower)
                try await waitUntil("the follower to reach DA's head", timeout: .seconds(30)) { follower.status.headReached }

                // The block arrives from a peer first, then the producer posts it to DA.
                await pipeline.submit([CandidateBlock(signedHeader: block.signedHeader, data: block.data,
                                                      origin: .p2p(peer: "peer"), signatureVerified: false)])
                try await waitUntil("the P2P block to be applied", timeout: .seconds(30)) { target.height == 1 }
                let daHeight = try await client.submit([
                    DABlob(namespace: headerNS, data: try source.signer.envelope(for: block.signedHeader).encoded()),
                    DABlob(namespace: dataNS, data: try source.signer.sign(data: block.data).encoded())])
                #expect(target.finalizedHeight == 0)

                follower.hint(daHeight: daHeight)
                try await waitUntil("the hinted inclusion to be read long before the 120 s poll", timeout: .seconds(10)) {
                    target.finalizedHeight == 1
                }
                let inclusion = try target.daInclusion(at: 1)
                #expect(inclusion.headerDAHeight == daHeight && inclusion.dataDAHeight == daHeight)
                #expect(target.height == 1 && target.state == source.store.state, "the applied chain is unchanged")
                #expect(follower.status.hints.wakes == 1)

                // Junk: far past DA's head, and a flood within the drift. Bounded wakes and memory.
                let began = ContinuousClock.now
                let next = follower.status.nextDAHeight
                for i in UInt64(0)..<10_000 {
                    follower.hint(daHeight: next + 1_000_000 + i)
                    follower.hint(daHeight: next + i % 150)
                }
                let elapsed = ContinuousClock.now - began
                let status = follower.status.hints
                #expect(status.received == 20_001)
                #expect(status.held <= DAHeightHints.capacity)
                let intervals = Int(elapsed / DAHeightHints.wakeInterval) + 1
                #expect(status.wakes <= 1 + intervals, "at most one wake per 500 ms (took \(elapsed))")
                try await waitUntil("the woken poll to drop hints DA does not have", timeout: .seconds(10)) {
                    follower.status.hints.held == 0
                }
                #expect(target.height == 1)
            })
        }
    }
}

extension FollowerTests {
    /// Defect 6: the follower's in-order thread lives as long as its `run()` (and `settle()`);
    /// once they return it is shut down, though the follower object lives on.
    @Test func aStoppedFollowerHoldsNoThread() async throws {
        try await withLocalDA(arguments: ["--block-time", "200ms"]) { _, client, dir in
            let source = try TestChain(chainID: "da-test", path: dir.path + "/source")
            defer { source.close() }
            for h in 1...6 { try source.produce(["k=\(h)"]) }
            let submitter = DASubmitter(client: client, store: source.store, executor: source.executor,
                                        signer: source.signer,
                                        options: SubmitterOptions(headerNamespace: headerNS, dataNamespace: dataNS,
                                                                  maxBlobSize: 6_000, interval: .milliseconds(50)))
            _ = try await submitter.submitPending()
            let follow = try FollowingStore(source: source, client: client, path: dir.path + "/target",
                                            namespaces: (headerNS, dataNS), parallelism: 2, pollInterval: .milliseconds(50))
            try await follow.close(after: {
                let follower = follow.follower
                try await waitUntil("the chain followed and finalized", timeout: .seconds(60)) {
                    follow.store.finalizedHeight == 6
                }
                #expect(await follower.lastInOrderLaneTakesWork, "a running follower's lane takes work")
                follow.running.cancel()
                _ = await follow.running.result
                #expect(await !follower.lastInOrderLaneTakesWork, "run() ended: its lane is shut down")
                try await follower.settle()
                #expect(await !follower.lastInOrderLaneTakesWork, "settle() ended: its lane is shut down")
            })
        }
    }
}

/// A fresh store following DA through the real sync pipeline and DA follower, as a full node
/// does; `close` stops the follower, then the pipeline, then closes the store.
private struct FollowingStore {
    let store: BlockStore
    let pipeline: SyncPipeline
    let follower: DAFollower
    let running: Task<Void, any Error>

    init(source: TestChain, client: CelestiaDAClient, path: String, namespaces: (header: DANamespace, data: DANamespace),
         parallelism: Int, pollInterval: Duration) throws {
        store = try BlockStore.open(path: path)
        let executor = KVExecutor(store: store)
        try ChainExecution(store: store, executor: executor).initialize(genesis: source.genesis)
        let validator = BlockValidator(genesis: source.genesis)
        pipeline = SyncPipeline(applier: BlockApplier(store: store, executor: executor, validator: validator),
                                batchSize: 50, logger: Logger(label: "test.pipeline"))
        pipeline.start()
        follower = DAFollower(client: client,
                              options: .init(headerNamespace: namespaces.header, dataNamespace: namespaces.data, startHeight: 0,
                                             parallelism: parallelism, pollInterval: pollInterval),
                              sink: pipeline, store: store, executor: executor, validator: validator,
                              logger: Logger(label: "test.follower"))
        let follower = self.follower
        running = Task { try await follower.run() }
    }

    /// Runs `body`, then stops the follower (its run awaited), then the pipeline, then closes
    /// the store, also when `body` throws.
    func close<T>(after body: () async throws -> T) async rethrows -> T {
        do {
            let result = try await body()
            await close()
            return result
        } catch {
            await close()
            throw error
        }
    }

    func close() async {
        running.cancel()
        // Ended by the cancellation: its outcome is the cancellation itself.
        _ = await running.result
        await pipeline.stop()
        store.close()
    }
}
