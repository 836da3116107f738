import DA
import Foundation

/// A temp dir with a running local DA and a client for it, torn down whatever the body does.
func withLocalDA<T>(arguments: [String] = ["--block-time", "1h"],
                    clientOptions: (String) -> DAClientOptions = { DAClientOptions(url: $0, retry: .none) },
                    _ body: (LocalDAProcess, CelestiaDAClient, TemporaryDirectory) async throws -> T) async throws -> T {
    let dir = try TemporaryDirectory(prefix: "evnode-da")
    defer { dir.remove() }
    let da = try await LocalDAProcess.start(home: dir.path + "/da", arguments: arguments)
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
        throw error
    }
}

/// Runs `/usr/bin/curl` with `arguments` and returns its stdout (the way a Celestia user would
/// talk to the API by hand, independent of evnode's own client).
func runCurl(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["-sS"] + arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func namespace(_ name: String) -> DANamespace { DANamespace(name: name) }

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
