/// Writes the Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, then the
/// samples of each metric family, with label values escaped as the format requires.
package struct PrometheusText: Sendable {
    package private(set) var output = ""

    package init() {}

    package enum Kind: String, Sendable { case counter, gauge, histogram }

    package mutating func family(_ name: String, _ kind: Kind, help: String) {
        output += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
    }

    package mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        output += name
        if !labels.isEmpty {
            output += "{"
            output += labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",")
            output += "}"
        }
        output += " " + Self.format(value) + "\n"
    }

    package mutating func sample(_ name: String, _ labels: [(String, String)], _ value: UInt64) {
        sample(name, labels, Double(value))
    }

    /// `_bucket` series (cumulative, with `le`), `_sum` and `_count` of one histogram.
    package mutating func histogram(_ name: String, _ labels: [(String, String)], _ cell: HistogramCell) {
        let counts = cell.cumulativeCounts
        for (i, bound) in cell.upperBounds.enumerated() {
            sample(name + "_bucket", labels + [("le", Self.format(bound))], counts[i])
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], counts[cell.upperBounds.count])
        sample(name + "_sum", labels, cell.sum)
        sample(name + "_count", labels, cell.count)
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func escapeHelp(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func escapeLabel(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\"": out += "\\\""
            default: out.append(c)
            }
        }
        return out
    }
}
