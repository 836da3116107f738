import Foundation
import ProcessKit
import Testing
import TestSupport

/// Checks that `node`'s chain is the EL's: block 1 carries the EL genesis state root, and block
/// h+1's `app_hash` is the EL's state root of block h, for every stored height.
func expectAppHashesAreELRoots(_ node: NodeProcess, _ el: TestEL, through height: UInt64,
                               sourceLocation: SourceLocation = #_sourceLocation) async throws {
    guard let first = try await node.block(1) else { throw TestFailure("\(node.name) has no block 1") }
    #expect("0x" + first.app_hash == EVMFiles.genesisStateRoot, sourceLocation: sourceLocation)
    guard height >= 2 else { return }
    for h in 1..<height {
        guard let next = try await node.block(h + 1) else { throw TestFailure("\(node.name) has no block \(h + 1)") }
        guard let elBlock = try await el.block(h) else { throw TestFailure("\(el.name) has no block \(h)") }
        #expect("0x" + next.app_hash == elBlock["stateRoot"] as? String,
                "height \(h): \(node.name)'s app_hash at \(h + 1) is not \(el.name)'s state root", sourceLocation: sourceLocation)
    }
}
