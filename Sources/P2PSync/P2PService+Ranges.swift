import NIOCore

extension P2PService {
    // MARK: Serving

    /// Answers a peer's range request from the `BlockSource`, off the event loop. At most
    /// `maxServedRequestsPerPeer` at once per peer; more get `busy`.
    func serve(_ request: RangeRequest, for conn: PeerConnection) {
        let admitted = conn.withState { s -> Bool in
            guard s.servingRequests < settings.maxServedRequestsPerPeer else { return false }
            s.servingRequests += 1
            return true
        }
        guard admitted else {
            let busy = RangeResponse(requestID: request.requestID, status: .busy, blocks: [])
            deliver(P2PMessage.rangeResponse(busy).frame(), to: conn, policy: .reliable)
            return
        }
        let frameLimit = min(settings.maxFrameBytes, conn.peerMaxFrameBytes)
        Task { [self] in
            defer { conn.withState { $0.servingRequests -= 1 } }
            let response: RangeResponse
            do {
                let blocks = try await source.blocks(from: request.from, count: Int(request.count))
                response = RangeResponse(requestID: request.requestID, status: .ok,
                                         blocks: Self.fitting(blocks, from: request.from, count: Int(request.count),
                                                              frameLimit: frameLimit))
                if response.blocks.isEmpty, let first = blocks.first, first.height == request.from {
                    logger.warning("block too large for the peer's frame limit",
                                   metadata: ["height": "\(first.height)", "peer": "\(conn.label)",
                                              "limit": "\(frameLimit)"])
                }
            } catch {
                logger.error("cannot read blocks for a peer's range request",
                             metadata: ["from": "\(request.from)", "count": "\(request.count)", "error": "\(error)"])
                response = RangeResponse(requestID: request.requestID, status: .failed, blocks: [])
            }
            deliver(P2PMessage.rangeResponse(response).frame(), to: conn, policy: .reliable)
        }
    }

    /// The contiguous prefix of `blocks` starting at `from`, at most `count`, that fits a frame.
    static func fitting(_ blocks: [P2PBlock], from: UInt64, count: Int, frameLimit: Int) -> [P2PBlock] {
        var size = 1 + 8 + 1 + 2 // type, request id, status, block count
        var out: [P2PBlock] = []
        for (i, block) in blocks.prefix(count).enumerated() {
            guard block.height == from + UInt64(i), block.headerHash.count == P2PProtocol.hashSize else { break }
            size += block.wireSize
            guard size <= frameLimit else { break }
            out.append(block)
        }
        return out
    }

    // MARK: Requesting

    /// Fetches heights `from...to` from peers, in order. Splits the range into requests of at
    /// most 64 blocks, sends them (a few in parallel) to peers that announced the heights,
    /// validates every block with the `GossipValidator` (a peer that sends a rejected block or a
    /// response that does not match the request is banned), and retries another peer after a
    /// timeout, refusal or failure. Throws `P2PError.rangeUnavailable` when no connected peer can
    /// supply some height.
    public func requestRange(from: UInt64, to: UInt64) async throws(P2PError) -> [P2PBlock] {
        guard from >= 1, from <= to else { throw .invalidRange(from: from, to: to) }
        guard registry.withLockedValue({ $0.isRunning }) else { throw .notRunning }
        let chunk = UInt64(P2PProtocol.maxBlocksPerRequest)
        let chunkCount = (to - from) / chunk + 1
        func bounds(_ i: UInt64) -> (UInt64, Int) {
            let start = from + i * chunk
            return (start, Int(min(chunk, to - start + 1)))
        }
        let parallel = UInt64(max(1, settings.rangeParallelism))
        let outcome = await withTaskGroup(of: (UInt64, Result<[P2PBlock], P2PError>).self) { group in
            var results: [UInt64: [P2PBlock]] = [:]
            var failure: P2PError?
            var next: UInt64 = 0
            while next < min(parallel, chunkCount) {
                let (start, count) = bounds(next)
                let index = next
                group.addTask { [self] in (index, await fetchChunk(start: start, count: count)) }
                next += 1
            }
            while let (index, result) = await group.next() {
                switch result {
                case .success(let blocks):
                    results[index] = blocks
                case .failure(let error):
                    failure = failure ?? error
                    group.cancelAll()
                }
                if failure == nil, next < chunkCount {
                    let (start, count) = bounds(next)
                    let index = next
                    group.addTask { [self] in (index, await fetchChunk(start: start, count: count)) }
                    next += 1
                }
            }
            if let failure { return Result<[P2PBlock], P2PError>.failure(failure) }
            var all: [P2PBlock] = []
            all.reserveCapacity(Int(clamping: min(to - from + 1, 1 << 16)))
            for i in 0..<chunkCount { all += results[i] ?? [] }
            return .success(all)
        }
        return try outcome.get()
    }

