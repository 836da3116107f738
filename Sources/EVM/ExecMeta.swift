/// The EVM executor's own progress on one height, persisted (synced) in its namespace of the
/// store as it goes, so that a crash in the middle of a block resumes that block instead of
/// building a second one (ev-node keeps the same record, `ExecMeta`, under `evm/execmeta/<h>`).
///
/// Layout (key `e` ‖ height u64 BE): stage u8 ‖ payload id (8) ‖ timestamp u64 ‖ SHA-256 of the
/// concatenated txs (32) ‖ block hash (32, zero until promoted) ‖ state root (32, ditto).
struct ExecMeta: Sendable, Equatable {
    enum Stage: UInt8, Sendable {
        /// forkchoiceUpdated with attributes answered with `payloadId`: the EL is building.
        case started = 1
        /// newPayload and the promoting forkchoiceUpdated succeeded: the EL's head is this block.
        case promoted = 2
    }

    var stage: Stage
    var payloadID: [UInt8]
    var timestamp: UInt64
    var txsHash: [UInt8]
    var blockHash: [UInt8]
    var stateRoot: [UInt8]

    static let tag = UInt8(ascii: "e")

    static func key(_ height: UInt64) -> [UInt8] {
        var out: [UInt8] = [tag]
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: height >> UInt64(shift))) }
        return out
    }

    func encoded() -> [UInt8] {
        var out: [UInt8] = [stage.rawValue]
        out += Self.padded(payloadID, 8)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: timestamp >> UInt64(shift))) }
        out += Self.padded(txsHash, 32) + Self.padded(blockHash, 32) + Self.padded(stateRoot, 32)
        return out
    }

    init(stage: Stage, payloadID: [UInt8], timestamp: UInt64, txsHash: [UInt8],
         blockHash: [UInt8] = [], stateRoot: [UInt8] = []) {
        self.stage = stage
        self.payloadID = payloadID
        self.timestamp = timestamp
        self.txsHash = txsHash
        self.blockHash = blockHash
        self.stateRoot = stateRoot
    }

    /// nil when the record is not one (the caller reports it).
    init?(decoding bytes: [UInt8]) {
        guard bytes.count == 1 + 8 + 8 + 96, let stage = Stage(rawValue: bytes[0]) else { return nil }
        self.stage = stage
        payloadID = Array(bytes[1..<9])
        timestamp = bytes[9..<17].reduce(0) { $0 << 8 | UInt64($1) }
        txsHash = Array(bytes[17..<49])
        blockHash = Array(bytes[49..<81])
        stateRoot = Array(bytes[81..<113])
    }

    private static func padded(_ bytes: [UInt8], _ n: Int) -> [UInt8] {
        bytes.count >= n ? Array(bytes.prefix(n)) : bytes + [UInt8](repeating: 0, count: n - bytes.count)
    }
}
