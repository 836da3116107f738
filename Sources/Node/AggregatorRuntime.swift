import Block
import DA
import Logging
import P2PSync

/// The aggregating phase: the block producer and the DA submitter, side by side. Each produced
/// block is gossiped and announced once it is stored and the signer's mark is durable.
struct AggregatorRuntime: Sendable {
    let producer: BlockProducer
    let submitter: DASubmitter
    let logger: Logger

    func run() async throws(NodeFailure) {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do throws(ProductionError) {
                        try await producer.run()
                    } catch {
                        if case .stopped = error { return }
                        throw NodeFailure.production(error)
                    }
                }
                group.addTask {
                    do {
                        try await submitter.run()
                    } catch is CancellationError {
                    } catch {
                        throw NodeFailure.submitter("\(error)")
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        } catch let failure as NodeFailure {
            throw failure
        } catch {
            if Task.isCancelled { return }
            throw .submitter("\(error)")
        }
    }
}

extension P2PService {
    /// Gossips a block this node produced and announces the new height.
    func publish(_ block: BlockCommit) {
        broadcast(block: P2PBlock(signedHeader: block.signedHeader, data: block.data))
        announce(height: block.height)
    }
}
