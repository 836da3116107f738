/// Polls `condition` until it holds, or throws naming `what` once `timeout` has passed. Tests
/// wait on what they can observe, never on a fixed sleep; the deadline only matters on failure,
/// so it is generous (the machine running CI is a shared 2-core one).
package func waitUntil(_ what: String, timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(20),
                      _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return }
    throw TestFailure("timed out after \(timeout) waiting for: \(what)")
}
