import Logging
import Libp2p

extension P2PService {
    /// Fetches heights `from...to` from peers over go-header's exchange, in order: chunks of at
    /// most 64, headers from headerSync and data from dataSync, paired and checked with the
    /// `GossipValidator` (a peer whose answer is wrong is banned), partial answers continued,
    /// another peer tried after a failure. Throws `rangeUnavailable` when no peer supplies a height.
    /// Each block comes with the peer whose answer carried it: header and data of one height
    /// always come from one peer, which answers for both.
    package func requestRange(from: UInt64, to: UInt64) async throws(P2PError) -> [ReceivedBlock] {
        guard from >= 1, from <= to else { throw .invalidRange(from: from, to: to) }
        guard registry.withLock({ $0.isRunning }) else { throw .notRunning }
        let chunk = UInt64(P2PProtocol.maxBlocksPerRequest)
        let chunkCount = (to - from) / chunk + 1
        func bounds(_ i: UInt64) -> (UInt64, Int) {
            let start = from + i * chunk
            return (start, Int(min(chunk, to - start + 1)))
        }
        let parallel = UInt64(max(1, settings.rangeParallelism))
        let outcome = await withTaskGroup(of: (UInt64, Result<[ReceivedBlock], P2PError>).self) { group in
            var results: [UInt64: [ReceivedBlock]] = [:]
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
                case .success(let blocks): results[index] = blocks
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
            if let failure { return Result<[ReceivedBlock], P2PError>.failure(failure) }
            var all: [ReceivedBlock] = []
            all.reserveCapacity(Int(clamping: min(to - from + 1, 1 << 16)))
            for i in 0..<chunkCount { all += results[i] ?? [] }
            return .success(all)
        }
        return try outcome.get()
    }

    private func fetchChunk(start: UInt64, count: Int) async -> Result<[ReceivedBlock], P2PError> {
        let end = start + UInt64(count) - 1
        var blocks: [ReceivedBlock] = []
        blocks.reserveCapacity(count)
        var next = start
        var excluded: Set<PeerID> = []
        var lastProblem = "no connected peer proved height \(start)"
        while next <= end {
            if Task.isCancelled { return .failure(.cancelled) }
            guard let conn = pickPeer(covering: next, end, excluding: excluded) else {
                return .failure(.rangeUnavailable(from: next, to: end, reason: lastProblem))
            }
            let id = conn.remote
            let want = end - next + 1
            registry.withLock { $0.peers[id]?.inFlight += 1 }
            let answer = await fetch(from: next, amount: want, on: conn)
            registry.withLock { $0.peers[id]?.inFlight -= 1 }
            switch answer {
            case .failure(let problem):
                registry.withLock { $0.peers[id]?.requestsFailed += 1 }
                excluded.insert(id)
                lastProblem = "peer \(id.short): \(problem)"
                logger.debug("range request failed", metadata: ["peer": "\(id.short)", "from": "\(next)",
                                                                "count": "\(want)", "reason": "\(problem)"])
            case .success(let got):
                if got.isEmpty {
                    registry.withLock { $0.peers[id]?.requestsFailed += 1 }
                    excluded.insert(id)
                    lastProblem = "peer \(id.short) has none of \(next)...\(end)"
                    continue
                }
                blocks += got
                next += UInt64(got.count)
                registry.withLock { r in
                    r.peers[id]?.requestsAnswered += 1
                    r.peers[id]?.lastResponseAt = .now
                }
            }
        }
        return .success(blocks)
    }

    /// Headers and data `[from, from + amount)` from one peer, paired and checked; a wrong
    /// answer bans the peer and counts as a failure. Unlike gossip, both halves of every block
    /// come from this one peer, so a pair that does not fit is its own doing.
    private func fetch(from: UInt64, amount: UInt64, on conn: Libp2pConnection) async -> Result<[ReceivedBlock], RangeFailure> {
        let request = HeaderExchange.rangeRequest(from: from, amount: amount)
        let host = self.host, budget = exchangeClientBudget
        let timeout = settings.requestTimeout
        let headerNetwork = self.headerNetwork, dataNetwork = self.dataNetwork
        async let headersTask = HeaderExchange.request(request, network: headerNetwork, on: conn, host: host,
                                                      budget: budget, timeout: timeout)
        async let dataTask = HeaderExchange.request(request, network: dataNetwork, on: conn, host: host,
                                                      budget: budget, timeout: timeout)
        let headers: [[UInt8]], datas: [[UInt8]]
        do {
            headers = try await headersTask
            datas = try await dataTask
        } catch let error as HeaderExchange.ClientError {
            punish(conn.remote, reason: "\(error)")
            return .failure(RangeFailure(description: "\(error)"))
        } catch {
            return .failure(RangeFailure(description: "\(error)"))
        }
        let n = min(headers.count, datas.count)
        var out: [ReceivedBlock] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            let height = from + UInt64(i)
            do {
                let signed = try decodeHeader(headers[i])
                let (_, dataBody) = try decodeData(datas[i])
                let (headerBody, headerHint) = try P2PEnvelope.strip(headers[i], hintField: P2PEnvelope.headerHintField)
                let (_, dataHint) = try P2PEnvelope.strip(datas[i], hintField: P2PEnvelope.dataHintField)
                guard signed.header.height == height else {
                    throw RangeFailure(description: "response \(i) is height \(signed.header.height), expected \(height)")
                }
                let block = P2PBlock(height: height, headerHash: signed.header.hash,
                                     encodedSignedHeader: headerBody, encodedData: dataBody)
                // Not the peer's fault; the heights above cannot apply before this one anyway.
                if isAheadOfClock(signed.header, what: "range answer's header", from: conn.remote) { break }
                if case .reject(let reason) = validator.validate(block) {
                    throw RangeFailure(description: "block \(height): \(reason)")
                }
                out.append(ReceivedBlock(block: block, from: conn.remote, headerDAHeightHint: headerHint ?? 0,
                                         dataDAHeightHint: dataHint ?? 0))
            } catch {
                punish(conn.remote, reason: "header-ex range answer: \(error)")
                return .failure(RangeFailure(description: "\(error)"))
            }
        }
        return .success(out)
    }

    /// A connected peer whose proven head covers `to` if any, else one covering `from`; fewest
    /// requests in flight first.
    private func pickPeer(covering from: UInt64, _ to: UInt64, excluding excluded: Set<PeerID>) -> Libp2pConnection? {
        let conns = host.connections.filter { !$0.isClosed && !excluded.contains($0.remote) }
        let candidates = registry.withLock { r in
            conns.compactMap { c -> (Libp2pConnection, UInt64, Int)? in
                guard let state = r.peers[c.remote], let head = state.head, head >= from else { return nil }
                return (c, head, state.inFlight)
            }
        }
        let covering = candidates.filter { $0.1 >= to }
        let pool = covering.isEmpty ? candidates : covering
        guard let best = pool.min(by: { $0.2 < $1.2 }) else { return nil }
        return pool.filter { $0.2 == best.2 }.randomElement()?.0 ?? best.0
    }
}

struct RangeFailure: Error, CustomStringConvertible {
    let description: String
}
