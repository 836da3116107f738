import NIOCore

/// multistream-select 1.0 (libp2p/specs connections/README.md): every message is
/// `uvarint(len + 1) ‖ utf8 ‖ '\n'`; the header is `/multistream/1.0.0`; the responder echoes a
/// protocol it speaks or answers `na`.
package enum Multistream {
    package static let header = "/multistream/1.0.0"
    static let notAvailable = "na"
    /// Protocol ids are short; a longer line is garbage.
    static let maxLine = 1024

    package static func message(_ text: String, into buffer: inout ByteBuffer) {
        Varint.write(UInt64(text.utf8.count + 1), to: &buffer)
        buffer.writeString(text)
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    package static func messages(_ texts: [String]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for t in texts { message(t, into: &buffer) }
        return buffer
    }

    static func readLine<S>(_ reader: inout ByteReader<S>) async throws -> String {
        guard let line = try await reader.readMessage(limit: maxLine) else { throw LinkError.eof }
        var bytes = Array(line.readableBytesView)
        guard bytes.last == UInt8(ascii: "\n") else {
            throw LinkError.negotiation("multistream message without its trailing newline")
        }
        bytes.removeLast()
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Dialer side: proposes `proto` (header and protocol in one write, like Go's lazy client)
    /// and waits for the echo. Throws `negotiation` when the peer answers `na`.
    package static func select<S>(_ proto: String, reader: inout ByteReader<S>,
                          write: (ByteBuffer) async throws -> Void) async throws {
        try await write(messages([header, proto]))
        let theirHeader = try await readLine(&reader)
        guard theirHeader == header else {
            throw LinkError.negotiation("peer speaks \"\(theirHeader)\", not \(header)")
        }
        let answer = try await readLine(&reader)
        guard answer == proto else {
            throw LinkError.negotiation(answer == notAvailable ? "peer does not speak \(proto)"
                                                                : "peer answered \"\(answer)\" to \(proto)")
        }
    }

    /// Listener side: answers the header, then `na` to every proposal it does not speak, until
    /// one in `supported` (returned). `headerSent` when the caller already wrote the header.
    package static func accept<S>(_ supported: Set<String>, reader: inout ByteReader<S>, headerSent: Bool = false,
                          write: (ByteBuffer) async throws -> Void) async throws -> String {
        let theirHeader = try await readLine(&reader)
        guard theirHeader == header else {
            throw LinkError.negotiation("peer speaks \"\(theirHeader)\", not \(header)")
        }
        if !headerSent { try await write(messages([header])) }
        for _ in 0..<32 {
            let proposal = try await readLine(&reader)
            if supported.contains(proposal) {
                try await write(messages([proposal]))
                return proposal
            }
            try await write(messages([notAvailable]))
        }
        throw LinkError.negotiation("too many unsupported proposals")
    }
}
