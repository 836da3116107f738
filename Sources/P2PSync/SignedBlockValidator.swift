import Chain
import Sync
import Config
import Libp2p

/// The `GossipValidator` of a real node: decodes the block with the Block module and checks
/// everything that can be checked without the chain's state (SPEC §3): the header decodes, is
/// for this chain, has the height and hash the message claims, and is validly signed by the key
/// it names (signer address = SHA-256(key) = proposer address); the data decodes, its txs match
/// the header's `data_hash` and its metadata (when present) matches the header.
///
/// Who may sign a height is chain state (ev-node v1.2 rotation): the syncer checks it when it
/// applies the block, as ev-node does. So a block validly signed by a key our chain has not
/// named (yet) is no fault of the peer that sent it — it may be past a rotation we have not
/// applied. Gossip of such a header is ignored (neither relayed nor delivered nor punished);
/// range answers deliver it, and the syncer decides.
///
/// Chain-dependent rules (height = last + 1, last header hash, app hash, time) are the syncer's.
///
/// P2P data carries no signature (ev-node's `P2PData` is the bare `Data`): the header's
/// signature covers `data_hash`, hence the txs, but nothing verified covers the metadata, and
/// its `last_data_hash` cannot be checked without the chain. So `check` hands the syncer the txs
/// only, as the DA follower does with data a verified header claims (`DABlobChecker`); the
/// syncer derives the metadata from the header and the previous block. A copy of genuine txs
/// with forged metadata thus makes the very same block as the genuine data, and blames nobody.
package struct SignedBlockValidator: GossipValidator {
    package let blockValidator: BlockValidator
    /// Which keys the chain has named; nil: only the genesis proposer.
    package let placement: (any ProposerPlacement)?

    package init(blockValidator: BlockValidator, placement: (any ProposerPlacement)? = nil) {
        self.blockValidator = blockValidator
        self.placement = placement
    }

    /// Whether the chain has named `proposer` (the genesis proposer, or a rotation's key).
    package func isNamed(_ proposer: [UInt8]) -> Bool {
        proposer == blockValidator.proposerAddress || placement?.namedProposers.contains(proposer) == true
    }

    package init(genesis: Genesis) {
        self.init(blockValidator: BlockValidator(genesis: genesis))
    }

    package var chainID: String { blockValidator.chainID }

    package func validate(_ block: P2PBlock) -> GossipVerdict {
        switch check(block) {
        case .success: return .accept
        case .failure(let problem): return .reject(problem.description)
        }
    }

    package func validate(header signed: SignedHeader) -> GossipVerdict {
        guard signed.header.chainID == chainID else {
            return .reject(ValidationError.wrongChainID(height: signed.header.height, chainID: signed.header.chainID,
                                                        expected: chainID).description)
        }
        do throws(ValidationError) {
            try blockValidator.verifySignature(signed)
        } catch {
            return .reject(error.description)
        }
        return isNamed(signed.header.proposerAddress) ? .accept : .ignore
    }

    /// The decoded block, or why it is unacceptable. The data is returned without its
    /// metadata (see above); metadata that contradicts the header is still a rejection.
    package func check(_ block: P2PBlock) -> Result<(signedHeader: SignedHeader, data: BlockData), BlockProblem> {
        let signed: SignedHeader
        do throws(WireError) {
            signed = try SignedHeader(decoding: block.encodedSignedHeader)
        } catch {
            return .failure(.undecodable(height: block.height, what: "signed header", reason: error.description))
        }
        let header = signed.header
        guard header.height == block.height else {
            return .failure(.heightMismatch(claimed: block.height, header: header.height))
        }
        guard header.chainID == chainID else {
            return .failure(.rejected(.wrongChainID(height: header.height, chainID: header.chainID, expected: chainID)))
        }
        guard header.hash == block.headerHash else {
            return .failure(.hashMismatch(height: block.height))
        }
        do throws(ValidationError) {
            try blockValidator.verifySignature(signed)
        } catch {
            return .failure(.rejected(error))
        }
        let data: BlockData
        do throws(WireError) {
            data = try BlockData(decoding: block.encodedData)
        } catch {
            return .failure(.undecodable(height: block.height, what: "data", reason: error.description))
        }
        let dataHash = data.dataHash
        guard dataHash == header.dataHash else {
            return .failure(.rejected(.dataHashMismatch(height: header.height, dataHash: header.dataHash, computed: dataHash)))
        }
        if let metadata = data.metadata {
            for (field, matches) in [("chain_id", metadata.chainID == header.chainID),
                                     ("height", metadata.height == header.height),
                                     ("time", metadata.time == header.time)] where !matches {
                return .failure(.rejected(.metadataMismatch(height: header.height, field: field)))
            }
        }
        return .success((signed, data.withoutMetadata))
    }
}

/// Why a block from a peer is unacceptable.
package enum BlockProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case undecodable(height: UInt64, what: String, reason: String)
    /// The message's height is not the header's.
    case heightMismatch(claimed: UInt64, header: UInt64)
    /// The message's header hash is not the hash of the encoded header.
    case hashMismatch(height: UInt64)
    /// A rule of SPEC §3 failed.
    case rejected(ValidationError)

    package var description: String {
        switch self {
        case .undecodable(let height, let what, let reason):
            return "block \(height): \(what) does not decode: \(reason)"
        case .heightMismatch(let claimed, let header):
            return "block announced as height \(claimed) carries a header for height \(header)"
        case .hashMismatch(let height):
            return "block \(height): announced header hash is not the hash of its header"
        case .rejected(let error):
            return error.description
        }
    }
}

extension P2PBlock {
    /// The block as gossiped and served: the encodings the store keeps, the height and the
    /// header hash.
    package init(signedHeader: SignedHeader, data: BlockData) {
        self.init(height: signedHeader.header.height, headerHash: signedHeader.header.hash,
                  encodedSignedHeader: signedHeader.encoded(), encodedData: data.encoded())
    }
}

extension P2PBlock {
    /// The decoded signed header and data, without any check beyond decoding (the sync pipeline
    /// validates what it applies).
    package func decoded() throws(BlockProblem) -> (signedHeader: SignedHeader, data: BlockData) {
        let signed: SignedHeader
        do throws(WireError) {
            signed = try SignedHeader(decoding: encodedSignedHeader)
        } catch {
            throw .undecodable(height: height, what: "signed header", reason: error.description)
        }
        guard signed.header.height == height else {
            throw .heightMismatch(claimed: height, header: signed.header.height)
        }
        do throws(WireError) {
            return (signed, try BlockData(decoding: encodedData))
        } catch {
            throw .undecodable(height: height, what: "data", reason: error.description)
        }
    }

    /// The block as a sync-pipeline candidate from `peer` (its origin names the peer id), its
    /// data without the metadata nothing verified covers (see `SignedBlockValidator`).
    package func candidate(from peer: PeerID) throws(BlockProblem) -> CandidateBlock {
        let (signed, data) = try decoded()
        return CandidateBlock(signedHeader: signed, data: data.withoutMetadata, origin: .p2p(peer: peer.description))
    }
}

extension BlockData {
    /// The txs alone: what a verified header's `data_hash` vouches for.
    var withoutMetadata: BlockData { BlockData(metadata: nil, txs: txs) }
}
