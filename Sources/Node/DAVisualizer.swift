import Primitives
import DAClient
import Submission
import Foundation

/// ev-node's DA visualizer (`pkg/rpc/server/da_visualization.go`): the same routes and JSON
/// shapes (field names, status texts, percentages as strings, RFC 3339 times, `null` where
/// ev-node has no value), built from the submitter's log of its last 100 attempts.
enum DAVisualizer {
    static let notAggregator = "This node is not an aggregator and does not submit to the DA layer"
    /// ev-node looks at the last 10 attempts for health.
    static let healthSample = 10

    static func time(_ date: Date?) -> Any {
        guard let date else { return NSNull() }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    static func submission(_ r: DASubmissionRecord) -> [String: Any] {
        var o: [String: Any] = [
            "id": r.id, "height": Int(r.daHeight), "blob_size": Int(r.blobSize), "timestamp": time(r.timestamp),
            "gas_price": r.gasPrice, "status_code": r.status.rawValue, "num_blobs": Int(r.numBlobs),
        ]
        if let message = r.message, !message.isEmpty { o["message"] = message }
        if !r.blobIDs.isEmpty { o["blob_ids"] = r.blobIDs }
        if !r.namespace.isEmpty { o["namespace"] = r.namespace }
        return o
    }

    /// `GET /da/submissions`: newest first.
    static func submissions(_ backend: any DashboardBackend) -> [String: Any] {
        guard backend.submitsToDA else {
            return ["is_aggregator": false, "submissions": [Any](), "total": 0, "message": notAggregator]
        }
        let list = backend.submissions.reversed().map(submission)
        return ["submissions": list, "total": list.count]
    }

    /// `GET /da/stats`.
    static func stats(_ backend: any DashboardBackend) -> [String: Any] {
        guard backend.submitsToDA else {
            return ["is_aggregator": false, "total_submissions": 0, "message": notAggregator]
        }
        let all = backend.submissions
        let successes = all.filter { $0.status == .success }.count
        let errors = all.filter { $0.status == .error }.count
        let totalSize = all.reduce(0) { $0 + Int($1.blobSize) }
        let n = Double(all.count)
        return [
            "total_submissions": all.count,
            "success_count": successes,
            "error_count": errors,
            "success_rate": String(format: "%.2f%%", all.isEmpty ? 0 : Double(successes) / n * 100),
            "total_blob_size": totalSize,
            "avg_blob_size": all.isEmpty ? 0 : Double(totalSize) / n,
            "avg_gas_price": all.isEmpty ? 0 : all.reduce(0) { $0 + $1.gasPrice } / n,
            "time_range": ["first": time(all.first?.timestamp), "last": time(all.last?.timestamp)],
        ]
    }

    /// `GET /da/health`: ev-node's verdict from the last 10 attempts — `degraded` above 20 %
    /// errors, `unhealthy` after 5 minutes without success, `warning` after 2 minutes without
    /// any attempt, `unknown` before the first.
    static func health(_ backend: any DashboardBackend, now: Date) -> [String: Any] {
        guard backend.submitsToDA else {
            return ["is_aggregator": false, "status": "n/a", "message": notAggregator, "connection_status": "n/a",
                    "timestamp": time(now)]
        }
        let all = backend.submissions
        let recent = all.suffix(healthSample)
        let recentErrors = recent.filter { $0.status == .error }
        let recentSuccesses = recent.filter { $0.status == .success }
        let lastSuccess = recentSuccesses.map(\.timestamp).max()
        let lastError = recentErrors.map(\.timestamp).max()
        let lastSubmission = all.last?.timestamp
        let errorRate = recent.isEmpty ? 0 : Double(recentErrors.count) / Double(recent.count) * 100
        var healthy = true
        var status = "healthy"
        var issues: [String] = []
        if errorRate > 20 {
            healthy = false
            status = "degraded"
            issues.append(String(format: "High error rate: %.1f%%", errorRate))
        }
        if let lastSuccess, now.timeIntervalSince(lastSuccess) > 300 {
            healthy = false
            status = "unhealthy"
            issues.append("No successful submissions for \(Int(now.timeIntervalSince(lastSuccess)))s")
        }
        if let lastSubmission, now.timeIntervalSince(lastSubmission) > 120 {
            status = "warning"
            issues.append("No submissions for \(Int(now.timeIntervalSince(lastSubmission)))s")
        }
        if all.isEmpty {
            status = "unknown"
            issues.append("No submissions recorded yet")
        }
        let connected = backend.daConnected
        if !connected {
            healthy = false
            status = "unhealthy"
            issues.append("DA submissions failing in a row")
        }
        return [
            "status": status,
            "is_healthy": healthy,
            "connection_status": connected ? "connected" : "disconnected",
            "connection_healthy": connected,
            "metrics": [
                "recent_error_rate": String(format: "%.1f%%", errorRate),
                "recent_errors": recentErrors.count,
                "recent_successes": recentSuccesses.count,
                "recent_sample_size": recent.count,
                "total_submissions": all.count,
                "last_submission_time": time(lastSubmission),
                "last_success_time": time(lastSuccess),
                "last_error_time": time(lastError),
            ] as [String: Any],
            "issues": issues.isEmpty ? NSNull() as Any : issues as Any,
            "timestamp": time(now),
        ]
    }

    struct BlobFailure: Error {
        let status: Int
        let message: String
    }

    /// `GET /da/blob?id=<hex>[&namespace=<hex or name>]`: the blob from the DA node. The
    /// namespace comes from the query (29 bytes in hex, or a name), else from the submission
    /// that posted the blob.
    static func blob(_ backend: any DashboardBackend, id: String?, namespace: String?) async -> Result<[String: Any], BlobFailure> {
        guard let id, !id.isEmpty else { return .failure(.init(status: 400, message: "Missing blob ID parameter")) }
        guard id.count <= 2 * (8 + 1024), let bytes = Hex.decode(id), let split = DASubmissionRecord.splitBlobID(bytes) else {
            return .failure(.init(status: 400, message: "Invalid blob ID format"))
        }
        let (daHeight, commitment) = split
        var ns: DANamespace?
        if let namespace, !namespace.isEmpty {
            let hex = namespace.hasPrefix("0x") ? String(namespace.dropFirst(2)) : namespace
            if let raw = Hex.decode(hex), let parsed = try? DANamespace(bytes: raw) {
                ns = parsed
            } else {
                ns = DANamespace(name: namespace)
            }
        } else if let posted = backend.submissions.last(where: { $0.blobIDs.contains(id.lowercased()) }),
                  let raw = Hex.decode(posted.namespace) {
            ns = try? DANamespace(bytes: raw)
        }
        guard let ns else {
            return .failure(.init(status: 400, message: "Namespace required to retrieve blob (not found in recent submissions and not provided in query)"))
        }
        let blob: DABlob
        do throws(DAError) {
            blob = try await backend.blob(daHeight: daHeight, namespace: ns, commitment: commitment)
        } catch {
            if case .notFound = error { return .failure(.init(status: 404, message: "Blob not found")) }
            return .failure(.init(status: 500, message: "Failed to retrieve blob: \(error)"))
        }
        return .success([
            "id": id, "height": Int(daHeight), "commitment": Hex.encode(commitment), "size": blob.data.count,
            "content": Hex.encode(blob.data),
            "content_preview": String(decoding: blob.data.prefix(200), as: UTF8.self),
        ])
    }

    /// `GET /da`: the submissions as a table (server-rendered, no script).
    static func page(_ backend: any DashboardBackend) -> String {
        var rows = ""
        for r in backend.submissions.reversed() {
            let ids = r.blobIDs.map { "<a href=\"/da/blob?id=\($0)\">\($0.prefix(16))…</a>" }.joined(separator: "<br>")
            rows += "<tr><td>\(escape(time(r.timestamp) as? String ?? ""))</td><td>\(r.daHeight)</td>"
                + "<td class=\"\(r.status == .success ? "ok" : "bad")\">\(escape(r.status.rawValue))</td>"
                + "<td>\(r.numBlobs)</td><td>\(r.blobSize)</td><td>\(r.gasPrice)</td>"
                + "<td>\(ids)</td><td>\(escape(r.message ?? ""))</td></tr>\n"
        }
        let body = backend.submitsToDA
            ? "<table><tr><th>time</th><th>DA height</th><th>status</th><th>blobs</th><th>bytes</th><th>gas price</th><th>blob ids</th><th>message</th></tr>\n\(rows)</table>"
            : "<p>\(notAggregator)</p>"
        return """
        <!doctype html><html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1"><title>evnode · DA submissions</title>
        <style>body{font:14px system-ui,sans-serif;margin:1em;background:#111;color:#ddd}table{border-collapse:collapse;width:100%}
        td,th{border-bottom:1px solid #333;padding:4px;text-align:left;font-family:monospace;word-break:break-all}
        .ok{color:#6c6}.bad{color:#e66}a{color:#8af}</style></head><body>
        <h1>DA submissions</h1><p>The last \(DASubmissionLog.defaultCapacity) attempts, newest first ·
        <a href="/da/stats">stats</a> · <a href="/da/health">health</a> · <a href="/da/submissions">JSON</a> · <a href="/">dashboard</a></p>
        \(body)
        </body></html>
        """
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
