/// One signed block as bytes: `u32 (big-endian) length ‖ encoded SignedHeader ‖ encoded Data`.
/// The form a block signed but perhaps not stored is kept in (beside the signer's mark, or as an
/// HA leader's unpublished block).
package enum SignedBlockBytes {
    package static func encode(_ signedHeader: SignedHeader, _ data: BlockData) -> [UInt8] {
        let header = signedHeader.encoded()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(4 + header.count + data.wireSize)
        let n = UInt32(header.count)
        bytes.append(contentsOf: [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)])
        bytes.append(contentsOf: header)
        bytes.append(contentsOf: data.encoded())
        return bytes
    }

    package static func decode(_ bytes: [UInt8]) throws(WireError) -> (signedHeader: SignedHeader, data: BlockData) {
        guard bytes.count >= 4 else { throw .truncated(message: .signedHeader, field: 0) }
        let n = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard bytes.count >= 4 + n else { throw .truncated(message: .signedHeader, field: 0) }
        let header = try SignedHeader(decoding: bytes[4..<(4 + n)])
        let data = try BlockData(decoding: bytes[(4 + n)...])
        return (header, data)
    }
}
