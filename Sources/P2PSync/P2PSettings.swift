import Libp2p
/// Tunables of the P2P layer. The defaults suit production (and match ev-node's where it has
/// one); tests shorten the durations.
///
/// The bounds against strangers (README "Under attack") are here with their reasons; each is
/// what one peer, one address or the whole node can be made to hold.
package struct P2PSettings: Sendable {
    // MARK: Connections

    /// Established inbound connections from peers that are not configured (`--p2p.peers`).
    /// Configured peers' inbound connections are admitted beyond it (their slots are reserved),
    /// and this node dials only configured peers, on slots of their own (`maxOutboundConnections`).
    package var maxInboundConnections: Int = 48
    /// Outbound connections, handshaking or established (only configured peers are dialled).
    package var maxOutboundConnections: Int = 32
    /// Inbound connections still in their handshake. When full, the busiest address's oldest
    /// handshake makes room for a newcomer from an address with fewer.
    package var maxInboundHandshakes: Int = 16
    /// Inbound connections per IPv4 address or IPv6 /64, handshaking or established. Local
    /// setups and tests run several nodes on 127.0.0.1: this leaves room for a handful.
    package var maxInboundPerAddress: Int = 8
    /// Outbound (dialled) multistream + Noise + yamux negotiation must finish within this.
    package var handshakeTimeout: Duration = .seconds(10)
    /// The same for inbound connections: a stranger's stalled handshake frees its slot after it.
    package var inboundHandshakeTimeout: Duration = .seconds(4)
    /// How long a header-ex request may take before another peer is asked (go-header: 8 s).
    package var requestTimeout: Duration = .seconds(8)
    package var connectTimeout: Duration = .seconds(5)
    package var banDuration: Duration = .seconds(600)
    /// Peer-id bans kept at most (oldest-expiring dropped first beyond this).
    package var maxBans: Int = 4096
    /// Address bans kept at most, apart from the id bans: new identities cannot flush them.
    package var maxAddressBans: Int = 4096
    /// Addresses never banned by address (only by peer id): local setups and tests run several
    /// nodes behind one loopback address. Other 127.x addresses are banned like any.
    package var addressBanExempt: Set<String> = ["127.0.0.1", "::1"]
    package var redialInitialDelay: Duration = .milliseconds(500)
    package var redialMaxDelay: Duration = .seconds(30)
    /// How often every connected peer is asked for its head (header-ex `origin = 0`): the bound
    /// on how stale this node's view of a peer's height gets.
    package var headPollInterval: Duration = .seconds(1)
    /// Head requests in flight at once; each peer is asked on its own schedule.
    package var headPollConcurrency: Int = 16
    /// yamux keep-alive pings (go-libp2p: 30 s).
    package var keepAliveInterval: Duration = .seconds(30)
    /// Pubsub messages remembered (`from ‖ seqno`, 120 s like go-libp2p-pubsub).
    package var seenSetCapacity: Int = 65_536
    /// Gossiped blocks buffered for the node; beyond it the oldest are dropped (the node can
    /// fetch any gap by range).
    package var receivedBufferCapacity: Int = 1024
    /// Gossiped header records kept (`PendingGossip`): verified headers waiting for their data,
    /// and the hashes of those delivered, which turn replays away without a signature check.
    /// Beyond it the highest heights go first. A real header is ~300 bytes, at most 64 KiB.
    package var pendingHeaderCapacity: Int = 256
    /// Gossiped data that arrives before its header is held (never relayed) only this many
    /// heights above the store. The aggregator sends each header before its data, and every
    /// relayer forwards the header before the data it pairs, so honest data rarely needs it.
    package var pendingDataWindow: UInt64 = 16
    /// Bytes of such data held at most (highest heights evicted first): three data messages of
    /// the 5 MiB gossip limit.
    package var pendingDataBudgetBytes: Int = 16 << 20
    /// Penalty points (a duplicate message is one) at which a peer is banned.
    package var penaltyBanThreshold: Int = 10
    /// Largest pubsub RPC accepted (ev-node: messages up to 5 MiB).
    package var maxGossipBytes: Int = 5 * 1024 * 1024 + 64 * 1024
    /// Chunks of one `requestRange` fetched in parallel.
    package var rangeParallelism: Int = 4

    // MARK: Memory a peer can make the node hold

    /// Bytes queued for sending to one connection (yamux frames and its gossip queue): writers
    /// wait and gossip frames to it are dropped beyond this. Two 5 MiB data messages fit.
    package var sendBufferPerConnectionBytes: Int = 16 << 20
    /// The same for every connection together.
    package var sendBufferNodeBytes: Int = 256 << 20
    /// A socket write that has not finished after this closes the connection (go-yamux: 10 s).
    package var writeTimeout: Duration = .seconds(10)
    /// Streams open at once per connection, and how many of those the peer may open (each
    /// holds at most a 256 KiB window of unread data).
    package var maxStreamsPerConnection: Int = 64
    package var maxInboundStreamsPerConnection: Int = 32
    /// Peer-opened streams of the whole node beyond each connection's first four.
    package var maxInboundStreamsNode: Int = 512
    /// Pubsub RPCs being read and handled at once, bytes, for the whole node.
    package var gossipReadBudgetBytes: Int = 64 << 20
    /// Bytes of header-ex answers this node's own requests hold at once (all peers).
    package var exchangeClientBytes: Int = 64 << 20
    /// header-ex requests this node answers at once, per peer and in total. Its own client
    /// makes up to 2 × `rangeParallelism` + 1 per peer.
    package var exchangeRequestsPerPeer: Int = 16
    package var exchangeRequestsNode: Int = 64
    /// How long a header-ex answer may take to be written (go-header: 8 s).
    package var exchangeWriteDeadline: Duration = .seconds(8)

    package init() {}
}

package enum P2PProtocol {
    /// The most blocks one range request may ask for (go-header's MaxRangeRequestSize).
    package static let maxBlocksPerRequest = 64
}
