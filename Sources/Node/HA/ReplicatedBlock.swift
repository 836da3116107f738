import Block
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
    /// Held, under its lease, by the node that leads; its value is that node's id.
    let leader: [UInt8]
    /// The height of the last block committed by a leader (decimal text).
    let height: [UInt8]
    /// That block (`ReplicatedBlock`).
    let block: [UInt8]

    init(chainID: String) {
        let prefix = "/evnode/\(chainID)/ha/"
        leader = Array((prefix + "leader").utf8)
        height = Array((prefix + "height").utf8)
        block = Array((prefix + "block").utf8)
    }
}
