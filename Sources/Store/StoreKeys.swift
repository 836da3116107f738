/// Key layout of the block store. One-byte prefixes keep each kind of record in its own key
/// range; heights are big-endian so range order is height order.
///
/// | key                         | value                                   |
/// |-----------------------------|-----------------------------------------|
/// | `00 "evnode-block-store"`   | store format marker (`"1"`)             |
/// | `s`                         | current `State`                         |
/// | `g`                         | genesis `State` (before the first block)|
/// | `h` height                  | encoded `SignedHeader`                  |
/// | `d` height                  | encoded `Data` (always with metadata)   |
/// | `i` header hash             | height                                  |
/// | `a` height                  | DA height that included the header      |
/// | `b` height                  | DA height that included the data        |
/// | `m` name                    | typed metadata (finalized, submitter, pruned floors, FI checkpoint) |
/// | `u` name                    | free-form metadata of other components  |
/// | `e` height ‖ hash ‖ hash    | double-sign evidence (two signed headers)|
/// | `x` key                     | executor state (keys of its `WriteSet`s)|
/// | `p` height                  | the proposer the executor named at that height (it signs height+1 on) |
enum StoreKeys {
    static let marker: [UInt8] = [0x00] + Array("evnode-block-store".utf8)
    static let markerValue: [UInt8] = Array("1".utf8)

    static let state: [UInt8] = [UInt8(ascii: "s")]
    static let genesisState: [UInt8] = [UInt8(ascii: "g")]

    static let headerPrefix = UInt8(ascii: "h")
    static let dataPrefix = UInt8(ascii: "d")
    static let hashIndexPrefix = UInt8(ascii: "i")
    static let headerInclusionPrefix = UInt8(ascii: "a")
    static let dataInclusionPrefix = UInt8(ascii: "b")
    static let metaPrefix = UInt8(ascii: "m")
    static let userMetaPrefix = UInt8(ascii: "u")
    static let executorPrefix = UInt8(ascii: "x")
    static let evidencePrefix = UInt8(ascii: "e")
    static let rotationPrefix = UInt8(ascii: "p")

    static let finalized = meta("finalized")
    static let submitterProgress = meta("submitter")
    /// The producer's forced-inclusion checkpoint (`ForcedInclusionCheckpoint.encoded`).
    static let forcedInclusionCheckpoint = meta("fi-checkpoint")
    /// The highest height whose block (`h`, `d`, `i`, `a`, `b`) / DA records (`a`, `b`) were pruned.
    static let prunedBlocks = meta("pruned-blocks")
    static let prunedMetadata = meta("pruned-metadata")

    @inline(__always)
    static func height(_ prefix: UInt8, _ height: UInt64) -> [UInt8] {
        var key = [UInt8]()
        key.reserveCapacity(9)
        key.append(prefix)
        appendBigEndian(height, to: &key)
        return key
    }

    static func header(_ h: UInt64) -> [UInt8] { height(headerPrefix, h) }
    static func rotation(_ h: UInt64) -> [UInt8] { height(rotationPrefix, h) }
    static func data(_ h: UInt64) -> [UInt8] { height(dataPrefix, h) }

    static func hashIndex(_ hash: [UInt8]) -> [UInt8] {
        var key = [UInt8]()
        key.reserveCapacity(1 + hash.count)
        key.append(hashIndexPrefix)
        key.append(contentsOf: hash)
        return key
    }

    /// One record per height and unordered pair of header hashes (the smaller hash first), so
    /// the same double sign seen twice is stored once.
    static func evidence(height h: UInt64, _ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        var key = height(evidencePrefix, h)
        let (low, high) = a.lexicographicallyPrecedes(b) ? (a, b) : (b, a)
        key.append(contentsOf: low)
        key.append(contentsOf: high)
        return key
    }

    static func meta(_ name: String) -> [UInt8] { [metaPrefix] + Array(name.utf8) }
    static func userMeta(_ name: String) -> [UInt8] { [userMetaPrefix] + Array(name.utf8) }

    @inline(__always)
    static func executor(_ key: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(1 + key.count)
        out.append(executorPrefix)
        out.append(contentsOf: key)
        return out
    }

    /// The first key after every key starting with `prefix` (for exclusive upper bounds), or
    /// nil when no such key exists (prefix of all 0xff).
    static func successor(ofPrefix prefix: [UInt8]) -> [UInt8]? {
        var out = prefix
        while let last = out.last {
            if last < 0xff {
                out[out.count - 1] = last + 1
                return out
            }
            out.removeLast()
        }
        return nil
    }
}

@inline(__always)
package func appendBigEndian(_ value: UInt64, to bytes: inout [UInt8]) {
    var shift: UInt64 = 56
    while true {
        bytes.append(UInt8(truncatingIfNeeded: value >> shift))
        if shift == 0 { break }
        shift -= 8
    }
}

@inline(__always)
package func bigEndianBytes(_ value: UInt64) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(8)
    appendBigEndian(value, to: &out)
    return out
}

/// Reads a big-endian UInt64 from exactly 8 bytes.
package func readBigEndian<C: Collection<UInt8>>(_ bytes: C) -> UInt64? {
    guard bytes.count == 8 else { return nil }
    var value: UInt64 = 0
    for b in bytes { value = value << 8 | UInt64(b) }
    return value
}
