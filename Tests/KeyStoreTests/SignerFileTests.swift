import Primitives
import Config
import Foundation
import KeyStore
import Testing
import TestSupport

/// `signer.json` (ev-node's file signer): Argon2id + AES-256-GCM, written and read back, and every
/// way a file or passphrase can be wrong, each with its own error and nothing changed.
@Suite struct SignerFileTests {
    let dir = TempDirectory("evnode-signer")

    func passphraseFile(_ content: String, name: String = "pass") throws -> String {
        let path = dir.sub(name)
        try Data(content.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func passphrase(_ content: String) throws -> Passphrase {
        try Passphrase.read(file: try passphraseFile(content, name: "pass-\(UUID().uuidString)"), for: "signer.json")
    }

    func written(_ key: KeyFile, with text: String = "secret") throws -> String {
        let path = dir.sub("signer-\(UUID().uuidString).json")
        try SignerFile.write(key, passphrase: try passphrase(text), path: path, overwrite: false)
        return path
    }

    func fields(_ path: String) throws -> [String: String] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: String]
    }

    func expectProblem(_ expected: SignerFileError.Problem, path: String, passphrase text: String = "secret") throws {
        let p = try passphrase(text)
        let error = #expect(throws: SignerFileError.self) { try SignerFile.decrypt(path: path, passphrase: p) }
        #expect(error?.problem == expected, "\(String(describing: error))")
        #expect(error?.description.hasPrefix(path + ": ") == true)
        #expect(error?.description.contains("\n") == false)
    }

    @Test func roundTripInEvNodesLayout() throws {
        let key = KeyFile.generate()
        let path = try written(key)
        #expect(FileIO.mode(path) == 0o600)
        let f = try fields(path)
        #expect(Set(f.keys) == ["priv_key_encrypted", "nonce", "pub_key", "salt"])
        #expect(Data(base64Encoded: f["priv_key_encrypted"]!)?.count == 80)
        #expect(Data(base64Encoded: f["nonce"]!)?.count == 12)
        #expect(Data(base64Encoded: f["salt"]!)?.count == 16)
        #expect(Data(base64Encoded: f["pub_key"]!).map(Array.init) == key.publicKey)
        let back = try SignerFile.decrypt(path: path, passphrase: try passphrase("secret"))
        #expect(back.publicKey == key.publicKey)
        #expect(back.privateKey.rawRepresentation == key.privateKey.rawRepresentation)
        // A fresh salt and nonce each time.
        let again = try fields(try written(key))
        #expect(again["salt"] != f["salt"] && again["nonce"] != f["nonce"])
    }

    @Test func wrongPassphraseIsNamed() throws {
        let path = try written(KeyFile.generate())
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        try expectProblem(.wrongPassphraseOrAltered, path: path, passphrase: "Secret")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test(arguments: ["priv_key_encrypted", "nonce", "salt"])
    func oneFlippedByteIsRefused(field: String) throws {
        let path = try written(KeyFile.generate())
        var f = try fields(path)
        var bytes = Array(Data(base64Encoded: f[field]!)!)
        bytes[bytes.count / 2] ^= 0x01
        f[field] = Data(bytes).base64EncodedString()
        try JSONSerialization.data(withJSONObject: f).write(to: URL(fileURLWithPath: path))
        try expectProblem(.wrongPassphraseOrAltered, path: path)
    }

    @Test func truncatedOrDamagedFilesSayWhat() throws {
        let path = try written(KeyFile.generate())
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: path))
        try expectProblem(.damaged("not a JSON object"), path: path)
        try Data().write(to: URL(fileURLWithPath: path))
        try expectProblem(.damaged("the file is empty"), path: path)

