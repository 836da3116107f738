import Submission
import Store
import Production
import Logging
import P2PSync

/// The aggregating phase: the block producer and the DA submitter, side by side. Each produced
/// block is gossiped and announced once it is stored and the signer's mark is durable. Outside
/// HA, a second live signer (`SecondSignerWatch`) ends the phase with `.secondSigner`.
struct AggregatorRuntime: Sendable {
    let producer: BlockProducer
    let submitter: DASubmitter
    /// Nil for an HA leader: the group shares the key and etcd's fence keeps it to one signer.
    var secondSigner: SecondSignerWatch? = nil
    /// With forced inclusion: the submitter starts once the producer knows whether it catches up
    /// from base and, if so, has finished. The replayed blocks then reach DA together, so a full
    /// node's check (run at the DA height of the first of them) sees every replayed transaction;
    /// posted one by one, the first would make it halt on those still to come (README).
    var forcedInclusion: ForcedInclusionQueue? = nil
    let logger: Logger

    func run() async throws(NodeFailure) {
        secondSigner?.arm()
        defer { secondSigner?.disarm() }
        var children: [FirstChildWins<Void>.Child] = []
        if let watch = secondSigner {
            children.append(.init(.secondSignerWatch) {
                // Returns nil only when cancelled (the phase ends otherwise).
                guard let sighting = await watch.nextAlarm() else { return }
                throw NodeFailure.secondSigner(sighting)
            })
        }
        children.append(.init(.producer) {
            do throws(ProductionError) {
                try await producer.run()
            } catch {
                if case .stopped = error { return }
                throw NodeFailure.production(error)
            }
        })
        children.append(.init(.submitter) {
            if let forcedInclusion {
                try await forcedInclusion.waitUntilCatchUpSettled()
            }
            try await submitter.run()
        })
        do throws(NodeFailure) {
            // The first part to end ends the phase; what the others report while stopping is
            // thrown or logged, not dropped.
            _ = try await FirstChildWins(children, logger: logger).run()
        } catch {
            if case .production(let production) = error, production.isNotProposer {
                // The group has ended, so the submitter no longer runs: the drain posts alone.
                await drainAfterRotation(production)
            }
            throw error
        }
        // The producer may have ended first (it stops when cancelled or its gate closes).
        if let sighting = secondSigner?.fired { throw .secondSigner(sighting) }
    }

    /// The chain named another proposer: before this node stops producing, it posts to DA the
    /// blocks it produced that DA does not hold yet, so that a DA-only follower is not left to
    /// wait for them (reference open question 10: the new proposer cannot post them with an
    /// envelope signature of their own key, which strict-mode nodes require). DA faults are
    /// retried as the submitter always retries them; only the node stopping or a fault retrying
    /// cannot fix ends the drain early, and then the node still follows (the new proposer posts
    /// what is left, without an envelope): a failed drain is logged, never a halt.
    private func drainAfterRotation(_ rotation: ProductionError) async {
        logger.notice("proposer rotated away from this node's key: posting its blocks that are not on DA yet before it stops producing",
                      metadata: ["rotation": "\(rotation)"])
        do {
            let submissions = try await submitter.submitPending()
            logger.notice("drained this node's blocks to DA; following the chain from now on", metadata: [
                "submissions": "\(submissions)"])
        } catch {
            if Task.isCancelled { return }
            logger.error("could not post all of this node's blocks to DA after the rotation; following anyway (the new proposer posts what is left)",
                         metadata: ["error": "\(error)"])
        }
    }
}

extension P2PService {
    /// Gossips a block this node produced (peers learn its height by asking for the head).
    func publish(_ block: BlockCommit) {
        broadcast(block: P2PBlock(signedHeader: block.signedHeader, data: block.data))
    }
}