    /// Fetches one chunk (≤ 64 heights), accepting partial answers and asking again for the rest.
    private func fetchChunk(start: UInt64, count: Int) async -> Result<[P2PBlock], P2PError> {
        let end = start + UInt64(count) - 1
        var blocks: [P2PBlock] = []
        blocks.reserveCapacity(count)
        var next = start
        var excluded: Set<PeerID> = []
        var busyRounds = 0
        var lastProblem = "no connected peer announced height \(end)"
        while next <= end {
            if Task.isCancelled { return .failure(.cancelled) }
            guard let (conn, id) = pickPeer(covering: next, end, excluding: excluded) else {
                return .failure(.rangeUnavailable(from: next, to: end, reason: lastProblem))
            }
            let want = UInt16(end - next + 1)
            let response: RangeResponse
            switch await request(from: next, count: want, to: conn) {
            case .failure(let problem):
                conn.withState { $0.requestsFailed += 1 }
                excluded.insert(id)
                lastProblem = "peer \(id.short): \(problem)"
                logger.debug("range request failed", metadata: ["peer": "\(id.short)", "from": "\(next)",
                                                                "count": "\(want)", "reason": "\(problem)"])
                continue
            case .success(let r):
                response = r
            }
            switch response.status {
            case .busy:
                busyRounds += 1
                if busyRounds > 50 {
                    excluded.insert(id)
                    lastProblem = "peer \(id.short) stayed busy"
                }
                try? await Task.sleep(for: .milliseconds(10 * min(busyRounds, 20)))
                continue
            case .failed:
                conn.withState { $0.requestsFailed += 1 }
                excluded.insert(id)
                lastProblem = "peer \(id.short) could not read its store"
                continue
            case .ok:
                break
            }
            if response.blocks.isEmpty {
                conn.withState { $0.requestsFailed += 1 }
                excluded.insert(id)
                lastProblem = "peer \(id.short) has none of \(next)...\(end)"
                continue
            }
            if let problem = check(response.blocks, from: next, max: Int(want)) {
                punish(conn, for: problem)
                excluded.insert(id)
                lastProblem = "peer \(id.short) sent a bad response"
                continue
            }
            blocks += response.blocks
            next += UInt64(response.blocks.count)
            conn.withState { s in
                s.requestsAnswered += 1
                s.lastResponseAt = .now
            }
        }
        return .success(blocks)
    }

    /// The misbehaviour in a range response, if any: wrong count or heights, or a block the
    /// validator rejects (`ignore` is fine here: the caller asked for these heights).
    private func check(_ blocks: [P2PBlock], from: UInt64, max: Int) -> Misbehaviour? {
        guard blocks.count <= max else {
            return .invalidResponse("\(blocks.count) blocks for a request of \(max)")
        }
        for (i, block) in blocks.enumerated() {
            guard block.height == from + UInt64(i) else {
                return .invalidResponse("block \(i) has height \(block.height), expected \(from + UInt64(i))")
            }
            if case .reject(let reason) = validator.validate(block) {
                return .invalidBlock(height: block.height, reason: reason)
            }
        }
        return nil
    }

    /// A connected peer for heights `from...to`: one that announced `to` if any, else one that
    /// announced at least `from` (it may answer part); fewest requests in flight first.
    private func pickPeer(covering from: UInt64, _ to: UInt64,
                          excluding excluded: Set<PeerID>) -> (PeerConnection, PeerID)? {
        let candidates = registry.withLockedValue { r in
            r.ready.filter { !excluded.contains($0.key) }.map { ($0.value, $0.key) }
        }
        let withHeights = candidates.compactMap { conn, id -> (PeerConnection, PeerID, UInt64, Int)? in
            guard let h = conn.announcedHeight, h >= from else { return nil }
            return (conn, id, h, conn.inFlightRequests)
        }
        let covering = withHeights.filter { $0.2 >= to }
        let pool = covering.isEmpty ? withHeights : covering
        guard let best = pool.min(by: { $0.3 < $1.3 }) else { return nil }
        let ties = pool.filter { $0.3 == best.3 }
        let pick = ties.randomElement() ?? best
        return (pick.0, pick.1)
    }

    /// One request/response exchange with a timeout.
    private func request(from: UInt64, count: UInt16, to conn: PeerConnection) async -> Result<RangeResponse, RequestFailure> {
        let id = makeRequestID()
        guard let promise = conn.addPendingRequest(id) else { return .failure(RequestFailure("connection closed")) }
        let timeout = settings.requestTimeout
        let timer = conn.channel.eventLoop.scheduleTask(in: timeout.timeAmount) {
            conn.takePendingRequest(id)?.fail(RequestTimedOut(timeout: timeout))
        }
        let frame = P2PMessage.rangeRequest(RangeRequest(requestID: id, from: from, count: count)).frame()
        switch conn.send(frame, policy: .reliable) {
        case .sent:
            break
        case .dropped, .closed, .overflow:
            conn.takePendingRequest(id)?.fail(ChannelError.ioOnClosedChannel)
        }
        do {
            let response = try await promise.futureResult.get()
            timer.cancel()
            return .success(response)
        } catch let error as RequestTimedOut {
            return .failure(RequestFailure("\(error)"))
        } catch {
            timer.cancel()
            return .failure(RequestFailure("connection closed"))
        }
    }
}

struct RequestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct RequestTimedOut: Error, CustomStringConvertible {
    let timeout: Duration
    var description: String { "no answer within \(timeout)" }
}
