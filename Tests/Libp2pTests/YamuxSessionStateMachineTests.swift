import NIOCore
@testable import Libp2p
import Testing

/// The yamux session's rules as a value: frames in, actions out; no threads, sockets or streams.
@Suite struct YamuxSessionStateMachineTests {
    typealias Machine = YamuxSessionStateMachine
    typealias Header = YamuxSessionStateMachine.Header

    static func frame(_ type: Yamux.FrameType, _ flags: Yamux.Flags = [], _ stream: UInt32, _ length: UInt32 = 0) -> Header {
        Header(type: type, flags: flags, stream: stream, length: length)
    }

    /// The listener's machine with the peer's stream `id` open.
    static func listener(opened ids: [UInt32] = [1], limits: YamuxSession.Limits = .init()) throws -> Machine {
        var m = Machine(isDialer: false, limits: limits)
        for id in ids { _ = try m.receive(frame(.windowUpdate, .syn, id)) }
        return m
    }

    @Test func headersDecodeAndUnknownVersionsOrTypesAreViolations() throws {
        var b = Yamux.header(.data, [.syn, .fin], stream: 7, length: 300)
        #expect(try Machine.header(in: b) == Self.frame(.data, [.syn, .fin], 7, 300))
        b.moveWriterIndex(to: b.writerIndex - 1)
        #expect(try Machine.header(in: b) == nil, "11 bytes: not yet a header")
        var badVersion = Yamux.header(.ping, .syn, stream: 0, length: 1)
        badVersion.setInteger(UInt8(1), at: 0)
        #expect(throws: LinkError.self) { try Machine.header(in: badVersion) }
        var badType = Yamux.header(.ping, .syn, stream: 0, length: 1)
        badType.setInteger(UInt8(4), at: 1)
        #expect(throws: LinkError.self) { try Machine.header(in: badType) }
    }

    @Test func aPeersSynOpensItsStreamAndIsAcknowledged() throws {
        var m = Machine(isDialer: false)
        #expect(try m.receive(Self.frame(.windowUpdate, .syn, 1)) == .stream(1, .init(opened: true)))
        #expect(m.streams[1]?.openedByPeer == true && m.inboundOpen == 1)
        // SYN with data: opened and delivered in one frame.
        #expect(try m.receive(Self.frame(.data, .syn, 3, 5), payloadBytes: 5) == .stream(3, .init(opened: true, deliver: true)))
        #expect(m.receiveWindow(of: 3) == Yamux.initialWindow - 5)
    }

