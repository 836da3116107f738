import Primitives
import ArgumentParser
import Chain
import Store
import Execution
import Config
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `evnode rollback --home DIR --height N`: the operator's rollback (SPEC §9). Removes blocks
/// N+1… and undoes their executor state in one atomic store write. Refused below the finalized
/// height (finality never goes back) and while the node runs (the store is locked). The next
/// `evnode start` continues from N: DA and peers supply the blocks above it again.
///
/// Exit status 0 when rolled back (or already at N), 2 when refused (nothing changed), 1 when the
/// store failed.
struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Roll the stopped node's store and state back to a height (never below the finalized height).")

    @Option(name: .customLong("home"), help: "Node home directory")
    var home: String = "./evnode-home"

    @Option(name: .customLong("height"), help: "Height to roll back to (the new store height; default: one below the store height, as ev-node)")
    var height: UInt64?

    @Flag(name: .customLong("sync-node"), help: "ev-node's flag for a full node's home; evnode refuses to go below the finalized height for every node (see README)")
    var syncNode = false

    func run() throws {
        let layout = try HomeLayout.configured(home: home, environment: ProcessInfo.processInfo.environment)
        guard FileIO.isDirectory(layout.home) else {
            throw ConfigError.missing("home directory \(layout.home) does not exist")
        }
        guard FileIO.isDirectory(layout.storeDirectory) else {
            throw ConfigError.missing("\(layout.storeDirectory) holds no store: nothing to roll back")
        }
        let store: BlockStore
        do throws(StoreError) {
            store = try BlockStore.open(path: layout.storeDirectory)
        } catch {
            if case .locked = error {
                refuse("the store is in use: stop the node first (\(error))")
            }
            fail("cannot open the store: \(error)")
        }
        defer { store.close() }
        guard let state = store.state else {
            refuse("\(layout.storeDirectory) has no chain state yet: nothing to roll back")
        }
        let head = state.lastBlockHeight
        let finalized = store.finalizedHeight
        let height = self.height ?? (head > 0 ? head - 1 : 0)
        let headHash = (try? store.headerHash(at: head)) ?? nil
        if height < finalized && syncNode {
            refuse("refusing to roll back to height \(height): below the finalized height \(finalized), and evnode never rolls back finality, --sync-node included (ev-node would lower a full node's DA-included height; for a full node whose store is wrong there, `evnode unsafe-clean` and a resync from DA do it safely; nothing changed)")
        }
        if height < finalized {
            refuse("refusing to roll back to height \(height): below the finalized height \(finalized) (finality never goes back; store height \(head), nothing changed)")
        }
        if height > head {
            refuse("refusing to roll back to height \(height): above the store height \(head) (nothing changed)")
        }
        if height == head {
            print("store is already at height \(head) (\(Hex.encode(headHash ?? []))); nothing to do")
            return
        }
        let rolled: State
        do throws(StoreError) {
            // Blocks and the built-in executor's state, in one synced batch.
            rolled = try ChainExecution(store: store, executor: KVExecutor(store: store)).rollback(to: height)
        } catch {
            if case .belowFinalized = error { refuse("refusing: \(error) (nothing changed)") }
            fail("rollback failed, nothing changed: \(error)")
        }
        // Confirm from the store itself before telling the operator it is done.
        let readBack = (try? store.headerHash(at: rolled.lastBlockHeight)) ?? nil
        guard store.height == height, (try? store.signedHeader(at: height + 1)) == .some(nil) else {
            fail("rollback to \(height) not confirmed: the store reads back height \(store.height)")
        }
        print("rolled back \(layout.storeDirectory) from height \(head) (\(Hex.encode(headHash ?? []))) to \(height) (\(Hex.encode(readBack ?? rolled.lastHeaderHash))); removed \(head - height) blocks; finalized height \(finalized)")
        print("app_hash after \(height): \(Hex.encode(rolled.appHash))")
        if let mark = try? SignerHighWaterMark(path: layout.signerStateFile).load(), mark > height {
            print("note: this home's signer already signed heights up to \(mark); as an aggregator it will refuse to sign \(height + 1)…\(mark) again (`evnode signer reset` accepts that risk)")
        }
    }

    /// Refused: nothing changed (status 2).
    private func refuse(_ message: String) -> Never {
        FileIOStderr.write("error: \(message)\n")
        Glibc.exit(ExitStatus.configuration)
    }

    private func fail(_ message: String) -> Never {
        FileIOStderr.write("error: \(message)\n")
        Glibc.exit(1)
    }
}
