import NIOCore
import Synchronization

/// yamux (libp2p/specs yamux/README.md; go-yamux's defaults): 12-byte big-endian headers,
/// dialer streams odd and listener streams even, a 256 KiB receive window per stream that the
/// reader reopens as it consumes, pings answered with the same value, GoAway on close.
enum Yamux {
    static let protocolID = "/yamux/1.0.0"
    static let headerSize = 12
    static let initialWindow: UInt32 = 256 * 1024
    /// Largest data frame this node sends (fits one Noise frame with its header).
    static let maxDataFrame = Noise.maxPlaintext - headerSize

    enum FrameType: UInt8 { case data = 0, windowUpdate = 1, ping = 2, goAway = 3 }

    struct Flags: OptionSet, Sendable {
        let rawValue: UInt16
        static let syn = Flags(rawValue: 1)
        static let ack = Flags(rawValue: 2)
        static let fin = Flags(rawValue: 4)
        static let rst = Flags(rawValue: 8)
    }

    enum GoAwayCode: UInt32 { case normal = 0, protocolError = 1, internalError = 2 }

    static func header(_ type: FrameType, _ flags: Flags, stream: UInt32, length: UInt32) -> ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(headerSize)
        b.writeInteger(UInt8(0))
        b.writeInteger(type.rawValue)
        b.writeInteger(flags.rawValue)
        b.writeInteger(stream)
        b.writeInteger(length)
        return b
    }
}

/// One yamux session over a secured connection. The connection's read loop feeds it with
/// `receive`; every frame it sends goes to `frames`, which one writer encrypts in order.
final class YamuxSession: Sendable {
    struct Limits: Sendable {
        var maxStreams = 256
        /// A peer may overrun a stream's window by at most this much before it is a violation.
        var windowSlack: UInt32 = 0
    }

    private struct State {
        var streams: [UInt32: YamuxStream] = [:]
        var nextStreamID: UInt32
        var highestRemoteID: UInt32 = 0
        var closed = false
        var pings: [UInt32: CheckedContinuation<Void, any Error>] = [:]
        var nextPing: UInt32 = 1
        var goAwayReceived = false
    }

    let isDialer: Bool
    let limits: Limits
    private let state: Mutex<State>
    let frames: AsyncStream<ByteBuffer>
    private let framesContinuation: AsyncStream<ByteBuffer>.Continuation
    /// Streams the peer opened, to be negotiated and handled.
    let inboundStreams: AsyncStream<YamuxStream>
    private let inboundContinuation: AsyncStream<YamuxStream>.Continuation
    private let buffered = Atomic<Int>(0)

    init(isDialer: Bool, limits: Limits = Limits()) {
        self.isDialer = isDialer
        self.limits = limits
        state = Mutex(State(nextStreamID: isDialer ? 1 : 2))
        (frames, framesContinuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        (inboundStreams, inboundContinuation) = AsyncStream.makeStream(of: YamuxStream.self)
    }

    /// Bytes handed to the writer and not yet written.
    var queuedBytes: Int { buffered.load(ordering: .relaxed) }

    func wrote(_ bytes: Int) { buffered.subtract(bytes, ordering: .relaxed) }

    func send(_ type: Yamux.FrameType, _ flags: Yamux.Flags, stream: UInt32, length: UInt32, payload: ByteBuffer? = nil) {
        var frame = Yamux.header(type, flags, stream: stream, length: length)
        if var payload { frame.writeBuffer(&payload) }
        buffered.add(frame.readableBytes, ordering: .relaxed)
        framesContinuation.yield(frame)
    }

    // MARK: Streams

    func openStream() throws -> YamuxStream {
        try state.withLock { s -> YamuxStream in
            guard !s.closed, !s.goAwayReceived else { throw LinkError.closed }
            guard s.streams.count < limits.maxStreams else { throw LinkError.protocolViolation("too many open streams") }
            let id = s.nextStreamID
            s.nextStreamID &+= 2
            let stream = YamuxStream(id: id, session: self)
            s.streams[id] = stream
            // Queued under the lock: SYNs leave in id order even when streams open concurrently.
            send(.windowUpdate, .syn, stream: id, length: 0)
            return stream
        }
    }

    func remove(_ id: UInt32) {
        _ = state.withLock { $0.streams.removeValue(forKey: id) }
    }

    var streamCount: Int { state.withLock { $0.streams.count } }

    // MARK: Keep-alive

    /// Sends a ping and waits for its answer.
    func ping() async throws {
        let id = state.withLock { s -> UInt32 in
            defer { s.nextPing &+= 1 }
            return s.nextPing
        }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let closed = state.withLock { s -> Bool in
                if s.closed { return true }
                s.pings[id] = c
                return false
            }
            if closed { c.resume(throwing: LinkError.closed) } else {
                send(.ping, .syn, stream: 0, length: id)
            }
        }
    }

    // MARK: Receiving

