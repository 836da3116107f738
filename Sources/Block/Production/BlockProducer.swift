import Config
import Logging
import NIOPosix

/// Why production stopped. Each case is something an operator must look at.
public enum ProductionError: Error, Sendable, CustomStringConvertible {
    case build(height: UInt64, BuildError)
    case store(height: UInt64, StoreError)
    case highWaterMark(height: UInt64, ConfigError)
    /// The signer's mark cannot be read: which heights were signed is unknown, so none is signed.
    case unreadableMark(ConfigError)
    /// The signer already signed this height (its mark says so) and the store does not hold it.
    case fence(nextHeight: UInt64, mark: UInt64)
    case notInitialized
    /// The thread pool for blocking work was shut down (the node is stopping).
    case stopped

    public var description: String {
        switch self {
        case let .build(h, e): return "building block \(h) failed: \(e)"
        case let .store(h, e): return "storing produced block \(h) failed: \(e)"
        case let .highWaterMark(h, e): return "recording the signer's high-water mark for height \(h) failed: \(e)"
        case let .unreadableMark(e):
            return "the signer's high-water mark cannot be read (\(e)); refusing to sign without knowing which heights were signed (`evnode signer reset` rewrites it)"
        case let .fence(next, mark):
            return "the signer's high-water mark is \(mark) but the next height is \(next): heights \(next)…\(mark) were already signed; refusing to sign them again (`evnode signer reset` accepts the risk)"
        case .notInitialized: return "the store has no genesis state"
        case .stopped: return "production stopped: the node is shutting down"
        }
    }
}

/// Produces the chain as the proposer: one block every block time (lazy: when transactions wait,
/// or every lazy interval), in this order for each height:
/// build and sign → commit to the store (synced) → record the signer's high-water mark (fsynced)
/// → publish (gossip, DA submitter wake-up). A crash at any point therefore leaves the mark at or
/// above every height that ever left the process, and the store never behind a published block.
public struct BlockProducer: Sendable {
    public struct Timing: Sendable {
        public var blockTime: Duration
        public var lazy: Bool
        public var lazyInterval: Duration

        public init(blockTime: Duration, lazy: Bool = false, lazyInterval: Duration = .seconds(60)) {
            self.blockTime = blockTime
            self.lazy = lazy
            self.lazyInterval = lazyInterval
        }
    }

    let store: BlockStore
    let executor: any Executor
    let builder: BlockBuilder
    let mark: SignerHighWaterMark
    let timing: Timing
    let maxTxsPerBlock: Int
    let maxBlockBytes: Int
    let logger: Logger
    let publish: @Sendable (BlockCommit) async -> Void
    /// Where the blocking part of each block (execution, two fsyncs) runs, off Swift's
    /// cooperative pool.
    let blockingPool: NIOThreadPool

    public init(store: BlockStore, executor: any Executor, signer: BlockSigner, mark: SignerHighWaterMark,
                timing: Timing, maxTxsPerBlock: Int = 10_000, maxBlockBytes: Int = 1 << 20,
                blockingPool: NIOThreadPool = .singleton, logger: Logger,
                publish: @escaping @Sendable (BlockCommit) async -> Void) {
        self.blockingPool = blockingPool
        self.store = store
        self.executor = executor
        self.builder = BlockBuilder(signer: signer, executor: executor)
        self.mark = mark
        self.timing = timing
        self.maxTxsPerBlock = maxTxsPerBlock
        self.maxBlockBytes = maxBlockBytes
        self.logger = logger
        self.publish = publish
    }

    /// Produces until cancelled. Throws on the first failure: producing past one would risk the
    /// chain, so the node halts and says why.
    public func run() async throws(ProductionError) {
        guard let start = store.state else { throw .notInitialized }
        let signed: UInt64?
        do throws(ConfigError) {
            signed = try mark.load()
        } catch {
            throw .unreadableMark(error)
        }
        if let signed, signed > start.lastBlockHeight {
            throw .fence(nextHeight: start.nextHeight, mark: signed)
        }
        logger.info("producing blocks", metadata: [
            "next_height": "\(start.nextHeight)", "block_time": "\(DurationParser.format(timing.blockTime))",
            "lazy": "\(timing.lazy)"])
        let clock = ContinuousClock()
        var nextTick = clock.now
        var lastBlockAt = clock.now
        while !Task.isCancelled {
            nextTick = nextTick.advanced(by: timing.blockTime)
            if timing.lazy {
                let due = clock.now - lastBlockAt >= timing.lazyInterval
                if !executor.hasPendingTransactions && !due {
                    try? await clock.sleep(until: nextTick)
                    continue
                }
            }
            let block = try await produceOffPool()
            await publish(block)
            lastBlockAt = clock.now
            // Slots missed because a block took longer than the block time are skipped, not
            // produced in a burst.
            if nextTick < clock.now {
                nextTick = clock.now
            }
            do {
                try await clock.sleep(until: nextTick)
            } catch {
                return
            }
        }
    }

    private func produceOffPool() async throws(ProductionError) -> BlockCommit {
        let result: Result<BlockCommit, ProductionError>
        do {
            result = try await blockingPool.runIfActive { () -> Result<BlockCommit, ProductionError> in
                do throws(ProductionError) {
                    return .success(try self.produceOne())
                } catch {
                    return .failure(error)
                }
            }
        } catch {
            throw .stopped
        }
        return try result.get()
    }

    /// Produces and stores the next block and records the signer's mark; returns the block for
    /// publishing. Blocking (two fsyncs): call it from a thread that may block.
    @discardableResult
    public func produceOne() throws(ProductionError) -> BlockCommit {
        guard let state = store.state else { throw .notInitialized }
        let height = state.nextHeight
        let txs = executor.getTxs(max: maxTxsPerBlock, maxBytes: maxBlockBytes)
        // Block time never goes backwards, even if the wall clock does.
        let time = max(BlockValidator.currentTime(), state.lastBlockTime)
        let block: BlockCommit
        do throws(BuildError) {
            block = try builder.build(on: state, txs: txs, time: time)
        } catch {
            throw .build(height: height, error)
        }
        do throws(StoreError) {
            try store.commit(block, sync: true)
        } catch {
            throw .store(height: height, error)
        }
        do throws(ConfigError) {
            try mark.record(height)
        } catch {
            throw .highWaterMark(height: height, error)
        }
        return block
    }
}
