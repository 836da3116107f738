/// A configuration problem, phrased as the one line an operator sees before the process exits
/// with status 2. Every case names the field (or file) and the offending value.
package enum ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A field has a value that cannot be used; `source` says where the value came from.
    case invalidValue(field: String, value: String, source: String, reason: String)
    /// Two settings that cannot be combined.
    case conflict(String)
    /// Something required is absent.
    case missing(String)
    /// A file could not be read, parsed or written.
    case file(path: String, reason: String)
    /// A key in config.yaml that evnode does not know (a typo would otherwise be silently ignored).
    case unknownKey(key: String, path: String)
    /// An ev-node setting for a feature evnode does not have, set to something other than its
    /// default.
    case unsupported(key: String, flag: String, value: String, source: String, reason: String)
    /// The signer's high-water mark at `path` is `mark`; recording `height` would lower it or
    /// record a signed height a second time. Only `evnode signer reset` lowers a mark.
    case markNotRaised(path: String, height: UInt64, mark: UInt64)
    /// The remote signer's mark could not be read (issue 29): which heights it signed is unknown.
    case remoteMark(address: String, reason: String)

    package var description: String {
        switch self {
        case let .invalidValue(field, value, source, reason):
            return "invalid \(field) \"\(value)\" (from \(source)): \(reason)"
        case let .conflict(text):
            return text
        case let .missing(text):
            return text
        case let .file(path, reason):
            return "\(path): \(reason)"
        case let .unknownKey(key, path):
            return "\(path): unknown key \"\(key)\""
        case let .unsupported(key, flag, value, source, reason):
            let fallback = Settings.byKey[key].map { $0.defaultValue.isEmpty ? "empty" : $0.defaultValue } ?? "its default"
            return "\(key) (\(flag)) \"\(value)\" from \(source) is refused: \(reason) (only its default, \(fallback), is accepted)"
        case let .markNotRaised(path, height, mark):
            let why = height < mark ? "a mark never goes down (only `evnode signer reset` lowers it)"
                                    : "that height is already recorded as signed; signing it again would be a second signature"
            return "\(path): refusing to record height \(height) as signed: the signer's high-water mark is \(mark) and \(why)"
        case let .remoteMark(address, reason):
            return "the remote signer at \(address): its high-water mark cannot be read: \(reason)"
        }
    }
}
