import Foundation
import ProcessKit

/// The Python side of the EVM tests: the py-evm test EL and the transfer signer under Tests/EVM,
/// run with the virtualenv `make deps` installs (.build/venv-evm).
package enum EVMFiles {
    package static let testsDirectory = BuiltProducts.packageRoot.appendingPathComponent("Tests")
    package static let python = BuiltProducts.packageRoot.appendingPathComponent(".build/venv-evm/bin/python")
    package static let server = testsDirectory.appendingPathComponent("EVM/test_el.py").path
    package static let signer = testsDirectory.appendingPathComponent("EVM/sign_transfers.py").path
    package static let genesis = testsDirectory.appendingPathComponent("EVM/genesis.json").path

    /// ev-node's sample genesis, as ev-reth computes it (ev-reth's tests, ev-node's READMEs).
    package static let genesisHash = "0x2b8bbb1ea1e04f9c9809b4b278a8687806edc061a356c7dbc491930d8e922503"
    package static let genesisStateRoot = "0x05e9954443da80d86f2104e56ffdfd98fe21988730684360104865b3dc8191b4"
    /// A funded account of the sample genesis (its key is public: ev-node's and ev-reth's tests).
    package static let senderKey = "cece4f25ac74deb1468965160c7185e07dff413f23fcadb611b05ca37ab0a52e"
    package static let recipient = "0x944fDcD1c868E3cC566C78023CcB38A32cDA836E"

    package static var available: Bool { FileManager.default.isExecutableFile(atPath: python.path) }

    // MARK: proposer control (ev-reth's precompile at 0x…F101)

    package static let proposerCallSigner = testsDirectory.appendingPathComponent("EVM/sign_proposer_call.py").path
    /// The sender's address: the proposer-control admin of `proposerControlGenesis` by default.
    package static let senderAddress = "0xd143C405751162d0F96bEE2eB5eb9C61882a736E"
    /// A second key, public (the first account of the usual Ethereum dev mnemonic), which
    /// `proposerControlGenesis(fundOther: true)` funds: a caller that is not the admin.
    package static let otherKey = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    package static let otherAddress = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

    /// The sample genesis with ev-reth's `config.evolve` proposer control: `admin` may call
    /// `setNextProposer`, `initialNextProposer` is answered until the first call (nil: zero).
    /// The genesis block's hash is unchanged (the chainspec's config is not in it) unless
    /// `fundOther` adds `otherAddress` to the alloc. Written to `directory/name`; returns its path.
    package static func proposerControlGenesis(in directory: String, name: String = "genesis-proposer-control.json",
                                              admin: String = senderAddress, initialNextProposer: [UInt8]?,
                                              fundOther: Bool = false) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: genesis))
        guard var root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              var config = root["config"] as? [String: Any], var alloc = root["alloc"] as? [String: Any] else {
            throw TestFailure("\(genesis) is not a genesis object")
        }
        var evolve: [String: Any] = ["proposerControlAdmin": admin]
        if let initialNextProposer { evolve["initialNextProposer"] = "0x" + hex(initialNextProposer) }
        config["evolve"] = evolve
        root["config"] = config
        if fundOther {
            alloc[otherAddress] = ["balance": "0x4a47e3c12448f4ad000000"]
            root["alloc"] = alloc
        }
        let path = directory + "/" + name
        try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A signed call of `setNextProposer(proposer)` on the precompile, from `key`.
    package static func setNextProposer(_ proposer: [UInt8], key: String = senderKey, nonce: Int) throws -> [UInt8] {
        let r = try runCommand(python, [proposerCallSigner, "--key", key, "--proposer", "0x" + hex(proposer),
                                        "--nonce", "\(nonce)"], timeout: .seconds(60))
        guard r.status == 0 else { throw TestFailure("sign_proposer_call.py: \(r.stderr)") }
        return try unhex(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    package static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    package static func unhex(_ text: String) throws -> [UInt8] {
        let digits = Array((text.hasPrefix("0x") ? String(text.dropFirst(2)) : text).utf8)
        guard digits.count % 2 == 0 else { throw TestFailure("odd-length hex: \(text.prefix(80))") }
        return try stride(from: 0, to: digits.count, by: 2).map { i in
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else {
                throw TestFailure("not hex: \(text.prefix(80))")
            }
            return byte
        }
    }

    /// `count` signed EIP-1559 transfers of `value` wei from the sender, nonces from `nonce`.
    package static func transfers(count: Int, nonce: Int, value: Int = 1000) throws -> [[UInt8]] {
        let r = try runCommand(python, [signer, "--key", senderKey, "--to", recipient, "--count", "\(count)",
                                        "--nonce", "\(nonce)", "--value", "\(value)"], timeout: .seconds(60))
        guard r.status == 0 else { throw TestFailure("sign_transfers.py: \(r.stderr)") }
        return r.stdout.split(separator: "\n").map { line in
            var out: [UInt8] = []
            var chars = Array(line.utf8)[...]
            while chars.count >= 2 {
                out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)!)
                chars = chars.dropFirst(2)
            }
            return out
        }
    }
}

