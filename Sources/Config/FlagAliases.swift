/// Reads the setting flags of `evnode start` (and `init`, `net-info`, `unsafe-clean`) the way
/// ev-node's pflag does, against the settings table: `--evnode.a.b value`, `--evnode.a.b=value`,
/// a bare boolean `--evnode.a.b` (true) or `--evnode.a.b=false`, `--rollkit.*` read as
/// `--evnode.*`, and evnode's older spellings (`--aggregator`, `--da.address`, `--p2p.listen`,
/// `--no-aggregator`, …) as aliases.
package enum SettingFlags {
    package static let rollkitPrefix = "rollkit."
    package static let evnodePrefix = "evnode."

    /// The given flags keyed by setting key. A flag given twice keeps its last value (as pflag),
    /// except `da.signing_addresses`, a list that grows (pflag's StringSlice).
    package static func parse(_ arguments: [String]) throws(ConfigError) -> [String: RawSetting] {
        var out: [String: RawSetting] = [:]
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            i += 1
            guard argument.hasPrefix("--"), argument.count > 2 else {
                var reason = "not a flag (evnode start takes no arguments besides flags)"
                if ValueReader.parseBool(argument) != nil, i >= 2, arguments[i - 2].hasPrefix("--") {
                    reason = "a boolean flag takes its value after '=' (\(arguments[i - 2])=\(argument))"
                }
                throw .invalidValue(field: "argument", value: argument, source: "command line", reason: reason)
            }
            let body = argument.dropFirst(2)
            var name: String
            var value: String?
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                value = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
            }
            let typed = "--" + name
            if name.hasPrefix(rollkitPrefix) { name = evnodePrefix + name.dropFirst(rollkitPrefix.count) }
            var setting = Settings.byFlag[name]
            var negated = false
            if setting == nil, name.hasPrefix("no-"), let s = Settings.byFlag[String(name.dropFirst(3))], s.kind == .bool {
                setting = s
                negated = true
            }
            guard let setting else {
                throw .invalidValue(field: "flag", value: typed, source: "command line",
                                    reason: "unknown flag (`evnode start --help` lists every setting)")
            }
            if setting.kind == .bool {
                if negated {
                    guard value == nil else {
                        throw .invalidValue(field: typed, value: value ?? "", source: "command line", reason: "--no-… takes no value")
                    }
                    value = "false"
                } else if let given = value {
                    guard let b = ValueReader.parseBool(given), !given.isEmpty else {
                        throw .invalidValue(field: typed, value: given, source: "command line", reason: "expected true or false")
                    }
                    value = b ? "true" : "false"
                } else {
                    value = "true"
                }
            } else if value == nil {
                guard i < arguments.count else {
                    throw .missing("\(typed) needs a value")
                }
                value = arguments[i]
                i += 1
            }
            var text = value ?? ""
            if setting.id == .daSigningAddresses, let earlier = out[setting.key], !earlier.value.isEmpty, !text.isEmpty {
                text = earlier.value + "," + text
            }
            out[setting.key] = RawSetting(value: text, source: typed, origin: .commandLine)
        }
        return out
    }
}

/// Rewrites arguments before ArgumentParser sees them, for the commands that do not read setting
/// flags (`rollback`, `local-da`, `keys`, …): Go-style `--flag=true|false` becomes
/// ArgumentParser's `--flag` / `--no-flag` for their boolean flags. (Setting flags, `--rollkit.*`
/// included, are left as typed for `SettingFlags`, so that errors name them as typed.)
package enum FlagAliases {
    /// Boolean flags of evnode's other commands that ev-node's operators may write Go-style.
    static let booleanFlags: Set<String> = ["sync-node", "subscribe", "json", "force"]
    /// Those declared with an inversion (`--no-subscribe`); the others are off unless given.
    static let invertible: Set<String> = ["subscribe"]

    package struct Failure: Error, CustomStringConvertible, Equatable, Sendable {
        package let flag: String
        package let value: String
        package var description: String { "invalid value \"\(value)\" for --\(flag): expected true or false" }
    }

    package static func normalize(_ arguments: [String]) throws(Failure) -> [String] {
        var out: [String] = []
        out.reserveCapacity(arguments.count)
        for argument in arguments {
            guard argument.hasPrefix("--"), argument != "--" else {
                out.append(argument)
                continue
            }
            let body = String(argument.dropFirst(2))
            if let eq = body.firstIndex(of: "="), booleanFlags.contains(String(body[..<eq])) {
                let name = String(body[..<eq]), value = String(body[body.index(after: eq)...])
                switch ValueReader.parseBool(value) {
                case .some(true) where !value.isEmpty: out.append("--" + name)
                case .some(false) where !value.isEmpty:
                    if invertible.contains(name) { out.append("--no-" + name) }
                default: throw Failure(flag: name, value: value)
                }
            } else {
                out.append("--" + body)
            }
        }
        return out
    }
}
