import Primitives
import LocalDA
import ArgumentParser
import Config
import Logging
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `evnode local-da`: a Celestia-style blob DA node for development, tests and the demo
/// (SPEC §5). Prints `listening on <host:port>` on stdout once it accepts requests.
struct LocalDACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local-da",
        abstract: "Run a local DA node serving the Celestia blob JSON-RPC API, persisted in RocksDB.")

    @Option(name: .customLong("home"), help: "Directory of the local DA's database")
    var home: String = "./local-da"

    @Option(name: .customLong("listen"), help: "Address to serve on (host:port; port 0 picks a free one)")
    var listen: String = "127.0.0.1:7980"

    @Option(name: .customLong("block-time"), help: "An empty DA block is added this often")
    var blockTime: String = "1s"

    @Option(name: .customLong("max-blob-size"), help: "Most bytes of blob data one blob.Submit may carry")
    var maxBlobSize: Int = 1_500_000

    @Option(name: .customLong("auth-token"), help: "Require 'Authorization: Bearer <token>' (empty: no auth)")
    var authToken: String = ""

    @Option(name: .customLong("response-delay"), help: "For testing: delay every answer by this long (emulates a slow DA)")
    var responseDelay: String = "0"

    @Option(name: .customLong("min-gas-price"), help: "Refuse submissions offering a lower gas price (utia per gas unit), with celestia-node's error text (0: any)")
    var minGasPrice: Double = 0

    @Flag(name: .customLong("subscribe"), inversion: .prefixedNo, help: "Serve blob.Subscribe over WebSocket")
    var subscribe: Bool = true

    @Option(name: .customLong("log.level"), help: "trace, debug, info, notice, warning, error or critical")
    var logLevel: String = "info"

    @Option(name: .customLong("log.format"), help: "text or json")
    var logFormat: String = "text"

    func options() throws(ConfigError) -> LocalDAOptions {
        let listenAddress: HostPort
        do {
            listenAddress = try HostPort(parsing: listen, allowPortZero: true)
        } catch {
            throw .invalidValue(field: "listen address (--listen)", value: listen, source: "command line", reason: error.description)
        }
        func duration(_ text: String, _ field: String) throws(ConfigError) -> Duration {
            do {
                return try DurationParser.duration(text)
            } catch {
                throw .invalidValue(field: field, value: text, source: "command line", reason: error.description)
            }
        }
        let block = try duration(blockTime, "block time (--block-time)")
        guard block > .zero else {
            throw .invalidValue(field: "block time (--block-time)", value: blockTime, source: "command line", reason: "must be above zero")
        }
        let delay = try duration(responseDelay, "response delay (--response-delay)")
        guard maxBlobSize >= 1, maxBlobSize <= 1 << 30 else {
            throw .invalidValue(field: "max blob size (--max-blob-size)", value: String(maxBlobSize), source: "command line",
                                reason: "must be between 1 and \(1 << 30) bytes")
        }
        guard minGasPrice >= 0, minGasPrice.isFinite else {
            throw .invalidValue(field: "min gas price (--min-gas-price)", value: String(minGasPrice), source: "command line",
                                reason: "must be a number ≥ 0")
        }
        var options = LocalDAOptions(home: home, listen: listenAddress, blockTime: block, maxBlobSize: maxBlobSize,
                                     authToken: authToken, responseDelay: delay)
        options.minGasPrice = minGasPrice
        options.subscribe = subscribe
        return options
    }

    func run() async throws {
        let options = try options()
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ConfigError.invalidValue(field: "log level (--log.level)", value: logLevel, source: "command line",
                                           reason: "use trace, debug, info, notice, warning, error or critical")
        }
        guard let format = LogFormat(rawValue: logFormat) else {
            throw ConfigError.invalidValue(field: "log format (--log.format)", value: logFormat, source: "command line",
                                           reason: "use text or json")
        }
        LogBootstrap.bootstrap(level: logLevel, format: format)
        let logger = Logger(label: "evnode.local-da")
        let server: LocalDAServer
        do {
            server = try LocalDAServer(options: options, logger: logger) { address in
                // Tests and scripts read this line to learn the bound port.
                StandardOutput.writeLine("listening on \(address)")
            }
        } catch {
            throw ConfigError.file(path: options.home, reason: error.description)
        }
        try await server.run(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}

/// Unbuffered stdout lines: a pipe reader sees them at once, not when a buffer fills.
enum StandardOutput {
    static func writeLine(_ text: String) {
        var bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(1, $0.baseAddress, $0.count) }
    }
}