    /// Consumes every complete frame in `buffer`. Throws on a protocol violation (the caller
    /// sends GoAway and closes).
    func receive(_ buffer: inout ByteBuffer) throws {
        while buffer.readableBytes >= Yamux.headerSize {
            let start = buffer.readerIndex
            let version: UInt8 = buffer.getInteger(at: start)!
            guard version == 0 else { throw LinkError.protocolViolation("yamux version \(version)") }
            let rawType: UInt8 = buffer.getInteger(at: start + 1)!
            guard let type = Yamux.FrameType(rawValue: rawType) else {
                throw LinkError.protocolViolation("yamux frame type \(rawType)")
            }
            let flags = Yamux.Flags(rawValue: buffer.getInteger(at: start + 2)!)
            let id: UInt32 = buffer.getInteger(at: start + 4)!
            let length: UInt32 = buffer.getInteger(at: start + 8)!
            var payload: ByteBuffer?
            if type == .data {
                guard buffer.readableBytes >= Yamux.headerSize + Int(length) else { return }
                buffer.moveReaderIndex(forwardBy: Yamux.headerSize)
                payload = buffer.readSlice(length: Int(length))
            } else {
                buffer.moveReaderIndex(forwardBy: Yamux.headerSize)
            }
            try handle(type, flags, id, length, payload)
        }
    }

    private func handle(_ type: Yamux.FrameType, _ flags: Yamux.Flags, _ id: UInt32, _ length: UInt32,
                        _ payload: ByteBuffer?) throws {
        switch type {
        case .ping:
            if flags.contains(.syn) {
                send(.ping, .ack, stream: 0, length: length)
            } else if flags.contains(.ack) {
                let c = state.withLock { $0.pings.removeValue(forKey: length) }
                c?.resume()
            }
            return
        case .goAway:
            state.withLock { $0.goAwayReceived = true }
            throw LinkError.closed
        case .data, .windowUpdate:
            break
        }
        guard id != 0 else { throw LinkError.protocolViolation("stream frame on stream 0") }
        var stream: YamuxStream?
        var refused = false
        if flags.contains(.syn) {
            let remoteParity: UInt32 = isDialer ? 0 : 1
            guard id % 2 == remoteParity else {
                throw LinkError.protocolViolation("peer opened stream \(id) with our parity")
            }
            let created = try state.withLock { s -> YamuxStream? in
                // Like go-yamux: only an id that is open now is a duplicate (SYNs of streams
                // opened concurrently may arrive out of id order).
                guard s.streams[id] == nil else {
                    throw LinkError.protocolViolation("peer reopened stream \(id)")
                }
                s.highestRemoteID = max(s.highestRemoteID, id)
                guard !s.closed else { return nil }
                guard s.streams.count < limits.maxStreams else {
                    refused = true
                    return nil
                }
                let st = YamuxStream(id: id, session: self)
                s.streams[id] = st
                return st
            }
            if refused {
                send(.windowUpdate, .rst, stream: id, length: 0)
                return
            }
            guard let created else { return }
            stream = created
            send(.windowUpdate, .ack, stream: id, length: 0)
            inboundContinuation.yield(created)
        } else {
            stream = state.withLock { $0.streams[id] }
        }
        // Frames for a stream this node already closed or reset are dropped.
        guard let stream else { return }
        if type == .windowUpdate {
            stream.windowOpened(by: length)
        } else if let payload, payload.readableBytes > 0 {
            try stream.received(payload, slack: limits.windowSlack)
        }
        if flags.contains(.rst) {
            stream.remoteReset()
        } else if flags.contains(.fin) {
            stream.remoteFinished()
        }
    }

    /// Ends the session: every stream fails, pending pings fail, the writer and the inbound
    /// stream feed finish. `goAway` first tells the peer why.
    func close(goAway: Yamux.GoAwayCode? = nil) {
        let (streams, pings, wasClosed) = state.withLock { s in
            defer {
                s.closed = true
                s.streams = [:]
                s.pings = [:]
            }
            return (Array(s.streams.values), Array(s.pings.values), s.closed)
        }
        if !wasClosed, let goAway { send(.goAway, [], stream: 0, length: goAway.rawValue) }
        for stream in streams { stream.connectionClosed() }
        for p in pings { p.resume(throwing: LinkError.closed) }
        framesContinuation.finish()
        inboundContinuation.finish()
    }

    var isClosed: Bool { state.withLock { $0.closed } }
}

/// One yamux stream: bytes in (an async sequence the reader consumes, reopening the window as
/// it goes), bytes out within the peer's window.
final class YamuxStream: Sendable {
    let id: UInt32
    let session: YamuxSession

    private struct State {
        var sendWindow: UInt32 = Yamux.initialWindow
        var receiveWindow: UInt32 = Yamux.initialWindow
        var consumedUnacknowledged: UInt32 = 0
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var localClosed = false
        var remoteClosed = false
        var reset = false
        var connectionGone = false
        var localClosedForReading = false
    }

    private let state = Mutex(State())
    let inbound: AsyncThrowingStream<ByteBuffer, any Error>
    private let continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation

    init(id: UInt32, session: YamuxSession) {
        self.id = id
        self.session = session
        (inbound, continuation) = AsyncThrowingStream.makeStream(of: ByteBuffer.self, throwing: (any Error).self)
    }

