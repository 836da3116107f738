import Primitives
import Chain
import Store
import Execution
import Config
import Crypto
import Foundation
import Logging
import Synchronization

/// What the node shows about its execution client in `/status` and readiness.
package struct EngineHealth: Sendable, Equatable {
    /// False from the first failed attempt to reach the EL until one succeeds again.
    package var reachable: Bool = true
    /// The last failure, naming the EL, the method and the height.
    package var lastError: String?
    /// When the EL became unreachable (unix seconds).
    package var unreachableSince: UInt64?
}

/// The header fields of an EL block that the executor needs.
struct ELBlock: Sendable, Equatable {
    var number: UInt64
    var hash: [UInt8]
    var stateRoot: [UInt8]
    var timestamp: UInt64
    var gasLimit: UInt64
}

/// The EVM executor: drives an execution client (ev-reth) over the Engine API the way ev-node's
/// `execution/evm` does (see README "EVM rollups" and `shared/reference/engine-api.md`).
///
/// - InitChain: forkchoiceUpdated to the genesis hash, block 0's `stateRoot` is the genesis
///   app hash.
/// - ExecuteTxs builds every block — produced, synced or replayed alike — from the block's txs:
///   parent from `eth_getBlockByNumber`, `engine_forkchoiceUpdatedV3` with payload attributes,
///   `engine_getPayloadV4`, `engine_newPayloadV4`, the promoting forkchoiceUpdated. Progress per
///   height is persisted (`ExecMeta`) so a crash mid-block resumes it.
/// - After each executed block, `evolve_getNextProposer` at h−1 and h says whether the block
///   handed production to another key (`NextProposerQuery`, ev-node v1.2 rotation).
/// - SetFinal moves safe and finalized to the DA-included block; Rollback moves the EL's head
///   back (the EL reorgs to the ancestor).
package final class EVMExecutor: Executor {
    package struct Options: Sendable {
        package var genesisHash: [UInt8]?
        package var feeRecipient: [UInt8]
        /// SYNCING/ACCEPTED answers: attempts in total, and the sleeps between them (ev-node:
        /// 3 attempts, 1 s then 2 s).
        package var statusAttempts: Int
        package var statusBackoff: Duration
        /// `evolve_getNextProposer` answers that are errors or malformed: attempts in total before
        /// the node stops (ev-node: ExecuteTxs is tried 3 times), with `statusBackoff`'s sleeps.
        package var proposerAttempts: Int

        package init(genesisHash: [UInt8]? = nil, feeRecipient: [UInt8] = [UInt8](repeating: 0, count: 20),
                    statusAttempts: Int = 3, statusBackoff: Duration = .seconds(1), proposerAttempts: Int = 3) {
            self.genesisHash = genesisHash
            self.feeRecipient = feeRecipient
            self.statusAttempts = statusAttempts
            self.statusBackoff = statusBackoff
            self.proposerAttempts = proposerAttempts
        }
    }

    /// The forkchoice the executor last sent (ev-node's currentHead/Safe/Finalized), the
    /// method versions found to work, and a few recent height→hash answers.
    private struct ForkChoice {
        var head: [UInt8] = []
        var safe: [UInt8] = []
        var finalized: [UInt8] = []
        var fcuVersion = 3
        var getPayloadVersion = 4
        var hashes: [UInt64: [UInt8]] = [:]

        mutating func remember(_ height: UInt64, _ hash: [UInt8]) {
            hashes[height] = hash
            if hashes.count > 16, let lowest = hashes.keys.min() { hashes.removeValue(forKey: lowest) }
        }
    }

    package let rpc: EngineRPCClient
    package let store: BlockStore
    package let options: Options
    private let logger: Logger
    private let forkChoice = Mutex(ForkChoice())
    private let healthState = Mutex(EngineHealth())

    package init(rpc: EngineRPCClient, store: BlockStore, options: Options, logger: Logger) {
        self.rpc = rpc
        self.store = store
        self.options = options
        self.logger = logger
        if let g = options.genesisHash {
            forkChoice.withLock { $0.head = g; $0.safe = g; $0.finalized = g }
        }
    }

    package var health: EngineHealth { healthState.withLock { $0 } }

    // MARK: Executor

    package func initChain(genesis: Genesis) async throws(ExecutionError) -> [UInt8] {
        try await serialized { () async throws(ExecutionError) in try await self.initChainLocked(genesis: genesis) }
    }

    package func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                           previousRoot: [UInt8]) async throws(ExecutionError) -> ExecutionResult {
        try await serialized { () async throws(ExecutionError) in
            try await self.executeTxsLocked(txs, height: height, time: time, previousRoot: previousRoot)
        }
    }

    /// Safe and finalized follow DA inclusion; the store's finalized height is the truth, the
    /// EL's labels are advisory. An EL that cannot be reached is not a reason to stop the node:
    /// the labels are moved by the next call that reaches it (every block moves them too).
    package func setFinal(height: UInt64) async throws(ExecutionError) -> WriteSet {
        do throws(ExecutionError) {
            return try await serialized { () async throws(ExecutionError) in try await self.setFinalLocked(height: height) }
        } catch {
            guard error.isUnavailable else { throw error }
            logger.warning("could not move the EL's safe/finalized block; later calls will", metadata: [
                "height": "\(height)", "error": "\(error)"])
            return WriteSet()
        }
    }

    package func rollback(to height: UInt64, from currentHeight: UInt64) async throws(ExecutionError) -> WriteSet {
        try await serialized { () async throws(ExecutionError) in try await self.rollbackLocked(to: height, from: currentHeight) }
    }

    /// One forkchoice-changing sequence at a time (block building, finality, rollback): the
    /// submitter's SetFinal must not move the EL's head back under a block being promoted —
    /// the producer (or the sync loop) and the DA submitter call from different tasks. Not
    /// re-entrant: the one nested sequence (a build that first replays stored blocks) calls the
    /// `…Locked` forms through `GateHeld`.
    private func serialized<T: Sendable>(_ body: @Sendable () async throws(ExecutionError) -> T) async throws(ExecutionError) -> T {
        await gate.acquire()
        let result: Result<T, ExecutionError>
        do throws(ExecutionError) {
            result = .success(try await body())
        } catch {
            result = .failure(error)
        }
        gate.release()
        return try result.get()
    }

    private let gate = SerialGate()

    fileprivate func initChainLocked(genesis: Genesis) async throws(ExecutionError) -> [UInt8] {
        guard genesis.initialHeight == 1 else {
            throw rejected("InitChain", nil, "the EVM executor needs initial_height 1, genesis.json has \(genesis.initialHeight)")
        }
        guard let block0 = try await blockByNumber(0, height: 0) else {
            throw rejected("eth_getBlockByNumber", 0, "the EL has no block 0")
        }
        let g = options.genesisHash ?? block0.hash
        if let configured = options.genesisHash, configured != block0.hash {
            throw rejected("eth_getBlockByNumber", 0,
                           "--evm.genesis-hash is \(EthHex.data(configured)) but the EL's block 0 is \(EthHex.data(block0.hash)): the EL runs another genesis")
        }
        if options.genesisHash == nil {
            logger.notice("--evm.genesis-hash not set; using the EL's block 0", metadata: ["hash": "\(EthHex.data(g))"])
        }
        forkChoice.withLock { $0.head = g; $0.safe = g; $0.finalized = g; $0.remember(0, g) }
        _ = try await forkchoiceUpdated(head: g, safe: g, finalized: g, attributes: nil, height: 0)
        logger.info("EL genesis", metadata: ["hash": "\(EthHex.data(g))", "state_root": "\(EthHex.data(block0.stateRoot))"])
        return block0.stateRoot
    }

    package func getTxs(max: Int, maxBytes: Int) async throws(ExecutionError) -> [[UInt8]] {
        let result = try await ethResult("txpoolExt_getTxs", RPCParams(), as: [EthBytes].self, height: nil)
        return EngineAnswers.transactions(result, max: max, maxBytes: maxBytes)
    }

    package func hasPendingTransactions() async -> Bool {
        (try? await getTxs(max: 1, maxBytes: Int.max).isEmpty == false) ?? false
    }

    package func latestHeight() async throws(ExecutionError) -> UInt64? {
        guard let latest = try await block(tag: "latest", height: nil) else {
            throw rejected("eth_getBlockByNumber", nil, "the EL answered null for \"latest\"")
        }
        return latest.number
    }

    fileprivate func executeTxsLocked(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                                  previousRoot: [UInt8]) async throws(ExecutionError) -> ExecutionResult {
        let timestamp = time / 1_000_000_000
        let txsHash = Array(SHA256.hash(data: txs.reduce(into: [UInt8]()) { $0 += $1 }))
        let meta = try loadMeta(height)

        // Reconcile with what the EL and our own record already hold at this height.
        if let existing = try await blockByNumber(height, height: height) {
            guard let conflict = Self.adoptionConflict(existing, timestamp: timestamp, txsHash: txsHash, meta: meta) else {
                try await adoptHead(existing, height: height, txsHash: txsHash, payloadID: meta?.payloadID ?? [])
                return ExecutionResult(stateRoot: existing.stateRoot, writes: WriteSet(),
                                       nextProposerAddress: try await nextProposerChange(after: height))
            }
            logger.warning("the EL holds another block at this height; rolling it back", metadata: [
                "height": "\(height)", "el_block": "\(EthHex.data(existing.hash))", "why": "\(conflict)"])
            _ = try await rollbackLocked(to: height - 1, from: height)
        }
        var payloadID: [UInt8]?
        if let meta, meta.stage == .started, meta.timestamp == timestamp, meta.txsHash == txsHash {
            // The build was started before a crash: if the EL still has it, finish that one.
            if case .result = try await getPayloadOutcome(meta.payloadID, height: height) {
                payloadID = meta.payloadID
                logger.info("resuming the block build started before the restart", metadata: [
                    "height": "\(height)", "payload_id": "\(EthHex.data(meta.payloadID))"])
            }
        }

        var parentBlock = try await blockByNumber(height - 1, height: height)
        if parentBlock == nil {
            // The EL is behind the store (it lost its state, or was restarted empty): replay the
            // stored blocks on it first, each checked against the chain's app_hash.
            logger.warning("the EL lacks the parent block; replaying stored blocks onto it", metadata: ["height": "\(height)"])
            // Through the calls that assume the gate is held: this build holds it already.
            _ = try await ExecutionReconciler(store: store, executor: GateHeld(self), logger: logger).reconcile()
            parentBlock = try await blockByNumber(height - 1, height: height)
        }
        guard let parent = parentBlock else {
            throw ExecutionError(kind: .unavailable, engine: "EL \(rpc.engineURL)", method: "eth_getBlockByNumber", height: height,
                                 reason: "the EL has no block \(height - 1), the parent of block \(height), and the store cannot replay it yet")
        }
        if !previousRoot.isEmpty, previousRoot != parent.stateRoot {
            throw rejected("eth_getBlockByNumber", height,
                           "prevStateRoot mismatch: the chain's app_hash is \(EthHex.data(previousRoot)) but the EL's block \(height - 1) has stateRoot \(EthHex.data(parent.stateRoot))")
        }
        if payloadID == nil {
            let (safe, finalized) = forkChoice.withLock { ($0.safe, $0.finalized) }
            let attributes = buildAttributes(txs: txs, height: height, timestamp: timestamp, gasLimit: parent.gasLimit)
            guard let id = try await forkchoiceUpdated(head: parent.hash, safe: safe, finalized: finalized,
                                                       attributes: attributes, height: height) else {
                throw rejected("engine_forkchoiceUpdatedV3", height,
                               "the EL answered VALID with a null payloadId: it did not start building (ev-reth needs --engine.always-process-payload-attributes-on-canonical-head)")
            }
            try saveMeta(height, ExecMeta(stage: .started, payloadID: id, timestamp: timestamp, txsHash: txsHash))
            payloadID = id
        }
        let id = payloadID!
        let envelope = try await getPayload(id, height: height)
        let payload: BuiltPayload
        do throws(EngineAnswers.Unusable) {
            payload = try EngineAnswers.builtPayload(envelope, height: height)
        } catch {
            throw rejected("engine_getPayload", height, error.description)
        }
        let (blockHash, stateRoot) = (payload.fields.blockHash.bytes, payload.fields.stateRoot.bytes)
        try await newPayload(payload, requests: envelope.executionRequests, height: height)

        let (safe, finalized) = await safeAndFinalizedTargets(after: height)
        _ = try await forkchoiceUpdated(head: blockHash, safe: safe, finalized: finalized, attributes: nil, height: height)
        forkChoice.withLock { $0.head = blockHash; $0.safe = safe; $0.finalized = finalized; $0.remember(height, blockHash) }
        try saveMeta(height, ExecMeta(stage: .promoted, payloadID: id, timestamp: timestamp, txsHash: txsHash,
                                      blockHash: blockHash, stateRoot: stateRoot))
        return ExecutionResult(stateRoot: stateRoot, writes: WriteSet(),
                               nextProposerAddress: try await nextProposerChange(after: height))
    }

    /// Whether executing `height` named another proposer (empty: unchanged), asked of the EL once
    /// the block is its head, so the word at `height` is the block's own.
    private func nextProposerChange(after height: UInt64) async throws(ExecutionError) -> [UInt8] {
        let query = NextProposerQuery(engine: "EL \(rpc.engineURL)", attempts: options.proposerAttempts,
                                      backoff: options.statusBackoff, logger: logger)
        let named = try await query.change(afterExecuting: height) { (block) async throws(ExecutionError) -> RPCOutcome in
            try await self.tracked { () async throws(ExecutionError) in
                try await self.rpc.ethCall(NextProposerQuery.method, RPCParams(EthQuantity(block)), as: String.self, height: height)
            }
        }
        if !named.isEmpty {
            logger.notice("the EL names the next proposer", metadata: [
                "height": "\(height)", "next_proposer": "\(Hex.encode(named))", "signs_from": "\(height + 1)"])
        }
        return named
    }

    fileprivate func setFinalLocked(height: UInt64) async throws(ExecutionError) -> WriteSet {
        guard let block = try await blockByNumber(height, height: height) else {
            // The EL is behind (restarted empty): the next build replays the stored blocks onto it.
            throw ExecutionError(kind: .unavailable, engine: "EL \(rpc.engineURL)", method: "eth_getBlockByNumber",
                                 height: height, reason: "the EL has no block \(height) to finalize yet")
        }
        let head = forkChoice.withLock { $0.head }
        _ = try await forkchoiceUpdated(head: head.isEmpty ? block.hash : head, safe: block.hash,
                                        finalized: block.hash, attributes: nil, height: height)
        forkChoice.withLock { $0.safe = block.hash; $0.finalized = block.hash }
        return WriteSet()
    }

    fileprivate func rollbackLocked(to height: UInt64, from currentHeight: UInt64) async throws(ExecutionError) -> WriteSet {
        guard let target = try await blockByNumber(height, height: height) else {
            throw rejected("eth_getBlockByNumber", height, "the EL has no block \(height) to roll back to")
        }
        _ = try await forkchoiceUpdated(head: target.hash, safe: target.hash, finalized: target.hash,
                                        attributes: nil, height: height)
        forkChoice.withLock {
            $0.head = target.hash; $0.safe = target.hash; $0.finalized = target.hash
            $0.hashes = $0.hashes.filter { $0.key <= height }
        }
        logger.notice("EL rolled back", metadata: ["height": "\(height)", "hash": "\(EthHex.data(target.hash))"])
        var writes = WriteSet()
        if currentHeight > height {
            for h in (height + 1)...currentHeight { writes.delete(ExecMeta.key(h)) }
        }
        return writes
    }

    /// Forwards a signed transaction to the EL's pool (`POST /tx` on an EVM node); returns the
    /// transaction hash the EL reports.
    package func sendRawTransaction(_ tx: [UInt8]) async throws(ExecutionError) -> String {
        try await ethResult("eth_sendRawTransaction", RPCParams(EthBytes(tx)), as: String.self, height: nil)
    }

    // MARK: the build path

    private func buildAttributes(txs: [[UInt8]], height: UInt64, timestamp: UInt64, gasLimit: UInt64) -> PayloadAttributes {
        var randao = [UInt8](repeating: 0, count: 24)
        for shift in stride(from: 56, through: 0, by: -8) { randao.append(UInt8(truncatingIfNeeded: height >> UInt64(shift))) }
        return PayloadAttributes(timestamp: timestamp, prevRandao: EthHash(randao),
                                 suggestedFeeRecipient: EthBytes(options.feeRecipient),
                                 parentBeaconBlockRoot: EthHash([UInt8](repeating: 0, count: 32)),
                                 transactions: txs.filter { !$0.isEmpty }.map(EthBytes.init),
                                 gasLimit: min(gasLimit, UInt64(Int64.max)))
    }

    /// The EL already holds block `height` with the block's timestamp (built before a crash,
    /// or by the EL's own sync): make it the head and record it.
    /// Why the EL's block at this height is not the block being executed, nil when it may be
    /// adopted (the EL built it before a restart, or it synced the chain): a different
    /// timestamp, or this executor's own record of the height saying it was built from other
    /// transactions, or that another block was promoted there. The EL's answer carries no raw
    /// transactions to compare without a Keccak of our own; with no record, a block of the same
    /// timestamp is adopted, and if its transactions differ its state root does too, which the
    /// next block's `app_hash` check refuses (a halt, never a silent fork).
    static func adoptionConflict(_ existing: ELBlock, timestamp: UInt64, txsHash: [UInt8], meta: ExecMeta?) -> String? {
        guard existing.timestamp == timestamp else {
            return "its timestamp is \(existing.timestamp), this block's is \(timestamp)"
        }
        guard let meta else { return nil }
        if meta.timestamp == timestamp, meta.txsHash != txsHash {
            return "this node's record says the block there was built from other transactions"
        }
        if meta.stage == .promoted, !meta.blockHash.isEmpty, meta.blockHash != existing.hash {
            return "this node's record says block \(EthHex.data(meta.blockHash)) was promoted there"
        }
        return nil
    }

    private func adoptHead(_ block: ELBlock, height: UInt64, txsHash: [UInt8], payloadID: [UInt8]) async throws(ExecutionError) {
        let (safe, finalized) = forkChoice.withLock { ($0.safe, $0.finalized) }
        _ = try await forkchoiceUpdated(head: block.hash, safe: safe, finalized: finalized, attributes: nil, height: height)
        forkChoice.withLock { $0.head = block.hash; $0.remember(height, block.hash) }
        try saveMeta(height, ExecMeta(stage: .promoted, payloadID: payloadID, timestamp: block.timestamp,
                                      txsHash: txsHash, blockHash: block.hash, stateRoot: block.stateRoot))
    }

    /// Safe = block h-2, finalized = block h-3 (ev-node's targets after each block); a lookup
    /// that fails leaves that one as it was.
    private func safeAndFinalizedTargets(after height: UInt64) async -> ([UInt8], [UInt8]) {
        var (safe, finalized) = forkChoice.withLock { ($0.safe, $0.finalized) }
        if height > 2, let hash = await cachedHash(height - 2) { safe = hash }
        if height > 3, let hash = await cachedHash(height - 3) { finalized = hash }
        return (safe, finalized)
    }

    private func cachedHash(_ height: UInt64) async -> [UInt8]? {
        if let hash = forkChoice.withLock({ $0.hashes[height] }) { return hash }
        guard let block = try? await blockByNumber(height, height: height) else { return nil }
        forkChoice.withLock { $0.remember(height, block.hash) }
        return block.hash
    }

    /// forkchoiceUpdated, V3 first and V4 from the first -38005 on; returns the payload id
    /// (nil when the EL gave none). SYNCING/ACCEPTED are retried, INVALID is not.
    private func forkchoiceUpdated(head: [UInt8], safe: [UInt8], finalized: [UInt8],
                                   attributes: PayloadAttributes?, height: UInt64) async throws(ExecutionError) -> [UInt8]? {
        let state = ForkchoiceState(headBlockHash: EthHash(head), safeBlockHash: EthHash(safe),
                                    finalizedBlockHash: EthHash(finalized))
        var attempt = 1
        while true {
            let version = forkChoice.withLock { $0.fcuVersion }
            let method = "engine_forkchoiceUpdatedV\(version)"
            var params = RPCParams(state, JSONNull())
            if var attributes {
                if version >= 4 { attributes.slotNumber = EthQuantity(height) }
                params = RPCParams(state, attributes)
            }
            let outcome = try await engine(method, params, as: ForkchoiceUpdatedAnswer.self, height: height)
            let result: ForkchoiceUpdatedAnswer
            switch outcome {
            case .error(let e) where e.code == RPCErrorObject.unsupportedFork && version == 3:
                logger.notice("the EL does not support forkchoiceUpdatedV3 for this fork; using V4", metadata: ["height": "\(height)"])
                forkChoice.withLock { $0.fcuVersion = 4; $0.getPayloadVersion = max($0.getPayloadVersion, 6) }
                continue
            case .error(let e):
                throw rejected(method, height, "JSON-RPC error \(e.code): \(e.message)")
            case .result(let r):
                result = r
            }
            if try checkStatus(result.payloadStatus, method: method, height: height, attempt: attempt) {
                attempt += 1
                try await sleepBeforeRetry(attempt)
                continue
            }
            do throws(EngineAnswers.Unusable) {
                return try EngineAnswers.payloadID(result)
            } catch {
                throw rejected(method, height, error.description)
            }
        }
    }

    private func getPayloadOutcome(_ id: [UInt8], height: UInt64) async throws(ExecutionError) -> RPCOutcome<PayloadEnvelopeAnswer> {
        while true {
            let version = forkChoice.withLock { $0.getPayloadVersion }
            let outcome = try await engine("engine_getPayloadV\(version)", RPCParams(EthBytes(id)),
                                           as: PayloadEnvelopeAnswer.self, height: height)
            if case .error(let e) = outcome, e.code == RPCErrorObject.unsupportedFork, version < 6 {
                forkChoice.withLock { $0.getPayloadVersion = version + 1 }
                continue
            }
            return outcome
        }
    }

    private func getPayload(_ id: [UInt8], height: UInt64) async throws(ExecutionError) -> PayloadEnvelopeAnswer {
        let version = forkChoice.withLock { $0.getPayloadVersion }
        switch try await getPayloadOutcome(id, height: height) {
        case .result(let envelope):
            return envelope
        case .error(let e):
            throw rejected("engine_getPayloadV\(version)", height, "JSON-RPC error \(e.code): \(e.message)")
        }
    }

    private func newPayload(_ payload: BuiltPayload, requests: [JSONValue]?, height: UInt64) async throws(ExecutionError) {
        let method = "engine_newPayloadV\(payload.newPayloadVersion)"
        let params = RPCParams(payload.raw, [EthHash](), EthHash([UInt8](repeating: 0, count: 32)), requests ?? [])
        var attempt = 1
        while true {
            switch try await engine(method, params, as: PayloadStatusAnswer.self, height: height) {
            case .error(let e):
                throw rejected(method, height, "JSON-RPC error \(e.code): \(e.message)")
            case .result(let status):
                if try checkStatus(status, method: method, height: height, attempt: attempt) {
                    attempt += 1
                    try await sleepBeforeRetry(attempt)
                    continue
                }
                return
            }
        }
    }

    /// VALID: false (done). SYNCING/ACCEPTED: true (retry) until the attempts run out, then an
    /// `unavailable` error. INVALID, INVALID_BLOCK_HASH and anything else: a `rejected` error.
    private func checkStatus(_ status: PayloadStatusAnswer, method: String, height: UInt64, attempt: Int) throws(ExecutionError) -> Bool {
        switch EngineAnswers.payloadStatus(status) {
        case .valid: return false
        case .notReady(let text):
            if attempt >= options.statusAttempts {
                throw ExecutionError(kind: .unavailable, engine: "EL \(rpc.engineURL)", method: method, height: height,
                                     reason: "max retries (\(options.statusAttempts)) exceeded: the EL still answers \(text)")
            }
            logger.warning("EL not ready; retrying", metadata: ["method": "\(method)", "height": "\(height)", "status": "\(text)"])
            return true
        case .refused(let reason):
            throw rejected(method, height, reason)
        }
    }

    private func sleepBeforeRetry(_ attempt: Int) async throws(ExecutionError) {
        do {
            try await Task.sleep(for: options.statusBackoff * (attempt - 1))
        } catch {
            throw ExecutionError(kind: .unavailable, engine: "EL \(rpc.engineURL)", method: nil, height: nil, reason: "cancelled")
        }
    }

    // MARK: eth calls

    private func blockByNumber(_ number: UInt64, height: UInt64?) async throws(ExecutionError) -> ELBlock? {
        try await block(tag: EthHex.quantity(number), height: height)
    }

    private func block(tag: String, height: UInt64?) async throws(ExecutionError) -> ELBlock? {
        try await ethResult("eth_getBlockByNumber", RPCParams(tag, false), as: ELBlock?.self, height: height)
    }

    private func ethResult<R: Decodable & Sendable>(_ method: String, _ params: RPCParams, as: R.Type,
                                                    height: UInt64?) async throws(ExecutionError) -> R {
        let outcome = try await tracked { () async throws(ExecutionError) -> RPCOutcome<R> in
            try await self.rpc.ethCall(method, params, as: R.self, height: height)
        }
        switch outcome {
        case .result(let r): return r
        case .error(let e): throw rejected(method, height, "JSON-RPC error \(e.code): \(e.message)")
        }
    }

    private func engine<R: Decodable & Sendable>(_ method: String, _ params: RPCParams, as: R.Type,
                                                 height: UInt64?) async throws(ExecutionError) -> RPCOutcome<R> {
        try await tracked { () async throws(ExecutionError) -> RPCOutcome<R> in
            try await self.rpc.engineCall(method, params, as: R.self, height: height)
        }
    }

    /// Records whether the EL answered, for `/status` and readiness.
    private func tracked<T>(_ body: () async throws(ExecutionError) -> T) async throws(ExecutionError) -> T {
        do throws(ExecutionError) {
            let value = try await body()
            healthState.withLock { h in
                if !h.reachable { logger.notice("the EL answers again") }
                h = EngineHealth()
            }
            return value
        } catch {
            healthState.withLock { h in
                if error.isUnavailable {
                    if h.reachable { h.unreachableSince = UInt64(Date().timeIntervalSince1970) }
                    h.reachable = false
                }
                h.lastError = error.description
            }
            throw error
        }
    }

    // MARK: progress records

    private func loadMeta(_ height: UInt64) throws(ExecutionError) -> ExecMeta? {
        let bytes: [UInt8]?
        do throws(StoreError) {
            bytes = try store.executorValue(forKey: ExecMeta.key(height))
        } catch {
            throw ExecutionError(height: height, reason: "reading the EVM build record: \(error)")
        }
        guard let bytes else { return nil }
        guard let meta = ExecMeta(decoding: bytes) else {
            throw ExecutionError(height: height, reason: "the EVM build record at this height is corrupted (\(bytes.count) bytes)")
        }
        return meta
    }

    private func saveMeta(_ height: UInt64, _ meta: ExecMeta) throws(ExecutionError) {
        var writes = WriteSet()
        writes.put(ExecMeta.key(height), meta.encoded())
        do throws(StoreError) {
            try store.writeExecutorState(writes, sync: true)
        } catch {
            throw ExecutionError(height: height, reason: "recording the EVM build progress: \(error)")
        }
    }

    private func rejected(_ method: String, _ height: UInt64?, _ reason: String) -> ExecutionError {
        ExecutionError(kind: .rejected, engine: "EL \(rpc.engineURL)", method: method, height: height, reason: reason)
    }
}

