import NIOCore

/// One frame cut from the byte stream: the type byte and the (not yet decoded) payload.
public struct Frame: Sendable, Equatable {
    public var type: UInt8
    public var payload: ByteBuffer

    public init(type: UInt8, payload: ByteBuffer) {
        self.type = type
        self.payload = payload
    }
}

/// Cuts frames out of a byte stream. The length field is checked against the limit as soon as
/// its 4 bytes are in, so an oversized frame is refused before any of its body is buffered.
public struct FrameParser: Sendable {
    public let maxFrameBytes: Int

    public init(maxFrameBytes: Int) {
        self.maxFrameBytes = maxFrameBytes
    }

    /// Takes the next complete frame off the front of `buffer`, or returns nil (consuming nothing)
    /// when the frame is not complete yet.
    public func next(from buffer: inout ByteBuffer) throws(WireDecodeError) -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        if length == 0 { throw .emptyFrame }
        if UInt64(length) > UInt64(maxFrameBytes) { throw .frameTooLarge(length: length, limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        guard let type = buffer.readInteger(as: UInt8.self),
              let payload = buffer.readSlice(length: Int(length) - 1) else {
            // Unreachable: the readable byte count was checked above.
            throw .truncated(message: "frame", field: "body")
        }
        return Frame(type: type, payload: payload)
    }
}

/// The frame limit of one connection. Until the handshake completes only handshake-sized frames
/// are accepted, so an unauthenticated connection cannot make the node buffer megabytes; the
/// handler raises the limit once the peer is authenticated. Confined to the channel's event loop.
final class FrameLimit {
    /// Enough for a hello, a hello-ack or a goodbye.
    static let handshake = 1024

    var maxFrameBytes: Int

    init(maxFrameBytes: Int = FrameLimit.handshake) {
        self.maxFrameBytes = maxFrameBytes
    }
}

/// `FrameParser` as a NIO decoder.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = Frame
    let limit: FrameLimit

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try FrameParser(maxFrameBytes: limit.maxFrameBytes).next(from: &buffer) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer,
                             seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A partial frame left at EOF is simply dropped with the connection.
        return .needMoreData
    }
}
