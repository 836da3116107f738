import Logging
import NIOCore
@testable import P2PSync
import ServiceLifecycle
import Synchronization
import Testing
import ProcessKit
import TestSupport

/// A `P2PService` running the way the node runs it: the only service of a `ServiceGroup`,
/// stopped by a graceful shutdown.
final class ServiceRun: Sendable {
    let service: P2PService
    private let group: ServiceGroup
    private let task: Task<Void, Never>
    /// How `run()` ended, once it did.
    private let outcome = Outcome()

    private final class Outcome: Sendable {
        private let result = Mutex<Result<Void, any Error>?>(nil)
        func withLock<T>(_ body: (inout Result<Void, any Error>?) -> T) -> T { result.withLock { body(&$0) } }
    }

    private init(_ service: P2PService, logger: Logger) {
        self.service = service
        let group = ServiceGroup(services: [service], logger: logger)
        let outcome = self.outcome
        self.group = group
        task = Task {
            let result: Result<Void, any Error>
            do {
                try await group.run()
                result = .success(())
            } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
        }
    }

    /// Runs `service` and waits until it listens; its address.
    static func start(_ service: P2PService, logger: Logger) async throws -> (ServiceRun, SocketAddress) {
        let run = ServiceRun(service, logger: logger)
        var address: SocketAddress?
        try await waitUntil("the P2P service to listen") {
            switch run.outcome.withLock({ $0 }) {
            case .failure(let error): throw error // what run() failed with, as the node would see it
            case .success: throw TestFailure("the P2P service ended before it listened")
            case nil: break
            }
            address = service.listenAddress
            return address != nil
        }
        return (run, address!)
    }

    /// Graceful shutdown; returns once `run()` did (a failure of it is a test failure).
    func stop() async {
        await group.triggerGracefulShutdown()
        await task.value
        if case .failure(let error) = outcome.withLock({ $0 }) {
            Issue.record("the P2P service failed: \(error)")
        }
    }

    /// Whether `run()` returned.
    var hasEnded: Bool { outcome.withLock { $0 != nil } }
}
