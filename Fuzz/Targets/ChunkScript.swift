/// Turns one fuzz input into the pieces a target feeds, one read at a time: where a peer's bytes
/// are cut into reads is part of what the fuzzer varies, and a long run of bytes (a 4 MiB frame
/// body) costs a few bytes of input.
///
/// An input is a list of records, each starting with a tag byte:
/// - `0x00...0xDF`: a piece of that many bytes (fewer at the end of the input); 0 is an empty piece;
/// - `0xE0...0xEF`: a long piece of `(tag - 0xE0) << 8 | next byte` bytes (up to 4,095);
/// - `0xF0...0xFD`: the previous piece `2 << (tag - 0xF0)` times over (2 to 16,384), as one piece
///   (fewer times when that would pass `maxTotal`);
/// - `0xFE`: marks the next piece (a target may give marked pieces a meaning of their own);
/// - `0xFF`: the rest of the input is one piece.
/// Once the pieces add up to `maxTotal` bytes the rest of the input is ignored, so that an input
/// cannot make the harness itself allocate without bound.
package struct ChunkScript: Sendable, Equatable {
    package struct Piece: Sendable, Equatable {
        package var bytes: [UInt8]
        package var marked: Bool

        package init(_ bytes: [UInt8], marked: Bool = false) {
            self.bytes = bytes
            self.marked = marked
        }
    }

    package var pieces: [Piece]

    /// 16 MiB: more than any message a peer may send in one piece (5 MiB gossip, 10 MiB header-ex
    /// responses), well inside the fuzzer's memory limit.
    package static let defaultMaxTotal = 16 << 20

    package init(_ pieces: [Piece]) {
        self.pieces = pieces
    }

    package init(decoding input: some Collection<UInt8>, maxTotal: Int = defaultMaxTotal) {
        let bytes = Array(input)
        var pieces: [Piece] = []
        var total = 0
        var marked = false
        var i = 0
        func add(_ piece: [UInt8]) -> Bool {
            guard total + piece.count <= maxTotal else { return false }
            total += piece.count
            pieces.append(Piece(piece, marked: marked))
            marked = false
            return true
        }
        while i < bytes.count {
            let tag = bytes[i]
            i += 1
            switch tag {
            case 0x00...0xDF:
                let end = min(bytes.count, i + Int(tag))
                guard add(Array(bytes[i..<end])) else { i = bytes.count; break }
                i = end
            case 0xE0...0xEF:
                guard i < bytes.count else { break }
                let length = Int(tag - 0xE0) << 8 | Int(bytes[i])
                i += 1
                let end = min(bytes.count, i + length)
                guard add(Array(bytes[i..<end])) else { i = bytes.count; break }
                i = end
            case 0xF0...0xFD:
                guard let previous = pieces.last?.bytes, !previous.isEmpty else { continue }
                // As many of the copies as fit under `maxTotal`.
                let times = min(2 << Int(tag - 0xF0), (maxTotal - total) / previous.count)
                guard times > 0 else { i = bytes.count; break }
                var repeated: [UInt8] = []
                repeated.reserveCapacity(previous.count * times)
                for _ in 0..<times { repeated += previous }
                _ = add(repeated)
            case 0xFE:
                marked = true
            default:
                _ = add(Array(bytes[i...]))
                i = bytes.count
            }
        }
        self.pieces = pieces
    }

    package var chunks: [[UInt8]] { pieces.map(\.bytes) }

    /// The input that decodes to these pieces (long ones are written as several records of up
    /// to 4,095 bytes, except the last piece, written whole).
    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for (index, piece) in pieces.enumerated() {
            if piece.marked { out.append(0xFE) }
            if index == pieces.count - 1, piece.bytes.count > 0xDF {
                out.append(0xFF)
                out += piece.bytes
                continue
            }
            var rest = piece.bytes[...]
            repeat {
                let part = rest.prefix(0xFFF)
                rest = rest.dropFirst(part.count)
                if part.count <= 0xDF {
                    out.append(UInt8(part.count))
                } else {
                    out += [0xE0 | UInt8(part.count >> 8), UInt8(part.count & 0xFF)]
                }
                out += part
            } while !rest.isEmpty
        }
        return out
    }
}
