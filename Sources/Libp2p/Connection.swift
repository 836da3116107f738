import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The bytes of a TCP connection as a chunk source.
struct TCPSource: ChunkSource {
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator

    mutating func nextChunk(max: Int) async throws -> ByteBuffer? {
        try await iterator.next()
    }
}

/// An authenticated, multiplexed libp2p connection to one peer.
package final class Libp2pConnection: Sendable {
    package let remote: PeerID
    package let direction: PeerDirection
    package let remoteAddress: String
    /// What address limits and bans apply to (`AddressKey`: the IPv4 address, the IPv6 /64).
    package let addressKey: String
    /// The remote IP as the socket reports it.
    package let remoteIP: String
    package let serial: UInt64
    package let origin: ConnectionOrigin
    package let session: YamuxSession
    package let channel: any Channel
    package let connectedAt = ContinuousClock.now

    package struct State {
        package var protocols: [String] = []
        package var agentVersion = ""
        package var identified = false
        package var closeReason: String?
        /// Streams the peer opened, per protocol, whose handlers run now.
        var inboundByProtocol: [String: Int] = [:]
        /// When the socket write in progress started (nil: none in progress).
        var writeStartedAt: ContinuousClock.Instant?
    }

    package let state = Mutex(State())

    package init(remote: PeerID, direction: PeerDirection, remoteAddress: String, addressKey: String, remoteIP: String,
         serial: UInt64, origin: ConnectionOrigin, session: YamuxSession, channel: any Channel) {
        self.remote = remote
        self.direction = direction
        self.remoteAddress = remoteAddress
        self.addressKey = addressKey
        self.remoteIP = remoteIP
        self.serial = serial
        self.origin = origin
        self.session = session
        self.channel = channel
    }

    /// The peer's protocols as identify reported them (empty until it answered).
    package var protocols: [String] { state.withLock { $0.protocols } }
    package var agentVersion: String { state.withLock { $0.agentVersion } }
    package var isClosed: Bool { session.isClosed }
    package var closeReason: String? { state.withLock { $0.closeReason } }

    /// Counts a handler of `proto` for a stream the peer opened; false when `limit` run already.
    func beginInbound(_ proto: String, limit: Int) -> Bool {
        state.withLock { s in
            let n = s.inboundByProtocol[proto] ?? 0
            guard n < limit else { return false }
            s.inboundByProtocol[proto] = n + 1
            return true
        }
    }

    func endInbound(_ proto: String) {
        state.withLock { s in
            let n = (s.inboundByProtocol[proto] ?? 1) - 1
            s.inboundByProtocol[proto] = n > 0 ? n : nil
        }
    }

    func inboundStreams(_ proto: String) -> Int { state.withLock { $0.inboundByProtocol[proto] ?? 0 } }

    func writeStarted() { state.withLock { $0.writeStartedAt = .now } }
    func writeFinished() { state.withLock { $0.writeStartedAt = nil } }
    var writeStalledSince: ContinuousClock.Instant? { state.withLock { $0.writeStartedAt } }

    /// Says goodbye (yamux GoAway) and closes the TCP connection once the writer has sent it.
    package func close(reason: String, code: Yamux.GoAwayCode = .normal) {
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
    package var isDialer: Bool { self == .outbound }
}
