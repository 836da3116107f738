import Logging

/// Runs a phase's children side by side; the first to end (with a value, a failure, or by being
/// cancelled) ends the phase: the others are cancelled and drained before it returns, so that
/// what they report while stopping is seen (defects 4 and 11 of the 2026-12-07 review).
///
/// Each failure is a `NodeFailure` naming the component of the child that failed. The failure
/// thrown is the first that happened: the first child's, or, when the first child ended well,
/// the first failure of a child stopping after it. Every other failure goes to `otherFailure`
/// (logged by default): none is dropped.
struct FirstChildWins<Value: Sendable>: Sendable {
    struct Child: Sendable {
        let component: NodeComponent
        let body: @Sendable () async throws -> Value

        init(_ component: NodeComponent, _ body: @escaping @Sendable () async throws -> Value) {
            self.component = component
            self.body = body
        }
    }

    private enum Outcome: Sendable {
        case value(Value)
        case cancelled
        case failed(NodeFailure)
    }

    let children: [Child]
    /// Gets a value a child returned after the first child had already ended the phase (e.g. an
    /// HA term won while the campaign was being cancelled, to be handed back).
    var lateValue: @Sendable (Value) async -> Void = { _ in }
    /// Runs once the first child has ended and the others are cancelled, before they are
    /// drained: what they may be waiting on that cancellation does not reach (the sync
    /// pipeline's room, its apply thread) is released here, so the drain does not wait on it.
    var afterFirstEnded: @Sendable () async -> Void = {}
    /// Gets each failure that is not the one thrown.
    var otherFailure: @Sendable (NodeFailure) -> Void

    init(_ children: [Child], logger: Logger) {
        self.children = children
        self.otherFailure = { failure in
            logger.error("another part failed while the phase was ending", metadata: ["error": "\(failure)"])
        }
    }

    /// The first child's value; nil when the first child to end was cancelled (the node stops).
    func run() async throws(NodeFailure) -> Value? {
        let (first, late) = await withTaskGroup(of: Outcome.self) { group -> (Outcome?, [Outcome]) in
            for child in children {
                group.addTask {
                    do {
                        return .value(try await child.body())
                    } catch is CancellationError {
                        return .cancelled
                    } catch {
                        return .failed(NodeFailure(component: child.component, underlying: error))
                    }
                }
            }
            let first = await group.next()
            group.cancelAll()
            await afterFirstEnded()
            var late: [Outcome] = []
            for await outcome in group { late.append(outcome) }
            return (first, late)
        }
        var failures: [NodeFailure] = []
        if case .failed(let failure) = first { failures.append(failure) }
        for outcome in late {
            switch outcome {
            case .value(let value): await lateValue(value)
            case .failed(let failure): failures.append(failure)
            case .cancelled: break
            }
        }
        if let thrown = failures.first {
            for other in failures.dropFirst() { otherFailure(other) }
            throw thrown
        }
        if case .value(let value) = first { return value }
        return nil
    }
}
