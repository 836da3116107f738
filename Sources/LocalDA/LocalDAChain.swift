import Primitives
import DAClient
import Foundation
import Synchronization

/// One block of the local DA chain.
struct LocalDABlock: Sendable, Equatable {
    package let height: UInt64
    package let timeNanoseconds: UInt64
    /// In submission order; each blob's `index` is its position here.
    package let blobs: [DABlob]
}

/// The local DA's chain of heights, persisted in RocksDB so that a restart resumes at the same
/// head with every blob.
///
/// Key `h` ‖ big-endian height → `time u64 ‖ count u32 ‖ { namespace[29] ‖ share_version u8 ‖
/// len u32 ‖ data ‖ commitment_len u8 ‖ commitment }*` (integers big-endian). Heights start at
/// 1 (created empty when the database is new) and grow by one per block. Appends are
/// serialised and synced before the new head is published, so a reader never sees a height that
/// is not on disk.
final class LocalDAChain: Sendable {
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    private let db: LocalDADatabase
    /// Held for the whole of an append (including the fsync); readers never take it.
    private let appendLock = Mutex<Void>(())
    private let published: Mutex<DAHeader>
    /// Told of every new height, for `blob.Subscribe`.
    let heads = HeadBroadcaster()

    static let keyPrefix: [UInt8] = Array("h".utf8)

    init(path: String, now: () -> UInt64) throws(Failure) {
        do {
            db = try LocalDADatabase(path: path)
            let bound = Self.keyPrefix + [UInt8](repeating: 0xff, count: 8)
            if let key = try db.lastKey(prefix: Self.keyPrefix, atMost: bound) {
                guard key.count == 9 else { throw Failure(description: "\(path): damaged key \(Hex.encode(key))") }
                let height = Self.readUInt64(key, 1)
                guard let value = try db.get(key: key) else {
                    throw Failure(description: "\(path): height \(height) vanished while opening")
                }
                let block = try Self.decode(value, height: height)
                published = Mutex(DAHeader(height: height, timeNanoseconds: block.timeNanoseconds))
            } else {
                let first = LocalDABlock(height: 1, timeNanoseconds: now(), blobs: [])
                try db.putSynced(key: Self.key(1), value: Self.encode(first))
                published = Mutex(DAHeader(height: 1, timeNanoseconds: first.timeNanoseconds))
            }
        } catch let error as LocalDADatabase.Failure {
            throw Failure(description: error.description)
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(description: "\(path): \(error)")
        }
    }

    package var head: DAHeader { published.withLock { $0 } }

    /// Closes the database (waiting for an append in progress); later reads and appends fail.
    package func close() {
        appendLock.withLock { _ in db.close() }
    }

    /// Appends a block holding `blobs` (possibly none) at head + 1. Blocks the calling thread
    /// until it is on disk; run it off Swift's cooperative threads.
    package func append(blobs: [DABlob], now: UInt64) throws(Failure) -> DAHeader {
        try appendLock.withLock { _ throws(Failure) -> DAHeader in
            let previous = head
            let height = previous.height + 1
            // DA block times strictly increase, whatever the wall clock does.
            let time = max(now, previous.timeNanoseconds + 1)
            var indexed = blobs
            for i in indexed.indices { indexed[i].index = i }
            let block = LocalDABlock(height: height, timeNanoseconds: time, blobs: indexed)
            do {
                try db.putSynced(key: Self.key(height), value: Self.encode(block))
            } catch {
                throw Failure(description: "storing DA height \(height): \(error)")
            }
            let header = DAHeader(height: height, timeNanoseconds: time)
            published.withLock { $0 = header }
            heads.publish(header)
            return header
        }
    }

    /// The block at `height`, or nil above the head.
    package func block(at height: UInt64) throws(Failure) -> LocalDABlock? {
        guard height >= 1, height <= head.height else { return nil }
        let value: [UInt8]?
        do {
            value = try db.get(key: Self.key(height))
        } catch {
            throw Failure(description: "reading DA height \(height): \(error)")
        }
        guard let value else { throw Failure(description: "DA height \(height) is missing from the database") }
        return try Self.decode(value, height: height)
    }

    // MARK: Encoding

    package static func key(_ height: UInt64) -> [UInt8] {
        var k = keyPrefix
        appendUInt64(&k, height)
        return k
    }

    package static func encode(_ block: LocalDABlock) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12 + block.blobs.reduce(0) { $0 + $1.data.count + 72 })
        appendUInt64(&out, block.timeNanoseconds)
        appendUInt32(&out, UInt32(block.blobs.count))
        for blob in block.blobs {
            out.append(contentsOf: blob.namespace.bytes)
            out.append(UInt8(clamping: blob.shareVersion))
            appendUInt32(&out, UInt32(blob.data.count))
            out.append(contentsOf: blob.data)
            out.append(UInt8(blob.commitment.count))
            out.append(contentsOf: blob.commitment)
        }
        return out
    }

    package static func decode(_ b: [UInt8], height: UInt64) throws(Failure) -> LocalDABlock {
        var i = 0
        func need(_ n: Int) throws(Failure) {
            guard b.count - i >= n else { throw Failure(description: "DA height \(height): stored record is truncated") }
        }
        try need(12)
        let time = readUInt64(b, i); i += 8
        let count = Int(readUInt32(b, i)); i += 4
        var blobs: [DABlob] = []
        blobs.reserveCapacity(min(count, 1 << 16))
        for index in 0..<count {
            try need(DANamespace.size + 5)
            let namespace: DANamespace
            do {
                namespace = try DANamespace(bytes: Array(b[i..<(i + DANamespace.size)]))
            } catch {
                throw Failure(description: "DA height \(height): stored blob \(index): \(error)")
            }
            i += DANamespace.size
            let shareVersion = Int(b[i]); i += 1
            let length = Int(readUInt32(b, i)); i += 4
            try need(length + 1)
            let data = Array(b[i..<(i + length)]); i += length
            let commitmentLength = Int(b[i]); i += 1
            try need(commitmentLength)
            let commitment = Array(b[i..<(i + commitmentLength)]); i += commitmentLength
            blobs.append(DABlob(namespace: namespace, data: data, shareVersion: shareVersion,
                                commitment: commitment, index: index))
        }
        guard i == b.count else { throw Failure(description: "DA height \(height): stored record has trailing bytes") }
        return LocalDABlock(height: height, timeNanoseconds: time, blobs: blobs)
    }

    static func appendUInt64(_ out: inout [UInt8], _ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    static func appendUInt32(_ out: inout [UInt8], _ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    static func readUInt64(_ b: [UInt8], _ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<8 { v = v << 8 | UInt64(b[at + k]) }
        return v
    }

    static func readUInt32(_ b: [UInt8], _ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 8 | UInt32(b[at + k]) }
        return v
    }
}
