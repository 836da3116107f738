import Block

/// The latest block an HA leader committed to etcd, as stored in the chain's block key:
/// `01 ‖ height (8, big endian) ‖ header hash (32) ‖ len (4) ‖ signed header ‖ encoded data`.
/// Followers check it like a gossiped block before it goes near their store.
struct ReplicatedBlock: Sendable, Equatable {
    var height: UInt64
    var headerHash: [UInt8]
    var encodedSignedHeader: [UInt8]
    var encodedData: [UInt8]

    static let version: UInt8 = 1

    init(height: UInt64, headerHash: [UInt8], encodedSignedHeader: [UInt8], encodedData: [UInt8]) {
        self.height = height
        self.headerHash = headerHash
        self.encodedSignedHeader = encodedSignedHeader
        self.encodedData = encodedData
    }

    init(_ block: BlockCommit) {
        self.init(height: block.height, headerHash: block.signedHeader.header.hash,
                  encodedSignedHeader: block.signedHeader.encoded(), encodedData: block.data.encoded())
    }

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1 + 8 + 32 + 4 + encodedSignedHeader.count + encodedData.count)
        out.append(Self.version)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: height >> UInt64(shift))) }
        out.append(contentsOf: headerHash)
        let n = UInt32(encodedSignedHeader.count)
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: n >> UInt32(shift))) }
        out.append(contentsOf: encodedSignedHeader)
        out.append(contentsOf: encodedData)
        return out
    }

    init(decoding bytes: [UInt8]) throws(ReplicationError) {
        guard let first = bytes.first else { throw .undecodable("empty value") }
        guard first == Self.version else { throw .undecodable("unknown record version \(first)") }
        guard bytes.count >= 45 else { throw .undecodable("\(bytes.count) bytes, shorter than the fixed part (45)") }
        let height = bytes[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let n = Int(bytes[41..<45].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard bytes.count - 45 >= n else {
            throw .undecodable("header length \(n) runs past the end (\(bytes.count - 45) bytes left)")
        }
        self.init(height: height, headerHash: Array(bytes[9..<41]), encodedSignedHeader: Array(bytes[45..<(45 + n)]),
                  encodedData: Array(bytes[(45 + n)...]))
    }
}

/// What is wrong with a value found in etcd.
enum ReplicationError: Error, Sendable, Equatable, CustomStringConvertible {
    case undecodable(String)
    case invalid(height: UInt64, String)

    var description: String {
        switch self {
        case .undecodable(let why): return "the replicated block in etcd does not decode: \(why)"
        case let .invalid(height, why): return "the replicated block \(height) in etcd is not acceptable: \(why)"
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
