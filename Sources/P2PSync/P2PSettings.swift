import Block

/// Tunables of the P2P layer. The defaults suit production (and match ev-node's where it has
/// one); tests shorten the durations.
public struct P2PSettings: Sendable {
    /// Open connections (handshaking or ready) beyond this are refused.
    public var maxConnections: Int = 64
    /// multistream + Noise + yamux negotiation must finish within this.
    public var handshakeTimeout: Duration = .seconds(10)
    /// How long a header-ex request may take before another peer is asked (go-header: 8 s).
    public var requestTimeout: Duration = .seconds(8)
    public var connectTimeout: Duration = .seconds(5)
    public var banDuration: Duration = .seconds(600)
    /// Bans kept at most (oldest-expiring dropped first beyond this).
    public var maxBans: Int = 4096
    public var redialInitialDelay: Duration = .milliseconds(500)
    public var redialMaxDelay: Duration = .seconds(30)
    /// How often every connected peer is asked for its head (header-ex `origin = 0`): the bound
    /// on how stale this node's view of a peer's height gets.
    public var headPollInterval: Duration = .seconds(1)
    /// Head requests in flight at once; each peer is asked on its own schedule.
    public var headPollConcurrency: Int = 16
    /// yamux keep-alive pings (go-libp2p: 30 s).
    public var keepAliveInterval: Duration = .seconds(30)
    /// Pubsub messages remembered (`from ‖ seqno`, 120 s like go-libp2p-pubsub).
    public var seenSetCapacity: Int = 65_536
    /// Gossiped blocks buffered for the node; beyond it the oldest are dropped (the node can
    /// fetch any gap by range).
    public var receivedBufferCapacity: Int = 1024
    /// Gossiped header records kept (`PendingGossip`): verified headers waiting for their data,
    /// and the hashes of those delivered, which turn replays away without a signature check.
    /// Beyond it the highest heights go first. A real header is ~300 bytes, at most 64 KiB.
    public var pendingHeaderCapacity: Int = 256
    /// Gossiped data that arrives before its header is held (never relayed) only this many
    /// heights above the store. The aggregator sends each header before its data, and every
    /// relayer forwards the header before the data it pairs, so honest data rarely needs it.
    public var pendingDataWindow: UInt64 = 16
    /// Bytes of such data held at most (highest heights evicted first): three data messages of
    /// the 5 MiB gossip limit.
    public var pendingDataBudgetBytes: Int = 16 << 20
    /// Penalty points (a duplicate message is one) at which a peer is banned.
    public var penaltyBanThreshold: Int = 10
    /// Largest pubsub RPC accepted (ev-node: messages up to 5 MiB).
    public var maxGossipBytes: Int = 5 * 1024 * 1024 + 64 * 1024
    /// Chunks of one `requestRange` fetched in parallel.
    public var rangeParallelism: Int = 4
    /// Outbound bytes queued to one connection beyond which it is closed as not reading.
    public var outboundHardLimitBytes: Int = 64 << 20

    public init() {}
}

public enum P2PProtocol {
    /// The most blocks one range request may ask for (go-header's MaxRangeRequestSize).
    public static let maxBlocksPerRequest = 64
}
