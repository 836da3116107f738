/// Splits a server-sent-events byte stream (`text/event-stream`) into events, as `GET /events`
/// sends them: `event:` and `data:` lines, a blank line ending each event. Bounded: an event
/// longer than `maxEventBytes` is an error, not a growing buffer.
package struct EventStreamParser: Sendable {
    package struct Event: Sendable, Equatable {
        package var name: String
        package var data: String
    }

    package struct TooLong: Error, CustomStringConvertible {
        package let limit: Int
        package var description: String { "an event of the stream is longer than \(limit) bytes" }
    }

    package static let defaultMaxEventBytes = 4 << 20
    package let maxEventBytes: Int
    private var line: [UInt8] = []
    private var name = ""
    private var data: [String] = []
    private var eventBytes = 0

    package init(maxEventBytes: Int = defaultMaxEventBytes) {
        self.maxEventBytes = maxEventBytes
    }

    /// The events that `bytes` completes.
    package mutating func feed(_ bytes: some Sequence<UInt8>) throws(TooLong) -> [Event] {
        var out: [Event] = []
        for byte in bytes {
            guard byte == UInt8(ascii: "\n") else {
                line.append(byte)
                eventBytes += 1
                if eventBytes > maxEventBytes { throw TooLong(limit: maxEventBytes) }
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            let text = String(decoding: line, as: UTF8.self)
            line.removeAll(keepingCapacity: true)
            if text.isEmpty {
                if !data.isEmpty { out.append(Event(name: name.isEmpty ? "message" : name, data: data.joined(separator: "\n"))) }
                name = ""
                data = []
                eventBytes = 0
            } else if text.hasPrefix(":") {
                continue
            } else {
                let (field, value) = Self.split(text)
                switch field {
                case "event": name = value
                case "data": data.append(value)
                default: break
                }
            }
        }
        return out
    }

    private static func split(_ line: String) -> (String, String) {
        guard let colon = line.firstIndex(of: ":") else { return (line, "") }
        var value = line[line.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        return (String(line[..<colon]), String(value))
    }
}
