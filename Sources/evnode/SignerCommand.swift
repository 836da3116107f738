import ArgumentParser
import Config
import Logging

/// `evnode signer …`: operations on the signer key's companion state.
struct SignerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signer",
        abstract: "Operator actions on the signer's state (config/signer.state).",
        subcommands: [SignerResetCommand.self])
}

/// `evnode signer reset --home DIR --height N` (SPEC §6): the explicit, logged operator action
/// that sets the signer's high-water mark to N. Lowering the mark accepts the risk that heights
/// above N were signed and will be signed again (a double sign if any of them ever left the
/// machine); it is what unblocks a restored sequencer that failed closed because its mark is
/// above everything DA and its peers could supply. Stop the node first.
struct SignerResetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Set the signer's high-water mark (last signed height) to --height, accepting the risk of signing heights above it again.")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Option(name: .customLong("height"),
            help: "The last height this key is to be considered to have signed (required; usually the height the store or DA holds)")
    var height: UInt64?

    func run() throws {
        guard let height else {
            throw ConfigError.missing("evnode signer reset needs --height N: the last height this key is to be considered to have signed; heights above N may then be signed again")
        }
        let layout = HomeLayout(home: home)
        guard FileIO.exists(layout.signerKeyFile) else {
            throw ConfigError.file(path: layout.signerKeyFile, reason: "no signer key here; is --home the sequencer's home?")
        }
        let mark = SignerHighWaterMark(path: layout.signerStateFile)
        let previous: String
        var lifted: ClosedRange<UInt64>?
        do throws(ConfigError) {
            if let old = try mark.load() {
                previous = "\(old)"
                if old > height { lifted = (height + 1)...old }
            } else {
                previous = "none"
            }
        } catch {
            // A damaged file is exactly what an operator may need to replace; say what it was.
            previous = "unreadable (\(error))"
        }
        try mark.replace(with: height)

        LogBootstrap.bootstrap(level: "info", format: .text)
        Logger(label: "evnode.signer").warning("signer high-water mark reset by operator", metadata: [
            "path": "\(layout.signerStateFile)", "previous": "\(previous)", "height": "\(height)"])
        print("signer reset: \(layout.signerStateFile)")
        print("  last signed height: \(previous) → \(height)")
        if let lifted {
            let heights = lifted.count == 1 ? "height \(lifted.lowerBound)" : "heights \(lifted.lowerBound)…\(lifted.upperBound)"
            print("  the fence over \(heights) is lifted: this key signed them before; if any of those blocks reached DA or a peer, producing again at that height signs a second block (a double sign)")
        }
    }
}
