/// Parses and formats durations the way operators write them in Go-based rollup tooling:
/// a sequence of decimal numbers, each with a unit, such as `100ms`, `30s`, `1m30s`, `1.5h`.
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`. A bare `0` is allowed.
package enum DurationParser {
    package enum Failure: Error, Equatable, CustomStringConvertible, Sendable {
        case empty
        case missingUnit(String)
        case unknownUnit(String)
        case malformedNumber(String)
        case negative
        case overflow

        package var description: String {
            switch self {
            case .empty: return "empty duration"
            case .missingUnit(let s): return "missing unit in \"\(s)\" (use ns, us, ms, s, m or h)"
            case .unknownUnit(let u): return "unknown unit \"\(u)\" (use ns, us, ms, s, m or h)"
            case .malformedNumber(let s): return "malformed number \"\(s)\""
            case .negative: return "negative durations are not allowed"
            case .overflow: return "duration too large"
            }
        }
    }

    private static let unitNanoseconds: [String: Double] = [
        "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
        "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
    ]

    /// Returns the duration in nanoseconds.
    package static func nanoseconds(_ text: String) throws(Failure) -> UInt64 {
        let s = text.trimmingWhitespace()
        if s.isEmpty { throw .empty }
        if s.hasPrefix("-") { throw .negative }
        if s == "0" { return 0 }
        var total: Double = 0
        var rest = Substring(s.hasPrefix("+") ? String(s.dropFirst()) : s)
        if rest.isEmpty { throw .empty }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            if number.isEmpty { throw .malformedNumber(String(rest)) }
            guard let value = Double(number), number.filter({ $0 == "." }).count <= 1 else {
                throw .malformedNumber(String(number))
            }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            if unit.isEmpty { throw .missingUnit(s) }
            guard let scale = unitNanoseconds[String(unit)] else { throw .unknownUnit(String(unit)) }
            rest = rest.dropFirst(unit.count)
            total += value * scale
            if total > Double(UInt64.max / 2) { throw .overflow }
        }
        return UInt64(total.rounded())
    }

    package static func duration(_ text: String) throws(Failure) -> Duration {
        let ns = try nanoseconds(text)
        return .nanoseconds(Int64(ns))
    }

    /// Formats a duration compactly (`1m30s`, `250ms`, `0s`), the inverse of `nanoseconds(_:)`
    /// for whole units.
    package static func format(nanoseconds ns: UInt64) -> String {
        if ns == 0 { return "0s" }
        if ns % 1_000_000_000 == 0 {
            var secs = ns / 1_000_000_000
            var out = ""
            if secs >= 3600 { out += "\(secs / 3600)h"; secs %= 3600 }
            if secs >= 60 { out += "\(secs / 60)m"; secs %= 60 }
            if secs > 0 { out += "\(secs)s" }
            return out
        }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }

    package static func format(_ d: Duration) -> String {
        format(nanoseconds: d.nanosecondsClamped)
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to zero for negative durations.
    package var nanosecondsClamped: UInt64 {
        let (secs, atto) = components
        if secs < 0 { return 0 }
        return UInt64(secs) * 1_000_000_000 + UInt64(atto / 1_000_000_000)
    }
}

extension String {
    package func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
