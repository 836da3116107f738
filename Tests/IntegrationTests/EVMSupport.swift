import Foundation
import Testing

/// Where the Python side of the EVM tests lives: the py-evm test EL and the transfer signer
/// under Tests/EVM, run with the virtualenv `make deps` installs (.build/venv-evm).
enum EVMFiles {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    static let packageRoot = testsDirectory.deletingLastPathComponent()
    static let python = packageRoot.appendingPathComponent(".build/venv-evm/bin/python")
    static let server = testsDirectory.appendingPathComponent("EVM/test_el.py").path
    static let signer = testsDirectory.appendingPathComponent("EVM/sign_transfers.py").path
    static let genesis = testsDirectory.appendingPathComponent("EVM/genesis.json").path

    /// ev-node's sample genesis, as ev-reth computes it (ev-reth's tests, ev-node's READMEs).
    static let genesisHash = "0x2b8bbb1ea1e04f9c9809b4b278a8687806edc061a356c7dbc491930d8e922503"
    static let genesisStateRoot = "0x05e9954443da80d86f2104e56ffdfd98fe21988730684360104865b3dc8191b4"
    /// A funded account of the sample genesis (its key is public: ev-node's and ev-reth's tests).
    static let senderKey = "cece4f25ac74deb1468965160c7185e07dff413f23fcadb611b05ca37ab0a52e"
    static let recipient = "0x944fDcD1c868E3cC566C78023CcB38A32cDA836E"

    static var available: Bool { FileManager.default.isExecutableFile(atPath: python.path) }

    /// `count` signed EIP-1559 transfers of `value` wei from the sender, nonces from `nonce`.
    static func transfers(count: Int, nonce: Int, value: Int = 1000) throws -> [[UInt8]] {
        let r = try runCommand(python, [signer, "--key", senderKey, "--to", recipient, "--count", "\(count)",
                                        "--nonce", "\(nonce)", "--value", "\(value)"], timeout: .seconds(60))
        guard r.status == 0 else { throw HarnessFailure("sign_transfers.py: \(r.stderr)") }
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

/// One py-evm test EL process (engine + eth JSON-RPC on ports of its own, JWT checked).
final class TestEL {
    let name: String
    let enginePort: Int
    let ethPort: Int
    let secretFile: String
    let logDirectory: String
    private(set) var child: ChildProcess?
    private var runs = 0

    var engineURL: String { "http://127.0.0.1:\(enginePort)" }
    var ethURL: String { "http://127.0.0.1:\(ethPort)" }

    init(name: String, directory: String, logDirectory: String, taken: inout Set<Int>, secret: String? = nil) throws {
        self.name = name
        self.logDirectory = logDirectory
        enginePort = try freeLoopbackPort(avoiding: taken)
        taken.insert(enginePort)
        ethPort = try freeLoopbackPort(avoiding: taken)
        taken.insert(ethPort)
        secretFile = directory + "/\(name)-jwt.hex"
        let hex = secret ?? (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        try hex.write(toFile: secretFile, atomically: true, encoding: .utf8)
    }

    /// Starts a fresh EL (its state is in memory: a restart is an EL that lost its disk).
    func start() async throws {
        runs += 1
        let child = try ChildProcess(name: "\(name)-run\(runs)", executable: EVMFiles.python,
                                     arguments: [EVMFiles.server, "--genesis", EVMFiles.genesis, "--jwt-secret", secretFile,
                                                 "--engine-port", "\(enginePort)", "--eth-port", "\(ethPort)"],
                                     logDirectory: logDirectory)
        self.child = child
        try await waitUntil("\(name) to be ready", timeout: .seconds(60), every: .milliseconds(100)) {
            if !child.isRunning { throw HarnessFailure("\(self.name) exited:\n\(child.output)") }
            return child.output.contains("test EL ready")
        }
    }

    func stop(signal: Int32 = SIGTERM) async {
        await child?.stop(signal: signal)
    }

    /// Arguments that point an `evnode start` at this EL.
    func nodeArguments(secretFile: String? = nil) -> [String] {
        ["--execution", "evm", "--evm.engine-url", engineURL, "--evm.eth-url", ethURL,
         "--evm.jwt-secret-file", secretFile ?? self.secretFile, "--evm.genesis-hash", EVMFiles.genesisHash]
    }

    func call(_ method: String, _ params: String) async throws -> Any? {
        let body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(method)\",\"params\":\(params)}"
        let r = try await HTTP.post(ethURL, body: Data(body.utf8))
        guard r.status == 200, let object = try JSONSerialization.jsonObject(with: r.body) as? [String: Any] else {
            throw HarnessFailure("\(name) \(method): HTTP \(r.status) \(r.text)")
        }
        if let error = object["error"] { throw HarnessFailure("\(name) \(method): \(error)") }
        return object["result"] is NSNull ? nil : object["result"]
    }

    /// Block `number`'s header fields, nil when the EL has none.
    func block(_ number: UInt64) async throws -> [String: Any]? {
        try await call("eth_getBlockByNumber", "[\"0x\(String(number, radix: 16))\",false]") as? [String: Any]
    }

    func height() async throws -> UInt64 {
        let latest = try await call("eth_getBlockByNumber", "[\"latest\",false]") as? [String: Any]
        return UInt64((latest?["number"] as? String ?? "0x0").dropFirst(2), radix: 16) ?? 0
    }

    func balance(_ address: String) async throws -> String {
        try await call("eth_getBalance", "[\"\(address)\",\"latest\"]") as? String ?? ""
    }

    func setFault(_ fault: String) async throws {
        let r = try await HTTP.post(ethURL + "/control", body: Data("{\"fault\":\"\(fault)\"}".utf8))
        guard r.status == 200 else { throw HarnessFailure("\(name) /control: HTTP \(r.status)") }
    }

    var output: String { child?.output ?? "" }
}

/// Checks that `node`'s chain is the EL's: block 1 carries the EL genesis state root, and block
/// h+1's `app_hash` is the EL's state root of block h, for every stored height.
func expectAppHashesAreELRoots(_ node: NodeProcess, _ el: TestEL, through height: UInt64,
                               sourceLocation: SourceLocation = #_sourceLocation) async throws {
    guard let first = try await node.block(1) else { throw HarnessFailure("\(node.name) has no block 1") }
    #expect("0x" + first.app_hash == EVMFiles.genesisStateRoot, sourceLocation: sourceLocation)
    guard height >= 2 else { return }
    for h in 1..<height {
        guard let next = try await node.block(h + 1) else { throw HarnessFailure("\(node.name) has no block \(h + 1)") }
        guard let elBlock = try await el.block(h) else { throw HarnessFailure("\(el.name) has no block \(h)") }
        #expect("0x" + next.app_hash == elBlock["stateRoot"] as? String,
                "height \(h): \(node.name)'s app_hash at \(h + 1) is not \(el.name)'s state root", sourceLocation: sourceLocation)
    }
}
