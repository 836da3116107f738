import Chain
import Store
import Production
import Foundation
import Config
import Logging
import ProcessKit
import Testing
import TestSupport

@Suite struct BlockProducerTests {
    let logger = Logger(label: "test.producer")

    func producer(_ chain: TestChain, mark: SignerHighWaterMark, timing: BlockProducer.Timing,
                  published: Box<[UInt64]> = Box([])) -> BlockProducer {
        BlockProducer(store: chain.store, executor: chain.executor, signer: chain.signer, mark: mark,
                      timing: timing, logger: logger) { block in published.mutate { $0.append(block.height) } }
    }

    @Test func producesValidBlocksAndRecordsTheMarkAfterStoring() throws {
        let chain = try TestChain()
        let mark = SignerHighWaterMark(path: chain.dir.sub("signer.state"))
        let p = producer(chain, mark: mark, timing: .init(blockTime: .milliseconds(10)))
        try chain.executor.submit(Array("a=1".utf8))
        for h in 1...3 {
            let block = try p.produceOne()
            #expect(block.height == UInt64(h))
            #expect(chain.store.height == UInt64(h))
            #expect(try mark.load() == UInt64(h))
        }
        #expect(try chain.value("a") == "1")
        #expect(try chain.store.block(at: 1)?.data.txs == [Array("a=1".utf8)])
        // A follower on the same genesis accepts the produced chain.
        let follower = try TestChain(signer: chain.signer)
        for h in UInt64(1)...3 {
            let b = try #require(try chain.store.block(at: h))
            try follower.applier.apply(b.signedHeader, b.data, now: BlockValidator.currentTime())
        }
        #expect(follower.store.state == chain.store.state)
    }

    @Test func refusesToSignHeightsItAlreadySigned() async throws {
        let chain = try TestChain()
        let mark = SignerHighWaterMark(path: chain.dir.sub("signer.state"))
        try mark.record(5)
        let p = producer(chain, mark: mark, timing: .init(blockTime: .milliseconds(10)))
        await #expect(throws: ProductionError.self) { try await p.run() }
        #expect(chain.store.height == 0)
        #expect(try mark.load() == 5)
    }

    @Test func runProducesOnTheBlockTimeAndPublishesInOrder() async throws {
        let chain = try TestChain()
        let mark = SignerHighWaterMark(path: chain.dir.sub("signer.state"))
        let published = Box<[UInt64]>([])
        let p = producer(chain, mark: mark, timing: .init(blockTime: .milliseconds(5)), published: published)
        let task = Task { try await p.run() }
        defer { task.cancel() }
        try await waitUntil("10 blocks published (now \(published.value.count))", timeout: .seconds(20), every: .milliseconds(5)) {
            published.value.count >= 10
        }
        task.cancel()
        _ = try? await task.value
        let heights = published.value
        #expect(heights.count >= 10)
        #expect(heights == Array(1...UInt64(heights.count)))
    }

    /// An executor reached only through the async calls (as an EL is): the producer awaits it
    /// between its thread's steps. While it cannot answer nothing is signed, marked or stored;
    /// once it answers the same height is built — never skipped.
    @Test func aRemoteExecutorIsAwaitedAndAnUnavailableOneDelaysTheHeight() async throws {
        let chain = try TestChain()
        let mark = SignerHighWaterMark(path: chain.dir.sub("signer.state"))
        let engine = FailingEngine(chain.executor, failing: ["executeTxs"])
        let published = Box<[UInt64]>([])
        let p = BlockProducer(store: chain.store, executor: engine, signer: chain.signer, mark: mark,
                              timing: .init(blockTime: .milliseconds(5)), logger: logger) { block in
            published.mutate { $0.append(block.height) }
        }
        let task = Task { try await p.run() }
        defer { task.cancel() }
        try await waitUntil("the producer asked the engine twice") {
            engine.calls.filter { $0 == "executeTxs" }.count >= 2
        }
        #expect(chain.store.height == 0)
        #expect(try mark.load() == nil)
        engine.fail([])
        // (The KV mempool hands a transaction out once: submitted once the engine answers.)
        try chain.executor.submit(Array("remote=1".utf8))
        try await waitUntil("the transaction stored, and 3 blocks") {
            try chain.value("remote") == "1" && chain.store.height >= 3
        }
        task.cancel()
        _ = try? await task.value
        #expect(try mark.load() == chain.store.height)
        #expect(published.value == Array(1...chain.store.height))
    }

    @Test func lazyModeProducesWhenTransactionsWait() async throws {
        let chain = try TestChain()
        let mark = SignerHighWaterMark(path: chain.dir.sub("signer.state"))
        let p = producer(chain, mark: mark, timing: .init(blockTime: .milliseconds(5), lazy: true, lazyInterval: .seconds(3600)))
        let task = Task { try await p.run() }
        defer { task.cancel() }
        try chain.executor.submit(Array("lazy=1".utf8))
        try await waitUntil("block 1 stored") { chain.store.height >= 1 }
        try chain.executor.submit(Array("lazy=2".utf8))
        try await waitUntil("block 2 stored") { chain.store.height >= 2 }
        #expect(try chain.value("lazy") == "2")
        // Both blocks carry a transaction: none was produced on an empty mempool.
        for h in UInt64(1)...chain.store.height {
            #expect(try chain.store.block(at: h)?.data.txs.isEmpty == false)
        }
    }

