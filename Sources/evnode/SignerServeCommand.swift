import Primitives
import ArgumentParser
import Config
import Crypto
import Foundation
import KeyStore
import Logging
import RemoteSigner
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `evnode signer serve` (issue 29): the key and its high-water mark in a process of their own,
/// serving ev-node's `evnode.v1.SignerService` and evnode's `SignerMarkService` over gRPC. It
/// signs only what it can place (`SignerFence`), so its fence holds whatever the node asks.
struct SignerServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the signer key (DIR/config/signer.json, or a key in a PKCS#11 token) over gRPC, with its own high-water mark under DIR/data.")

    @Option(name: .customLong("home"), help: "The signer's home: config/signer.json (and config/genesis.json for the chain id), data/ for its mark")
    var home: String

    @Option(name: .customLong("listen"), help: "host:port to serve gRPC on; loopback unless TLS is given (port 0: any free port)")
    var listen: String = "127.0.0.1:7950"

    @Option(name: .customLong("passphrase-file"), help: "File whose content (surrounding whitespace trimmed) unlocks signer.json (the file key; not with --pkcs11-*)")
    var passphraseFile: String?

    @Option(name: .customLong("pkcs11-module"), help: "PKCS#11 instead of signer.json: the token's module, a shared library (e.g. /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so); the key never leaves the token")
    var pkcs11Module: String?

    @Option(name: .customLong("pkcs11-token"), help: "PKCS#11: the label of the token that holds the key")
    var pkcs11Token: String?

    @Option(name: .customLong("pkcs11-key-label"), help: "PKCS#11: the label (CKA_LABEL) of the Ed25519 key pair on the token")
    var pkcs11KeyLabel: String?

    @Option(name: .customLong("pkcs11-pin-file"), help: "PKCS#11: file whose content (surrounding whitespace trimmed) is the token's user PIN")
    var pkcs11PinFile: String?

    @Option(name: .customLong("token-file"), help: "File whose content is the bearer token every client must send")
    var tokenFile: String?

    @Option(name: .customLong("chain-id"), help: "The chain this signer signs for (default: chain_id of DIR/config/genesis.json)")
    var chainID: String?

    @Option(name: .customLong("tls-cert"), help: "Mutual TLS: this signer's certificate (PEM)")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "Mutual TLS: this signer's private key (PEM)")
    var tlsKey: String?

    @Option(name: .customLong("tls-client-ca"), help: "Mutual TLS: the CA client certificates must chain to (PEM)")
    var tlsClientCA: String?

    @Option(name: .customLong("metrics-listen"), help: "host:port for GET /metrics (Prometheus text); off when not given")
    var metricsListen: String?

    @Option(name: .customLong("log.level"), help: "trace, debug, info, notice, warning, error or critical")
    var logLevel: String = "info"

    /// The crash test's hook: the process kills itself with SIGKILL once the mark for this
    /// height is durable and before the signature is answered.
    @Option(name: .customLong("crash-after-mark"), help: .hidden)
    var crashAfterMark: UInt64?

    /// The HA test's hook: when this file exists as a header's mark becomes durable, the file is
    /// removed, `holding the answer for height H` is printed, and the answer waits (as does every
    /// other request: the fence is one thread) until `FILE.release` exists, at most 60 s. The
    /// test kills the leader meanwhile: the signer signed H, the leader never learnt it.
    @Option(name: .customLong("hold-after-mark-when"), help: .hidden)
    var holdAfterMarkWhen: String?

    func run() async throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ConfigError.invalidValue(field: "log level (--log.level)", value: logLevel, source: "command line",
                                           reason: "use trace, debug, info, notice, warning, error or critical")
        }
        let address: HostPort
        do {
            address = try HostPort(parsing: listen, allowPortZero: true)
        } catch {
            throw ConfigError.invalidValue(field: "--listen", value: listen, source: "command line", reason: "\(error)")
        }
        let tlsGiven = [tlsCert, tlsKey, tlsClientCA].compactMap { $0 }
        guard tlsGiven.isEmpty || tlsGiven.count == 3 else {
            throw ConfigError.missing("mutual TLS needs all of --tls-cert, --tls-key and --tls-client-ca")
        }
        let tls = tlsGiven.isEmpty ? nil : SignerTLSFiles(certificate: tlsCert!, key: tlsKey!, clientCA: tlsClientCA!)
        if tls == nil, !HostPort.isLoopbackHost(address.host) {
            throw ConfigError.conflict(SignerServer.StartError.notLoopbackWithoutTLS("\(address)").description)
        }
        let layout = HomeLayout(home: home)
        guard FileIO.isDirectory(layout.home) else {
            throw ConfigError.missing("signer home \(layout.home) does not exist")
        }
        let chain = try chainID ?? Genesis.load(path: layout.genesisFile).chainID
        let token = try tokenFile.map { path throws(ConfigError) in try SignerToken.read(path) }
        LogBootstrap.bootstrap(level: logLevel, format: .text)
        let logger = Logger(label: "evnode.signer")

        let dataDirectory = layout.home + "/data"
        do {
            try FileIO.makeDirectories(dataDirectory, mode: 0o700)
        } catch {
            throw ConfigError.file(path: error.path, reason: error.description)
        }
        let source = try keySource()
        let lock = try SignerHomeLock(path: dataDirectory + "/signer.lock")
        // Unlocked after the lock: a second serve on this home stops before the Argon2id work
        // (or before it logs in to the token).
        let key: any SignerKey
        switch source {
        case .file(let passphraseFile):
            do {
                let passphrase = try Passphrase.read(file: passphraseFile, for: layout.signerJSONFile)
                key = FileSignerKey(try SignerFile.decrypt(path: layout.signerJSONFile, passphrase: passphrase).privateKey)
            } catch {
                throw ConfigError(error)
            }
        case let .pkcs11(module, token, label, pinFile):
            let pin = try PINFile.read(pinFile)
            do throws(PKCS11Error) {
                key = try PKCS11Key(module: module, token: token, keyLabel: label, pin: pin)
            } catch {
                throw ConfigError.conflict(error.description)
            }
        }
        let crashAt = crashAfterMark
        let holdFile = holdAfterMarkWhen
        var afterMark: (@Sendable (UInt64) -> Void)?
        if crashAt != nil || holdFile != nil {
            afterMark = { height in
                if height == crashAt { _ = kill(getpid(), SIGKILL) }
                if let holdFile { Self.hold(height, trigger: holdFile) }
            }
        }
        let fence = SignerFence(key: key, chainID: chain, markPath: dataDirectory + "/signer.state",
                                afterMarkDurable: afterMark)
        let metrics = SignerMetrics()
        let mark: SignerFence.Mark?
        do throws(SignRefusal) {
            mark = try fence.mark()
        } catch {
            throw ConfigError.file(path: dataDirectory + "/signer.state", reason: error.description)
        }
        if let mark { metrics.mark.set(mark.height) }

        let server: SignerServer
        do throws(SignerServer.StartError) {
            server = try SignerServer(fence: fence, host: address.host, port: address.port, token: token.map { Array($0.utf8) },
                                      tls: tls, metrics: metrics, logger: logger)
        } catch {
            throw ConfigError.conflict(error.description)
        }
        var metricsListener: MetricsListener?
        if let metricsListen {
            let where_: HostPort
            do {
                where_ = try HostPort(parsing: metricsListen, allowPortZero: true)
            } catch {
                throw ConfigError.invalidValue(field: "--metrics-listen", value: metricsListen, source: "command line", reason: "\(error)")
            }
            do {
                metricsListener = try await MetricsListener(host: where_.host, port: where_.port) { metrics.prometheus() }
            } catch {
                throw ConfigError.conflict("--metrics-listen \(metricsListen): cannot listen: \(error)")
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                    logger.notice("signer stopping (signal)")
                    server.stop()
                    return
                }
            }
            // A listener that cannot bind (the port taken, an address not on this machine) is a
            // start failure like a bad flag: exit 2 with one line, as the README's table says.
            let port: Int
            do {
                port = try await server.listeningPort()
            } catch {
                throw ConfigError.conflict(SignerServer.StartError.listen("\(address.host):\(address.port)", "\(error)").description)
            }
            logger.notice("signer serving", metadata: [
                "listen": "\(address.host):\(port)", "chain_id": "\(chain)", "proposer": "\(Hex.encode(fence.signer.address))",
                "mark": "\(mark.map { String($0.height) } ?? "none")", "tls": "\(tls != nil)", "token": "\(token != nil)",
                "key": "\(source.summary)",
                "lock": "\(lock.path)"])
            // Tests and scripts read these lines to learn the bound ports.
            StandardOutput.writeLine("listening on \(address.host):\(port)")
            if let metricsListener { StandardOutput.writeLine("metrics on \(address.host):\(metricsListener.port)") }
            try await group.next()
            group.cancelAll()
        }
        await metricsListener?.close()
        withExtendedLifetime(lock) {}
    }

    /// Where the key is: signer.json (unlocked by the passphrase file) or a PKCS#11 token.
    enum KeySource {
        case file(passphraseFile: String)
        case pkcs11(module: String, token: String, label: String, pinFile: String)

        var summary: String {
            switch self {
            case .file: return "config/signer.json"
            case let .pkcs11(module, token, label, _): return "PKCS#11 module=\(module) token=\(token) label=\(label)"
            }
        }
    }

    private func keySource() throws(ConfigError) -> KeySource {
        let pkcs11 = [pkcs11Module, pkcs11Token, pkcs11KeyLabel, pkcs11PinFile]
        let given = pkcs11.compactMap { $0 }.count
        if given == 0 {
            guard let passphraseFile else {
                throw .missing("signer serve needs --passphrase-file (the key in config/signer.json) or --pkcs11-module, --pkcs11-token, --pkcs11-key-label and --pkcs11-pin-file (a key in a PKCS#11 token)")
            }
            return .file(passphraseFile: passphraseFile)
        }
        guard given == pkcs11.count, let module = pkcs11Module, let token = pkcs11Token,
              let label = pkcs11KeyLabel, let pinFile = pkcs11PinFile else {
            throw .missing("a PKCS#11 key needs all of --pkcs11-module, --pkcs11-token, --pkcs11-key-label and --pkcs11-pin-file")
        }
        if passphraseFile != nil {
            throw .conflict("--passphrase-file unlocks signer.json; with a PKCS#11 key (--pkcs11-*) there is no file key: give one or the other")
        }
        return .pkcs11(module: module, token: token, label: label, pinFile: pinFile)
    }

    /// `--hold-after-mark-when`: on the fence's own thread, which may block.
    private static func hold(_ height: UInt64, trigger: String) {
        guard FileManager.default.fileExists(atPath: trigger) else { return }
        try? FileManager.default.removeItem(atPath: trigger)
        StandardOutput.writeLine("holding the answer for height \(height)")
        let release = trigger + ".release"
        let deadline = ContinuousClock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: release), ContinuousClock.now < deadline {
            usleep(10_000)
        }
        try? FileManager.default.removeItem(atPath: release)
    }
}
