import Block

/// Tunables of the P2P layer. The defaults suit production; tests shorten the durations.
public struct P2PSettings: Sendable {
    /// Largest frame accepted (length field, i.e. type byte + payload). Larger ⇒ disconnect + ban.
    /// The default fits the largest block the Block module accepts (data and header at their
    /// limits) with room for the framing. At least 64 KiB.
    public var maxFrameBytes: Int = WireLimits.maxBlockBytes + WireLimits.maxHeaderBytes + 4096
    /// Open connections (handshaking or ready) beyond this are refused.
    public var maxConnections: Int = 64
    public var handshakeTimeout: Duration = .seconds(5)
    /// How long a connection that lost to another one to the same peer stays open for reading
    /// if the peer does not close it after our goodbye.
    public var duplicateDrainTimeout: Duration = .seconds(5)
    /// How long a range request may take before another peer is asked.
    public var requestTimeout: Duration = .seconds(10)
    public var connectTimeout: Duration = .seconds(5)
    public var banDuration: Duration = .seconds(600)
    /// Bans kept at most (oldest-expiring dropped first beyond this).
    public var maxBans: Int = 4096
    public var redialInitialDelay: Duration = .milliseconds(500)
    public var redialMaxDelay: Duration = .seconds(30)
    /// How often the service checks its `BlockSource` height and, when it changed, announces it
    /// to every peer: the bound on status messages per second, and on how stale a peer's view
    /// of this node's height gets.
    public var heightAnnounceInterval: Duration = .milliseconds(250)
    /// Header hashes remembered to stop gossip loops.
    public var seenSetCapacity: Int = 16_384
    /// Gossiped blocks buffered for the node; beyond it the oldest are dropped (the node can
    /// fetch any gap by range).
    public var receivedBufferCapacity: Int = 1024
    /// Inbound message rate per peer (messages / s) and burst.
    public var messagesPerSecond: Double = 1000
    public var messageBurst: Double = 2000
    /// Inbound byte rate per peer for unsolicited traffic (everything but range responses this
    /// node asked for).
    public var bytesPerSecond: Double = 32 * 1024 * 1024
    public var byteBurst: Double = 64 * 1024 * 1024
    /// A peer whose debt exceeds this many bursts is flooding: disconnect + ban. Below it the
    /// peer is only throttled (its socket is not read until it is solvent again).
    public var floodBanFactor: Double = 1
    /// Range requests from one peer answered at the same time; more get `busy`.
    public var maxServedRequestsPerPeer: Int = 4
    /// Range requests this node keeps in flight to one peer.
    public var maxRequestsPerPeer: Int = 4
    /// Chunks of one `requestRange` fetched in parallel.
    public var rangeParallelism: Int = 4
    /// Outbound bytes queued to one peer beyond which gossip to it is skipped.
    public var outboundSoftLimitBytes: Int = 4 << 20
    /// Outbound bytes queued to one peer beyond which it is disconnected as not reading.
    public var outboundHardLimitBytes: Int = 64 << 20

    public init() {}
}