        try whole.write(to: URL(fileURLWithPath: path))
        var f = try fields(path)
        let sealed = Array(Data(base64Encoded: f["priv_key_encrypted"]!)!)
        f["priv_key_encrypted"] = Data(sealed.prefix(70)).base64EncodedString()
        try JSONSerialization.data(withJSONObject: f).write(to: URL(fileURLWithPath: path))
        try expectProblem(.damaged("\"priv_key_encrypted\" is 70 bytes; an encrypted Ed25519 key is 80"), path: path)
        f = try JSONSerialization.jsonObject(with: whole) as! [String: String]
        f["nonce"] = "not base64!"
        try JSONSerialization.data(withJSONObject: f).write(to: URL(fileURLWithPath: path))
        try expectProblem(.damaged("\"nonce\" is not standard base64"), path: path)
        f = try JSONSerialization.jsonObject(with: whole) as! [String: String]
        f.removeValue(forKey: "pub_key")
        try JSONSerialization.data(withJSONObject: f).write(to: URL(fileURLWithPath: path))
        try expectProblem(.damaged("\"pub_key\" is missing"), path: path)
    }

    @Test func legacyFileWithoutSaltIsRefusedWithTheWayOut() throws {
        let path = try written(KeyFile.generate())
        var f = try fields(path)
        f.removeValue(forKey: "salt")
        try JSONSerialization.data(withJSONObject: f).write(to: URL(fileURLWithPath: path))
        try expectProblem(.legacyWithoutSalt, path: path)
        let p = try passphrase("secret")
        let error = #expect(throws: SignerFileError.self) { try SignerFile.decrypt(path: path, passphrase: p) }
        #expect(error?.description.contains("evnode keys import") == true)
        f["salt"] = ""   // ev-node treats an empty salt as absent
        try JSONSerialization.data(withJSONObject: f).write(to: URL(fileURLWithPath: path))
        try expectProblem(.legacyWithoutSalt, path: path)
    }

    @Test func publicKeyFieldMustMatchTheEncryptedKey() throws {
        let path = try written(KeyFile.generate())
        var f = try fields(path)
        f["pub_key"] = Data(KeyFile.generate().publicKey).base64EncodedString()
        try JSONSerialization.data(withJSONObject: f).write(to: URL(fileURLWithPath: path))
        try expectProblem(.publicKeyMismatch("pub_key is not the public key of the encrypted private key"), path: path)
    }

    /// ev-node reads the passphrase file with Go's strings.TrimSpace: "secret\n" is "secret".
    @Test func passphraseIsTrimmedAsGoTrimsIt() throws {
        let key = KeyFile.generate()
        let path = try written(key, with: "secret")
        for text in ["secret\n", "  secret\r\n", "\tsecret\u{0B}\u{0C}", "\u{00A0}secret\u{3000}", "\u{85}secret\u{2009}"] {
            #expect(try SignerFile.decrypt(path: path, passphrase: try passphrase(text)).publicKey == key.publicKey,
                    "\(Array(text.utf8))")
        }
        // Inner white space is kept; U+001C is not space to Go (Python's strip would drop it).
        try expectProblem(.wrongPassphraseOrAltered, path: path, passphrase: "sec ret")
        try expectProblem(.wrongPassphraseOrAltered, path: path, passphrase: "secret\u{1C}")
        #expect(GoTrimSpace.trim(Array("\u{1C}x\u{1F}".utf8)) == Array("\u{1C}x\u{1F}".utf8))
        // An invalid UTF-8 byte stops the trim from its side (Go decodes it as U+FFFD).
        #expect(GoTrimSpace.trim([0x20, 0xFF, 0x20, 0x61, 0x0A]) == [0xFF, 0x20, 0x61])
        #expect(GoTrimSpace.trim([0x61, 0xC2]) == [0x61, 0xC2])
        #expect(GoTrimSpace.trim(Array(" \n\t".utf8)) == [])
    }

    @Test func passphraseFileProblemsNameTheFile() throws {
        let missing = dir.sub("no-such-file")
        var error = #expect(throws: SignerFileError.self) { try Passphrase.read(file: missing, for: "s.json") }
        #expect(error?.problem == .passphraseFileMissing(missing))
        let empty = try passphraseFile(" \n\t ", name: "empty")
        error = #expect(throws: SignerFileError.self) { try Passphrase.read(file: empty, for: "s.json") }
        #expect(error?.problem == .passphraseFileEmpty(empty))
        error = #expect(throws: SignerFileError.self) { try Passphrase.read(file: "", for: "s.json") }
        #expect(error?.problem == .passphraseFileNotGiven)
        let unreadable = try passphraseFile("secret", name: "unreadable")
        chmod(unreadable, 0)
        defer { chmod(unreadable, 0o600) }
        if getuid() != 0 {   // root reads anything
            error = #expect(throws: SignerFileError.self) { try Passphrase.read(file: unreadable, for: "s.json") }
            #expect(error?.description.contains("cannot read passphrase file \(unreadable)") == true)
        }
        let folder = dir.sub("a-folder")
        try FileIO.makeDirectories(folder)
        error = #expect(throws: SignerFileError.self) { try Passphrase.read(file: folder, for: "s.json") }
        #expect(error?.description.contains("cannot read passphrase file \(folder)") == true)
    }

    @Test func writeRefusesToReplaceUnlessAsked() throws {
        let path = try written(KeyFile.generate())
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let p = try passphrase("secret")
        let error = #expect(throws: SignerFileError.self) {
            try SignerFile.write(KeyFile.generate(), passphrase: p, path: path, overwrite: false)
        }
        #expect(error?.problem == .alreadyExists)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        let other = KeyFile.generate()
        try SignerFile.write(other, passphrase: p, path: path, overwrite: true)
        #expect(try SignerFile.decrypt(path: path, passphrase: p).publicKey == other.publicKey)
        #expect(FileIO.mode(path) == 0o600)
    }

    /// A known answer computed with argon2-cffi (PyPI), the parameters ev-node uses.
    @Test func argon2idKnownAnswerAndCost() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let key = try Argon2id.deriveKey(passphrase: Array("correct horse battery staple".utf8), salt: Array(0..<16))
        let took = clock.now - start
        #expect(Hex.encode(key) == "ee2dfb135998b02926082487668738142ee9525c4864b1178b474976ed30033a")
        print("Argon2id(t=3, m=32 MiB, p=4) derive: \(took)")
    }
}