    // MARK: From the session

    func received(_ payload: ByteBuffer, slack: UInt32) throws {
        let n = UInt32(payload.readableBytes)
        let accepted = try state.withLock { s -> Bool in
            guard !s.remoteClosed else { throw LinkError.protocolViolation("data after FIN on stream \(id)") }
            guard n <= s.receiveWindow &+ slack else {
                throw LinkError.protocolViolation("stream \(id) overran its receive window (\(n) > \(s.receiveWindow))")
            }
            s.receiveWindow -= min(n, s.receiveWindow)
            return !s.reset && !s.localClosedForReading
        }
        if accepted { continuation.yield(payload) }
    }

    func windowOpened(by delta: UInt32) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.sendWindow &+= delta
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    func remoteFinished() {
        let remove = state.withLock { s -> Bool in
            s.remoteClosed = true
            return s.localClosed
        }
        continuation.finish()
        if remove { session.remove(id) }
    }

    func remoteReset() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.reset = true
            defer { s.waiters = [] }
            return s.waiters
        }
        continuation.finish(throwing: LinkError.reset)
        for w in waiters { w.resume(throwing: LinkError.reset) }
        session.remove(id)
    }

    func connectionClosed() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.connectionGone = true
            defer { s.waiters = [] }
            return s.waiters
        }
        continuation.finish(throwing: LinkError.closed)
        for w in waiters { w.resume(throwing: LinkError.closed) }
    }

    // MARK: For the protocol handler

    /// Called by the reader after it took `count` bytes: reopens the window once half of it is used.
    func consumed(_ count: Int) {
        let delta = state.withLock { s -> UInt32 in
            s.consumedUnacknowledged &+= UInt32(count)
            guard s.consumedUnacknowledged >= Yamux.initialWindow / 2, !s.remoteClosed, !s.reset else { return 0 }
            let d = s.consumedUnacknowledged
            s.consumedUnacknowledged = 0
            s.receiveWindow &+= d
            return d
        }
        if delta > 0 { session.send(.windowUpdate, [], stream: id, length: delta) }
    }

    /// Writes `bytes`, waiting for the peer's window as needed.
    func write(_ bytes: ByteBuffer) async throws {
        var rest = bytes
        while rest.readableBytes > 0 {
            let n = try await reserve(min(rest.readableBytes, Yamux.maxDataFrame))
            let chunk = rest.readSlice(length: n)!
            session.send(.data, [], stream: id, length: UInt32(n), payload: chunk)
        }
    }

    private func reserve(_ wanted: Int) async throws -> Int {
        while true {
            let granted = try state.withLock { s -> Int? in
                if s.reset { throw LinkError.reset }
                if s.connectionGone { throw LinkError.closed }
                if s.localClosed { throw LinkError.protocolViolation("write after close on stream \(id)") }
                guard s.sendWindow > 0 else { return nil }
                let n = min(wanted, Int(s.sendWindow))
                s.sendWindow -= UInt32(n)
                return n
            }
            if let granted { return granted }
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let now = state.withLock { s -> Bool in
                    if s.sendWindow > 0 || s.reset || s.connectionGone { return true }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        }
    }

    /// Half-close (yamux FIN): the peer reads EOF; reading goes on.
    func closeWrite() {
        let (send, remove) = state.withLock { s -> (Bool, Bool) in
            guard !s.localClosed, !s.reset, !s.connectionGone else { return (false, false) }
            s.localClosed = true
            return (true, s.remoteClosed)
        }
        if send { session.send(.windowUpdate, .fin, stream: id, length: 0) }
        if remove { session.remove(id) }
    }

    /// Done with the stream both ways: FIN, and whatever else the peer sends is dropped.
    func close() {
        closeWrite()
        state.withLock { $0.localClosedForReading = true }
        continuation.finish()
        session.remove(id)
    }

    /// Abort (yamux RST).
    func reset() {
        let (send, waiters) = state.withLock { s -> (Bool, [CheckedContinuation<Void, any Error>]) in
            guard !s.reset, !s.connectionGone else { return (false, []) }
            s.reset = true
            defer { s.waiters = [] }
            return (true, s.waiters)
        }
        if send { session.send(.windowUpdate, .rst, stream: id, length: 0) }
        continuation.finish()
        for w in waiters { w.resume(throwing: LinkError.reset) }
        session.remove(id)
    }

    var remoteHasClosed: Bool { state.withLock { $0.remoteClosed } }
}

extension YamuxStream {
    /// The stream's bytes as a reader source (acknowledges consumption for flow control).
    struct Source: ChunkSource {
        let stream: YamuxStream
        var iterator: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator

        init(_ stream: YamuxStream) {
            self.stream = stream
            self.iterator = stream.inbound.makeAsyncIterator()
        }

        mutating func nextChunk() async throws -> ByteBuffer? {
            guard let chunk = try await iterator.next() else { return nil }
            stream.consumed(chunk.readableBytes)
            return chunk
        }
    }

    func reader(leftover: ByteBuffer = ByteBuffer()) -> ByteReader<Source> {
        ByteReader(Source(self), leftover: leftover)
    }
}
