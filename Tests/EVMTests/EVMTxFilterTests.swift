import Primitives
import Store
import Production
import Foundation
import Logging
import Testing
import TestSupport
@testable import EVM

/// The EVM filter of forced transactions (README "Forced inclusion and based sequencing"): the
/// bounded decoder of raw transactions, and ev-node's size-and-gas rule.
@Suite struct EVMTxFilterTests {
    /// Signed by eth-account 0.14 (key 0x11…11, chain 1234), not by anything of evnode's.
    static let legacy = hex("f86503843b9aca0082520894222222222222222222222222222222222222222205808209c7a03d2863a8c4ebe3d155b8bcc2a49e346beb89943b1cc437530f55f2fdc01a52d0a018c24bb54a4f3ff0d4a22da0cbc634504cab59ee43ff6d444d6b18d8f491ecf1")
    static let accessList = hex("01f8a28204d280843b9aca0082c35094222222222222222222222222222222222222222201820102f838f7942222222222222222222222222222222222222222e1a0000000000000000000000000000000000000000000000000000000000000000180a07e6c375817adab10cf235c690dd93c8e0225ed34c335cadbf254b5e3b658bf9ba051ff33a297705e7412f48b66e3aee99965d02ecf5ff9d2e7613ec84e69f29bf6")
    static let dynamicFee = hex("02f86a8204d2070184773594008401c9c3809422222222222222222222222222222222222222228080c080a017cad92ff92aa07dea3189bada37e1982af510db9126d7ff4c431bac8b60e3f9a07b150d37a87146bae77d45b050c88001148f79ef170c17efa77fe1849e18d211")
    static let create = hex("02f8578204d280018477359400830186a08080826000c001a00f571151daf822638b11ffa2b130ccc84c694fd9ffea5106d8aabe0088b5efa3a04a398147314f03aaf06dae309c9a486af27804d20b7b4812a07290dff3a5ffb4")
    static let setCode = hex("04f8c88204d28001847735940082ea609422222222222222222222222222222222222222228080c0f85ef85c8204d29422222222222222222222222222222222222222220180a08ee05f817963947ea1e81ec1b4e3f2975421db873c116559ceb59393cb5ec8aaa05578678a901f46c97f1d6f15f090290ddc40173d90dc86932021a3213d76647f80a0d2882cfabd8ac8f2f8f6ae0c5f77c4d0bbae85960c9f7f2f1b2b9ecef078744aa0254ca0db654249a282bfff0a0d9edd87c5e31d3801db703db709723c13c7f92e")
    static let blob = hex("03f88b8204d2800184773594008252089422222222222222222222222222222222222222228080c001e1a001ababababababababababababababababababababababababababababababab80a058aebaef1242b060ee07c881289f38946ac19b380aef503d4c20e744be6dcad3a02ddd7b1dd5ed1c5be66500e045c365ea1e2f043536bcaa11623431ac91ad4acd")

    static func hex(_ s: String) -> [UInt8] { Hex.decode(s)! }

    @Test func everyTypeDecodesWithItsGasLimit() throws {
        let cases: [([UInt8], RawTransaction.Kind, UInt64)] = [
            (Self.legacy, .legacy, 21_000), (Self.accessList, .accessList, 50_000),
            (Self.dynamicFee, .dynamicFee, 30_000_000), (Self.create, .dynamicFee, 100_000),
            (Self.setCode, .setCode, 60_000), (Self.blob, .blob, 21_000),
        ]
        for (tx, kind, gas) in cases {
            #expect(try RawTransaction.decode(tx) == .init(kind: kind, gasLimit: gas))
        }
    }

    // MARK: a test-side RLP encoder (from the RLP spec) for transactions the signer would not make

    static func rlp(_ payload: [UInt8], list: Bool) -> [UInt8] {
        let base: UInt8 = list ? 0xc0 : 0x80
        if !list, payload.count == 1, payload[0] < 0x80 { return payload }
        if payload.count < 56 { return [base + UInt8(payload.count)] + payload }
        var length: [UInt8] = []
        var n = payload.count
        while n > 0 { length.insert(UInt8(n & 0xff), at: 0); n >>= 8 }
        return [base + 55 + UInt8(length.count)] + length + payload
    }