/// The node's signer: signer.json by `signer_path`, the passphrase rules of ev-node, the legacy key.
@Suite struct SignerKeyStoreTests {
    let dir = TempDirectory("evnode-keystore")

    func config(aggregator: Bool, passphraseFile: String = "", path: String = "config") -> NodeConfig {
        var c = try! ConfigLoader.resolve(home: dir.path, file: [:], flags: [:])
        c.aggregator = aggregator
        c.signer.passphraseFile = passphraseFile
        c.signer.path = path
        return c
    }

    @Test func signerPathIsResolvedAgainstTheHome() {
        let layout = HomeLayout(home: "/h")
        var s = SignerConfig()
        #expect(SignerKeyStore.signerFilePath(layout: layout, config: s) == "/h/config/signer.json")
        s.path = "keys/"
        #expect(SignerKeyStore.signerFilePath(layout: layout, config: s) == "/h/keys/signer.json")
        s.path = "/abs/dir/signer.json"
        #expect(SignerKeyStore.signerFilePath(layout: layout, config: s) == "/abs/dir/signer.json")
    }

    @Test func aggregatorNeedsThePassphraseAndAFullNodeDoesNot() throws {
        let layout = HomeLayout(home: dir.path)
        try FileIO.makeDirectories(layout.configDirectory)
        let pass = dir.sub("pass")
        try Data("pw\n".utf8).write(to: URL(fileURLWithPath: pass))
        let key = try SignerKeyStore.importKey(raw: RawEd25519.bytes(of: KeyFile.generate()), layout: layout,
                                               passphraseFile: pass, force: false)
        let error = #expect(throws: ConfigError.self) {
            try SignerKeyStore.loadForStart(layout: layout, config: config(aggregator: true))
        }
        #expect(error?.description.contains("--evnode.signer.passphrase_file") == true)
        #expect(try SignerKeyStore.loadForStart(layout: layout, config: config(aggregator: false)) == nil)
        let loaded = try SignerKeyStore.loadForStart(layout: layout, config: config(aggregator: true, passphraseFile: pass))
        #expect(loaded?.key.publicKey == key.publicKey && loaded?.notice == nil)
        // Elsewhere by signer_path: moved there, found there.
        try FileIO.makeDirectories(dir.sub("keys"))
        try FileManager.default.moveItem(atPath: layout.configDirectory + "/signer.json", toPath: dir.sub("keys/signer.json"))
        let moved = try SignerKeyStore.loadForStart(layout: layout, config: config(aggregator: true, passphraseFile: pass, path: "keys"))
        #expect(moved?.path == dir.sub("keys/signer.json"))
        #expect(throws: ConfigError.self) {
            try SignerKeyStore.loadForStart(layout: layout, config: config(aggregator: true, passphraseFile: pass))
        }
    }

    @Test func legacyKeyStartsWithANoticeAndConverts() throws {
        let layout = HomeLayout(home: dir.path)
        try FileIO.makeDirectories(layout.configDirectory)
        let legacy = KeyFile.generate()
        try legacy.save(path: layout.signerKeyFile)
        let loaded = try SignerKeyStore.loadForStart(layout: layout, config: config(aggregator: true))
        #expect(loaded?.key.publicKey == legacy.publicKey)
        #expect(loaded?.notice?.contains("evnode migrate-home --home \(dir.path)") == true)
        let pass = dir.sub("pass")
        try Data("pw".utf8).write(to: URL(fileURLWithPath: pass))
        let written = try SignerKeyStore.convertLegacy(layout: layout, passphraseFile: pass)
        #expect(FileIO.mode(written) == 0o600)
        let after = try SignerKeyStore.loadForStart(layout: layout, config: config(aggregator: true, passphraseFile: pass))
        #expect(after?.key.publicKey == legacy.publicKey && after?.notice == nil && after?.path == written)
        #expect(throws: ConfigError.self) { try SignerKeyStore.convertLegacy(layout: layout, passphraseFile: pass) }
    }

    /// With the remote signer (issue 29) the home holds no key: nothing is loaded, even when a
    /// signer.json is there.
    @Test func grpcSignerLoadsNoKeyFromTheHome() throws {
        var c = config(aggregator: true)
        c.signer.kind = .grpc
        #expect(try SignerKeyStore.loadForStart(layout: HomeLayout(home: dir.path), config: c) == nil)
    }

    @Test func exportAndImportAreInverse() throws {
        let layout = HomeLayout(home: dir.path)
        let pass = dir.sub("pass")
        try Data("pw".utf8).write(to: URL(fileURLWithPath: pass))
        let raw = RawEd25519.bytes(of: KeyFile.generate())
        try SignerKeyStore.importKey(raw: raw, layout: layout, passphraseFile: pass, force: false)
        #expect(try SignerKeyStore.export(layout: layout, passphraseFile: pass) == raw)
        let other = RawEd25519.bytes(of: KeyFile.generate())
        let error = #expect(throws: SignerFileError.self) {
            try SignerKeyStore.importKey(raw: other, layout: layout, passphraseFile: pass, force: false)
        }
        #expect(error?.problem == .alreadyExists)
        #expect(try SignerKeyStore.export(layout: layout, passphraseFile: pass) == raw)
        var mixed = raw
        mixed[40] ^= 1   // a public half that is not the seed's
        #expect(throws: SignerFileError.self) {
            try SignerKeyStore.importKey(raw: mixed, layout: layout, passphraseFile: pass, force: true)
        }
        #expect(try SignerKeyStore.export(layout: layout, passphraseFile: pass) == raw)
        try SignerKeyStore.importKey(raw: other, layout: layout, passphraseFile: pass, force: true)
        #expect(try SignerKeyStore.export(layout: layout, passphraseFile: pass) == other)
    }
}
