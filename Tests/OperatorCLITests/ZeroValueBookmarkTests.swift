import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// Issue 18's regression: kube-apiserver ends a watch-list, and marks a quiet watch's progress,
/// with BOOKMARKs that are the kind's Go zero value (`"spec":{"containers":null}` for a Pod).
/// The devcluster now sends exactly those (ConformanceTests has the byte-level row). The whole
/// operator must sync, become ready, follow the bookmarks and repair — with the streaming list
/// and with LIST then WATCH.
@Suite(.timeLimit(.minutes(2))) struct ZeroValueBookmarkTests {
    @Test(arguments: [true, false])
    func operatorSyncsFollowsBookmarksAndRepairs(streamingList: Bool) async throws {
        var options = DevCluster.Options()
        options.streamingList = streamingList
        options.bookmarkInterval = .milliseconds(200)
        try await DevCluster.withRunning(options) { cluster in
            let s = try await RunModeTests().setup(cluster)
            let (ns, client) = (s.ns, s.client)
            // A Pod, so the Pod watch has something to list besides the bookmark.
            _ = try await client.request("POST", path: "/api/v1/namespaces/\(ns)/pods",
                                         body: Array(#"{"metadata":{"name":"web"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}"#.utf8))
            let op = try OperatorProcess(RunModeTests().runArgs(s, ["--metrics-addr", "127.0.0.1:0"]), dir: s.dir, name: "op", environment: ["LOG_FORMAT": "json"])
            try await op.lines.waitFor("\"event\":\"ready\"", timeout: .seconds(30))

            // A write elsewhere moves the store on; the Pod watch learns it only from a bookmark.
            let moved = try await client.create(ConfigMap(metadata: ObjectMeta(name: "elsewhere", namespace: ns), data: ["k": "v"]))
            let target = Double(moved.metadata.resourceVersion ?? "") ?? .infinity
            let line = op.lines.all.first { $0.contains("serving") && $0.contains("/metrics") } ?? ""
            let port = Int(try JSONValue.parse(Array(line.utf8))["port"]?.stringValue ?? "") ?? 0
            var samples: [String: Double] = [:]
            let deadline = ContinuousClock.now.advanced(by: .seconds(20))
            // Polled (the metrics endpoint has no change feed), bounded by the deadline.
            while ContinuousClock.now < deadline {
                samples = try exposition(try await runTool("curl", ["-s", "http://127.0.0.1:\(port)/metrics"]).stdout)
                if (samples["kubetrace_watch_resource_version{watch=\"pods@\(ns)\"}"] ?? 0) >= target { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect((samples["kubetrace_watch_resource_version{watch=\"pods@\(ns)\"}"] ?? 0) >= target, "the Pod watch followed no bookmark: \(samples)")
            #expect(samples["kubetrace_watch_synced{watch=\"pods@\(ns)\"}"] == 1)
            #expect(samples.filter { $0.key.hasPrefix("kubetrace_watch_decode_errors_total") }.values.allSatisfy { $0 == 0 }, "\(samples)")
            #expect(!op.log.contains("skipped watch lines"), "\(op.log)")

            // And it repairs.
            try await client.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
            try await op.lines.waitFor("pull_secret_repaired")
            #expect(try await op.stop() == 0)
        }
    }

    private func exposition(_ text: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = value
        }
        return out
    }
}
