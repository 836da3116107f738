import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The bytes of a TCP connection as a chunk source.
struct TCPSource: ChunkSource {
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator

    mutating func nextChunk() async throws -> ByteBuffer? {
        try await iterator.next()
    }
}

/// An authenticated, multiplexed libp2p connection to one peer.
public final class Libp2pConnection: Sendable {
    public let remote: PeerID
    public let direction: PeerDirection
    public let remoteAddress: String
    let serial: UInt64
    let origin: ConnectionOrigin
    let session: YamuxSession
    let channel: any Channel
    let connectedAt = ContinuousClock.now

    struct State {
        var protocols: [String] = []
        var agentVersion = ""
        var identified = false
        var closeReason: String?
    }

    let state = Mutex(State())

    init(remote: PeerID, direction: PeerDirection, remoteAddress: String, serial: UInt64,
         origin: ConnectionOrigin, session: YamuxSession, channel: any Channel) {
        self.remote = remote
        self.direction = direction
        self.remoteAddress = remoteAddress
        self.serial = serial
        self.origin = origin
        self.session = session
        self.channel = channel
    }

    /// The peer's protocols as identify reported them (empty until it answered).
    public var protocols: [String] { state.withLock { $0.protocols } }
    public var agentVersion: String { state.withLock { $0.agentVersion } }
    public var isClosed: Bool { session.isClosed }
    var closeReason: String? { state.withLock { $0.closeReason } }

    /// Says goodbye (yamux GoAway) and closes the TCP connection once the writer has sent it.
    func close(reason: String, code: Yamux.GoAwayCode = .normal) {
        state.withLock { s in
            if s.closeReason == nil { s.closeReason = reason }
        }
        session.close(goAway: code)
        // The writer closes the channel once its queue (ending with GoAway) is written; this is
        // the backstop when the writer is stuck behind a peer that does not read.
        let channel = self.channel
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }
}

extension PeerDirection {
    var isDialer: Bool { self == .outbound }
}
