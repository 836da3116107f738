import Foundation
import Synchronization

/// A fresh directory under the system temp dir (mkdtemp), removed when the last reference goes —
/// unless `keep()` was called, which a harness does when a test failed so that the logs and
/// stores it holds can be read afterwards.
package final class TempDirectory: Sendable {
    package let path: String
    private let kept = Atomic<Bool>(false)

    package init(_ prefix: String = "evnode-test") {
        var template = Array((NSTemporaryDirectory() + "\(prefix)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp in \(NSTemporaryDirectory()) failed: errno \(errno)")
        path = String(cString: made!)
    }

    /// `path/name`.
    package func sub(_ name: String) -> String { path + "/" + name }

    /// Leaves the directory on disk after the test (its path is in the failure message).
    package func keep() { kept.store(true, ordering: .relaxed) }

    deinit {
        if !kept.load(ordering: .relaxed) { try? FileManager.default.removeItem(atPath: path) }
    }
}
