import Foundation
import Logging

/// A quiet logger, or one at `P2P_TEST_LOG`'s level (as P2PSyncTests' is) when a test is debugged.
func testLogger(_ name: String) -> Logger {
    var logger = Logger(label: "evnode.libp2p.test.\(name)")
    let level = ProcessInfo.processInfo.environment["P2P_TEST_LOG"].flatMap(Logger.Level.init(rawValue:))
    logger.logLevel = level ?? .critical
    return logger
}