/// One py-evm test EL process (Engine API and eth JSON-RPC on ports of its own, JWT checked).
/// Its state is in memory: a restart is an EL that lost its disk.
package final class TestEL: @unchecked Sendable {
    package let name: String
    package let enginePort: Int
    package let ethPort: Int
    package let secretFile: String
    package let logDirectory: String
    /// The genesis (chainspec) file it starts from.
    package let genesis: String
    package private(set) var child: ChildProcess?
    private var runs = 0

    package var engineURL: String { "http://127.0.0.1:\(enginePort)" }
    package var ethURL: String { "http://127.0.0.1:\(ethPort)" }

    package init(name: String, directory: String, logDirectory: String, taken: inout Set<Int>, secret: String? = nil,
                genesis: String = EVMFiles.genesis) throws {
        self.name = name
        self.logDirectory = logDirectory
        self.genesis = genesis
        enginePort = try freeLoopbackPort(avoiding: taken)
        taken.insert(enginePort)
        ethPort = try freeLoopbackPort(avoiding: taken)
        taken.insert(ethPort)
        secretFile = directory + "/\(name)-jwt.hex"
        let hex = secret ?? (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        try hex.write(toFile: secretFile, atomically: true, encoding: .utf8)
    }

    package func start() async throws {
        runs += 1
        let child = try ChildProcess(name: "\(name)-run\(runs)", executable: EVMFiles.python,
                                     arguments: [EVMFiles.server, "--genesis", genesis, "--jwt-secret", secretFile,
                                                 "--engine-port", "\(enginePort)", "--eth-port", "\(ethPort)"],
                                     logDirectory: logDirectory)
        self.child = child
        _ = try await child.waitForLine("test EL ready") { $0.contains("test EL ready") ? true : nil }
    }

    package func stop(signal: Int32 = SIGTERM) async {
        await child?.stop(signal: signal)
    }

    package var isRunning: Bool { child?.isRunning ?? false }

    /// Arguments that point an `evnode start` at this EL.
    package func nodeArguments(secretFile: String? = nil) -> [String] {
        ["--execution", "evm", "--evm.engine-url", engineURL, "--evm.eth-url", ethURL,
         "--evm.jwt-secret-file", secretFile ?? self.secretFile, "--evm.genesis-hash", EVMFiles.genesisHash]
    }

    /// An eth JSON-RPC call; its result (nil for JSON null).
    package func call(_ method: String, _ params: String) async throws -> Any? {
        let object = try await HTTP.jsonRPC(ethURL, method: method, params: params)
        if let error = object["error"] { throw TestFailure("\(name) \(method): \(error)") }
        return object["result"] is NSNull ? nil : object["result"]
    }

    /// Block `number`'s header fields, nil when the EL has none.
    package func block(_ number: UInt64) async throws -> [String: Any]? {
        try await call("eth_getBlockByNumber", "[\"0x\(String(number, radix: 16))\",false]") as? [String: Any]
    }

    package func height() async throws -> UInt64 {
        let latest = try await call("eth_getBlockByNumber", "[\"latest\",false]") as? [String: Any]
        return UInt64((latest?["number"] as? String ?? "0x0").dropFirst(2), radix: 16) ?? 0
    }

    package func balance(_ address: String) async throws -> String {
        try await call("eth_getBalance", "[\"\(address)\",\"latest\"]") as? String ?? ""
    }

    /// Makes the EL misbehave (`test_el.py`'s control endpoint: INVALID, -38005, malformed…).
    package func setFault(_ fault: String) async throws {
        let r = try await HTTP.post(ethURL + "/control", body: Data("{\"fault\":\"\(fault)\"}".utf8))
        guard r.status == 200 else { throw TestFailure("\(name) /control: HTTP \(r.status)") }
    }

    /// Holds the EL's answer to engine_getPayload for block `height` (nil: releases it), so that a
    /// test can kill the node between forkchoiceUpdated and newPayload.
    package func stallGetPayload(at height: UInt64?) async throws {
        let body = "{\"height\":\(height.map(String.init) ?? "null")}"
        let r = try await HTTP.post(ethURL + "/stall", body: Data(body.utf8))
        guard r.status == 200 else { throw TestFailure("\(name) /stall: HTTP \(r.status) \(r.text)") }
    }

    /// The block number whose engine_getPayload the EL is holding now, if any.
    package func stalledAt() async throws -> UInt64? {
        let r = try await HTTP.get(ethURL + "/stats")
        let object = try JSONSerialization.jsonObject(with: r.body) as? [String: Any]
        return (object?["stalled_at"] as? NSNumber)?.uint64Value
    }

    package var output: String { child?.output ?? "" }

    // MARK: proposer control

    /// `evolve_getNextProposer` at `block` (nil: latest): the 32-byte word.
    package func nextProposer(at block: UInt64? = nil) async throws -> [UInt8] {
        let tag = block.map { "0x" + String($0, radix: 16) } ?? "latest"
        guard let word = try await call("evolve_getNextProposer", "[\"\(tag)\"]") as? String else {
            throw TestFailure("\(name) evolve_getNextProposer: not a string")
        }
        return try EVMFiles.unhex(word)
    }

    /// The block arguments of the last `evolve_getNextProposer` calls, oldest first.
    package func proposerCalls() async throws -> [String] {
        let r = try await HTTP.get(ethURL + "/proposer-control")
        let object = try JSONSerialization.jsonObject(with: r.body) as? [String: Any]
        return object?["calls"] as? [String] ?? []
    }

    /// The next `failNext` `evolve_getNextProposer` calls answer -32603, then `malformedNext`
    /// answer a 2-byte word.
    package func setProposerFaults(failNext: Int = 0, malformedNext: Int = 0) async throws {
        let body = "{\"fail_next\":\(failNext),\"malformed_next\":\(malformedNext)}"
        let r = try await HTTP.post(ethURL + "/proposer-control", body: Data(body.utf8))
        guard r.status == 200 else { throw TestFailure("\(name) /proposer-control: HTTP \(r.status)") }
    }
}
