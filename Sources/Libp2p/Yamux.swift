import NIOCore
import Synchronization

/// yamux (libp2p/specs yamux/README.md; go-yamux's defaults): 12-byte big-endian headers,
/// dialer streams odd and listener streams even, a 256 KiB receive window per stream that the
/// reader reopens as it consumes, pings answered with the same value, GoAway on close.
package enum Yamux {
    package static let protocolID = "/yamux/1.0.0"
    static let headerSize = 12
    /// The receive window of every stream, and the most this node ever grants one: it never
    /// sends a window update beyond what its reader consumed. So no stream holds more than this
    /// of the peer's data unread, and no data frame may be longer.
    static let initialWindow: UInt32 = 256 * 1024
    /// Largest data frame this node sends (fits one Noise frame with its header).
    static let maxDataFrame = Noise.maxPlaintext - headerSize

    package enum FrameType: UInt8 { case data = 0, windowUpdate = 1, ping = 2, goAway = 3 }

    package struct Flags: OptionSet, Sendable {
        package let rawValue: UInt16
        package init(rawValue: UInt16) { self.rawValue = rawValue }
        package static let syn = Flags(rawValue: 1)
        package static let ack = Flags(rawValue: 2)
        package static let fin = Flags(rawValue: 4)
        package static let rst = Flags(rawValue: 8)
    }

    package enum GoAwayCode: UInt32 { case normal = 0, protocolError = 1, internalError = 2 }

    package static func header(_ type: FrameType, _ flags: Flags, stream: UInt32, length: UInt32) -> ByteBuffer {
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

/// Streams the peers of the whole node have open at once, past each connection's first few:
/// every open stream may hold a window (256 KiB) of unread data, so this bounds that memory for
/// the node. A connection always gets `guaranteed` streams (an honest peer's gossip and identify
/// streams are never refused because strangers hold the rest).
package final class StreamQuota: Sendable {
    package let capacity: Int
    let guaranteed: Int
    private let open = Mutex(0)

    package init(capacity: Int, guaranteed: Int) {
        self.capacity = max(0, capacity)
        self.guaranteed = max(0, guaranteed)
    }

    /// Takes a stream for a connection that has `connectionOpen` of its peer's streams open.
    func tryTake(connectionOpen: Int) -> Bool {
        open.withLock { n in
            guard connectionOpen < guaranteed || n < capacity else { return false }
            n += 1
            return true
        }
    }

    func give() { open.withLock { $0 = max(0, $0 - 1) } }

    var inUse: Int { open.withLock { $0 } }
}

/// One yamux session over a secured connection. The connection's read loop feeds it with
/// `receive`; every frame it sends goes to `frames`, which one writer encrypts in order. The
/// rules are `YamuxSessionStateMachine`'s; this class keeps the streams' objects and the ping
/// waiters beside it under one lock, and does what the machine says outside it.
///
/// Memory a peer can make it hold: a data frame is refused when its header arrives if it is
/// longer than the stream's receive window (so the read buffer never waits for more than a
/// window); each stream holds at most its window unread; the peer opens at most
/// `maxInboundStreams`; what this node queues for sending is charged to `sendAccount`.
package final class YamuxSession: Sendable {
    package struct Limits: Sendable, Equatable {
        /// Streams open at once on this connection, ours and the peer's.
        package var maxStreams = 64
        /// Of those, streams the peer opened; beyond it a new one is reset.
        package var maxInboundStreams = 32
        /// A peer may overrun a stream's window by at most this much before it is a violation.
        package var windowSlack: UInt32 = 0
    }

    private struct State {
        var machine: YamuxSessionStateMachine
        var streams: [UInt32: YamuxStream] = [:]
        var pings: [UInt32: CheckedContinuation<Void, any Error>] = [:]
    }

    package let isDialer: Bool
    package let limits: Limits
    /// What this session has queued for sending (frames the writer has not written yet).
    let sendAccount: BufferBudget.Account
    private let inboundQuota: StreamQuota?
    private let state: Mutex<State>
    package let frames: AsyncStream<ByteBuffer>
    private let framesContinuation: AsyncStream<ByteBuffer>.Continuation
    /// Streams the peer opened, to be negotiated and handled.
    let inboundStreams: AsyncStream<YamuxStream>
    private let inboundContinuation: AsyncStream<YamuxStream>.Continuation
    private let buffered = Atomic<Int>(0)

    /// A session on its own (tests, fuzzing) gets a private budget of 16 MiB.
    package init(isDialer: Bool, limits: Limits = Limits(), sendAccount: BufferBudget.Account? = nil,
         inboundQuota: StreamQuota? = nil) {
        self.isDialer = isDialer
        self.limits = limits
        self.sendAccount = sendAccount ?? BufferBudget(nodeCapacity: 16 << 20, accountCapacity: 16 << 20).openAccount()
        self.inboundQuota = inboundQuota
        state = Mutex(State(machine: YamuxSessionStateMachine(isDialer: isDialer, limits: limits)))
        (frames, framesContinuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        (inboundStreams, inboundContinuation) = AsyncStream.makeStream(of: YamuxStream.self)
    }

    /// Bytes handed to the writer and not yet written.
    var queuedBytes: Int { buffered.load(ordering: .relaxed) }

    /// The writer wrote a frame of `bytes`: its room in the budget is free again.
    package func wrote(_ bytes: Int) {
        buffered.subtract(bytes, ordering: .relaxed)
        sendAccount.release(bytes)
    }

    /// Queues a frame for the writer. `preCharged` of its bytes were reserved in `sendAccount`
    /// by the caller (a data frame's payload); the rest (its header, a control frame) is charged
    /// here unconditionally: control frames are 12 bytes and must not wait behind data.
    func send(_ type: Yamux.FrameType, _ flags: Yamux.Flags, stream: UInt32, length: UInt32, payload: ByteBuffer? = nil,
              preCharged: Int = 0) {
        var frame = Yamux.header(type, flags, stream: stream, length: length)
        if var payload { frame.writeBuffer(&payload) }
        sendAccount.charge(frame.readableBytes - preCharged)
        buffered.add(frame.readableBytes, ordering: .relaxed)
        if case .terminated = framesContinuation.yield(frame) {
            // The writer is gone: nobody will write (or release) it.
            buffered.subtract(frame.readableBytes, ordering: .relaxed)
            sendAccount.release(frame.readableBytes)
        }
    }

    // MARK: Streams

    package func openStream() throws -> YamuxStream {
        try state.withLock { s throws(LinkError) -> YamuxStream in
            let id = try s.machine.openStream()
            let stream = YamuxStream(id: id, session: self)
            s.streams[id] = stream
            // Queued under the lock: SYNs leave in id order even when streams open concurrently.
            send(.windowUpdate, .syn, stream: id, length: 0)
            return stream
        }
    }

    package func remove(_ id: UInt32) {
        let removedInbound = state.withLock { s -> Bool in
            s.streams.removeValue(forKey: id)
            return s.machine.remove(id)
        }
        if removedInbound { inboundQuota?.give() }
    }

    /// The reader of stream `id` took `count` bytes: a window update goes out once half the
    /// window was read.
    package func consumed(_ count: Int, of id: UInt32) {
        if let delta = state.withLock({ $0.machine.consumed(count, of: id) }) {
            send(.windowUpdate, [], stream: id, length: delta)
        }
    }

    /// What the peer may still send on stream `id` before this node grants more.
    func receiveWindow(of id: UInt32) -> UInt32? { state.withLock { $0.machine.receiveWindow(of: id) } }

    var streamCount: Int { state.withLock { $0.machine.streams.count } }
    var inboundStreamCount: Int { state.withLock { $0.machine.inboundOpen } }

    // MARK: Keep-alive

    /// Sends a ping and waits for its answer.
    package func ping() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let id = state.withLock { s -> UInt32? in
                guard let id = s.machine.nextPingValue() else { return nil }
                s.pings[id] = c
                return id
            }
            if let id { send(.ping, .syn, stream: 0, length: id) } else { c.resume(throwing: LinkError.closed) }
        }
    }

    // MARK: Receiving

    /// Consumes every complete frame in `buffer`. Throws on a protocol violation (the caller
    /// sends GoAway and closes). A data frame's length is checked against the window when its
    /// header arrives, before any of its body is waited for.
    package func receive(_ buffer: inout ByteBuffer) throws {
        while let header = try YamuxSessionStateMachine.header(in: buffer) {
            var payload: ByteBuffer?
            if header.type == .data {
                try state.withLock { s throws(LinkError) in try s.machine.checkDataLength(header) }
                guard buffer.readableBytes >= Yamux.headerSize + Int(header.length) else { return }
                buffer.moveReaderIndex(forwardBy: Yamux.headerSize)
                payload = buffer.readSlice(length: Int(header.length))
            } else {
                buffer.moveReaderIndex(forwardBy: Yamux.headerSize)
            }
            try handle(header, payload)
        }
    }

    private func handle(_ header: YamuxSessionStateMachine.Header, _ payload: ByteBuffer?) throws {
        let quota = inboundQuota
        let (action, stream, ping) = try state.withLock { s throws(LinkError) in
            let action = try s.machine.receive(header, payloadBytes: payload?.readableBytes ?? 0) { open in
                quota?.tryTake(connectionOpen: open) ?? true
            }
            var stream: YamuxStream?
            var ping: CheckedContinuation<Void, any Error>?
            switch action {
            case .stream(let id, let effects):
                if effects.opened { s.streams[id] = YamuxStream(id: id, session: self) }
                stream = s.streams[id]
            case .pingAnswered(let value):
                ping = s.pings.removeValue(forKey: value)
            case .pong, .goAway, .refuse, .drop:
                break
            }
            return (action, stream, ping)
        }
        switch action {
        case .pong(let value):
            send(.ping, .ack, stream: 0, length: value)
        case .pingAnswered:
            ping?.resume()
        case .goAway:
            throw LinkError.closed
        case .refuse(let id):
            send(.windowUpdate, .rst, stream: id, length: 0)
        case .drop:
            break
        case .stream(let id, let effects):
            guard let stream else { return }
            if effects.opened {
                send(.windowUpdate, .ack, stream: id, length: 0)
                inboundContinuation.yield(stream)
            }
            if effects.windowOpened > 0 { stream.windowOpened(by: effects.windowOpened) }
            if effects.deliver, let payload { stream.received(payload) }
            if effects.reset {
                stream.remoteReset()
            } else if effects.finished {
                stream.remoteFinished()
            }
        }
    }

    /// Ends the session: every stream fails, pending pings fail, the writer and the inbound
    /// stream feed finish. `goAway` first tells the peer why.
    package func close(goAway: Yamux.GoAwayCode? = nil) {
        let (streams, pings, ended) = state.withLock { s in
            defer {
                s.streams = [:]
                s.pings = [:]
            }
            return (Array(s.streams.values), Array(s.pings.values), s.machine.close())
        }
        if ended.wasOpen, let goAway { send(.goAway, [], stream: 0, length: goAway.rawValue) }
        for _ in 0..<ended.peerOpened { inboundQuota?.give() }
        for stream in streams { stream.connectionClosed() }
        for p in pings { p.resume(throwing: LinkError.closed) }
        framesContinuation.finish()
        inboundContinuation.finish()
    }

    package var isClosed: Bool { state.withLock { $0.machine.isClosed } }
}

/// One yamux stream: bytes in (an inbox the reader takes from, reopening the window as it
/// goes), bytes out within the peer's window.
///
/// The inbox is one buffer that received payloads are copied into: a payload never pins the
/// connection's read buffer, and a peer sending many tiny frames costs no more than their bytes.
package final class YamuxStream: Sendable {
    package let id: UInt32
    package let session: YamuxSession

    private enum Ending {
        case open
        case finished
        case failed(any Error)
    }

    private struct State {
        var sendWindow: UInt32 = Yamux.initialWindow
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiter: UInt64 = 0
        var inbox = ByteBuffer()
        var ending = Ending.open
        var reader: (continuation: CheckedContinuation<ByteBuffer?, any Error>, max: Int)?
        var localClosed = false
        var remoteClosed = false
        var reset = false
        var connectionGone = false
        var localClosedForReading = false
    }

    private let state = Mutex(State())

    package init(id: UInt32, session: YamuxSession) {
        self.id = id
        self.session = session
    }

    // MARK: From the session

    /// What the peer may still send here (the session's machine keeps the receive window).
    var currentReceiveWindow: UInt32 { session.receiveWindow(of: id) ?? 0 }

    /// Unread bytes in the inbox.
    var unread: Int { state.withLock { $0.inbox.readableBytes } }

    /// Bytes the session accepted for this stream (within its window, before any FIN).
    package func received(_ payload: ByteBuffer) {
        let handoff = state.withLock { s -> (CheckedContinuation<ByteBuffer?, any Error>, ByteBuffer)? in
            guard !s.reset, !s.localClosedForReading else { return nil }
            var copy = payload
            if s.inbox.readableBytes == 0, s.inbox.readerIndex > 0 { s.inbox.clear() }
            s.inbox.writeBuffer(&copy)
            guard let reader = s.reader else { return nil }
            s.reader = nil
            return (reader.continuation, Self.take(&s.inbox, max: reader.max))
        }
        if let (reader, chunk) = handoff { reader.resume(returning: chunk) }
    }

    /// Up to `max` bytes out of the inbox, in a buffer of their own.
    private static func take(_ inbox: inout ByteBuffer, max: Int) -> ByteBuffer {
        if inbox.readableBytes <= max {
            defer { inbox = ByteBuffer() }
            return inbox
        }
        var part = ByteBufferAllocator().buffer(capacity: max)
        part.writeBytes(inbox.readableBytesView.prefix(max))
        inbox.moveReaderIndex(forwardBy: max)
        if inbox.readerIndex >= inbox.readableBytes { inbox.discardReadBytes() }
        return part
    }

    func windowOpened(by delta: UInt32) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.sendWindow &+= delta
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    package func remoteFinished() {
        let (remove, reader) = state.withLock { s -> (Bool, CheckedContinuation<ByteBuffer?, any Error>?) in
            s.remoteClosed = true
            if case .open = s.ending { s.ending = .finished }
            let r = s.inbox.readableBytes == 0 ? s.reader?.continuation : nil
            if r != nil { s.reader = nil }
            return (s.localClosed, r)
        }
        reader?.resume(returning: nil)
        if remove { session.remove(id) }
    }

    func remoteReset() {
        let (waiters, reader) = fail(LinkError.reset, markReset: true)
        reader?.resume(throwing: LinkError.reset)
        for w in waiters { w.resume(throwing: LinkError.reset) }
        session.remove(id)
    }

    func connectionClosed() {
        let (waiters, reader) = state.withLock { s -> ([CheckedContinuation<Void, any Error>], CheckedContinuation<ByteBuffer?, any Error>?) in
            s.connectionGone = true
            return Self.failLocked(&s, LinkError.closed, markReset: false)
        }
        reader?.resume(throwing: LinkError.closed)
        for w in waiters { w.resume(throwing: LinkError.closed) }
    }

    private func fail(_ error: any Error, markReset: Bool)
        -> ([CheckedContinuation<Void, any Error>], CheckedContinuation<ByteBuffer?, any Error>?) {
        state.withLock { s in Self.failLocked(&s, error, markReset: markReset) }
    }

    private static func failLocked(_ s: inout State, _ error: any Error, markReset: Bool)
        -> ([CheckedContinuation<Void, any Error>], CheckedContinuation<ByteBuffer?, any Error>?) {
        if markReset { s.reset = true }
        if case .open = s.ending { s.ending = .failed(error) }
        let waiters = Array(s.waiters.values)
        s.waiters = [:]
        // What arrived before the failure is still read first.
        let reader = s.inbox.readableBytes == 0 ? s.reader?.continuation : nil
        if reader != nil { s.reader = nil }
        return (waiters, reader)
    }

    // MARK: For the protocol handler

    /// The next bytes the peer sent, at most `max`; nil at its FIN. Only one reader at a time.
    package func read(max: Int) async throws -> ByteBuffer? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<ByteBuffer?, any Error>) in
                enum Now { case chunk(ByteBuffer), end, error(any Error), wait }
                let now = state.withLock { s -> Now in
                    if s.inbox.readableBytes > 0 { return .chunk(Self.take(&s.inbox, max: max)) }
                    if s.localClosedForReading { return .end }
                    switch s.ending {
                    case .finished: return .end
                    case .failed(let e): return .error(e)
                    case .open: break
                    }
                    if Task.isCancelled { return .error(CancellationError()) }
                    guard s.reader == nil else { return .error(LinkError.protocolViolation("two readers on stream \(id)")) }
                    s.reader = (c, max)
                    return .wait
                }
                switch now {
                case .chunk(let b): c.resume(returning: b)
                case .end: c.resume(returning: nil)
                case .error(let e): c.resume(throwing: e)
                case .wait: break
                }
            }
        } onCancel: {
            let reader = state.withLock { s -> CheckedContinuation<ByteBuffer?, any Error>? in
                defer { s.reader = nil }
                return s.reader?.continuation
            }
            reader?.resume(throwing: CancellationError())
        }
    }

    /// Called by the reader after it took `count` bytes: reopens the window once half of it is used.
    package func consumed(_ count: Int) {
        session.consumed(count, of: id)
    }

    /// Writes `bytes`, waiting for the peer's window and for room in the connection's send
    /// budget as needed. `prepaid`: the bytes were reserved in the send budget by the caller
    /// (a gossip frame that was queued); what is not sent when the write fails is released.
    package func write(_ bytes: ByteBuffer, prepaid: Bool = false) async throws {
        var rest = bytes
        var prepaidLeft = prepaid ? bytes.readableBytes : 0
        defer { if prepaidLeft > 0 { session.sendAccount.release(prepaidLeft) } }
        while rest.readableBytes > 0 {
            let n = try await reserve(min(rest.readableBytes, Yamux.maxDataFrame))
            if prepaidLeft >= n {
                prepaidLeft -= n
            } else {
                do {
                    try await session.sendAccount.reserve(n)
                } catch {
                    giveBack(n)
                    throw error
                }
            }
            let chunk = rest.readSlice(length: n)!
            session.send(.data, [], stream: id, length: UInt32(n), payload: chunk, preCharged: n)
        }
    }

    /// Window taken but not used (the write failed before sending).
    private func giveBack(_ n: Int) {
        state.withLock { $0.sendWindow &+= UInt32(n) }
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
            let waiterID = state.withLock { s -> UInt64 in
                defer { s.nextWaiter += 1 }
                return s.nextWaiter
            }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                    let now = state.withLock { s -> Bool in
                        if s.sendWindow > 0 || s.reset || s.connectionGone || Task.isCancelled { return true }
                        s.waiters[waiterID] = c
                        return false
                    }
                    if now { c.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { $0.waiters.removeValue(forKey: waiterID) }
                waiter?.resume(throwing: CancellationError())
            }
            try Task.checkCancellation()
        }
    }

    /// Half-close (yamux FIN): the peer reads EOF; reading goes on.
    package func closeWrite() {
        let (send, remove) = state.withLock { s -> (Bool, Bool) in
            guard !s.localClosed, !s.reset, !s.connectionGone else { return (false, false) }
            s.localClosed = true
            return (true, s.remoteClosed)
        }
        if send { session.send(.windowUpdate, .fin, stream: id, length: 0) }
        if remove { session.remove(id) }
    }

    /// Reads nothing more: what arrived and what arrives is dropped (it never reopens the
    /// window, so the peer can send at most what is left of it).
    package func stopReading() {
        let reader = state.withLock { s -> CheckedContinuation<ByteBuffer?, any Error>? in
            s.localClosedForReading = true
            s.inbox = ByteBuffer()
            defer { s.reader = nil }
            return s.reader?.continuation
        }
        reader?.resume(returning: nil)
    }

    /// Done with the stream both ways: FIN, and whatever else the peer sends is dropped.
    package func close() {
        closeWrite()
        stopReading()
        session.remove(id)
    }

    /// Abort (yamux RST).
    package func reset() {
        let (send, waiters, reader) = state.withLock { s -> (Bool, [CheckedContinuation<Void, any Error>], CheckedContinuation<ByteBuffer?, any Error>?) in
            guard !s.reset, !s.connectionGone else { return (false, [], nil) }
            s.reset = true
            s.localClosedForReading = true
            s.inbox = ByteBuffer()
            if case .open = s.ending { s.ending = .failed(LinkError.reset) }
            let waiters = Array(s.waiters.values)
            s.waiters = [:]
            defer { s.reader = nil }
            return (true, waiters, s.reader?.continuation)
        }
        if send { session.send(.windowUpdate, .rst, stream: id, length: 0) }
        reader?.resume(returning: nil)
        for w in waiters { w.resume(throwing: LinkError.reset) }
        session.remove(id)
    }

    var remoteHasClosed: Bool { state.withLock { $0.remoteClosed } }
}

extension YamuxStream {
    /// The stream's bytes as a reader source (acknowledges consumption for flow control).
    package struct Source: ChunkSource {
        package let stream: YamuxStream

        package init(_ stream: YamuxStream) {
            self.stream = stream
        }

        package mutating func nextChunk(max: Int) async throws -> ByteBuffer? {
            guard let chunk = try await stream.read(max: max) else { return nil }
            stream.consumed(chunk.readableBytes)
            return chunk
        }
    }

    package func reader(leftover: ByteBuffer = ByteBuffer()) -> ByteReader<Source> {
        ByteReader(Source(self), leftover: leftover)
    }
}
