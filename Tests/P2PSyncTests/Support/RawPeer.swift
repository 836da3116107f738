@testable import Config
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import P2PSync
import Testing
import TestSupport
@testable import Libp2p

/// A peer that attacks: real TCP from a chosen loopback address (Linux routes all of
/// 127.0.0.0/8 to the loopback interface, so each 127.x address is a different source), real
/// multistream-select and Noise XX with an identity of its own, then yamux frames written by
/// hand — with any length field, on any stream — and read only when the test says so. A peer
/// that stops reading stops reading its socket too (NIO's async channel stops at its buffer
/// mark), so the node's writes to it back up.
struct RawSession {
    let key: KeyFile
    var id: PeerID { PeerID(key: key) }
    var reader: ByteReader<NoiseSource<TCPSource>>
    var send: Noise.CipherState
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var nextStream: UInt32 = 1

    struct Frame {
        var type: Yamux.FrameType
        var flags: Yamux.Flags
        var stream: UInt32
        var length: UInt32
        var payload: [UInt8]
    }

    /// Connects to `127.0.0.1:port` from `from`, runs the handshake, then `body`.
    static func with<T: Sendable>(port: Int, from: String = "127.0.0.1", key: KeyFile = .generate(),
                                  _ body: (inout RawSession) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: from, port: 0))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var tcp = ByteReader(TCPSource(iterator: inbound.makeAsyncIterator()))
            let write: (ByteBuffer) async throws -> Void = { try await outbound.write($0) }
            try await Multistream.select(Noise.protocolID, reader: &tcp, write: write)
            let noise = try await Noise.handshake(initiator: true, identity: key.privateKey, expected: nil,
                                                  reader: &tcp, write: write)
            var session = RawSession(key: key, reader: ByteReader(NoiseSource(reader: tcp, cipher: noise.receive)),
                                     send: noise.send, outbound: outbound)
            var send = session.send
            try await Multistream.select(Yamux.protocolID, reader: &session.reader) { buffer in
                try await outbound.write(Libp2pHost.encrypt(buffer, &send))
            }
            session.send = send
            return try await body(&session)
        }
    }

    /// Writes one yamux frame whose header says `length`, whatever `payload` holds.
    mutating func frame(_ type: Yamux.FrameType, _ flags: Yamux.Flags = [], stream: UInt32, length: UInt32,
                        payload: [UInt8] = []) async throws {
        var b = Yamux.header(type, flags, stream: stream, length: length)
        b.writeBytes(payload)
        try await outbound.write(Libp2pHost.encrypt(b, &send))
    }

    /// Bytes on a stream as data frames (split to fit Noise frames).
    mutating func data(stream: UInt32, _ bytes: [UInt8], flags: Yamux.Flags = []) async throws {
        var rest = bytes[...]
        repeat {
            let n = min(rest.count, Yamux.maxDataFrame)
            let last = rest.count == n
            try await frame(.data, last ? flags : [], stream: stream, length: UInt32(n), payload: Array(rest.prefix(n)))
            rest = rest.dropFirst(n)
        } while !rest.isEmpty
    }

    /// Opens a stream for `proto` the lazy way: SYN, multistream header, protocol and `payload`
    /// in one go, like Go's client. Returns the stream id.
    mutating func open(_ proto: String, payload: [UInt8] = [], fin: Bool = false) async throws -> UInt32 {
        let id = nextStream
        nextStream += 2
        try await frame(.windowUpdate, .syn, stream: id, length: 0)
        var msg = Array(Multistream.messages([Multistream.header, proto]).readableBytesView)
        msg += payload
        try await data(stream: id, msg, flags: fin ? .fin : [])
        return id
    }

    /// The next yamux frame from the node; nil when it closed the connection.
    mutating func nextFrame() async throws -> Frame? {
        guard let header = try? await reader.readExactly(Yamux.headerSize) else { return nil }
        var h = header
        _ = h.readInteger(as: UInt8.self)
        let type = Yamux.FrameType(rawValue: h.readInteger(as: UInt8.self)!)!
        let flags = Yamux.Flags(rawValue: h.readInteger(as: UInt16.self)!)
        let stream = h.readInteger(as: UInt32.self)!
        let length = h.readInteger(as: UInt32.self)!
        var payload: [UInt8] = []
        if type == .data, length > 0 {
            var body = try await reader.readExactly(Int(length))
            payload = body.readBytes(length: Int(length))!
        }
        return Frame(type: type, flags: flags, stream: stream, length: length, payload: payload)
    }

    /// Reads frames until `match` says stop, answering the node's pings (a quiet peer is not
    /// dropped for silence); nil when the connection ended first.
    mutating func readUntil(_ match: (Frame) -> Bool) async throws -> Frame? {
        while let f = try await nextFrame() {
            if f.type == .ping, f.flags.contains(.syn) {
                try await frame(.ping, .ack, stream: 0, length: f.length)
            }
            if match(f) { return f }
        }
        return nil
    }
}

/// A bare TCP connection that never says a word: what an idle-socket attacker holds. Records
/// whether the node sent anything and when it closed the socket.
final class IdleSocket: @unchecked Sendable {
    let channel: any Channel
    private let recorder: Recorder

    final class Recorder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = NIOLockedValueBox(0)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let b = unwrapInboundIn(data)
            bytes.withLockedValue { $0 += b.readableBytes }
        }
    }

    private init(channel: any Channel, recorder: Recorder) {
        self.channel = channel
        self.recorder = recorder
    }

    static func open(port: Int, from: String) async throws -> IdleSocket {
        let recorder = Recorder()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: from, port: 0))
            .channelInitializer { $0.pipeline.addHandler(recorder) }
            .connect(host: "127.0.0.1", port: port).get()
        return IdleSocket(channel: channel, recorder: recorder)
    }

    var isOpen: Bool { channel.isActive }
    var bytesReceived: Int { recorder.bytes.withLockedValue { $0 } }

    func close() { channel.close(promise: nil) }
}

/// Whether `condition` holds at every check (every 50 ms) for the whole of `duration`: how a
/// test says "this does not happen" with a bound.
func holdsFor(_ duration: Duration, _ condition: () throws -> Bool) async throws -> Bool {
    let end = ContinuousClock.now + duration
    while ContinuousClock.now < end {
        if !(try condition()) { return false }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try condition()
}
