import Foundation

/// The executables this package builds, found next to the test bundle: `make test` runs
/// `swift build --build-tests` first, which builds them into the same `.build/<config>/`.
package enum BuiltProducts {
    package static var binDirectory: URL {
        // …/.build/debug/evnodePackageTests.xctest (a file on Linux)
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// `EVNODE_BINARY` when set (to run a test against another build of the node, such as
    /// main's, to see it fail there), else the one built next to the tests.
    package static var evnode: URL {
        if let explicit = ProcessInfo.processInfo.environment["EVNODE_BINARY"], !explicit.isEmpty {
            return URL(fileURLWithPath: explicit)
        }
        return binDirectory.appendingPathComponent("evnode")
    }

    /// The test and benchmark helper processes (`crash-writer`, `faulty-da`, …).
    package static var testkit: URL { binDirectory.appendingPathComponent("evnode-testkit") }

    /// The package's root folder (for files under Tests/ that tests run, such as the Python peers).
    package static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
}
