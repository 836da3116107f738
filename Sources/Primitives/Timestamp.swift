/// RFC 3339 timestamps with nanosecond precision, as written in genesis.json
/// (`2023-11-14T22:13:20.000000000Z`), converted to and from unix nanoseconds.
package enum RFC3339 {
    package struct Failure: Error, CustomStringConvertible, Equatable, Sendable {
        package let text: String
        package var description: String {
            "\"\(text)\" is not an RFC 3339 time (like 2023-11-14T22:13:20.000000000Z)"
        }
    }

    package static func unixNanoseconds(_ text: String) throws(Failure) -> UInt64 {
        let b = Array(text.utf8)
        func num(_ from: Int, _ len: Int) throws(Failure) -> Int {
            guard from + len <= b.count else { throw Failure(text: text) }
            var v = 0
            for i in from..<(from + len) {
                let c = b[i]
                guard c >= 48 && c <= 57 else { throw Failure(text: text) }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        func expect(_ i: Int, _ chars: String) throws(Failure) {
            guard i < b.count, chars.utf8.contains(b[i]) else { throw Failure(text: text) }
        }
        let year = try num(0, 4); try expect(4, "-")
        let month = try num(5, 2); try expect(7, "-")
        let day = try num(8, 2); try expect(10, "Tt ")
        let hour = try num(11, 2); try expect(13, ":")
        let minute = try num(14, 2); try expect(16, ":")
        let second = try num(17, 2)
        var i = 19
        var nanos = 0
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if digits < 9 { nanos = nanos * 10 + Int(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { throw Failure(text: text) }
            for _ in digits..<max(digits, 9) { nanos *= 10 }
        }
        var offsetSeconds = 0
        guard i < b.count else { throw Failure(text: text) }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "+") ? 1 : -1
            let oh = try num(i + 1, 2); try expect(i + 3, ":")
            let om = try num(i + 4, 2)
            guard oh < 24, om < 60 else { throw Failure(text: text) }
            offsetSeconds = sign * (oh * 3600 + om * 60)
            i += 6
        } else {
            throw Failure(text: text)
        }
        guard i == b.count else { throw Failure(text: text) }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month),
              hour < 24, minute < 60, second < 61, year >= 1970 else { throw Failure(text: text) }
        let days = daysFromCivil(year, month, day)
        let secs = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offsetSeconds
        guard secs >= 0 else { throw Failure(text: text) }
        // Years up to 9999 parse; unix nanoseconds in 64 bits end in 2554 (`latest`). A later
        // time — from a DA node's header, say — is an error like any other malformed time.
        let (whole, wholeOverflow) = UInt64(secs).multipliedReportingOverflow(by: 1_000_000_000)
        let (ns, overflow) = whole.addingReportingOverflow(UInt64(nanos))
        guard !wholeOverflow, !overflow else { throw Failure(text: text) }
        return ns
    }

    /// The latest time unix nanoseconds in a UInt64 hold: 2554-07-21T23:34:33.709551615Z.
    package static let latest = format(unixNanoseconds: .max)

    package static func format(unixNanoseconds ns: UInt64) -> String {
        let secs = Int(ns / 1_000_000_000)
        let nanos = Int(ns % 1_000_000_000)
        let days = secs / 86_400
        let rem = secs % 86_400
        let (y, m, d) = civilFromDays(days)
        func pad(_ v: Int, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rem / 3600, 2)):\(pad(rem % 3600 / 60, 2)):\(pad(rem % 60, 2)).\(pad(nanos, 9))Z"
    }

    package static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days-from-civil algorithm (proleptic Gregorian calendar).
    package static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    package static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
