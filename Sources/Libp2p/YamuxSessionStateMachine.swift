import NIOCore

/// The rules of one yamux session (libp2p/specs yamux/README.md), without I/O: which stream ids
/// exist and who opened them, each stream's receive window and its peer's FIN, the bounds a peer
/// meets (streams per connection, streams it opens, data within the window), GoAway and pings.
/// Frames in, actions out: `YamuxSession` (under its one lock) asks this what a frame means and
/// then does it — resumes readers and writers, queues frames — outside the lock.
///
/// A stream's send window and its local ending (FIN sent, reset, reading stopped) stay with
/// `YamuxStream`, whose writers and reader wait on them.
struct YamuxSessionStateMachine: Sendable {
    /// One frame's 12-byte header, decoded.
    package struct Header: Sendable, Equatable {
        package var type: Yamux.FrameType
        package var flags: Yamux.Flags
        package var stream: UInt32
        package var length: UInt32
    }

    /// The receive side of a stream this session knows.
    struct StreamRecord: Sendable, Equatable {
        /// Bytes the peer may still send before this node grants more.
        var receiveWindow = Yamux.initialWindow
        /// Bytes read since the last window update.
        var consumedUnacknowledged: UInt32 = 0
        /// The peer sent FIN: no more data may follow.
        package var remoteFinished = false
        let openedByPeer: Bool
    }

    /// What a stream frame does to its stream, in the order the session applies it: opened
    /// (answer ACK, hand it to the host), then bytes delivered or the send window opened, then
    /// the peer's reset or FIN.
    struct StreamEffects: Sendable, Equatable {
        package var opened = false
        package var deliver = false
        var windowOpened: UInt32 = 0
        package var reset = false
        var finished = false
    }

    enum Action: Sendable, Equatable {
        /// Answer a ping with the same value.
        case pong(UInt32)
        /// The peer answered our ping `value`.
        case pingAnswered(UInt32)
        /// The peer said goodbye: the session ends.
        case goAway
        /// A stream the peer opened beyond a bound: reset it (nothing was created).
        case refuse(stream: UInt32)
        case stream(UInt32, StreamEffects)
        /// For a stream that is gone (closed or reset here; data the peer sent before it knew)
        /// or a new stream after the session closed: dropped.
        case drop
    }

    package let isDialer: Bool
    package let limits: YamuxSession.Limits
    private(set) var streams: [UInt32: StreamRecord] = [:]
    private(set) var inboundOpen = 0
    private(set) var nextStreamID: UInt32
    private(set) var isClosed = false
    private(set) var goAwayReceived = false
    private var nextPing: UInt32 = 1

    package init(isDialer: Bool, limits: YamuxSession.Limits = YamuxSession.Limits()) {
        self.isDialer = isDialer
        self.limits = limits
        nextStreamID = isDialer ? 1 : 2
    }

    /// Streams the peer opens have the other parity (dialer odd, listener even).
    func isRemote(_ id: UInt32) -> Bool { id % 2 == (isDialer ? 0 : 1) }

    // MARK: Frames in

    /// The header at the start of `buffer`; nil while fewer than 12 bytes arrived.
    package static func header(in buffer: ByteBuffer) throws(LinkError) -> Header? {
        guard buffer.readableBytes >= Yamux.headerSize else { return nil }
        let start = buffer.readerIndex
        let version: UInt8 = buffer.getInteger(at: start)!
        guard version == 0 else { throw .protocolViolation("yamux version \(version)") }
        let rawType: UInt8 = buffer.getInteger(at: start + 1)!
        guard let type = Yamux.FrameType(rawValue: rawType) else {
            throw .protocolViolation("yamux frame type \(rawType)")
        }
        return Header(type: type, flags: Yamux.Flags(rawValue: buffer.getInteger(at: start + 2)!),
                      stream: buffer.getInteger(at: start + 4)!, length: buffer.getInteger(at: start + 8)!)
    }

    /// Checks a data frame's length when its header arrives, before any of its body is waited
    /// for: at most the stream's receive window, or a whole initial window for a stream it opens
    /// or one that is gone (data sent before the peer saw our reset or close). Without this, a
    /// 4 GiB length would be buffered while its body trickles in.
    func checkDataLength(_ h: Header) throws(LinkError) {
        let window: UInt32
        if !h.flags.contains(.syn), let record = streams[h.stream] {
            window = record.receiveWindow
        } else {
            window = Yamux.initialWindow
        }
        guard UInt64(h.length) <= UInt64(window) + UInt64(limits.windowSlack) else {
            throw .protocolViolation("data frame of \(h.length) bytes on stream \(h.stream) is over its window of \(window)")
        }
    }

