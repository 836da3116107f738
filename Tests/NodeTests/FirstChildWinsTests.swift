import Logging
@testable import Node
import Synchronization
import Testing

/// The "first child wins, cancel, drain" group every phase of the node runs its parts in
/// (defects 2, 4 and 11 of the 2026-12-07 review). No threads, stores or processes: children
/// are closures that fail on cue.
@Suite struct FirstChildWinsTests {
    struct StoreBroke: Error, Equatable { let height: UInt64 }
    struct DARefused: Error, Equatable { let daHeight: UInt64 }

    let logger = Logger(label: "test.first-child-wins")

    /// A wait that cancellation does not end: only `open()` does.
    final class Latch: Sendable {
        private let state = Mutex<(open: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

        func wait() async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let openAlready = state.withLock { s -> Bool in
                    if s.open { return true }
                    s.waiter = c
                    return false
                }
                if openAlready { c.resume() }
            }
        }

        func open() {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.open = true
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }

    /// Waits until the group cancels it, then runs `then` (a part that fails while stopping).
    static func untilCancelled<T>(then: @Sendable () throws -> T) async throws -> T {
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        return try then()
    }

    /// Both children fail: the first failure is thrown, naming its part and keeping its error;
    /// the second, reported while stopping, is not lost.
    @Test func bothFailuresReachTheCallerOrTheLog() async throws {
        let others = Mutex<[NodeFailure]>([])
        var race = FirstChildWins<Void>([
            .init(.producer) { throw StoreBroke(height: 7) },
            .init(.submitter) { try await Self.untilCancelled { throw DARefused(daHeight: 40) } },
        ], logger: logger)
        race.otherFailure = { failure in others.withLock { $0.append(failure) } }
        do throws(NodeFailure) {
            _ = try await race.run()
            Issue.record("expected the producer's failure")
        } catch {
            guard case .failed(.producer, let underlying) = error else {
                Issue.record("expected a producer failure, got \(error)"); return
            }
            #expect(underlying as? StoreBroke == StoreBroke(height: 7))
            #expect(error.description == "block producer stopped: StoreBroke(height: 7)")
        }
        let second = others.withLock { $0 }
        #expect(second.count == 1)
        guard case .failed(.submitter, let underlying)? = second.first else {
            Issue.record("the submitter's failure was lost: \(second)"); return
        }
        #expect(underlying as? DARefused == DARefused(daHeight: 40))
    }

    /// The first child ends well (a producer that stopped); the other fails while stopping:
    /// that failure is thrown, not discarded (defect 4: AggregatorRuntime returned here).
    @Test func aFailureWhileStoppingAfterAGoodEndIsThrown() async throws {
        let race = FirstChildWins<Int>([
            .init(.producer) { 1 },
            .init(.submitter) { try await Self.untilCancelled { throw DARefused(daHeight: 9) } },
        ], logger: logger)
        do throws(NodeFailure) {
            let value = try await race.run()
            Issue.record("the submitter's failure was discarded; returned \(String(describing: value))")
        } catch {
            guard case .failed(.submitter, let underlying) = error else {
                Issue.record("expected the submitter's failure, got \(error)"); return
            }
            #expect(underlying as? DARefused == DARefused(daHeight: 9))
        }
    }

    /// A failure that already names its part (a `NodeFailure`) is kept as it is, whichever child
    /// ran it: a fail-closed catchup stays a fail-closed catchup (exit status 3).
    @Test func aNodeFailureKeepsItsOwnPart() async throws {
        let race = FirstChildWins<Void>([
            .init(.catchupGate) { throw NodeFailure.failClosed("peers silent") },
            .init(.syncer) { try await Self.untilCancelled { () } },
        ], logger: logger)
        do throws(NodeFailure) {
            _ = try await race.run()
            Issue.record("expected the gate's failure")
        } catch {
            guard case .failClosed("peers silent") = error else { Issue.record("got \(error)"); return }
            #expect(error.exitStatus == 3)
        }
    }

    /// Each child's failure names that child's part, whichever it is.
    @Test(arguments: [NodeComponent.syncer, .catchupGate, .producer, .submitter, .haCampaign, .haRoles])
    func aFailureNamesTheChildThatFailed(_ failing: NodeComponent) async throws {
        let children: [FirstChildWins<Void>.Child] = [NodeComponent.syncer, .catchupGate, .producer, .submitter, .haCampaign, .haRoles].map { part in
            .init(part) {
                if part == failing { throw StoreBroke(height: 3) }
                try await Self.untilCancelled { () }
            }
        }
        do throws(NodeFailure) {
            _ = try await FirstChildWins(children, logger: logger).run()
            Issue.record("expected a failure")
        } catch {
            guard case .failed(let part, let underlying) = error else { Issue.record("got \(error)"); return }
            #expect(part == failing)
            #expect(underlying is StoreBroke)
        }
    }

    /// The first child's value is returned; a value another child returns while stopping (an HA
    /// term won meanwhile) goes to `lateValue`, to be handed back.
    @Test func aLateValueIsHandedOver() async throws {
        let late = Mutex<[Int]>([])
        var race = FirstChildWins<Int>([
            .init(.haCampaign) { 1 },
            .init(.haRoles) { try await Self.untilCancelled { 2 } },
        ], logger: logger)
        race.lateValue = { value in late.withLock { $0.append(value) } }
        let first = try await race.run()
        #expect(first == 1)
        #expect(late.withLock { $0 } == [2])
    }

    /// A child that ends by being cancelled (the node stops) ends the phase with no value and
    /// no failure.
    @Test func cancelledEndsWithNothing() async throws {
        let race = FirstChildWins<Int>([
            .init(.syncer) { throw CancellationError() },
            .init(.catchupGate) { try await Self.untilCancelled { throw CancellationError() } },
        ], logger: logger)
        let value = try await race.run()
        #expect(value == nil)
    }

    /// A part that cancellation does not reach (here: one that waits for a signal only, as the
    /// DA follower waits for room in the sync pipeline) is released by the hook that runs after
    /// the first child ended and before the drain; the drain then sees its failure. Without the
    /// hook the drain would wait for it forever (the suite's time limit fails the test).
    @Test(.timeLimit(.minutes(1))) func theHookBetweenFirstEndedAndDrainReleasesWhatCancellationDoesNotReach() async throws {
        let latch = Latch()
        let order = Mutex<[String]>([])
        var race = FirstChildWins<Void>([
            .init(.syncer) { throw StoreBroke(height: 3) },
            .init(.daFollower) {
                await latch.wait()
                order.withLock { $0.append("follower released") }
                throw DARefused(daHeight: 12)
            },
        ], logger: logger)
        let others = Mutex<[NodeFailure]>([])
        race.otherFailure = { failure in others.withLock { $0.append(failure) } }
        race.afterFirstEnded = {
            order.withLock { $0.append("hook") }
            latch.open()
        }
        do throws(NodeFailure) {
            _ = try await race.run()
            Issue.record("expected the syncer's failure")
        } catch {
            guard case .failed(.syncer, let underlying) = error else { Issue.record("got \(error)"); return }
            #expect(underlying as? StoreBroke == StoreBroke(height: 3))
        }
        #expect(order.withLock { $0 } == ["hook", "follower released"])
        guard case .failed(.daFollower, let underlying)? = others.withLock({ $0.first }) else {
            Issue.record("the follower's failure while stopping was lost"); return
        }
        #expect(underlying as? DARefused == DARefused(daHeight: 12))
    }
}
