import DAClient
import Chain
import Store
import P2PSync

/// ev-node's services answered from the running node's store, P2P host and configuration.
struct NodeAPIBackend: EvnodeAPIBackend {
    let node: EvNode

    private func read<T>(_ what: String, _ body: () throws(StoreError) -> T) throws(APIFault) -> T {
        do throws(StoreError) {
            return try body()
        } catch {
            throw APIFault(.internal, "cannot read \(what) from the store: \(error)")
        }
    }

    func storedBlock(at height: UInt64) throws(APIFault) -> APIStoredBlock? {
        let store = node.store
        guard let header = try read("the header at \(height)", { () throws(StoreError) in try store.encodedSignedHeader(at: height) }),
              let data = try read("the data at \(height)", { () throws(StoreError) in try store.encodedBlockData(at: height) })
        else { return nil }
        let inclusion = try read("the DA inclusion of \(height)", { () throws(StoreError) in try store.daInclusion(at: height) })
        return APIStoredBlock(height: height, signedHeader: header, data: data,
                              headerDAHeight: inclusion.headerDAHeight,
                              dataDAHeight: try dataDAHeight(inclusion, at: height))
    }

    /// ev-node records the header's DA height for a block without transactions (it posts no
    /// data blob for it).
    private func dataDAHeight(_ inclusion: DAInclusion, at height: UInt64) throws(APIFault) -> UInt64? {
        if let d = inclusion.dataDAHeight { return d }
        guard let header = inclusion.headerDAHeight else { return nil }
        let store = node.store
        let signed = try read("the header at \(height)", { () throws(StoreError) in try store.signedHeader(at: height) })
        return signed?.header.dataHash == BlockData.emptyDataHash ? header : nil
    }

    func height(ofHeaderHash hash: [UInt8]) throws(APIFault) -> UInt64? {
        let store = node.store
        return try read("the height of a hash", { () throws(StoreError) in try store.height(forHash: hash) })
    }

    var latestHeight: UInt64 { node.store.height }

    func chainState() throws(APIFault) -> APIChainState {
        guard let state = node.store.state else { throw APIFault(.notFound, "the store holds no state yet") }
        let store = node.store
        let height = state.lastBlockHeight
        let last = state.isGenesis ? nil : try read("the header at \(height)", { () throws(StoreError) in try store.signedHeader(at: height) })
        let daHeight = max(node.follower.status.nextDAHeight.saturatingDecrement, node.submitter?.status.lastDAHeight ?? 0)
        // The proposer the stored state expects at the next height (ev-node v1.2 rotation).
        return APIChainState(state: state, blockVersion: last?.header.version.block ?? 0,
                             appVersion: last?.header.version.app ?? 0, daHeight: daHeight,
                             nextProposerAddress: store.expectedNextProposer)
    }

    func metadata(_ key: EvnodeMetadataKey) throws(APIFault) -> UInt64? {
        let store = node.store
        switch key {
        case .genesisDAHeight:
            let first = node.setup.genesis.initialHeight
            guard let block = try storedBlock(at: first), let header = block.headerDAHeight else { return nil }
            return min(header, block.dataDAHeight ?? header)
        case .daIncludedHeight:
            return store.finalizedHeight
        case .lastSubmittedHeaderHeight:
            return try read("the submitter's progress", { () throws(StoreError) in try store.submitterProgress() }).lastHeaderHeight
        case .lastSubmittedDataHeight:
            return try read("the submitter's progress", { () throws(StoreError) in try store.submitterProgress() }).lastDataHeight
        case .headerDAHeight(let h):
            return try read("the DA inclusion of \(h)", { () throws(StoreError) in try store.daInclusion(at: h) }).headerDAHeight
        case .dataDAHeight(let h):
            let inclusion = try read("the DA inclusion of \(h)", { () throws(StoreError) in try store.daInclusion(at: h) })
            return try dataDAHeight(inclusion, at: h)
        }
    }

    func p2pStores() throws(APIFault) -> [APIP2PStore] {
        let store = node.store
        let height = store.height
        let first = node.setup.genesis.initialHeight
        guard height >= first else {
            return [APIP2PStore(label: "Header Store", height: 0, head: nil, tail: nil),
                    APIP2PStore(label: "Data Store", height: 0, head: nil, tail: nil)]
        }
        func entries(_ h: UInt64) throws(APIFault) -> (header: APIP2PStore.Entry, data: APIP2PStore.Entry)? {
            guard let block = try read("the block at \(h)", { () throws(StoreError) in try store.block(at: h) }) else { return nil }
            let header = block.signedHeader.header
            return (APIP2PStore.Entry(height: h, hash: header.hash, time: header.time),
                    APIP2PStore.Entry(height: h, hash: block.data.fullHash, time: header.time))
        }
        let head = try entries(height)
        let tail = try entries(first)
        return [APIP2PStore(label: "Header Store", height: height, head: head?.header, tail: tail?.header),
                APIP2PStore(label: "Data Store", height: height, head: head?.data, tail: tail?.data)]
    }

    func netInfo() -> APINetInfo {
        let p2p = node.p2p
        let peers = p2p.peers.map { peer in
            APINetInfo.Peer(id: peer.id.description, address: Self.multiaddr(peer.remoteAddress, peer: peer.id.description))
        }
        return APINetInfo(id: p2p.localID.description, listenAddresses: p2p.listenMultiaddrs.map(\.description), peers: peers)
    }

    /// `host:port` of a TCP connection as the multiaddr ev-node prints for a peer.
    static func multiaddr(_ hostPort: String, peer: String) -> String {
        guard let colon = hostPort.lastIndex(of: ":") else { return "/p2p/\(peer)" }
        let host = String(hostPort[..<colon])
        let port = hostPort[hostPort.index(after: colon)...]
        return "/\(host.contains(":") ? "ip6" : "ip4")/\(host)/tcp/\(port)/p2p/\(peer)"
    }

    var namespaces: (header: [UInt8], data: [UInt8]) {
        let da = node.setup.config.da
        let chainID = node.setup.genesis.chainID
        return (DANamespace(name: da.headerNamespaceName(chainID: chainID)).bytes,
                DANamespace(name: da.dataNamespaceName(chainID: chainID)).bytes)
    }

    var signerAddress: [UInt8]? { node.setup.genesis.proposerAddress }
}

extension UInt64 {
    fileprivate var saturatingDecrement: UInt64 { self == 0 ? 0 : self - 1 }
}
