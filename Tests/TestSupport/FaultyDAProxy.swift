import Foundation
import ProcessKit

/// `evnode-testkit faulty-da`: a real HTTP proxy in front of a DA node that answers a share of
/// `blob.GetAll` calls with faults (500s, truncated and malformed JSON, stalls, resets, 429s…).
package final class FaultyDAProxy: Sendable {
    package let child: ChildProcess
    package let address: String
    package var url: String { "http://\(address)" }

    private init(child: ChildProcess, address: String) {
        self.child = child
        self.address = address
    }

    /// `extra` are further `faulty-da` flags (`--faults`, `--stall-ms`, …).
    package static func start(upstream: String, faultRate: Double, seed: Int, logDirectory: String,
                             name: String = "faulty-da", extra: [String] = []) async throws -> FaultyDAProxy {
        let child = try ChildProcess(name: name, executable: BuiltProducts.testkit,
                                     arguments: ["faulty-da", "--upstream", upstream, "--fault-rate", "\(faultRate)",
                                                 "--seed", "\(seed)"] + extra,
                                     logDirectory: logDirectory)
        let address = try await child.waitForLine("faulty-da to print its address") { line -> String? in
            line.hasPrefix("listening on ") ? String(line.dropFirst("listening on ".count)) : nil
        }
        return FaultyDAProxy(child: child, address: address)
    }

    /// Faults answered so far, by kind (from its "fault <kind> …" lines).
    package var faults: [String: Int] {
        var out: [String: Int] = [:]
        for line in child.lines where line.hasPrefix("fault ") {
            out[String(line.split(separator: " ")[1]), default: 0] += 1
        }
        return out
    }

    @discardableResult
    package func stop() async -> Int32 { await child.stop() }
}