    /// With a fence, a refused block never reaches the store or the publisher, yet the signer's
    /// mark and the unpublished-block record hold it, so this node never signs that height again.
    @Test func fencedProducerStoresOnlyAdmittedBlocks() async throws {
        let chain = try TestChain()
        let mark = SignerHighWaterMark(path: chain.dir.sub("signer.state"))
        let fence = GateFence(admitThrough: 3)
        let published = Box<[UInt64]>([])
        let p = BlockProducer(store: chain.store, executor: chain.executor, signer: chain.signer, mark: mark,
                              timing: .init(blockTime: .milliseconds(5)), fence: fence, logger: logger) { block in
            published.mutate { $0.append(block.height) }
        }
        await #expect {
            try await p.run()
        } throws: { error in
            guard case ProductionError.refused(let height, _) = error else { return false }
            return height == 4
        }
        #expect(chain.store.height == 3)
        #expect(published.value == [1, 2, 3])
        #expect(fence.seen.value == [1, 2, 3, 4])
        #expect(try mark.load() == 4)
        let unpublished = try #require(try UnpublishedBlock.load(from: chain.store))
        #expect(unpublished.signedHeader.header.height == 4)
        #expect(unpublished.signedHeader.header.lastHeaderHash == chain.store.state?.lastHeaderHash)
        // Run again: height 4 is signed already, so it is not signed a second time.
        await #expect {
            try await p.run()
        } throws: { error in
            guard case ProductionError.fence(let next, let signed) = error else { return false }
            return next == 4 && signed == 4
        }
        #expect(fence.seen.value == [1, 2, 3, 4])
    }
}

/// A lock-protected value shared with a @Sendable closure.
final class Box<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ value: T) { _value = value }
    var value: T { lock.withLock { _value } }
    func mutate(_ f: (inout T) -> Void) { lock.withLock { f(&_value) } }
}

/// A fence that admits heights up to a limit and refuses the rest: the producer's side of the
/// seam (the etcd fence itself is tested in NodeTests against a real etcd).
final class GateFence: BlockFence {
    let admitThrough: UInt64
    let seen = Box<[UInt64]>([])

    init(admitThrough: UInt64) {
        self.admitThrough = admitThrough
    }

    func admit(_ block: BlockCommit) async throws(FenceRefusal) {
        seen.mutate { $0.append(block.height) }
        if block.height > admitThrough { throw FenceRefusal("height \(block.height) is past the gate") }
    }
}

extension BlockProducerTests {
    /// Issue 27: the producer reads the signer's mark before every height it signs, not only
    /// when it starts. A mark raised from elsewhere (here: by hand, as another process signing
    /// with this key would) stops it before the next signature; the mark is not lowered.
    @Test func theMarkIsCheckedBeforeEveryHeight() throws {
        let chain = try TestChain()
        let mark = SignerHighWaterMark(path: chain.dir.sub("signer.state"))
        let p = producer(chain, mark: mark, timing: .init(blockTime: .milliseconds(10)))
        _ = try p.produceOne()
        try mark.replace(with: 5)
        #expect {
            try p.produceOne()
        } throws: { error in
            guard case ProductionError.fence(let next, let signed) = error else { return false }
            return next == 2 && signed == 5
        }
        #expect(chain.store.height == 1)
        #expect(try mark.load() == 5)
    }

    /// The same inside `run()`: raised while producing, the mark stops production at the next
    /// height.
    @Test func aMarkRaisedWhileRunningStopsProductionAtTheNextHeight() async throws {
        let chain = try TestChain()
        let mark = SignerHighWaterMark(path: chain.dir.sub("signer.state"))
        let p = producer(chain, mark: mark, timing: .init(blockTime: .milliseconds(20)))
        let run = Task { () -> ProductionError? in
            do throws(ProductionError) {
                try await p.run()
                return nil
            } catch {
                return error
            }
        }
        try await waitUntil("two blocks") { chain.store.height >= 2 }
        let raised: UInt64 = 1_000
        try mark.replace(with: raised)
        let watchdog = Task {
            try? await Task.sleep(for: .seconds(20))
            run.cancel()
        }
        defer { watchdog.cancel() }
        // Stopped by the check before signing, or — for a block already past that check — by
        // `record` refusing to lower the mark: either way the block never left the process.
        switch await run.value {
        case .fence(let next, let signed)?:
            #expect(signed == raised)
            #expect(next == chain.store.height + 1)
        case .highWaterMark(let height, .markNotRaised(_, let recorded, let current))?:
            #expect(height == recorded && current == raised)
            #expect(height == chain.store.height + 1)
        case let other:
            Issue.record("expected the producer to stop at its fence, got \(String(describing: other))")
        }
        #expect(try mark.load() == raised)
    }
}
