@testable import Node
import Chain
import Foundation
import RPCAPI
import SwiftProtobuf
import Testing
import TestSupport

/// `GetBlock` decodes the stored bytes into swift-protobuf's messages generated from
/// Protos/evnode/v1 and encodes them again: that must give back the exact bytes the node signs,
/// gossips and posts (the hand-written codec in Sources/Block), or a client hashing the header it
/// received would not find the block's hash.
@Suite struct RPCWireTests {
    @Test func generatedMessagesReencodeStoredBlocksByteForByte() throws {
        let chain = try TestChain(chainID: "rpc-wire")
        defer { chain.close() }
        _ = try chain.produce([])                       // no transactions
        _ = try chain.produce(["a=1", "b=2", "c=3"])
        for height in UInt64(1)...2 {
            let header = try #require(try chain.store.encodedSignedHeader(at: height))
            let data = try #require(try chain.store.encodedBlockData(at: height))
            let generatedHeader = try Evnode_V1_SignedHeader(serializedBytes: header)
            let generatedData = try Evnode_V1_Data(serializedBytes: data)
            #expect(try generatedHeader.serializedBytes() as [UInt8] == header, "SignedHeader at \(height)")
            #expect(try generatedData.serializedBytes() as [UInt8] == data, "Data at \(height)")
            let hash = try #require(try chain.store.headerHash(at: height))
            let inner: [UInt8] = try generatedHeader.header.serializedBytes()
            #expect(Hashing.sha256(inner) == hash, "the header hash from the generated Header at \(height)")
        }
    }

    @Test func metadataKeysParseAsEvNodeWritesThem() {
        #expect(EvnodeMetadataKey("gdh") == .genesisDAHeight)
        #expect(EvnodeMetadataKey("d") == .daIncludedHeight)
        #expect(EvnodeMetadataKey("last-submitted-header-height") == .lastSubmittedHeaderHeight)
        #expect(EvnodeMetadataKey("rhb/42/h") == .headerDAHeight(42))
        #expect(EvnodeMetadataKey("rhb/42/d") == .dataDAHeight(42))
        #expect(EvnodeMetadataKey("rhb/042/d") == nil, "not the way ev-node formats a height")
        #expect(EvnodeMetadataKey("rhb/42/x") == nil)
        #expect(EvnodeMetadataKey(String(repeating: "r", count: 100)) == nil)
    }
}
