import Primitives
import DAClient
import Chain
import Foundation
import ProcessKit

/// `evnode local-da` as a process: its database in `home`, on the loopback port it was given or
/// picked itself (port 0, read back from its "listening on" line). Restartable on the same port
/// and database, so nodes pointed at it keep their address.
package final class LocalDAProcess: @unchecked Sendable {
    package let home: String
    package let logDirectory: String
    package let name: String
    package private(set) var port: Int
    package private(set) var child: ChildProcess
    private var runs = 1

    package var url: String { "http://127.0.0.1:\(port)" }

    private init(home: String, logDirectory: String, name: String, port: Int, child: ChildProcess) {
        self.home = home
        self.logDirectory = logDirectory
        self.name = name
        self.port = port
        self.child = child
    }

    /// Starts local DA (with `--block-time blockTime` when given) and `arguments`; waits until it
    /// listens. Its log goes to `logDirectory`, `<home>.logs` by default.
    package static func start(home: String, logDirectory: String? = nil, name: String = "local-da", port: Int = 0,
                             blockTime: String? = nil, arguments: [String] = []) async throws -> LocalDAProcess {
        let logDirectory = logDirectory ?? home + ".logs"
        let child = try launch(home: home, logDirectory: logDirectory, name: name, port: port, blockTime: blockTime,
                               extra: arguments)
        let bound = try await listeningPort(child)
        return LocalDAProcess(home: home, logDirectory: logDirectory, name: name, port: bound, child: child)
    }

    /// Stops it (SIGTERM) and starts it again on the same port and database.
    package func restart(blockTime: String? = nil, arguments: [String] = []) async throws {
        await child.stop()
        runs += 1
        child = try Self.launch(home: home, logDirectory: logDirectory, name: "\(name)-run\(runs)", port: port,
                                blockTime: blockTime, extra: arguments)
        _ = try await Self.listeningPort(child)
    }

    @discardableResult
    package func stop(signal: Int32 = SIGTERM) async -> Int32 { await child.stop(signal: signal) }

    package var isRunning: Bool { child.isRunning }

    /// A DA client for it (the node's own, for tests that post or read blobs as a node would).
    package func client(retry: RetryPolicy = .none) throws -> CelestiaDAClient {
        try CelestiaDAClient(options: DAClientOptions(url: url, retry: retry))
    }

    private static func launch(home: String, logDirectory: String, name: String, port: Int, blockTime: String?,
                               extra: [String]) throws -> ChildProcess {
        try ChildProcess(name: name, executable: BuiltProducts.evnode,
                         arguments: ["local-da", "--home", home, "--listen", "127.0.0.1:\(port)"]
                             + (blockTime.map { ["--block-time", $0] } ?? []) + extra,
                         logDirectory: logDirectory)
    }

    private static func listeningPort(_ child: ChildProcess) async throws -> Int {
        try await child.waitForLine("local DA to print its address") { line -> Int? in
            guard line.hasPrefix("listening on "), let colon = line.lastIndex(of: ":") else { return nil }
            return Int(line[line.index(after: colon)...])
        }
    }
}

/// A temp directory with a running local DA (one-hour blocks unless told) and a client for it,
/// both torn down whatever the body does.
package func withLocalDA<T>(arguments: [String] = ["--block-time", "1h"],
                           clientOptions: (String) -> DAClientOptions = { DAClientOptions(url: $0, retry: .none) },
                           _ body: (LocalDAProcess, CelestiaDAClient, TempDirectory) async throws -> T) async throws -> T {
    let dir = TempDirectory("evnode-da")
    let da = try await LocalDAProcess.start(home: dir.sub("da"), logDirectory: dir.sub("logs"), arguments: arguments)
    let client: CelestiaDAClient
    do {
        client = try CelestiaDAClient(options: clientOptions(da.url))
    } catch {
        await da.stop()
        throw error
    }
    do {
        let result = try await body(da, client, dir)
        await client.shutdown()
        await da.stop()
        return result
    } catch {
        await client.shutdown()
        await da.stop()
        dir.keep()
        throw TestFailure("\(error)\n(local DA log: \(da.child.logPath))")
    }
}

/// Every evnode blob of a chain on a DA node: for each block height, the DA heights its header
/// envelope and its signed data were found at (a height twice in a list: posted twice).
package struct DAContents: Sendable {
    package var headers: [UInt64: [UInt64]] = [:]
    package var data: [UInt64: [UInt64]] = [:]
    /// Header hashes (lowercase hex) per block height, in DA order, one entry per header blob.
    package var headerHashes: [UInt64: [String]] = [:]
    package var badSignatures = 0

    /// Reads DA heights 1…head. With `proposer`, header blobs of other chains or signers are
    /// skipped; without, every blob must be evnode's (a stranger's blob is a failure).
    package static func read(_ client: any DAClient, headerNamespace: DANamespace, dataNamespace: DANamespace,
                            chainID: String? = nil, proposer: [UInt8]? = nil) async throws -> DAContents {
        var out = DAContents()
        let head = try await client.networkHead().height
        guard head > 0 else { return out }
        let namespaces = headerNamespace == dataNamespace ? [headerNamespace] : [headerNamespace, dataNamespace]
        let filtering = chainID != nil || proposer != nil
        for try await event in client.retrieve(heights: 1...head, namespaces: namespaces, parallelism: 4) {
            guard case .height(let h) = event else { continue }
            for blob in h.blobs {
                // In a shared namespace the two kinds are told apart by decoding.
                if blob.namespace == headerNamespace, let envelope = try? DAHeaderEnvelope(decoding: blob.data),
                   envelope.header.height > 0 {
                    let header = envelope.signedHeader.header
                    if let chainID, header.chainID != chainID { continue }
                    if let proposer, header.proposerAddress != proposer { continue }
                    out.headers[header.height, default: []].append(h.height)
                    out.headerHashes[header.height, default: []].append(Hex.encode(header.hash))
                    if !envelope.hasValidSignatures { out.badSignatures += 1 }
                } else if blob.namespace == dataNamespace, let signed = try? SignedData(decoding: blob.data),
                          let metadata = signed.data.metadata {
                    if let chainID, metadata.chainID != chainID { continue }
                    out.data[metadata.height, default: []].append(h.height)
                    if !signed.hasValidSignature { out.badSignatures += 1 }
                } else if !filtering {
                    throw TestFailure("DA height \(h.height) holds a blob that is neither header nor data")
                }
            }
        }
        return out
    }
}
