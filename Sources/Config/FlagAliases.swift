/// Rewrites ev-node's flag spellings to evnode's before argument parsing, so operators' existing
/// scripts keep working. Go-style boolean values (`--flag=true`, `--flag=false`) are accepted for
/// evnode's own boolean flags too.
public enum FlagAliases {
    /// ev-node spelling → evnode flag.
    public static let aliases: [String: String] = [
        "evnode.node.aggregator": "aggregator",
        "evnode.node.catchup_timeout": "catchup-timeout",
        "evnode.raft.enable": "raft.enable",
        // hashicorp/raft's meaning too: how long a follower goes without the leader before it acts.
        "evnode.raft.heartbeat_timeout": "raft.heartbeat-timeout",
        "evnode.da.address": "da.address",
        "evnode.node.block_time": "block-time",
        "evnode.da.submit_options": "da.submit-options",
        "evnode.da.signing_addresses": "da.signing-addresses",
        "evnode.da.auth_token": "da.auth-token",
        "evnode.node.max_pending_headers_and_data": "max-pending-blocks",
        "evnode.signer.signer_type": "signer.signer-type",
        "evnode.signer.signer_path": "signer.signer-path",
        "evnode.signer.passphrase_file": "signer.passphrase-file",
    ]

    static let booleanFlags: Set<String> = Set(Settings.all.filter { $0.kind == .bool }.map(\.flag))

    public struct Failure: Error, CustomStringConvertible, Equatable, Sendable {
        public let flag: String
        public let value: String
        public var description: String { "invalid value \"\(value)\" for --\(flag): expected true or false" }
    }

    public static func normalize(_ arguments: [String]) throws(Failure) -> [String] {
        var out: [String] = []
        out.reserveCapacity(arguments.count)
        for argument in arguments {
            guard argument.hasPrefix("--"), argument != "--" else {
                out.append(argument)
                continue
            }
            let body = argument.dropFirst(2)
            let name: String
            let value: String?
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                value = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
                value = nil
            }
            let canonical = aliases[name] ?? name
            if booleanFlags.contains(canonical), let value {
                switch value.lowercased() {
                case "true", "1", "t", "yes": out.append("--" + canonical)
                case "false", "0", "f", "no": out.append("--no-" + canonical)
                default: throw Failure(flag: name, value: value)
                }
            } else if let value {
                out.append("--\(canonical)=\(value)")
            } else {
                out.append("--" + canonical)
            }
        }
        return out
    }
}