    static func str(_ b: [UInt8]) -> [UInt8] { rlp(b, list: false) }
    static func int(_ v: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        var n = v
        while n > 0 { b.insert(UInt8(n & 0xff), at: 0); n >>= 8 }
        return str(b)
    }
    static func list(_ items: [[UInt8]]) -> [UInt8] { rlp(items.flatMap { $0 }, list: true) }
    static let to = [UInt8](repeating: 0x22, count: 20)
    static let sig = [int(2503), str([UInt8](repeating: 7, count: 32)), str([UInt8](repeating: 8, count: 32))]

    /// A legacy transaction with `gas` as given (already encoded) and `fields` to replace.
    static func legacyFields(gas: [UInt8] = int(21_000), to: [UInt8] = str(to)) -> [[UInt8]] {
        [int(1), int(1_000_000_000), gas, to, int(5), str([])] + sig
    }

    static func legacy(gas: UInt64) -> [UInt8] { Self.list(Self.legacyFields(gas: int(gas))) }

    @Test func theTestEncoderMakesWhatTheSignerMakes() throws {
        // The fields of eth-account's `legacy` above, encoded here, give its bytes: the encoder the
        // malformed cases rely on is right.
        let r = Self.hex("3d2863a8c4ebe3d155b8bcc2a49e346beb89943b1cc437530f55f2fdc01a52d0")
        let s = Self.hex("18c24bb54a4f3ff0d4a22da0cbc634504cab59ee43ff6d444d6b18d8f491ecf1")
        let same = Self.list([Self.int(3), Self.int(1_000_000_000), Self.int(21_000), Self.str(Self.to), Self.int(5),
                              Self.str([]), Self.int(2503), Self.str(r), Self.str(s)])
        #expect(same == Self.legacy)
        let decoded = try RawTransaction.decode(Self.list(Self.legacyFields()))
        #expect(decoded == .init(kind: .legacy, gasLimit: 21_000))
        #expect(try RawTransaction.decode(Self.legacy(gas: 0)).gasLimit == 0)
        #expect(try RawTransaction.decode(Self.legacy(gas: .max)).gasLimit == .max)
    }

