import Primitives
import Crypto
import Foundation
import ProcessKit
import RemoteSigner
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A SoftHSM2 token in a temp directory of its own (SOFTHSM2_CONF), initialised and given an
/// Ed25519 key pair with the token's own tools (softhsm2-util, OpenSC's pkcs11-tool).
struct SoftHSMToken {
    static let module = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
    static let util = URL(fileURLWithPath: "/usr/bin/softhsm2-util")
    static let tool = URL(fileURLWithPath: "/usr/bin/pkcs11-tool")
    static var installed: Bool {
        [module, util.path, tool.path].allSatisfy { FileManager.default.fileExists(atPath: $0) }
    }

    let directory: String
    let label = "evnode-signer"
    let pin = "482913"
    var config: String { directory + "/softhsm2.conf" }
    var pinFile: String { directory + "/pin" }
    var environment: [String: String] { ["SOFTHSM2_CONF": config] }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory + "/tokens", withIntermediateDirectories: true)
        try "directories.tokendir = \(directory)/tokens\nobjectstore.backend = file\nlog.level = ERROR\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        try "\(pin)\n".write(toFile: pinFile, atomically: true, encoding: .utf8)
        try run(Self.util, ["--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "5551212"])
    }

    @discardableResult
    func run(_ tool: URL, _ arguments: [String]) throws -> String {
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let r = try runCommand(tool, arguments, environment: env)
        guard r.status == 0 else { throw TestFailure("\(tool.lastPathComponent) \(arguments.first ?? ""): \(r.stderr)\(r.stdout)") }
        return r.stdout
    }

    /// A key pair made inside the token (`--key-type EC:edwards25519` or another); returns the
    /// raw public key the token reports (EC_POINT, DER OCTET STRING `04 20 …`).
    func generateKey(label keyLabel: String, type: String = "EC:edwards25519") throws -> [UInt8] {
        try run(Self.tool, ["--module", Self.module, "--token-label", label, "--login", "--pin", pin,
                            "--keypairgen", "--key-type", type, "--label", keyLabel])
        let listing = try run(Self.tool, ["--module", Self.module, "--token-label", label, "--login", "--pin", pin,
                                          "--list-objects", "--type", "pubkey", "--label", keyLabel])
        guard let line = listing.split(separator: "\n").first(where: { $0.contains("EC_POINT:") }),
              let hex = line.split(separator: " ").last else { throw TestFailure("no EC_POINT in \(listing)") }
        let der = try #require(Hex.decode(String(hex)))
        return Array(der.suffix(from: 2))
    }
}

