import Sync
import ProcessKit

extension SyncPipeline {
    /// Waits until the pipeline's store is at `height` or above (`exactly`: at `height`).
    package func waitForStoreHeight(_ height: UInt64, exactly: Bool = false, timeout: Duration = .seconds(60)) async throws {
        try await waitUntil("the pipeline's store at \(height) (now \(progress.storeHeight))", timeout: timeout,
                            every: .milliseconds(5)) {
            exactly ? progress.storeHeight == height : progress.storeHeight >= height
        }
    }
}

extension SyncPipeline {
    /// Runs `body`, then stops the pipeline (awaited), also when `body` throws: `stop()` is
    /// async, so it cannot go in a `defer`.
    package func stop<T>(after body: () async throws -> T) async rethrows -> T {
        do {
            let result = try await body()
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }
}
