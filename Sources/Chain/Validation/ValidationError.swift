import Primitives

/// Why a block was rejected: one case per rule of SPEC §3, each with the block's height and
/// the values that disagreed.
package enum ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `Signer.pubKey` is not `08 01 12 20 ‖ 32 bytes`.
    case malformedSignerKey(height: UInt64, pubKey: [UInt8])
    /// `Signer.address` is not SHA-256 of the signer's public key.
    case signerAddressMismatch(height: UInt64, address: [UInt8], expected: [UInt8])
    /// The proposer is not the one the chain state expects at this height (the genesis proposer,
    /// or the `next_proposer_address` the state recorded after the previous block).
    case unexpectedProposer(height: UInt64, address: [UInt8], expected: [UInt8])
    /// `Header.proposerAddress` is not the signer's address.
    case proposerAddressMismatch(height: UInt64, proposerAddress: [UInt8], signerAddress: [UInt8])
    /// The signature does not verify over the encoded header.
    case invalidSignature(height: UInt64)
    case wrongChainID(height: UInt64, chainID: String, expected: String)
    /// The block is not the next one (`expected` = last height + 1).
    case unexpectedHeight(height: UInt64, expected: UInt64)
    case timeBeforePrevious(height: UInt64, time: UInt64, previous: UInt64)
    /// More than the allowed drift ahead of the local clock.
    case timeInFuture(height: UInt64, time: UInt64, now: UInt64)
    /// `Header.lastHeaderHash` is not the hash of our block at height-1. With a valid proposer
    /// signature this is a divergence (SPEC §7).
    case lastHeaderHashMismatch(height: UInt64, lastHeaderHash: [UInt8], expected: [UInt8])
    /// `Header.appHash` is not our state root. With a valid proposer signature this is a
    /// divergence (SPEC §7).
    case appHashMismatch(height: UInt64, appHash: [UInt8], expected: [UInt8])
    /// `Header.dataHash` does not match the txs of the data that came with it.
    case dataHashMismatch(height: UInt64, dataHash: [UInt8], computed: [UInt8])
    /// The data's metadata disagrees with the header (or, for `last_data_hash`, with the
    /// previous block's data). `field` is the Metadata field name.
    case metadataMismatch(height: UInt64, field: String)

    /// Height of the rejected block.
    package var height: UInt64 {
        switch self {
        case .malformedSignerKey(let h, _), .signerAddressMismatch(let h, _, _), .unexpectedProposer(let h, _, _),
             .proposerAddressMismatch(let h, _, _), .invalidSignature(let h), .wrongChainID(let h, _, _),
             .unexpectedHeight(let h, _),
             .timeBeforePrevious(let h, _, _), .timeInFuture(let h, _, _), .lastHeaderHashMismatch(let h, _, _),
             .appHashMismatch(let h, _, _), .dataHashMismatch(let h, _, _), .metadataMismatch(let h, _):
            return h
        }
    }

    /// True for a header validly signed by the expected proposer (all signature rules passed)
    /// that does not extend our chain: its `last_header_hash` or `app_hash` disagrees with our
    /// state. This is not a bad peer; it means our chain and the proposer's differ (SPEC §7).
    package var isDivergence: Bool {
        switch self {
        case .lastHeaderHashMismatch, .appHashMismatch: return true
        default: return false
        }
    }

    /// True when the source of the block should be counted as bad (SPEC §3): the block is
    /// forged, corrupted or inconsistent. False for divergence, for a block that is simply not
    /// the next one (stale or early), and for a time ahead of our clock (clocks drift).
    package var blamesSource: Bool {
        switch self {
        case .lastHeaderHashMismatch, .appHashMismatch, .unexpectedHeight, .timeInFuture: return false
        default: return true
        }
    }

    /// Short name of the broken rule, for logs and metrics labels.
    package var rule: String {
        switch self {
        case .malformedSignerKey: return "malformed_signer_key"
        case .signerAddressMismatch: return "signer_address"
        case .unexpectedProposer: return "unexpected_proposer"
        case .proposerAddressMismatch: return "proposer_address"
        case .invalidSignature: return "signature"
        case .wrongChainID: return "chain_id"
        case .unexpectedHeight: return "height"
        case .timeBeforePrevious: return "time_before_previous"
        case .timeInFuture: return "time_in_future"
        case .lastHeaderHashMismatch: return "last_header_hash"
        case .appHashMismatch: return "app_hash"
        case .dataHashMismatch: return "data_hash"
        case .metadataMismatch: return "metadata"
        }
    }

    package var description: String {
        switch self {
        case .malformedSignerKey(let h, let key):
            return "block \(h): signer pub_key is not an Ed25519 key (\(key.count) bytes: \(Hex.encode(key.prefix(8)))…)"
        case .signerAddressMismatch(let h, let address, let expected):
            return "block \(h): signer address \(Hex.encode(address)) is not SHA-256 of its key (\(Hex.encode(expected)))"
        case .unexpectedProposer(let h, let address, let expected):
            return "block \(h): unexpected proposer \(Hex.encode(address)), the chain expects \(Hex.encode(expected))"
        case .proposerAddressMismatch(let h, let proposer, let signer):
            return "block \(h): header proposer_address \(Hex.encode(proposer)) is not the signer \(Hex.encode(signer))"
        case .invalidSignature(let h):
            return "block \(h): header signature does not verify"
        case .wrongChainID(let h, let id, let expected):
            return "block \(h): chain id \"\(id)\", expected \"\(expected)\""
        case .unexpectedHeight(let h, let expected):
            return "block \(h): expected height \(expected)"
        case .timeBeforePrevious(let h, let t, let previous):
            return "block \(h): time \(t) ns is before the previous block's \(previous) ns"
        case .timeInFuture(let h, let t, let now):
            return "block \(h): time \(t) ns is more than the allowed drift after now (\(now) ns)"
        case .lastHeaderHashMismatch(let h, let got, let expected):
            return "block \(h): last_header_hash \(Hex.encode(got)) is not our block \(h &- 1) (\(Hex.encode(expected)))"
        case .appHashMismatch(let h, let got, let expected):
            return "block \(h): app_hash \(Hex.encode(got)) is not our state root \(Hex.encode(expected))"
        case .dataHashMismatch(let h, let got, let computed):
            return "block \(h): data_hash \(Hex.encode(got)) does not match the txs (\(Hex.encode(computed)))"
        case .metadataMismatch(let h, let field):
            return "block \(h): data metadata field \(field) does not match the block"
        }
    }
}
