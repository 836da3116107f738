import HTTPClient

/// Runs the DA client's reading of a DA node's answers — and the checks behind it — on answers
/// held in memory: the entry points of the DA fuzz target (`Fuzz/Targets`). The node never calls
/// them; each is the code `CelestiaDAClient`, `DAHeadSubscription` and the follower run on an
/// answer, in their order.
package enum DAAnswerDrivers {
    /// A `blob.GetAll` answer to request `id` for `height`, as `CelestiaDAClient.getAll` reads it:
    /// the JSON-RPC envelope (and HTTP status), every blob's JSON and its namespace.
    package static func getAll(_ reply: HTTPReply, id: Int64, height: UInt64,
                               namespaces: [DANamespace]) throws(DAError) -> [DABlob] {
        let raw = try CelestiaDAClient.decode(reply, method: DAMethod.getAll, id: id, height: height, url: url,
                                              as: [BlobJSON].self)
        return try CelestiaDAClient.blobs(raw, asked: namespaces)
    }

    /// A `header.NetworkHead` answer, as `CelestiaDAClient.networkHead` reads it.
    package static func networkHead(_ reply: HTTPReply, id: Int64) throws(DAError) -> DAHeader {
        let raw = try CelestiaDAClient.decode(reply, method: DAMethod.networkHead, id: id, height: nil, url: url,
                                              as: HeaderJSON.self)
        return try CelestiaDAClient.header(from: raw, method: DAMethod.networkHead)
    }

    /// A `blob.Submit` answer: the DA height the submission landed at.
    package static func submitted(_ reply: HTTPReply, id: Int64) throws(DAError) -> UInt64 {
        let raw = try CelestiaDAClient.decode(reply, method: DAMethod.submit, id: id, height: nil, url: url,
                                              as: FlexibleHeight.self)
        return try CelestiaDAClient.submittedHeight(raw)
    }

    /// `blob.Subscribe`'s text frames as the head subscription reads them, in order: the heights
    /// it would wake the follower for, and whether the DA node ended the subscription (refused or
    /// closed) before the last frame.
    package static func subscription(_ frames: [String]) -> (heights: [UInt64], ended: Bool) {
        var reader = DAHeadSubscription.FrameReader()
        var heights: [UInt64] = []
        for text in frames {
            switch reader.take(text) {
            case .height(let h): heights.append(h)
            case .refused, .closed: return (heights, true)
            case .ignored, .undecodable, .subscribed, .implausibleHeight: continue
            }
        }
        return (heights, false)
    }

    private static let url = "http://da.invalid/"
}