    /// What a whole frame (a data frame with its `payloadBytes`) means. Throws on a protocol
    /// violation: the session then says GoAway and closes. `takeNodeSlot` is asked last, for a
    /// stream the peer opens within this session's own bounds (the node-wide quota; it is given
    /// back when `remove` says an inbound stream went).
    package mutating func receive(_ h: Header, payloadBytes: Int = 0,
                          takeNodeSlot: (_ connectionOpen: Int) -> Bool = { _ in true }) throws(LinkError) -> Action {
        switch h.type {
        case .ping:
            if h.flags.contains(.syn) { return .pong(h.length) }
            if h.flags.contains(.ack) { return .pingAnswered(h.length) }
            return .drop
        case .goAway:
            goAwayReceived = true
            return .goAway
        case .data, .windowUpdate:
            break
        }
        guard h.stream != 0 else { throw .protocolViolation("stream frame on stream 0") }
        var effects = StreamEffects()
        if h.flags.contains(.syn) {
            guard isRemote(h.stream) else {
                throw .protocolViolation("peer opened stream \(h.stream) with our parity")
            }
            // Like go-yamux: only an id that is open now is a duplicate (SYNs of streams opened
            // concurrently may arrive out of id order).
            guard streams[h.stream] == nil else { throw .protocolViolation("peer reopened stream \(h.stream)") }
            guard !isClosed else { return .drop }
            guard streams.count < limits.maxStreams, inboundOpen < limits.maxInboundStreams,
                  takeNodeSlot(inboundOpen) else { return .refuse(stream: h.stream) }
            streams[h.stream] = StreamRecord(openedByPeer: true)
            inboundOpen += 1
            effects.opened = true
        }
        guard var record = streams[h.stream] else { return .drop }
        if h.type == .windowUpdate {
            effects.windowOpened = h.length
        } else if payloadBytes > 0 {
            guard !record.remoteFinished else { throw .protocolViolation("data after FIN on stream \(h.stream)") }
            let n = UInt32(clamping: payloadBytes)
            guard UInt64(n) <= UInt64(record.receiveWindow) + UInt64(limits.windowSlack) else {
                throw .protocolViolation("stream \(h.stream) overran its receive window (\(n) > \(record.receiveWindow))")
            }
            record.receiveWindow -= min(n, record.receiveWindow)
            effects.deliver = true
        }
        if h.flags.contains(.rst) {
            effects.reset = true
        } else if h.flags.contains(.fin) {
            record.remoteFinished = true
            effects.finished = true
        }
        streams[h.stream] = record
        return .stream(h.stream, effects)
    }

    // MARK: This node's moves

    /// Opens a stream of ours: its id (the caller sends the SYN).
    package mutating func openStream() throws(LinkError) -> UInt32 {
        guard !isClosed, !goAwayReceived else { throw .closed }
        guard streams.count < limits.maxStreams else { throw .protocolViolation("too many open streams") }
        let id = nextStreamID
        nextStreamID &+= 2
        streams[id] = StreamRecord(openedByPeer: false)
        return id
    }

    /// The reader took `count` bytes of stream `id`: the window update to send, once half the
    /// window was read (none after the peer's FIN, nor for a stream that is gone).
    package mutating func consumed(_ count: Int, of id: UInt32) -> UInt32? {
        guard var record = streams[id] else { return nil }
        record.consumedUnacknowledged &+= UInt32(clamping: count)
        defer { streams[id] = record }
        guard record.consumedUnacknowledged >= Yamux.initialWindow / 2, !record.remoteFinished else { return nil }
        let delta = record.consumedUnacknowledged
        record.consumedUnacknowledged = 0
        record.receiveWindow &+= delta
        return delta
    }

    /// Forgets stream `id` (closed both ways, or reset); true when it was one the peer opened,
    /// whose node-wide slot goes back.
    package mutating func remove(_ id: UInt32) -> Bool {
        guard let record = streams.removeValue(forKey: id) else { return false }
        guard record.openedByPeer else { return false }
        inboundOpen -= 1
        return true
    }

    /// The value of our next ping, nil once the session is closed.
    mutating func nextPingValue() -> UInt32? {
        guard !isClosed else { return nil }
        defer { nextPing &+= 1 }
        return nextPing
    }

    /// Ends the session: the streams it held (the caller fails them), how many of them the
    /// peer opened (their node-wide slots go back), and whether it was open until now (only
    /// then is GoAway sent).
    package mutating func close() -> (streams: [UInt32], peerOpened: Int, wasOpen: Bool) {
        defer {
            isClosed = true
            streams = [:]
            inboundOpen = 0
        }
        return (Array(streams.keys), inboundOpen, !isClosed)
    }

    func receiveWindow(of id: UInt32) -> UInt32? { streams[id]?.receiveWindow }
}
