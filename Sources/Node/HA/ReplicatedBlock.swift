import Etcd
import Store
import P2PSync

/// The latest block an HA leader committed to etcd, as stored in the chain's block key: a version
/// byte, then the block exactly as P2P frames carry it (`P2PBlock.encoded()`). Followers check
/// it like a gossiped block before it goes near their store.
typealias ReplicatedBlock = P2PBlock

extension P2PBlock {
    static let replicatedVersion: UInt8 = 1

    init(_ block: BlockCommit) {
        self.init(height: block.height, headerHash: block.signedHeader.header.hash,
                  encodedSignedHeader: block.signedHeader.encoded(), encodedData: block.data.encoded())
    }

    /// The value of etcd's block key.
    func replicatedValue() -> [UInt8] {
        [Self.replicatedVersion] + encoded()
    }

    init(replicatedValue bytes: [UInt8]) throws(ReplicationError) {
        guard let first = bytes.first else { throw .undecodable("empty value") }
        guard first == Self.replicatedVersion else { throw .undecodable("unknown record version \(first)") }
        do throws(WireDecodeError) {
            self = try P2PBlock(decoding: Array(bytes.dropFirst()))
        } catch {
            throw .undecodable(error.description)
        }
    }
}

/// What is wrong with a value found in etcd.
enum ReplicationError: Error, Sendable, Equatable, CustomStringConvertible {
    case undecodable(String)

    var description: String {
        switch self {
        case .undecodable(let why): return "the replicated block in etcd does not decode: \(why)"
        }
    }
}

/// The etcd keys of one chain's HA group.
struct HAKeys: Sendable {
    /// Held, under its lease, by the node that leads; its value is that node's id. Written once
    /// per term (created, or put by a take-over): its mod revision names the term.
    let leader: [UInt8]
    /// The leader's heartbeat, under the same lease as the leader key, put every heartbeat
    /// interval; its value is the leader's interval in milliseconds.
    /// Below the leader key, so one watch of the leader key's prefix sees both.
    let heartbeat: [UInt8]
    /// The end of the range holding the leader key and its heartbeat.
    let leaderRangeEnd: [UInt8]
    /// The height of the last block committed by a leader (decimal text).
    let height: [UInt8]
    /// That block (`ReplicatedBlock`).
    let block: [UInt8]

    init(chainID: String) {
        let prefix = "/evnode/\(chainID)/ha/"
        leader = Array((prefix + "leader").utf8)
        heartbeat = Array((prefix + "leader/heartbeat").utf8)
        leaderRangeEnd = EtcdClient.prefixEnd(leader)
        height = Array((prefix + "height").utf8)
        block = Array((prefix + "block").utf8)
    }
}