@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: SoftHSMToken.installed, "softhsm2 and opensc are not installed (`make deps`)"))
struct PKCS11SignerTests {
    /// A node produces through `signer serve` whose key is an Ed25519 key in a SoftHSM2 token
    /// (created by pkcs11-tool, never outside the token): the signer's public key is the
    /// token's, a full node accepts every block (it checks each signature against the genesis
    /// proposer, the token's key), and the header kept at the mark verifies under it.
    @Test func aNodeProducesThroughATokensKey() async throws {
        try await Testnet.run(chainID: "pkcs11") { net in
            try await net.startDA()
            let token = try SoftHSMToken(directory: net.dir.sub("softhsm"))
            let publicKey = try token.generateKey(label: "block-key")
            #expect(publicKey.count == 32)

            let seq = try net.makeNode(name: "seq", aggregator: true, blockTime: "100ms")
            try FileManager.default.removeItem(atPath: seq.layout.signerJSONFile)
            // The chain's proposer is the token's key.
            let address = Array(SHA256.hash(data: publicKey))
            var genesis = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: seq.layout.genesisFile))) as! [String: Any]
            genesis["proposer_address"] = Data(address).base64EncodedString()
            try JSONSerialization.data(withJSONObject: genesis).write(to: URL(fileURLWithPath: seq.layout.genesisFile))
            let home = net.dir.sub("signer")
            try FileManager.default.createDirectory(atPath: home + "/config", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: seq.layout.genesisFile, toPath: home + "/config/genesis.json")
            let tokenFile = net.dir.sub("signer-token")
            try "pkcs11-test-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)

            let serve = ["signer", "serve", "--home", home, "--listen", "127.0.0.1:0", "--token-file", tokenFile,
                         "--pkcs11-module", SoftHSMToken.module, "--pkcs11-token", token.label,
                         "--pkcs11-key-label", "block-key", "--pkcs11-pin-file", token.pinFile]
            let signer = try net.startProcess(name: "signer", executable: BuiltProducts.evnode, arguments: serve,
                                              environment: token.environment)
            let port = try await signer.waitForLine("the signer to listen") { line -> Int? in
                guard line.hasPrefix("listening on 127.0.0.1:") else { return nil }
                return Int(line.dropFirst("listening on 127.0.0.1:".count))
            }
            let full = try net.makeNode(name: "full", peers: [seq], genesisFrom: seq)
            try await seq.start(flags: seq.flags + ["--evnode.signer.signer_type", "grpc",
                                                    "--evnode.signer.grpc_address", "127.0.0.1:\(port)",
                                                    "--evnode.signer.grpc_token_file", tokenFile])
            try await full.start()
            try await seq.produceBlocksWithTxs(2, tag: "hsm")
            try await full.waitForHeight(8)
            try await expectSameChain(seq, full, through: 8)
            #expect(try await full.status().evidence == 0)

            let client = try RemoteSignerClient(host: "127.0.0.1", port: port, token: "pkcs11-test-token", tls: nil)
            defer { client.close() }
            #expect(try await client.publicKey() == publicKey)
            let mark = try await client.mark(withBlock: true)
            let kept = try #require(mark.signedHeader)
            let key = try Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
            #expect(key.isValidSignature(kept.signature, for: kept.header.encoded()))
            #expect(kept.header.proposerAddress == address)
            // No file key anywhere: the signer's home holds none, nor does the node's.
            #expect(!FileManager.default.fileExists(atPath: home + "/config/signer.json"))
            #expect(!FileManager.default.fileExists(atPath: seq.layout.signerJSONFile))
        }
    }

    /// Each way a token can be unusable is one line naming it, exit 2, before anything serves:
    /// module missing, token not found, wrong PIN, key not found, key not Ed25519.
    @Test func anUnusableTokenIsOneLineAndExitTwo() async throws {
        let dir = TempDirectory("evnode-pkcs11")
        let token = try SoftHSMToken(directory: dir.sub("softhsm"))
        _ = try token.generateKey(label: "block-key")
        _ = try token.generateKey(label: "p256-key", type: "EC:prime256v1")
        let home = dir.sub("signer")
        try FileManager.default.createDirectory(atPath: home + "/config", withIntermediateDirectories: true)
        let wrongPIN = dir.sub("wrong-pin")
        try "000000\n".write(toFile: wrongPIN, atomically: true, encoding: .utf8)

        func serve(module: String = SoftHSMToken.module, token label: String = token.label, key: String = "block-key",
                   pin: String = token.pinFile) throws -> CommandResult {
            let env = ProcessInfo.processInfo.environment.merging(token.environment) { $1 }
            return try runCommand(BuiltProducts.evnode, [
                "signer", "serve", "--home", home, "--chain-id", "pkcs11", "--listen", "127.0.0.1:0",
                "--pkcs11-module", module, "--pkcs11-token", label, "--pkcs11-key-label", key, "--pkcs11-pin-file", pin,
            ], environment: env)
        }
        let cases: [(String, CommandResult)] = [
            ("PKCS#11 module /nonexistent/libpkcs11.so cannot be loaded", try serve(module: "/nonexistent/libpkcs11.so")),
            ("PKCS#11 token \"no-such-token\" not found", try serve(token: "no-such-token")),
            ("PKCS#11 token \"\(token.label)\" refused the login", try serve(pin: wrongPIN)),
            ("PKCS#11 key \"no-such-key\" not found on token", try serve(key: "no-such-key")),
            ("PKCS#11 key \"p256-key\" is not an Ed25519 key", try serve(key: "p256-key")),
        ]
        for (expected, result) in cases {
            let lines = result.stderr.split(separator: "\n")
            #expect(result.status == 2 && lines.count == 1 && result.stderr.contains(expected),
                    "expected \(expected): status \(result.status), \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: home + "/data/signer.state"))
    }
}
