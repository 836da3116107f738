import Foundation
import ProcessKit

/// `etcd` (Debian's etcd-server) on two free loopback ports with its data in a test directory;
/// restartable with the same data, stopped by PID.
package final class EtcdProcess: @unchecked Sendable {
    package static let executable = URL(fileURLWithPath: "/usr/bin/etcd")
    package let directory: String
    package let logDirectory: String
    package let clientPort: Int
    package let peerPort: Int
    package private(set) var child: ChildProcess?
    private var runs = 0

    package var url: String { "http://127.0.0.1:\(clientPort)" }

    package init(directory: String, logDirectory: String, taken: Set<Int> = []) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable.path) else {
            throw TestFailure("\(Self.executable.path) is missing: install etcd-server (`make deps`)")
        }
        self.directory = directory
        self.logDirectory = logDirectory
        clientPort = try freeLoopbackPort(avoiding: taken)
        peerPort = try freeLoopbackPort(avoiding: taken.union([clientPort]))
    }

    /// Set by `start()`: the temp directory an etcd of its own keeps its data and log in.
    private var ownDirectory: TempDirectory?

    /// A started etcd in a temp directory of its own, removed with it.
    package static func start() async throws -> EtcdProcess {
        let dir = TempDirectory("evnode-etcd")
        let etcd = try EtcdProcess(directory: dir.sub("data"), logDirectory: dir.sub("logs"))
        etcd.ownDirectory = dir
        try await etcd.start()
        return etcd
    }

    /// Starts etcd and waits until it answers.
    package func start() async throws {
        runs += 1
        let peer = "http://127.0.0.1:\(peerPort)"
        let child = try ChildProcess(name: "etcd-run\(runs)", executable: Self.executable, arguments: [
            "--logger=zap", "--name", "evnode-test", "--data-dir", directory,
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "evnode-test=\(peer)",
        ], logDirectory: logDirectory)
        self.child = child
        try await waitUntil("etcd to answer on \(url)", timeout: .seconds(30), every: .milliseconds(100)) {
            if !child.isRunning { throw TestFailure("etcd exited:\n\(child.output.suffix(2000))") }
            return (try? await HTTP.get(self.url + "/version"))?.status == 200
        }
    }

    @discardableResult
    package func stop(signal: Int32 = SIGTERM) async -> Int32 {
        await child?.stop(signal: signal, timeout: .seconds(10)) ?? 0
    }

    package var isRunning: Bool { child?.isRunning ?? false }

    /// The value of `key` through etcd's JSON gateway, nil when absent.
    package func value(forKey key: String) async throws -> String? {
        let encoded = Data(key.utf8).base64EncodedString()
        let r = try await HTTP.post(url + "/v3/kv/range", body: Data("{\"key\":\"\(encoded)\"}".utf8))
        struct Range: Decodable {
            struct KV: Decodable { let value: String? }
            let kvs: [KV]?
        }
        let range = try JSONDecoder().decode(Range.self, from: r.body)
        guard let value = range.kvs?.first?.value, let bytes = Data(base64Encoded: value) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A chain's last replicated height as etcd holds it (0 when none).
    package func replicatedHeight(chainID: String) async throws -> UInt64 {
        try await value(forKey: "/evnode/\(chainID)/ha/height").flatMap { UInt64($0) } ?? 0
    }
}

extension EtcdProcess {
    /// SIGKILL without suspending (for a `defer`).
    package func kill9() { child?.kill9() }
}
