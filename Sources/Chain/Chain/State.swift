import Config

/// The chain state after the last applied block: everything validation of the next block
/// compares against (SPEC §3). Kept in the store and written in the same batch as each block.
package struct State: Sendable, Hashable {
    package var chainID: String
    package var initialHeight: UInt64
    /// Height of the last applied block; `initialHeight - 1` before the first block.
    package var lastBlockHeight: UInt64
    /// Unix nanoseconds of the last block; the genesis start time before the first block.
    package var lastBlockTime: UInt64
    /// Header hash of the last block; empty before the first block.
    package var lastHeaderHash: [UInt8]
    /// `BlockData.fullHash` of the last block's data; empty before the first block.
    package var lastDataHash: [UInt8]
    /// State root after the last block (after InitChain before the first block). The next
    /// block's `Header.appHash` must equal it.
    package var appHash: [UInt8]
    /// The address that must sign block `nextHeight` (ev-node v1.2 `State.next_proposer_address`,
    /// reference/ev-node-chain-rules.md §1): the genesis proposer until the executor names
    /// another. Empty only in a state stored before rotation existed; `expectedProposer` then
    /// falls back to the genesis proposer.
    package var nextProposerAddress: [UInt8]

    package init(chainID: String, initialHeight: UInt64, lastBlockHeight: UInt64, lastBlockTime: UInt64,
                lastHeaderHash: [UInt8], lastDataHash: [UInt8], appHash: [UInt8],
                nextProposerAddress: [UInt8] = []) {
        self.chainID = chainID
        self.initialHeight = initialHeight
        self.lastBlockHeight = lastBlockHeight
        self.lastBlockTime = lastBlockTime
        self.lastHeaderHash = lastHeaderHash
        self.lastDataHash = lastDataHash
        self.appHash = appHash
        self.nextProposerAddress = nextProposerAddress
    }

    /// The state before the first block, with the executor's InitChain root.
    package init(genesis: Genesis, appHash: [UInt8]) {
        self.init(chainID: genesis.chainID, initialHeight: genesis.initialHeight,
                  lastBlockHeight: genesis.initialHeight == 0 ? 0 : genesis.initialHeight - 1, lastBlockTime: genesis.startTimeNanoseconds,
                  lastHeaderHash: [], lastDataHash: [], appHash: appHash,
                  nextProposerAddress: genesis.proposerAddress)
    }

    /// Who must sign block `nextHeight`: `nextProposerAddress`, or `genesisProposer` for a state
    /// stored before it was recorded.
    package func expectedProposer(genesisProposer: [UInt8]) -> [UInt8] {
        nextProposerAddress.isEmpty ? genesisProposer : nextProposerAddress
    }

    /// ev-node's transition (`State.NextState`): a non-empty address the executor returned for
    /// this block names the signer of the next one; otherwise the expectation carries over, and
    /// a state that had none takes the block's own proposer.
    package static func nextProposer(previous: [UInt8], executorNamed: [UInt8], blockProposer: [UInt8]) -> [UInt8] {
        if !executorNamed.isEmpty { return executorNamed }
        if !previous.isEmpty { return previous }
        return blockProposer
    }

    /// The height the next block must have.
    package var nextHeight: UInt64 { lastBlockHeight + 1 }

    /// True before the first block is applied.
    package var isGenesis: Bool { lastBlockHeight < initialHeight }

    var encodedSize: Int {
        WireSize.bytesField(chainID.utf8.count) + WireSize.uint64Field(initialHeight)
            + WireSize.uint64Field(lastBlockHeight) + WireSize.uint64Field(lastBlockTime)
            + WireSize.bytesField(lastHeaderHash.count) + WireSize.bytesField(lastDataHash.count)
            + WireSize.bytesField(appHash.count) + WireSize.bytesField(nextProposerAddress.count)
    }

    /// The store's encoding (protobuf layout, fields 1-7 in declaration order, then
    /// `nextProposerAddress` as field 10, ev-node's number for it). Not a wire message of ev-node.
    package func encoded() -> [UInt8] {
        var w = ProtoWriter(capacity: encodedSize)
        w.stringField(1, chainID)
        w.uint64Field(2, initialHeight)
        w.uint64Field(3, lastBlockHeight)
        w.uint64Field(4, lastBlockTime)
        w.bytesField(5, lastHeaderHash)
        w.bytesField(6, lastDataHash)
        w.bytesField(7, appHash)
        w.bytesField(10, nextProposerAddress)
        return w.bytes
    }

    package init<Bytes: Collection<UInt8>>(decoding bytes: Bytes,
                                          limit: Int = WireLimits.maxHeaderBytes) throws(WireError) {
        self = try State.decodeWire(bytes, limit: limit)
    }
}

extension State: WireDecodable {
    static var wireMessage: WireMessage { .state }

    init(reader r: inout ProtoReader) throws(WireError) {
        self.init(chainID: "", initialHeight: 0, lastBlockHeight: 0, lastBlockTime: 0, lastHeaderHash: [],
                  lastDataHash: [], appHash: [])
        var seen = SeenFields()
        while let (field, type) = try r.nextField() {
            switch field {
            case 1: try seen.mark(field, in: r.message); chainID = try r.string(field: 1, type: type)
            case 2: try seen.mark(field, in: r.message); initialHeight = try r.uint64(field: 2, type: type)
            case 3: try seen.mark(field, in: r.message); lastBlockHeight = try r.uint64(field: 3, type: type)
            case 4: try seen.mark(field, in: r.message); lastBlockTime = try r.uint64(field: 4, type: type)
            case 5: try seen.mark(field, in: r.message); lastHeaderHash = try r.bytes(field: 5, type: type)
            case 6: try seen.mark(field, in: r.message); lastDataHash = try r.bytes(field: 6, type: type)
            case 7: try seen.mark(field, in: r.message); appHash = try r.bytes(field: 7, type: type)
            case 10: try seen.mark(field, in: r.message); nextProposerAddress = try r.bytes(field: 10, type: type)
            default: try r.skip(field: field, type: type)
            }
        }
    }
}
