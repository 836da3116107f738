import NIOCore

/// Where a `ByteReader` gets its bytes: a TCP connection, the decrypted side of a Noise
/// session, or one yamux stream. nil means the other side closed (EOF).
package protocol ChunkSource {
    /// The next bytes, at most `max` where the source can split what it holds (a yamux stream
    /// can: what a reader does not take stays unread and keeps the peer's window closed; TCP
    /// and Noise hand out what they read, at most one read or one Noise frame).
    mutating func nextChunk(max: Int) async throws -> ByteBuffer?
}

/// Reads framed things (exact byte counts, varints, length-prefixed messages, multistream
/// lines) from a chunk source, keeping whatever arrived beyond them for the next read — which is
/// how a lazy multistream client's payload, sent in the same write as its protocol, survives
/// negotiation.
package struct ByteReader<Source: ChunkSource> {
    package var source: Source
    package var buffer = ByteBuffer()

    package init(_ source: Source, leftover: ByteBuffer = ByteBuffer()) {
        self.source = source
        self.buffer = leftover
    }

    /// Pulls one more chunk (at most `max` bytes where the source can split); false at EOF.
    /// Bytes already read are discarded once they are at least half the buffer, so a buffer
    /// that is never empty (frames that always end mid-frame) does not grow without end.
    mutating func fill(upTo max: Int = .max) async throws -> Bool {
        guard var chunk = try await source.nextChunk(max: Swift.max(1, max)) else { return false }
        if buffer.readableBytes == 0 {
            buffer = chunk
        } else {
            if buffer.readerIndex > 0, buffer.readerIndex >= buffer.readableBytes {
                buffer.discardReadBytes()
            }
            buffer.writeBuffer(&chunk)
        }
        return true
    }

    /// Exactly `count` bytes, or `LinkError.eof` when the stream ends first.
    package mutating func readExactly(_ count: Int) async throws -> ByteBuffer {
        while buffer.readableBytes < count {
            guard try await fill(upTo: count - buffer.readableBytes) else { throw LinkError.eof }
        }
        return buffer.readSlice(length: count)!
    }

    /// An unsigned varint; nil at a clean EOF before its first byte.
    package mutating func readVarint() async throws -> UInt64? {
        while true {
            switch Varint.parse(buffer.readableBytesView) {
            case .value(let v, let n):
                buffer.moveReaderIndex(forwardBy: n)
                return v
            case .invalid:
                throw LinkError.protocolViolation("malformed varint")
            case .incomplete:
                // A varint is at most 9 bytes: take no more than that from a splittable source.
                if !(try await fill(upTo: 9 - buffer.readableBytes)) {
                    if buffer.readableBytes == 0 { return nil }
                    throw LinkError.eof
                }
            }
        }
    }

    /// One `uvarint(len) ‖ bytes` message, at most `limit` bytes; nil at a clean EOF.
    package mutating func readMessage(limit: Int) async throws -> ByteBuffer? {
        guard let length = try await readVarint() else { return nil }
        guard length <= UInt64(limit) else {
            throw LinkError.tooLarge(Int(clamping: length), limit: limit)
        }
        return try await readExactly(Int(length))
    }

    /// The bytes already received beyond what was read.
    var leftover: ByteBuffer { buffer }

    /// Forgets what was received beyond what was read (a handler that reads nothing more).
    package mutating func discardLeftover() { buffer = ByteBuffer() }
}

/// Failures of a connection or stream below the application protocols.
package enum LinkError: Error, CustomStringConvertible {
    case eof
    case protocolViolation(String)
    case tooLarge(Int, limit: Int)
    case negotiation(String)
    case handshake(String)
    case reset
    case closed
    case timeout(String)

    package var description: String {
        switch self {
        case .eof: return "the peer closed the stream"
        case .protocolViolation(let what): return "protocol violation: \(what)"
        case .tooLarge(let n, let limit): return "message of \(n) bytes is over the limit of \(limit)"
        case .negotiation(let what): return "protocol negotiation failed: \(what)"
        case .handshake(let what): return "handshake failed: \(what)"
        case .reset: return "stream reset by the peer"
        case .closed: return "connection closed"
        case .timeout(let what): return "timed out: \(what)"
        }
    }
}

/// Runs `body` with a deadline; the error names what timed out.
package func withTimeout<T: Sendable>(_ duration: Duration, _ what: String,
                              _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: duration)
            throw LinkError.timeout(what)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Runs `body` in this task while a child task waits out `duration` and then calls `expire`,
/// which must make `body` end (e.g. reset the stream it reads). Unlike `withTimeout`, `body` is
/// not a child task, so it may use the caller's `inout` state (a reader); the child goes when
/// `body` returns.
package func withDeadline<T>(_ duration: Duration, onExpiry expire: @escaping @Sendable () -> Void,
                     _ body: () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await Task.sleep(for: duration)
            expire()
        }
        defer { group.cancelAll() }
        return try await body()
    }
}
