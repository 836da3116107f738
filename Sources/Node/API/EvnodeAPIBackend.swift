import Chain
/// What ev-node's services (`evnode.v1.StoreService`, `P2PService`, `ConfigService`) ask of the
/// node. `NodeRPCBackend` answers from the live node; the services know nothing else.
package protocol EvnodeAPIBackend: Sendable {
    /// The block at `height` as the store holds it, nil when it holds none.
    func storedBlock(at height: UInt64) throws(APIFault) -> APIStoredBlock?
    /// The height of the block whose header hashes to `hash`, nil when none does.
    func height(ofHeaderHash hash: [UInt8]) throws(APIFault) -> UInt64?
    /// The height of the newest stored block (0: none yet).
    var latestHeight: UInt64 { get }
    func chainState() throws(APIFault) -> APIChainState
    /// The value behind one of ev-node's metadata keys, nil when the node has none yet.
    func metadata(_ key: EvnodeMetadataKey) throws(APIFault) -> UInt64?
    /// ev-node's "Header Store" and "Data Store" (go-header stores); here both are views of the
    /// one block store.
    func p2pStores() throws(APIFault) -> [APIP2PStore]
    func netInfo() -> APINetInfo
    /// The 29-byte DA namespaces of headers and data.
    var namespaces: (header: [UInt8], data: [UInt8]) { get }
    /// The address of the key that signs blocks; nil when unknown.
    var signerAddress: [UInt8]? { get }
}

/// A block exactly as stored: the encoded `SignedHeader` and `Data` (the bytes the node gossips
/// and posts to DA), with the DA heights that include them.
package struct APIStoredBlock: Sendable, Equatable {
    package var height: UInt64
    package var signedHeader: [UInt8]
    package var data: [UInt8]
    package var headerDAHeight: UInt64?
    package var dataDAHeight: UInt64?

    package init(height: UInt64, signedHeader: [UInt8], data: [UInt8], headerDAHeight: UInt64?, dataDAHeight: UInt64?) {
        self.height = height
        self.signedHeader = signedHeader
        self.data = data
        self.headerDAHeight = headerDAHeight
        self.dataDAHeight = dataDAHeight
    }
}

/// `GetState`'s view: the stored chain state plus what ev-node's `State` carries beside it.
package struct APIChainState: Sendable, Equatable {
    package var state: State
    /// The newest block's header version (zero before the first block).
    package var blockVersion: UInt64
    package var appVersion: UInt64
    /// The DA height the node has read or submitted through.
    package var daHeight: UInt64
    package var nextProposerAddress: [UInt8]

    package init(state: State, blockVersion: UInt64, appVersion: UInt64, daHeight: UInt64, nextProposerAddress: [UInt8]) {
        self.state = state
        self.blockVersion = blockVersion
        self.appVersion = appVersion
        self.daHeight = daHeight
        self.nextProposerAddress = nextProposerAddress
    }
}

/// One of `GetP2PStoreInfo`'s stores: its height and its newest and oldest entries.
package struct APIP2PStore: Sendable, Equatable {
    package struct Entry: Sendable, Equatable {
        package var height: UInt64
        package var hash: [UInt8]
        /// Unix nanoseconds.
        package var time: UInt64

        package init(height: UInt64, hash: [UInt8], time: UInt64) {
            self.height = height
            self.hash = hash
            self.time = time
        }
    }

    package var label: String
    package var height: UInt64
    package var head: Entry?
    package var tail: Entry?

    package init(label: String, height: UInt64, head: Entry?, tail: Entry?) {
        self.label = label
        self.height = height
        self.head = head
        self.tail = tail
    }
}

/// The libp2p identity and live connections (`GetNetInfo`, `GetPeerInfo`).
package struct APINetInfo: Sendable, Equatable {
    package struct Peer: Sendable, Equatable {
        /// `12D3KooW…`
        package var id: String
        /// The connection's remote multiaddr, ending in `/p2p/<id>`.
        package var address: String

        package init(id: String, address: String) {
            self.id = id
            self.address = address
        }
    }

    package var id: String
    package var listenAddresses: [String]
    package var peers: [Peer]

    package init(id: String, listenAddresses: [String], peers: [Peer]) {
        self.id = id
        self.listenAddresses = listenAddresses
        self.peers = peers
    }
}

/// ev-node's store metadata keys that this node can answer (`GetMetadata`); each value is a
/// little-endian uint64 as ev-node stores it.
package enum EvnodeMetadataKey: Sendable, Equatable {
    /// `gdh`: the first DA height that includes the chain's first block.
    case genesisDAHeight
    /// `d`: the height through which blocks are DA-included (finalized).
    case daIncludedHeight
    /// `last-submitted-header-height`, `last-submitted-data-height`: the submitter's progress.
    case lastSubmittedHeaderHeight
    case lastSubmittedDataHeight
    /// `rhb/<h>/h`, `rhb/<h>/d`: the DA height that includes block h's header or data.
    case headerDAHeight(UInt64)
    case dataDAHeight(UInt64)

    /// Longer than any key answered (`last-submitted-header-height`, 28; `rhb/` + 20 digits +
    /// `/h`, 26): a longer one is not parsed.
    static let maxKeyLength = 64

    package init?(_ key: String) {
        guard key.utf8.count <= Self.maxKeyLength else { return nil }
        switch key {
        case "gdh": self = .genesisDAHeight
        case "d": self = .daIncludedHeight
        case "last-submitted-header-height": self = .lastSubmittedHeaderHeight
        case "last-submitted-data-height": self = .lastSubmittedDataHeight
        default:
            let parts = key.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "rhb", let h = UInt64(parts[1]), String(h) == parts[1] else { return nil }
            switch parts[2] {
            case "h": self = .headerDAHeight(h)
            case "d": self = .dataDAHeight(h)
            default: return nil
            }
        }
    }

    static let known = "gdh, d, last-submitted-header-height, last-submitted-data-height, rhb/<height>/h, rhb/<height>/d"
}
