import Primitives
import DAClient
import Chain
import Crypto
import Foundation

/// The seed corpus: small valid messages of every kind each target reads, made with the project's
/// encoders (`Fixtures.blocks`) and, when given, the blocks of the independent encoder's vector
/// chain (`shared/vectors`). Protocol messages around the blocks (protobuf envelopes of libp2p and
/// go-header, JSON-RPC) are written here byte by byte from their specs, not with the node's code,
/// so that they are an independent statement of what valid input looks like.
/// `evnode-fuzz make-seeds` writes them to `Fuzz/corpus/<target>/`.
package enum FuzzSeeds {
    /// The blocks of `shared/vectors/chain-24.json` as encoded bytes.
    package struct VectorBlock: Sendable {
        package var header: [UInt8]
        package var signedHeader: [UInt8]
        package var envelope: [UInt8]
        package var data: [UInt8]
        package var signedData: [UInt8]
    }

    /// Reads the vector file's blocks (nil when it cannot be read).
    package static func vectorBlocks(path: String) -> [VectorBlock]? {
        guard let data = FileManager.default.contents(atPath: path),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let blocks = root["blocks"] as? [[String: Any]] else { return nil }
        return blocks.compactMap { b in
            func hex(_ key: String) -> [UInt8]? { (b[key] as? String).flatMap(Hex.decode) }
            guard let h = hex("header_hex"), let sh = hex("signed_header_hex"), let env = hex("da_header_envelope_hex"),
                  let d = hex("data_hex"), let sd = hex("signed_data_hex") else { return nil }
            return VectorBlock(header: h, signedHeader: sh, envelope: env, data: d, signedData: sd)
        }
    }

    /// Every target's seeds: (file name, input).
    package static func all(vectors: [VectorBlock]) -> [String: [(String, [UInt8])]] {
        [
            "multistream": multistream(),
            "noise-handshake": noiseHandshake(),
            "noise-transport": noiseTransport(),
            "yamux": yamux(),
            "gossip": gossip(vectors: vectors),
            "header-ex-server": headerExchangeServer(),
            "header-ex-client": headerExchangeClient(vectors: vectors),
            "wire": wire(vectors: vectors),
            "da-answers": daAnswers(vectors: vectors),
            "engine-answers": engineAnswers(),
            "signer-state": signerState(),
            "evm-transaction": evmTransactions(),
        ]
    }

    // MARK: libp2p

    /// `uvarint(len + 1) ‖ text ‖ '\n'` per message (multistream-select 1.0).
    static func multistreamMessages(_ texts: [String]) -> [UInt8] {
        texts.flatMap { t -> [UInt8] in Proto.varint(UInt64(t.utf8.count + 1)) + Array(t.utf8) + [0x0a] }
    }

    static func script(_ mode: UInt8?, _ pieces: [ChunkScript.Piece]) -> [UInt8] {
        (mode.map { [$0] } ?? []) + ChunkScript(pieces).encoded()
    }

    static func piece(_ bytes: [UInt8], marked: Bool = false) -> ChunkScript.Piece {
        ChunkScript.Piece(bytes, marked: marked)
    }

    static func multistream() -> [(String, [UInt8])] {
        let header = "/multistream/1.0.0"
        let both = multistreamMessages([header, "/noise"])
        return [
            ("listener-noise", script(0, [piece(both)])),
            ("listener-split", script(0, [piece(Array(both[..<7])), piece(Array(both[7...]))])),
            ("listener-tls-then-noise", script(0, [piece(multistreamMessages([header, "/tls/1.0.0"])),
                                                  piece(multistreamMessages(["/noise"]))])),
            ("listener-lazy-payload", script(0, [piece(multistreamMessages([header, "/floodsub/1.0.0"]) + [0x05, 1, 2, 3, 4, 5])])),
            ("dialer-echo", script(1, [piece(both)])),
            ("dialer-na", script(1, [piece(multistreamMessages([header, "na"]))])),
        ]
    }

    static func noiseHandshake() -> [(String, [UInt8])] {
        let ephemeral = Array(try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: 7, count: 32))
            .publicKey.rawRepresentation)
        func frame(_ m: [UInt8]) -> [UInt8] { [UInt8(m.count >> 8), UInt8(m.count & 0xff)] + m }
        let staticKey = [UInt8](repeating: 9, count: 32)
        let peer = Fixtures.peerKey
        let identity: [UInt8] = [0x08, 0x01, 0x12, 0x20] + Array(peer.publicKey.rawRepresentation)
        let signature = Array((try? peer.signature(for: Array("noise-libp2p-static-key:".utf8) + staticKey)) ?? Data())
        let payload = Proto.bytes(1, identity) + Proto.bytes(2, signature)
        let muxers = Proto.bytes(4, Proto.bytes(2, Array("/yamux/1.0.0".utf8)))
        let stranger = Proto.bytes(1, [0x08, 0x01, 0x12, 0x20] + [UInt8](repeating: 0x42, count: 32))
            + Proto.bytes(2, [UInt8](repeating: 0, count: 64))
        return [
            ("responder-first-message", script(0, [piece(frame(ephemeral))])),
            ("responder-split", script(0, [piece(frame(ephemeral).prefix(1).map { $0 }), piece(Array(frame(ephemeral).dropFirst()))])),
            ("responder-then-third", script(0, [piece(frame(ephemeral)), piece(frame([UInt8](repeating: 0x33, count: 48 + 120)))])),
            ("initiator-second-message", script(1, [piece(frame(ephemeral + [UInt8](repeating: 0x44, count: 48 + 100)))])),
            ("payload-valid", [2] + staticKey + payload),
            ("payload-with-muxers", [2] + staticKey + payload + muxers),
            ("payload-other-key", [2] + staticKey + stranger),
        ]
    }

    /// yamux frames (libp2p/specs yamux): version 0, type, flags, stream id, length, big-endian.
    static func yamuxFrame(_ type: UInt8, flags: UInt16, stream: UInt32, length: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        var b: [UInt8] = [0, type, UInt8(flags >> 8), UInt8(flags & 0xff)]
        for shift in stride(from: 24, through: 0, by: -8) { b.append(UInt8(truncatingIfNeeded: stream >> UInt32(shift))) }
        for shift in stride(from: 24, through: 0, by: -8) { b.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        return b + payload
    }

    static func yamuxSession(opening id: UInt32) -> [ChunkScript.Piece] {
        let hello = Array("hello".utf8)
        return [
            piece(yamuxFrame(1, flags: 1, stream: id, length: 0)),                          // SYN
            piece(yamuxFrame(0, flags: 0, stream: id, length: UInt32(hello.count), hello)),   // data
            piece(yamuxFrame(2, flags: 1, stream: 0, length: 77)),                          // ping
            piece(yamuxFrame(1, flags: 0, stream: id, length: 4096)),                       // window update
            piece(yamuxFrame(1, flags: 2, stream: 1, length: 0) + yamuxFrame(1, flags: 2, stream: 2, length: 0)), // ACKs
            piece(yamuxFrame(0, flags: 4, stream: id, length: 0)),                          // FIN
            piece(yamuxFrame(3, flags: 0, stream: 0, length: 0)),                           // GoAway
        ]
    }

    static func yamux() -> [(String, [UInt8])] {
        let half = 128 * 1024
        return [
            ("listener-session", script(0, yamuxSession(opening: 3))),
            ("dialer-session", script(1, yamuxSession(opening: 4))),
            ("listener-one-read", script(0, [piece(yamuxSession(opening: 1).flatMap(\.bytes))])),
            // A data frame of half a window: 128 bytes, then the same 1,024 times over in one read.
            ("listener-large-frame", script(0, [piece(yamuxFrame(1, flags: 1, stream: 1, length: 0)),
                                                piece(yamuxFrame(0, flags: 0, stream: 1, length: UInt32(half + 128))),
                                                piece([UInt8](repeating: 0x61, count: 128))]) + [0xF9]),
            ("rst", script(0, [piece(yamuxFrame(1, flags: 1, stream: 5, length: 0) + yamuxFrame(1, flags: 8, stream: 5, length: 0))])),
        ]
    }

    static func noiseTransport() -> [(String, [UInt8])] {
        let negotiate = multistreamMessages(["/multistream/1.0.0", "/yamux/1.0.0"])
        let session = yamuxSession(opening: 1)
        return [
            ("negotiate-and-session", script(nil, [piece(negotiate)] + session)),
            ("one-frame", script(nil, [piece(negotiate + session.flatMap(\.bytes))])),
            ("tampered-frame", script(nil, [piece(negotiate), piece([0x00, 0x20] + [UInt8](repeating: 0xab, count: 32), marked: true)])),
            ("cut-length", script(nil, [piece(negotiate), piece([0xff], marked: true)])),
        ]
    }

    /// Envelopes as ev-node gossips them (types/p2p_envelope.go): the message and its DA height hint.
    static func headerEnvelope(_ signedHeader: [UInt8]) -> [UInt8] { signedHeader + [0x20, 0x00] }
    static func dataEnvelope(_ data: [UInt8]) -> [UInt8] { data + [0x18, 0x00] }

    static let headerTopic = "/\(Fixtures.chainID)-headerSync/header-sub/v0.0.1"
    static let dataTopic = "/\(Fixtures.chainID)-dataSync/header-sub/v0.0.1"

    /// A pubsub `Message` from the fixture peer, signed as StrictSign asks
    /// (`"libp2p-pubsub:" ‖ the message without signature and key`).
    static func pubsubMessage(topic: String, data: [UInt8], seqno: UInt64) -> [UInt8] {
        let from = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20] + Array(Fixtures.peerKey.publicKey.rawRepresentation)
        let seq = (0..<8).map { UInt8(truncatingIfNeeded: seqno >> (56 - 8 * UInt64($0))) }
        let unsigned = Proto.bytes(1, from) + Proto.bytes(2, data) + Proto.bytes(3, seq) + Proto.bytes(4, Array(topic.utf8))
        let signature = Array((try? Fixtures.peerKey.signature(for: Array("libp2p-pubsub:".utf8) + unsigned)) ?? Data())
        return unsigned + Proto.bytes(5, signature)
    }

    static func gossip(vectors: [VectorBlock]) -> [(String, [UInt8])] {
        let subscribe = Proto.bytes(1, Proto.varintField(1, 1) + Proto.bytes(2, Array(headerTopic.utf8)))
            + Proto.bytes(1, Proto.varintField(1, 1) + Proto.bytes(2, Array(dataTopic.utf8)))
        var seqno: UInt64 = 1
        func publish(_ topic: String, _ data: [UInt8]) -> [UInt8] {
            defer { seqno += 1 }
            return Proto.bytes(2, pubsubMessage(topic: topic, data: data, seqno: seqno))
        }
        let blocks = Fixtures.blocks
        var pairs: [[UInt8]] = []
        for b in blocks.prefix(3) {
            pairs.append(publish(headerTopic, headerEnvelope(b.signed.encoded())))
            pairs.append(publish(dataTopic, dataEnvelope(b.data.encoded())))
        }
        func framed(_ rpc: [UInt8]) -> [UInt8] { Proto.varint(UInt64(rpc.count)) + rpc }
        var seeds: [(String, [UInt8])] = [
            ("stream-subscribe-and-blocks", script(0, [piece(framed(subscribe))] + pairs.map { piece(framed($0)) })),
            ("stream-one-read", script(0, [piece(([subscribe] + pairs).flatMap(framed))])),
            ("resigned-blocks", script(1, [piece(subscribe)] + pairs.map { piece($0) })),
            ("resigned-header-only", script(1, [piece(subscribe + pairs[0])])),
            ("resigned-duplicate", script(1, [piece(pairs[0] + pairs[0])])),
            ("unsubscribe", script(0, [piece(framed(Proto.bytes(1, Proto.varintField(1, 0) + Proto.bytes(2, Array(headerTopic.utf8)))))])),
        ]
        if let v = vectors.first {
            seeds.append(("resigned-vector-block", script(1, [piece(subscribe),
                                                             piece(publish(headerTopic, headerEnvelope(v.signedHeader))),
                                                             piece(publish(dataTopic, dataEnvelope(v.data)))])))
        }
        return seeds
    }

    /// go-header's `HeaderRequest` (`oneof {origin = 1, hash = 2}`, `amount = 3`), framed.
    static func headerRequest(origin: UInt64? = nil, hash: [UInt8]? = nil, amount: UInt64) -> [UInt8] {
        var m: [UInt8] = []
        if let origin { m += Proto.varintField(1, origin) }
        if let hash { m += Proto.bytes(2, hash) }
        m += Proto.varintField(3, amount)
        return Proto.varint(UInt64(m.count)) + m
    }

    /// go-header's `HeaderResponse` (`body = 1`, `statusCode = 2`: 1 OK, 2 NOT_FOUND), framed.
    static func headerResponse(_ body: [UInt8]?, status: UInt64) -> [UInt8] {
        var m: [UInt8] = []
        if let body { m += Proto.bytes(1, body) }
        m += Proto.varintField(2, status)
        return Proto.varint(UInt64(m.count)) + m
    }

    static func headerExchangeServer() -> [(String, [UInt8])] {
        let hash = Fixtures.blocks[2].signed.header.hash
        return [
            ("head", script(0, [piece(headerRequest(origin: 0, amount: 1))])),
            ("range", script(0, [piece(headerRequest(origin: 1, amount: 12))])),
            ("range-data", script(1, [piece(headerRequest(origin: 3, amount: 5))])),
            ("partial-range", script(0, [piece(headerRequest(origin: 10, amount: 64))])),
            ("above-head", script(0, [piece(headerRequest(origin: 40, amount: 2))])),
            ("over-limit", script(0, [piece(headerRequest(origin: 1, amount: 65))])),
            ("by-hash", script(0, [piece(headerRequest(hash: hash, amount: 1))])),
            ("split", script(1, [piece([0x04]), piece(Array(headerRequest(origin: 2, amount: 2).dropFirst()))])),
        ]
    }

    static func headerExchangeClient(vectors: [VectorBlock]) -> [(String, [UInt8])] {
        let headerEcho = multistreamMessages(["/multistream/1.0.0", "/\(Fixtures.chainID)-headerSync/header-ex/v0.0.3"])
        let dataEcho = multistreamMessages(["/multistream/1.0.0", "/\(Fixtures.chainID)-dataSync/header-ex/v0.0.3"])
        let blocks = Fixtures.blocks
        let head = headerResponse(headerEnvelope(blocks[11].signed.encoded()), status: 1)
        var headers: [ChunkScript.Piece] = [piece(headerEcho)]
        var datas: [ChunkScript.Piece] = [piece(dataEcho, marked: true)]
        for b in blocks.prefix(4) {
            headers.append(piece(headerResponse(headerEnvelope(b.signed.encoded()), status: 1)))
            datas.append(piece(headerResponse(dataEnvelope(b.data.encoded()), status: 1), marked: true))
        }
        var seeds: [(String, [UInt8])] = [
            ("head", script(0, [piece(headerEcho), piece(head)])),
            ("head-one-read", script(0, [piece(headerEcho + head)])),
            ("head-not-found", script(0, [piece(headerEcho + headerResponse(nil, status: 2))])),
            ("head-invalid-status", script(0, [piece(headerEcho + headerResponse([1, 2, 3], status: 0))])),
            ("head-eof", script(0, [piece(headerEcho)])),
            ("range-4", [1, 1, 4] + ChunkScript(headers + datas).encoded()),
            ("range-partial", [1, 1, 4] + ChunkScript(Array(headers.prefix(3)) + datas).encoded()),
        ]
        if let v = vectors.last {
            seeds.append(("head-vector-block", script(0, [piece(headerEcho + headerResponse(headerEnvelope(v.signedHeader), status: 1))])))
        }
        return seeds
    }

    // MARK: Blocks

    static func wire(vectors: [VectorBlock]) -> [(String, [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for (i, b) in Fixtures.blocks.prefix(4).enumerated() {
            seeds.append(("header-\(i + 1)", b.signed.header.encoded()))
            seeds.append(("signed-header-\(i + 1)", b.signed.encoded()))
            seeds.append(("data-\(i + 1)", b.data.encoded()))
            if let envelope = try? Fixtures.signer.envelope(for: b.signed) { seeds.append(("envelope-\(i + 1)", envelope.encoded())) }
            if let signed = try? Fixtures.signer.sign(data: b.data) { seeds.append(("signed-data-\(i + 1)", signed.encoded())) }
        }
        let last = Fixtures.blocks[11]
        let state = State(chainID: Fixtures.chainID, initialHeight: 1, lastBlockHeight: 12, lastBlockTime: last.signed.header.time,
                          lastHeaderHash: last.signed.header.hash, lastDataHash: last.data.fullHash,
                          appHash: [UInt8](repeating: 0xaa, count: 32))
        seeds.append(("state", state.encoded()))
        var other = last.signed.header
        other.appHash = [UInt8](repeating: 0xbb, count: 32)
        if let second = try? Fixtures.signer.sign(header: other) {
            let evidence = DoubleSignEvidence(height: 12, first: last.signed, firstSeen: "store", second: second,
                                              secondSeen: "DA height 7", recordedAt: 1_700_000_100_000_000_000)
            seeds.append(("evidence", evidence.encoded()))
        }
        for (i, v) in vectors.prefix(3).enumerated() {
            seeds.append(("vector-header-\(i + 1)", v.header))
            seeds.append(("vector-signed-header-\(i + 1)", v.signedHeader))
            seeds.append(("vector-envelope-\(i + 1)", v.envelope))
            seeds.append(("vector-data-\(i + 1)", v.data))
            seeds.append(("vector-signed-data-\(i + 1)", v.signedData))
        }
        return seeds
    }

    // MARK: forced EVM transactions

    /// One signed transaction of each type, signed by eth-account 0.14 (not by evnode), and two
    /// near misses: a KV transaction and a typed transaction cut short.
    static func evmTransactions() -> [(String, [UInt8])] {
        let signed: [(String, String)] = [
            ("legacy", "f86503843b9aca0082520894222222222222222222222222222222222222222205808209c7a03d2863a8c4ebe3d155b8bcc2a49e346beb89943b1cc437530f55f2fdc01a52d0a018c24bb54a4f3ff0d4a22da0cbc634504cab59ee43ff6d444d6b18d8f491ecf1"),
            ("access-list", "01f8a28204d280843b9aca0082c35094222222222222222222222222222222222222222201820102f838f7942222222222222222222222222222222222222222e1a0000000000000000000000000000000000000000000000000000000000000000180a07e6c375817adab10cf235c690dd93c8e0225ed34c335cadbf254b5e3b658bf9ba051ff33a297705e7412f48b66e3aee99965d02ecf5ff9d2e7613ec84e69f29bf6"),
            ("dynamic-fee", "02f86a8204d2070184773594008401c9c3809422222222222222222222222222222222222222228080c080a017cad92ff92aa07dea3189bada37e1982af510db9126d7ff4c431bac8b60e3f9a07b150d37a87146bae77d45b050c88001148f79ef170c17efa77fe1849e18d211"),
            ("blob", "03f88b8204d2800184773594008252089422222222222222222222222222222222222222228080c001e1a001ababababababababababababababababababababababababababababababab80a058aebaef1242b060ee07c881289f38946ac19b380aef503d4c20e744be6dcad3a02ddd7b1dd5ed1c5be66500e045c365ea1e2f043536bcaa11623431ac91ad4acd"),
            ("set-code", "04f8c88204d28001847735940082ea609422222222222222222222222222222222222222228080c0f85ef85c8204d29422222222222222222222222222222222222222220180a08ee05f817963947ea1e81ec1b4e3f2975421db873c116559ceb59393cb5ec8aaa05578678a901f46c97f1d6f15f090290ddc40173d90dc86932021a3213d76647f80a0d2882cfabd8ac8f2f8f6ae0c5f77c4d0bbae85960c9f7f2f1b2b9ecef078744aa0254ca0db654249a282bfff0a0d9edd87c5e31d3801db703db709723c13c7f92e"),
        ]
        var seeds = signed.map { ($0.0, Hex.decode($0.1) ?? []) }
        seeds.append(("kv", Array("key=value".utf8)))
        seeds.append(("cut-short", Array((Hex.decode(signed[2].1) ?? []).dropLast(3))))
        return seeds
    }

    static func signerState() -> [(String, [UInt8])] {
        let last = Fixtures.blocks[11]
        let kept = SignedBlockBytes.encode(last.signed, last.data)
        let withBlock = "{\"last_signed_height\": 12, \"block\": \"\(Data(kept).base64EncodedString())\"}\n"
        return [
            ("mark", Array("{\"last_signed_height\": 12}\n".utf8)),
            ("mark-with-block", Array(withBlock.utf8)),
            ("appended", Array("{\"last_signed_height\": 11}\n{\"last_signed_height\": 12}\n".utf8)),
            ("torn-append", Array(("{\"last_signed_height\": 11}\n" + withBlock.prefix(40)).utf8)),
            ("no-newline", Array("{\"last_signed_height\":7}".utf8)),
        ]
    }

    // MARK: DA and the execution client

    static func daAnswers(vectors: [VectorBlock]) -> [(String, [UInt8])] {
        func blob(_ namespace: DANamespace, _ data: [UInt8], index: Int) -> String {
            "{\"namespace\":\"\(namespace.base64)\",\"data\":\"\(Data(data).base64EncodedString())\",\"share_version\":0,"
                + "\"commitment\":\"\(Data(SHA256.hash(data: data)).base64EncodedString())\",\"index\":\(index)}"
        }
        func getAll(_ id: Int, _ blobs: [String]) -> [UInt8] {
            Array("{\"jsonrpc\":\"2.0\",\"id\":\(id),\"result\":[\(blobs.joined(separator: ","))]}".utf8)
        }
        let head = Array(("{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"height\":\"3\",\"header\":{\"height\":\"3\","
            + "\"time\":\"2023-11-14T22:13:20.000000001Z\"}}}").utf8)
        var answers: [ChunkScript.Piece] = [piece(head)]
        for (i, b) in Fixtures.blocks.prefix(3).enumerated() {
            var blobs: [String] = []
            if let envelope = try? Fixtures.signer.envelope(for: b.signed) {
                blobs.append(blob(Fixtures.headerNamespace, envelope.encoded(), index: 0))
            }
            if let signed = try? Fixtures.signer.sign(data: b.data), !b.data.txs.isEmpty {
                blobs.append(blob(Fixtures.dataNamespace, signed.encoded(), index: 1))
            }
            answers.append(piece(getAll(i + 1, blobs)))
        }
        let notFound = Array("{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":1,\"message\":\"blob: not found\"}}".utf8)
        let null = Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}".utf8)
        var seeds: [(String, [UInt8])] = [
            ("walk", script(0, answers)),
            ("walk-not-found-and-500", script(0, [piece(head), piece(null), piece(notFound), piece(getAll(3, []), marked: true)])),
            ("walk-no-head", script(0, [piece(Array("{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":null}".utf8))] + answers.dropFirst())),
            ("subscription", script(1, [piece(Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":7}".utf8)),
                                        piece(Array("{\"jsonrpc\":\"2.0\",\"method\":\"xrpc.ch.val\",\"params\":[7,{\"Height\":12}]}".utf8)),
                                        piece(Array("{\"jsonrpc\":\"2.0\",\"method\":\"xrpc.ch.val\",\"params\":[7,{\"Height\":\"13\"}]}".utf8)),
                                        piece(Array("{\"jsonrpc\":\"2.0\",\"method\":\"xrpc.ch.close\",\"params\":[7]}".utf8))])),
            ("subscription-refused", script(1, [piece(Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32601,\"message\":\"method 'blob.Subscribe' not found\"}}".utf8))])),
            ("submit", [2] + Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":42}".utf8)),
            ("submit-string-height", [2] + Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"42\"}".utf8)),
        ]
        if let v = vectors.first {
            // Posted under other namespaces than the fixture's: validated, then turned away.
            seeds.append(("walk-vector-blobs", script(0, [piece(head), piece(getAll(1, [blob(Fixtures.headerNamespace, v.envelope, index: 0),
                                                                                        blob(Fixtures.dataNamespace, v.signedData, index: 1)]))])))
        }
        return seeds
    }

    static func engineAnswers() -> [(String, [UInt8])] {
        let hash = "0x" + String(repeating: "ab", count: 32)
        let root = "0x" + String(repeating: "cd", count: 32)
        func answer(_ reading: UInt8, _ result: String, status: UInt8 = 0) -> [UInt8] {
            [reading, status] + Array("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\(result)}".utf8)
        }
        return [
            ("block", answer(0, "{\"number\":\"0x5\",\"hash\":\"\(hash)\",\"stateRoot\":\"\(root)\",\"timestamp\":\"0x6553f100\",\"gasLimit\":\"0x1c9c380\",\"transactions\":[]}")),
            ("block-null", answer(0, "null")),
            ("transactions", answer(1, "[\"0x02f86b0180\",\"0x\",\"0x01\"]")),
            ("forkchoice", answer(2, "{\"payloadStatus\":{\"status\":\"VALID\",\"latestValidHash\":\"\(hash)\",\"validationError\":null},\"payloadId\":\"0x0102030405060708\"}")),
            ("forkchoice-syncing", answer(2, "{\"payloadStatus\":{\"status\":\"SYNCING\",\"latestValidHash\":null},\"payloadId\":null}")),
            ("payload", answer(3, "{\"executionPayload\":{\"parentHash\":\"\(hash)\",\"blockHash\":\"\(hash)\",\"stateRoot\":\"\(root)\",\"blockNumber\":\"0x5\",\"transactions\":[],\"withdrawals\":[]},\"blockValue\":\"0x0\",\"executionRequests\":[]}")),
            ("new-payload-invalid", answer(4, "{\"status\":\"INVALID\",\"latestValidHash\":\"\(hash)\",\"validationError\":\"bad \\u00e9 block\"}")),
            ("error-unsupported-fork", [3, 0] + Array("{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-38005,\"message\":\"Unsupported fork\"}}".utf8)),
            ("unauthorized", [0, 1] + Array("{\"error\":\"invalid token\"}".utf8)),
            ("numbers", answer(0, "{\"number\":1e400,\"hash\":-0.5E-3,\"stateRoot\":[true,false,null],\"timestamp\":9223372036854775808}")),
        ]
    }
}

/// Protocol Buffers wire encoding, enough to write the seeds' envelopes by hand.
enum Proto {
    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    static func varintField(_ number: UInt64, _ value: UInt64) -> [UInt8] { varint(number << 3) + varint(value) }

    static func bytes(_ number: UInt64, _ value: [UInt8]) -> [UInt8] {
        varint(number << 3 | 2) + varint(UInt64(value.count)) + value
    }
}