/// A FIFO lock for async code: the holder runs, the others wait suspended in arrival order.
/// A `Mutex` around the state, not an actor: acquiring costs no hop when the gate is free.
final class SerialGate: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                guard s.busy else {
                    s.busy = true
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Callers waiting for the gate.
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Hands the gate to the first waiter, or frees it.
    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard !s.waiters.isEmpty else {
                s.busy = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// The engine as seen from inside a gated sequence: the `…Locked` calls, for the replay a
/// build runs while it holds the gate (taking it again would wait for itself).
private final class GateHeld: Executor {
    let engine: EVMExecutor

    init(_ engine: EVMExecutor) { self.engine = engine }

    func initChain(genesis: Genesis) async throws(ExecutionError) -> [UInt8] {
        try await engine.initChainLocked(genesis: genesis)
    }
    func getTxs(max: Int, maxBytes: Int) async throws(ExecutionError) -> [[UInt8]] {
        try await engine.getTxs(max: max, maxBytes: maxBytes)
    }
    func hasPendingTransactions() async -> Bool { await engine.hasPendingTransactions() }
    func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) async throws(ExecutionError) -> ExecutionResult {
        try await engine.executeTxsLocked(txs, height: height, time: time, previousRoot: previousRoot)
    }
    func setFinal(height: UInt64) async throws(ExecutionError) -> WriteSet { try await engine.setFinalLocked(height: height) }
    func rollback(to height: UInt64, from currentHeight: UInt64) async throws(ExecutionError) -> WriteSet {
        try await engine.rollbackLocked(to: height, from: currentHeight)
    }
    func latestHeight() async throws(ExecutionError) -> UInt64? { try await engine.latestHeight() }
    func filterTxs(_ txs: [[UInt8]], maxBytes: UInt64, maxGas: UInt64, hasForced: Bool) -> [TxFilterStatus] {
        engine.filterTxs(txs, maxBytes: maxBytes, maxGas: maxGas, hasForced: hasForced)
    }
    func maxGasPerBlock() async throws(ExecutionError) -> UInt64 { try await engine.maxGasPerBlock() }
}