    @Test func garbageIsRefusedWithTheReason() {
        let valid = Self.list(Self.legacyFields())
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("a KV transaction", Array("hello=world".utf8)),
            ("a type byte alone", [0x02]),
            ("type 0 as a typed transaction", [0x00] + Array(Self.dynamicFee.dropFirst())),
            ("an unknown type", [0x05] + Array(Self.dynamicFee.dropFirst())),
            ("a byte after the transaction", Self.dynamicFee + [0x80]),
            ("one byte short", Array(Self.dynamicFee.dropLast())),
            ("a string, not a list", Self.str(Array(valid.dropFirst(2)))),
            ("gas with a leading zero", Self.list(Self.legacyFields(gas: Self.str([0x00, 0x52, 0x08])))),
            ("gas of 9 bytes", Self.list(Self.legacyFields(gas: Self.str([1, 0, 0, 0, 0, 0, 0, 0, 0])))),
            ("gas 0 as 0x00", Self.list(Self.legacyFields(gas: [0x00]))),
            ("a single byte wrapped", Self.list(Self.legacyFields(gas: [0x81, 0x05]))),
            ("a 19-byte recipient", Self.list(Self.legacyFields(to: Self.str([UInt8](repeating: 1, count: 19))))),
            ("a list as recipient", Self.list(Self.legacyFields(to: Self.list([])))),
            ("a field too many", Self.list(Self.legacyFields() + [Self.int(1)])),
            ("a field too few", Self.list(Array(Self.legacyFields().dropLast()))),
            ("a long-form length below 56", [0xf8, 0x05] + Array(valid.dropFirst(2)).prefix(5)),
            ("a length with a leading zero", [0xf9, 0x00, UInt8(valid.count - 2)] + Array(valid.dropFirst(2))),
            ("a length past the input", [0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            ("a list length past the input", [0x02, 0xfb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xc0]),
            ("a length of length past the input", [0xf9, 0x01]),
            ("a blob transaction without a recipient",
             [0x03] + Self.list([Self.int(1), Self.int(0), Self.int(1), Self.int(1), Self.int(21_000), Self.str([]),
                                 Self.int(0), Self.str([]), Self.list([]), Self.int(1), Self.list([])] + Self.sig)),
            ("an access list entry without keys",
             [0x01] + Self.list([Self.int(1), Self.int(0), Self.int(1), Self.int(21_000), Self.str(Self.to), Self.int(0),
                                 Self.str([]), Self.list([Self.list([Self.str(Self.to)])])] + Self.sig)),
            ("a uint256 of 33 bytes",
             [0x04] + Self.list([Self.str([UInt8](repeating: 1, count: 33)), Self.int(0), Self.int(1), Self.int(1),
                                 Self.int(21_000), Self.str(Self.to), Self.int(0), Self.str([]), Self.list([]),
                                 Self.list([])] + Self.sig)),
        ]
        for (what, bytes) in cases {
            #expect(throws: RawTransaction.DecodeError.self, "\(what) was accepted") { try RawTransaction.decode(bytes) }
        }
    }

    // MARK: ev-node's rule

    @Test func garbageAndTooMuchGasAreRemovedAndAFullBlockPostpones() {
        let txs = [Self.legacy(gas: 21_000), Array("no=tx".utf8), Self.legacy(gas: 50_001), [],
                   Self.legacy(gas: 21_000), Self.legacy(gas: 21_000), Self.legacy(gas: 1), Array("later garbage".utf8)]
        let statuses = EVMTxFilter.filter(txs, maxBytes: 0, maxGas: 50_000, hasForced: true)
        // 21,000 + 21,000 = 42,000 fit; the third 21,000 would make 63,000: postponed, and every
        // later valid one with it (order is kept), even one that would fit; garbage is removed wherever it is.
        #expect(statuses == [.include, .remove, .remove, .remove, .include, .postpone, .postpone, .remove])
    }

    @Test func sizeComesAfterGasAsInEvNode() {
        let big = Self.legacy(gas: 21_000)
        let size = UInt64(big.count)
        let statuses = EVMTxFilter.filter([big, big, Self.legacy(gas: 10_000_000), big], maxBytes: 2 * size,
                                          maxGas: 1_000_000, hasForced: true)
        // The third is removed for its gas before size is looked at; the fourth overflows the bytes.
        #expect(statuses == [.include, .include, .remove, .postpone])
        let oneOversize = EVMTxFilter.filter([big + [0x00]], maxBytes: size, maxGas: 0, hasForced: true)
        #expect(oneOversize == [.remove])
    }

    @Test func withoutForcedTransactionsNothingIsDecodedAndGasIsNotCounted() {
        let statuses = EVMTxFilter.filter([Array("mempool bytes".utf8), Self.legacy(gas: 90_000), []], maxBytes: 0,
                                          maxGas: 50_000, hasForced: false)
        #expect(statuses == [.include, .include, .remove])
    }

    /// The sequencer's selection hands the executor the block gas the queue learnt; before, it
    /// passed 0 and a forced transaction over the block's gas was included.
    @Test func theQueueSelectionFiltersWithTheBlockGas() throws {
        let dir = TempDirectory("evnode-evm-filter")
        let store = try BlockStore.open(path: dir.sub("store"))
        defer { store.close() }
        let rpc = try EngineRPCClient(engineURL: "http://127.0.0.1:9", ethURL: "http://127.0.0.1:9",
                                      jwt: EngineJWT(secret: [UInt8](repeating: 1, count: 32)))
        let executor = EVMExecutor(rpc: rpc, store: store, options: .init(), logger: Logger(label: "test.evm"))
        let txs = [Self.legacy(gas: 30_000), Array("garbage".utf8), Self.legacy(gas: 80_000), Self.legacy(gas: 30_000),
                   Self.legacy(gas: 1)]
        let pending = ForcedInclusionQueue.Pending(txs: txs, epochTxCount: 5, consumedBefore: 0, endTime: 1_000_000_000,
                                                   epochEnd: 11, maxGas: 50_000)
        let taken = ForcedInclusionQueue.select(from: pending, executor: executor, maxTxs: 100)
        // Included, removed (garbage), removed (gas), then postponed: three consumed.
        #expect(taken.txs == [txs[0]])
        #expect(taken.consumed == 3)
    }
}
