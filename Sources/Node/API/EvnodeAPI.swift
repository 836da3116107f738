import Primitives
import Foundation
import RPCAPI
import SwiftProtobuf

/// ev-node's three services, one method each, shared by the Connect routes and the gRPC server
/// so that both protocols answer the same. Errors are `APIFault`s naming what was wrong.
package struct EvnodeAPI: Sendable {
    let backend: any EvnodeAPIBackend

    package init(backend: any EvnodeAPIBackend) {
        self.backend = backend
    }

    // MARK: StoreService

    /// By height (0: the newest) or by header hash. The block is the stored bytes, decoded into
    /// the generated messages (their encoding is the same bytes again: tested against vectors).
    /// A missing block is `not_found` (ev-node answers `internal`; README says why not).
    package func getBlock(_ request: Evnode_V1_GetBlockRequest) throws(APIFault) -> Evnode_V1_GetBlockResponse {
        let height: UInt64
        switch request.identifier {
        case .height(let h)?:
            if h == 0 {
                height = backend.latestHeight
                guard height > 0 else { throw APIFault(.notFound, "the store is empty: no latest block yet") }
            } else {
                height = h
            }
        case .hash(let hash)?:
            guard hash.count == 32 else {
                throw APIFault(.invalidArgument, "hash must be a 32-byte header hash, got \(hash.count) bytes")
            }
            guard let h = try backend.height(ofHeaderHash: Array(hash)) else {
                throw APIFault(.notFound, "no block with header hash \(Hex.encode(hash))")
            }
            height = h
        case nil:
            throw APIFault(.invalidArgument, "identifier missing: set height (0 for the latest) or hash")
        }
        guard let stored = try backend.storedBlock(at: height) else {
            throw APIFault(.notFound, "no block at height \(height)")
        }
        var response = Evnode_V1_GetBlockResponse()
        do {
            response.block.header = try Evnode_V1_SignedHeader(serializedBytes: stored.signedHeader)
            response.block.data = try Evnode_V1_Data(serializedBytes: stored.data)
        } catch {
            throw APIFault(.internal, "stored block \(height) does not decode: \(error)")
        }
        response.headerDaHeight = stored.headerDAHeight ?? 0
        response.dataDaHeight = stored.dataDAHeight ?? 0
        return response
    }

    /// ev-node's `State`, with `last_header_hash` filled (ev-node leaves it empty).
    package func getState() throws(APIFault) -> Evnode_V1_GetStateResponse {
        let chain = try backend.chainState()
        var state = Evnode_V1_State()
        state.version.block = chain.blockVersion
        state.version.app = chain.appVersion
        state.chainID = chain.state.chainID
        state.initialHeight = chain.state.initialHeight
        state.lastBlockHeight = chain.state.lastBlockHeight
        state.lastBlockTime = Self.timestamp(nanoseconds: chain.state.lastBlockTime)
        state.daHeight = chain.daHeight
        state.appHash = Data(chain.state.appHash)
        state.lastHeaderHash = Data(chain.state.lastHeaderHash)
        state.nextProposerAddress = Data(chain.nextProposerAddress)
        var response = Evnode_V1_GetStateResponse()
        response.state = state
        return response
    }

    package func getMetadata(_ request: Evnode_V1_GetMetadataRequest) throws(APIFault) -> Evnode_V1_GetMetadataResponse {
        guard let key = EvnodeMetadataKey(request.key) else {
            let shown = request.key.utf8.count > 64 ? String(request.key.prefix(64)) + "…" : request.key
            throw APIFault(.notFound, "unknown metadata key \"\(shown)\"; this node answers \(EvnodeMetadataKey.known)")
        }
        guard let value = try backend.metadata(key) else {
            throw APIFault(.notFound, "no value for metadata key \"\(request.key)\" yet")
        }
        var response = Evnode_V1_GetMetadataResponse()
        response.value = Self.littleEndian(value)
        return response
    }

    package func getGenesisDaHeight() throws(APIFault) -> Evnode_V1_GetGenesisDaHeightResponse {
        guard let height = try backend.metadata(.genesisDAHeight) else {
            throw APIFault(.notFound, "the genesis DA height is not known yet: the first block is not DA-included")
        }
        var response = Evnode_V1_GetGenesisDaHeightResponse()
        response.height = height
        return response
    }

    package func getP2PStoreInfo() throws(APIFault) -> Evnode_V1_GetP2PStoreInfoResponse {
        var response = Evnode_V1_GetP2PStoreInfoResponse()
        response.stores = try backend.p2pStores().map { store in
            var snapshot = Evnode_V1_P2PStoreSnapshot()
            snapshot.label = store.label
            snapshot.height = store.height
            if let head = store.head { snapshot.head = Self.entry(head) }
            if let tail = store.tail { snapshot.tail = Self.entry(tail) }
            return snapshot
        }
        return response
    }

    // MARK: P2PService

    /// The live connections (ev-node lists DHT-discovered peers here; this node has no DHT).
    package func getPeerInfo() -> Evnode_V1_GetPeerInfoResponse {
        var response = Evnode_V1_GetPeerInfoResponse()
        response.peers = backend.netInfo().peers.map { peer in
            var info = Evnode_V1_PeerInfo()
            info.id = peer.id
            info.address = peer.address
            return info
        }
        return response
    }

    /// ev-node fills only `id` and `listen_addresses`; `connected_peers` lists the live connections' ids.
    package func getNetInfo() -> Evnode_V1_GetNetInfoResponse {
        let net = backend.netInfo()
        var response = Evnode_V1_GetNetInfoResponse()
        response.netInfo.id = net.id
        response.netInfo.listenAddresses = net.listenAddresses
        response.netInfo.connectedPeers = net.peers.map(\.id)
        return response
    }

    // MARK: ConfigService

    package func getNamespace() -> Evnode_V1_GetNamespaceResponse {
        let namespaces = backend.namespaces
        var response = Evnode_V1_GetNamespaceResponse()
        response.headerNamespace = Hex.encode(namespaces.header)
        response.dataNamespace = Hex.encode(namespaces.data)
        return response
    }

    package func getSignerInfo() throws(APIFault) -> Evnode_V1_GetSignerInfoResponse {
        guard let address = backend.signerAddress else {
            throw APIFault(.unavailable, "sequencer signer not available")
        }
        var response = Evnode_V1_GetSignerInfoResponse()
        response.address = Data(address)
        return response
    }

    // MARK: encoding helpers

    static func timestamp(nanoseconds ns: UInt64) -> Google_Protobuf_Timestamp {
        var t = Google_Protobuf_Timestamp()
        t.seconds = Int64(ns / 1_000_000_000)
        t.nanos = Int32(ns % 1_000_000_000)
        return t
    }

    static func littleEndian(_ value: UInt64) -> Data {
        withUnsafeBytes(of: value.littleEndian) { Data($0) }
    }

    static func entry(_ e: APIP2PStore.Entry) -> Evnode_V1_P2PStoreEntry {
        var entry = Evnode_V1_P2PStoreEntry()
        entry.height = e.height
        entry.hash = Data(e.hash)
        if e.time > 0 { entry.time = timestamp(nanoseconds: e.time) }
        return entry
    }
}
