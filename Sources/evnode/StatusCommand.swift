import ArgumentParser
import Config
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `evnode status`: asks a running node's RPC for `/status` and prints it for a human (or raw
/// JSON with `--json`).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running node's phase, heights and catchup progress (reads its RPC).")

    @Option(name: .customLong("home"), help: "Node home whose evnode.yaml names the RPC address")
    var home: String = "./evnode-home"

    @Option(name: .customLong("rpc"), help: "RPC base URL (overrides the home's rpc.address), e.g. http://127.0.0.1:7331")
    var rpc: String?

    @Flag(name: .customLong("json"), help: "Print the raw /status JSON")
    var json = false

    func run() async throws {
        let base = try rpcBase()
        guard let url = URL(string: base + "/status") else {
            throw ConfigError.invalidValue(field: "rpc (--rpc)", value: base, source: "command line", reason: "not a URL")
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = 5
        let data: Data
        do {
            let (body, response) = try await URLSession.shared.data(for: request)
            guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
                throw StatusFailure("\(url) answered \((response as? HTTPURLResponse)?.statusCode ?? 0)")
            }
            data = body
        } catch let failure as StatusFailure {
            throw failure
        } catch {
            throw StatusFailure("cannot reach the node at \(base): \(error.localizedDescription)")
        }
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        guard let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw StatusFailure("\(url) did not answer with a JSON object")
        }
        let heights = s["heights"] as? [String: Any] ?? [:]
        let catchup = s["catchup"] as? [String: Any] ?? [:]
        func v(_ d: [String: Any], _ k: String) -> String { d[k].map { "\($0)" } ?? "-" }
        print("chain     \(v(s, "chain_id"))  mode \(v(s, "mode"))  phase \(v(s, "phase"))")
        if let reason = s["reason"] as? String { print("reason    \(reason)") }
        print("heights   store \(v(heights, "store"))  finalized \(v(heights, "finalized"))  DA head \(v(heights, "da_head"))  peers' max \(v(heights, "p2p_max"))")
        print("peers     \(v(s, "peers"))  evidence \(v(s, "evidence"))  proposer \(v(s, "proposer"))")
        print("p2p       peer id \(v(s, "peer_id"))  listening on \((s["p2p_listen"] as? [String])?.joined(separator: ", ") ?? "-")")
        if (catchup["active"] as? Bool) == true {
            print("catchup   target \(v(catchup, "target"))  \(v(catchup, "blocks_per_second")) blocks/s  ETA \(v(catchup, "eta_seconds")) s  waiting for: \(v(catchup, "blocked_by"))")
        }
        if let ha = s["ha"] as? [String: Any] {
            print("HA        \(v(ha, "node_id")) is \(v(ha, "role"))  leader \(v(ha, "leader"))  lease \(v(ha, "lease_id")) (TTL \(v(ha, "lease_ttl_seconds")) s)  replicated height \(v(ha, "last_replicated_height"))")
            if let error = ha["etcd_error"] as? String { print("etcd      \(error)") }
        }
    }

    private func rpcBase() throws -> String {
        if let rpc { return rpc.hasSuffix("/") ? String(rpc.dropLast()) : rpc }
        let config = try NodeConfigReader.read(home: home)
        let host = config.rpc.address.host == "0.0.0.0" ? "127.0.0.1" : config.rpc.address.host
        return "http://\(HostPort(host: host, port: config.rpc.address.port))"
    }
}

struct StatusFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The configuration of a home as `start` would resolve it (file and environment, no flags), for
/// the commands that read it without starting a node.
enum NodeConfigReader {
    static func read(home: String, flags: [String: RawSetting] = [:]) throws -> NodeConfig {
        let layout = HomeLayout(home: home)
        var file: [String: RawSetting] = [:]
        if let source = try layout.configSource() {
            file = try ConfigLoader.readFile(at: source.path, legacy: source.legacy).values
        }
        let environment = try ConfigLoader.environmentSettings(ProcessInfo.processInfo.environment)
        return try ConfigLoader.load(home: layout.home, file: file, environment: environment, flags: flags).config
    }
}
