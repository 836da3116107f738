import Primitives
import ArgumentParser
import Store
import Config
import Foundation
import Logging
import RemoteSigner

#if canImport(Glibc)
import Glibc
#endif

/// `evnode signer …`: operations on the signer key's companion state.
struct SignerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signer",
        abstract: "The remote signer (`signer serve`) and operator actions on the signer's state (config/signer.state).",
        subcommands: [SignerServeCommand.self, SignerResetCommand.self])
}

/// `evnode signer reset --home DIR --height N` (SPEC §6): the explicit, logged operator action
/// that sets the signer's high-water mark to N. Lowering the mark accepts the risk that heights
/// above N were signed and will be signed again (a double sign if any of them ever left the
/// machine); it is what unblocks a restored sequencer that failed closed because its mark is
/// above everything DA and its peers could supply.
///
/// Refused while a node runs on the home (exit 2, nothing changed): a running producer reads
/// the mark before every height and would sign heights the reset lifts. The check is the lock
/// `evnode rollback` uses — RocksDB's lock on the store, which a running node holds — and it is
/// held until the new mark is durable, so a node cannot start in between.
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
        // A remote signer's home (`signer serve` keeps its lock file in data/): its mark is
        // data/signer.state, and the serve process's lock is the one that must be free.
        let signerLock = HomeLayout(home: home).home + "/data/signer.lock"
        if FileIO.exists(signerLock) {
            let lock: SignerHomeLock
            do throws(ConfigError) {
                lock = try SignerHomeLock(path: signerLock)
            } catch {
                FileIOStderr.write("error: refusing to reset the remote signer's high-water mark while `evnode signer serve` runs on \(home) (\(error)); stop it first (nothing changed)\n")
                Glibc.exit(ExitStatus.configuration)
            }
            try reset(markPath: HomeLayout(home: home).home + "/data/signer.state", to: height)
            withExtendedLifetime(lock) {}
            return
        }
        let layout = try HomeLayout.configured(home: home, environment: ProcessInfo.processInfo.environment)
        // The mark belongs to a signer: either ev-node's signer.json or an earlier evnode's signer.key.
        guard FileIO.exists(layout.signerJSONFile) || FileIO.exists(layout.signerKeyFile) else {
            throw ConfigError.file(path: layout.signerJSONFile, reason: "no signer key here (nor a legacy signer.key); is --home the sequencer's home?")
        }
        let store = lockStore(layout)
        defer { store?.close() }
        try reset(markPath: layout.signerStateFile, to: height)
    }

    /// Replaces the mark at `markPath` with `height` and says what it overrides; the caller holds
    /// the lock that keeps a signer off it.
    private func reset(markPath: String, to height: UInt64) throws {
        let mark = SignerHighWaterMark(path: markPath)
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
            "path": "\(markPath)", "previous": "\(previous)", "height": "\(height)"])
        print("signer reset: \(markPath)")
        print("  last signed height: \(previous) → \(height)")
        if let lifted {
            // Bounds, not `count`: a crafted mark near 2^64 would overflow a count.
            let heights = lifted.lowerBound == lifted.upperBound ? "height \(lifted.lowerBound)" : "heights \(lifted.lowerBound)…\(lifted.upperBound)"
            print("  the fence over \(heights) is lifted: this key signed them before; if any of those blocks reached DA or a peer, producing again at that height signs a second block (a double sign)")
        }
    }

    /// Takes the store's lock (nil when the home has no store yet: no node has run on it since
    /// its disk was lost, so none holds it). A running node's lock refuses the reset.
    private func lockStore(_ layout: HomeLayout) -> BlockStore? {
        guard FileIO.isDirectory(layout.storeDirectory) else { return nil }
        do throws(StoreError) {
            return try BlockStore.open(path: layout.storeDirectory)
        } catch {
            if case .locked = error {
                FileIOStderr.write("error: refusing to reset the signer's high-water mark while a node runs on \(layout.home) (its store is in use: \(error)); stop the node first (nothing changed)\n")
                Glibc.exit(ExitStatus.configuration)
            }
            FileIOStderr.write("error: cannot open \(layout.storeDirectory) to check that no node runs on this home: \(error) (nothing changed)\n")
            Glibc.exit(1)
        }
    }
}