    @Test func streamIdsFollowTheirParity() throws {
        var dialer = Machine(isDialer: true), listener = Machine(isDialer: false)
        let ours = [try dialer.openStream(), try dialer.openStream()]
        let theirs = [try listener.openStream(), try listener.openStream()]
        #expect(ours == [1, 3] && theirs == [2, 4])
        #expect(throws: LinkError.self, "the peer opening one of our ids") {
            try listener.receive(Self.frame(.windowUpdate, .syn, 2))
        }
        #expect(throws: LinkError.self) { try dialer.receive(Self.frame(.windowUpdate, .syn, 5)) }
        #expect(throws: LinkError.self, "stream frames on stream 0") { try dialer.receive(Self.frame(.data, [], 0)) }
    }

    /// A SYN for an id that is open now is a violation; once the stream is gone, the id may be
    /// opened again (SYNs of concurrent streams may arrive out of order, as go-yamux allows).
    @Test func aSynForAnOpenStreamIsAViolation() throws {
        var m = try Self.listener(opened: [1])
        #expect(throws: LinkError.self) { try m.receive(Self.frame(.windowUpdate, .syn, 1)) }
        #expect(m.remove(1) == true)
        #expect(try m.receive(Self.frame(.windowUpdate, .syn, 1)) == .stream(1, .init(opened: true)))
        #expect(try m.receive(Self.frame(.windowUpdate, .syn, 7)) == .stream(7, .init(opened: true)), "out of order")
        #expect(try m.receive(Self.frame(.windowUpdate, .syn, 5)) == .stream(5, .init(opened: true)))
    }

    /// Bounds: streams the peer opens beyond `maxInboundStreams`, or beyond `maxStreams` in
    /// all, or beyond the node-wide quota, are refused (reset), creating nothing.
    @Test func streamsBeyondTheBoundsAreRefused() throws {
        var limits = YamuxSession.Limits()
        limits.maxInboundStreams = 2
        limits.maxStreams = 3
        var m = try Self.listener(opened: [1, 3], limits: limits)
        #expect(try m.receive(Self.frame(.windowUpdate, .syn, 5)) == .refuse(stream: 5))
        #expect(m.streams[5] == nil && m.inboundOpen == 2)
        _ = try m.openStream()
        #expect(m.remove(1) == true, "a peer's stream gives its slot back")
        #expect(try m.receive(Self.frame(.windowUpdate, .syn, 9)) == .stream(9, .init(opened: true)))
        #expect(try m.receive(Self.frame(.windowUpdate, .syn, 11)) == .refuse(stream: 11), "all three streams in use")
        #expect(throws: LinkError.self, "our own beyond maxStreams") { try m.openStream() }
        // The node-wide quota is asked last, with the streams this connection holds.
        var n = Machine(isDialer: false)
        var asked: [Int] = []
        #expect(try n.receive(Self.frame(.windowUpdate, .syn, 1)) { asked.append($0); return false } == .refuse(stream: 1))
        #expect(asked == [0] && n.inboundOpen == 0)
    }

    @Test func dataWithinTheWindowIsDeliveredAndTheWindowShrinks() throws {
        var m = try Self.listener()
        #expect(try m.receive(Self.frame(.data, [], 1, 1000), payloadBytes: 1000) == .stream(1, .init(deliver: true)))
        #expect(m.receiveWindow(of: 1) == Yamux.initialWindow - 1000)
        // An empty data frame delivers nothing.
        #expect(try m.receive(Self.frame(.data, [], 1, 0)) == .stream(1, .init()))
    }

    /// A data frame's header is checked against the window before its body is awaited; its
    /// body, once there, against what is left.
    @Test func dataOverTheWindowIsAViolation() throws {
        var m = try Self.listener()
        #expect(throws: LinkError.self) { try m.checkDataLength(Self.frame(.data, [], 1, Yamux.initialWindow + 1)) }
        try m.checkDataLength(Self.frame(.data, [], 1, Yamux.initialWindow))
        _ = try m.receive(Self.frame(.data, [], 1, 200_000), payloadBytes: 200_000)
        #expect(throws: LinkError.self) { try m.checkDataLength(Self.frame(.data, [], 1, Yamux.initialWindow - 200_000 + 1)) }
        #expect(throws: LinkError.self) {
            try m.receive(Self.frame(.data, [], 1, 70_000), payloadBytes: 70_000)
        }
        // Unknown streams and new ones get one initial window, no more.
        #expect(throws: LinkError.self) { try m.checkDataLength(Self.frame(.data, [], 99, Yamux.initialWindow + 1)) }
        #expect(throws: LinkError.self) { try m.checkDataLength(Self.frame(.data, .syn, 5, Yamux.initialWindow + 1)) }
        // Slack lets a peer overrun by that much.
        var limits = YamuxSession.Limits()
        limits.windowSlack = 10
        let slack = try Self.listener(limits: limits)
        try slack.checkDataLength(Self.frame(.data, [], 1, Yamux.initialWindow + 10))
    }

    /// Reading reopens the window in steps of half a window; none after the peer's FIN or for
    /// a stream that is gone.
    @Test func consumingHalfTheWindowSendsAWindowUpdate() throws {
        var m = try Self.listener()
        let half = Int(Yamux.initialWindow / 2)
        _ = try m.receive(Self.frame(.data, [], 1, UInt32(half + 10)), payloadBytes: half + 10)
        #expect(m.consumed(half - 1, of: 1) == nil)
        #expect(m.consumed(11, of: 1) == UInt32(half + 10))
        #expect(m.receiveWindow(of: 1) == Yamux.initialWindow, "granted back what was read")
        #expect(m.consumed(half, of: 7) == nil, "no such stream")
        _ = try m.receive(Self.frame(.data, .fin, 1, 10), payloadBytes: 10)
        #expect(m.consumed(half, of: 1) == nil, "the peer is done sending")
    }

    @Test func finAndRstAreReportedAndDataAfterFinIsAViolation() throws {
        var m = try Self.listener(opened: [1, 3])
        #expect(try m.receive(Self.frame(.windowUpdate, .fin, 1)) == .stream(1, .init(finished: true)))
        #expect(m.streams[1]?.remoteFinished == true)
        #expect(throws: LinkError.self) { try m.receive(Self.frame(.data, [], 1, 1), payloadBytes: 1) }
        #expect(try m.receive(Self.frame(.windowUpdate, [], 1, 0)) == .stream(1, .init()), "window updates still count")
        #expect(try m.receive(Self.frame(.windowUpdate, .rst, 3)) == .stream(3, .init(reset: true)))
        #expect(try m.receive(Self.frame(.data, [.rst, .fin], 3, 2), payloadBytes: 2) == .stream(3, .init(deliver: true, reset: true)),
                "RST wins over FIN")
    }

    @Test func framesForStreamsThatAreGoneAreDropped() throws {
        var m = try Self.listener(opened: [1])
        #expect(m.remove(1) == true)
        #expect(m.remove(1) == false, "twice is nothing")
        #expect(try m.receive(Self.frame(.data, [], 1, 10), payloadBytes: 10) == .drop)
        #expect(try m.receive(Self.frame(.windowUpdate, .fin, 1)) == .drop)
        #expect(try m.receive(Self.frame(.data, [], 41, 10), payloadBytes: 10) == .drop, "never opened")
    }

    @Test func windowUpdatesOpenTheSendWindow() throws {
        var m = Machine(isDialer: true)
        let id = try m.openStream()
        #expect(try m.receive(Self.frame(.windowUpdate, .ack, id, 0)) == .stream(id, .init()))
        #expect(try m.receive(Self.frame(.windowUpdate, [], id, 4096)) == .stream(id, .init(windowOpened: 4096)))
    }

    @Test func pingsAreAnsweredWithTheirValue() throws {
        var m = Machine(isDialer: true)
        #expect(try m.receive(Self.frame(.ping, .syn, 0, 42)) == .pong(42))
        #expect(try m.receive(Self.frame(.ping, .ack, 0, 7)) == .pingAnswered(7))
        #expect(try m.receive(Self.frame(.ping, [], 0, 7)) == .drop)
        let values = [m.nextPingValue(), m.nextPingValue()]
        #expect(values == [1, 2])
    }

    /// GoAway ends the session; this node opens nothing more, and after close a peer's SYN is
    /// dropped.
    @Test func goAwayAndCloseEndTheSession() throws {
        var m = try Self.listener(opened: [1, 3])
        _ = try m.openStream()
        #expect(try m.receive(Self.frame(.goAway, [], 0, Yamux.GoAwayCode.normal.rawValue)) == .goAway)
        #expect(m.goAwayReceived)
        #expect(throws: LinkError.self) { try m.openStream() }
        let ended = m.close()
        #expect(Set(ended.streams) == [1, 2, 3] && ended.peerOpened == 2 && ended.wasOpen)
        #expect(m.isClosed && m.streams.isEmpty && m.inboundOpen == 0)
        #expect(m.close().wasOpen == false, "GoAway is sent once")
        #expect(try m.receive(Self.frame(.windowUpdate, .syn, 5)) == .drop)
        #expect(m.nextPingValue() == nil)
    }
}
