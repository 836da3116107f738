import Primitives
import Chain
import Store
import Execution
import Foundation

/// The RPC server's view of a running node.
struct NodeRPCBackend: RPCBackend {
    let node: EvNode

    func status() async -> NodeStatus { node.status() }

    func readiness() async -> Readiness {
        let config = node.setup.config
        let lastBlockTime = node.store.state.map { $0.isGenesis ? 0 : $0.lastBlockTime } ?? 0
        let facts = ReadinessFacts(
            aggregator: config.aggregator, p2pListening: !node.p2p.listenMultiaddrs.isEmpty,
            peersConfigured: !config.p2p.peers.isEmpty, lastBlockTime: lastBlockTime,
            now: UInt64(max(0, Date().timeIntervalSince1970 * 1e9)), blockTime: config.blockTime, lazy: config.lazy,
            lazyInterval: config.lazyInterval, readiness: config.readiness)
        return Readiness.of(node.status(), follower: node.follower.status, facts: facts, now: .now)
    }

    /// ev-node reads the store's height; this reads the newest block's header from RocksDB, so
    /// a store that cannot be read answers FAIL.
    func isLive() async -> Bool {
        let height = node.store.height
        guard height > 0 else { return node.store.state != nil }
        return (try? node.store.encodedSignedHeader(at: height)) != nil
    }

    func raftNode() async -> RaftNodeView? {
        guard let ha = node.ha?.status else { return nil }
        return RaftNodeView(is_leader: ha.role == "leader", node_id: ha.node_id)
    }

    var api: any EvnodeAPIBackend { NodeAPIBackend(node: node) }

    func block(at height: UInt64) async -> BlockView? {
        guard let block = try? node.store.block(at: height) else { return nil }
        let h = block.signedHeader.header
        return BlockView(height: h.height, hash: Hex.encode(h.hash), time_ns: h.time,
                         proposer: Hex.encode(h.proposerAddress), app_hash: Hex.encode(h.appHash),
                         data_hash: Hex.encode(h.dataHash),
                         txs: block.data.txs.map { Data($0).base64EncodedString() })
    }

    func prunedBlockHeight() async -> UInt64 {
        // A store that cannot be read here cannot serve the block either: the plain 404 says enough.
        (try? node.store.prunedHeights().blocks) ?? 0
    }

    func submitTransaction(_ tx: [UInt8]) async throws(TransactionRejected) {
        guard node.setup.config.aggregator else {
            throw TransactionRejected(status: 503, message: "this node does not produce blocks; send transactions to the aggregator")
        }
        // An HA follower's mempool would hold them until it leads, perhaps never.
        if let ha = node.ha?.status, ha.role != "leader" {
            if ha.role == "taking-over" {
                throw TransactionRejected(status: 503, message: "this node was just elected HA leader and is bringing its store to the group's latest block; retry in a moment")
            }
            let leader = ha.leader.map { "the leader is \($0)" } ?? "no leader is known"
            throw TransactionRejected(status: 503, message: "this node follows in the HA group (\(leader)); send transactions to the leader")
        }
        if let evm = node.evm {
            // The EL's pool holds EVM transactions; the aggregator takes them with txpoolExt_getTxs.
            guard !tx.isEmpty else { throw TransactionRejected(status: 400, message: "empty tx") }
            do throws(ExecutionError) {
                _ = try await evm.sendRawTransaction(tx)
                return
            } catch {
                throw TransactionRejected(status: error.isUnavailable ? 503 : 400, message: "\(error)")
            }
        }
        guard let kv = node.kv else {
            throw TransactionRejected(status: 503, message: "this node's execution layer takes no transactions")
        }
        do throws(MempoolError) {
            try kv.submit(tx)
        } catch {
            // A bad tx is the client's fault; a full mempool is a "try again later".
            switch error {
            case .emptyTx: throw TransactionRejected(status: 400, message: "\(error)")
            case .txTooLarge: throw TransactionRejected(status: 413, message: "\(error)")
            case .full: throw TransactionRejected(status: 503, message: "\(error)")
            }
        }
    }

    func value(forKey key: [UInt8]) async -> [UInt8]? {
        try? node.kv?.value(forKey: key)
    }

    func evidence() async throws(EvidenceUnavailable) -> EvidenceList {
        let records: [DoubleSignEvidence]
        do throws(StoreError) {
            records = try node.evidence.all()
        } catch {
            throw EvidenceUnavailable(error.description)
        }
        func view(_ header: SignedHeader, _ seen: String) -> EvidenceList.SignedHeaderView {
            .init(hash: Hex.encode(header.header.hash), signed_header: Hex.encode(header.encoded()), seen: seen)
        }
        return EvidenceList(count: node.evidence.count, evidence: records.map {
            .init(height: $0.height, first: view($0.first, $0.firstSeen), second: view($0.second, $0.secondSeen),
                  recorded_at_ns: $0.recordedAt)
        })
    }

    func metricsText() async -> String {
        node.metrics.text()
    }
}
