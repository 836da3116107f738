import Sync
import ProcessKit

extension SyncPipeline {
    /// Waits until the pipeline's store is at `height` or above (`exactly`: at `height`).
    public func waitForStoreHeight(_ height: UInt64, exactly: Bool = false, timeout: Duration = .seconds(60)) async throws {
        try await waitUntil("the pipeline's store at \(height) (now \(progress.storeHeight))", timeout: timeout,
                            every: .milliseconds(5)) {
            exactly ? progress.storeHeight == height : progress.storeHeight >= height
        }
    }
}
