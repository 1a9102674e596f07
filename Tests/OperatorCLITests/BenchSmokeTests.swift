import KubetraceTestKit
import Foundation
import KubeClient
import Testing

/// The benchmarks with tiny sizes, so they cannot rot between `make bench` runs
/// (the peers that need PyPI are left to `make bench`).
@Suite(.timeLimit(.minutes(2))) struct BenchSmokeTests {
    func bench(_ args: [String], _ out: String) async throws -> [String: JSONValue] {
        let r = try await runProcess(binaryDirectory().appendingPathComponent("kubetrace-bench"), args + ["--output", out],
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()].merging(sanitizerEnvironment) { a, _ in a })
        #expect(r.status == 0, "\(args.first ?? ""): \(r.stderr.suffix(800))")
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        return try JSONValue.parse(Array(data)).objectValue ?? [:]
    }

    @Test func decodeReplayAndRepairRunAndReportTheirKeys() async throws {
        let dir = TempDir()
        let out = "\(dir.path)/bench.json"
        let decode = try await bench(["decode", "--events", "2000", "--passes", "1"], out)
        #expect(decode["pod_events_per_s"] != nil && decode["secret_events_per_s"] != nil)
        let scripts = repositoryRoot.appendingPathComponent("scripts/bench-peers").path
        let replay = try await bench(["replay", "--events", "300", "--peers", "curl,ours", "--peer-scripts", scripts], out)
        #expect(replay["replay_pod_events_per_s"] != nil && replay["replay_curl_mb_per_s"] != nil)
        #expect(replay["replay_peak_rss_mb"] != nil && replay["replay_final_rss_mb"] != nil)
        let repair = try await bench(["repair", "--trials", "6", "--namespaces", "3", "--interval-ms", "20", "--peers", "ours"], out)
        #expect(repair["repair_p50_ms"] != nil && repair["repair_p99_ms"] != nil)
        // One file accumulates every run's figures.
        #expect(repair["pod_events_per_s"] != nil)
    }
}
