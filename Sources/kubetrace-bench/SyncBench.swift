import KubetraceFormats
import ArgumentParser
import AsyncAlgorithms
import BenchSupport
import Foundation
import KubeClient
import KubeRuntime
import KubeSim
import Logging
import Glibc

@_silgen_name("malloc_trim") private func mallocTrim(_ pad: Int) -> Int32

/// Initial sync and memory: a devcluster process holding 10,000 Pods,
/// 10,000 Secrets and 2,000 ServiceAccounts; this process watches all three.
struct SyncBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sync", abstract: "Initial list+sync time and RSS of the watchers' stores.")

    @Option var pods = 10_000
    @Option var secrets = 10_000
    @Option var serviceAccounts = 2_000
    @Option(help: "Where to write the JSON figures.") var output: String?

    func run() async throws {
        let idleRSS = residentMegabytes()
        let dir = NSTemporaryDirectory() + "kt-bench-" + UUID().uuidString
        let devcluster = Process()
        devcluster.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kubetrace-devcluster")
        devcluster.arguments = ["--state-dir", dir]
        devcluster.standardError = FileHandle.nullDevice
        try devcluster.run()
        defer { devcluster.terminate(); try? FileManager.default.removeItem(atPath: dir) }
        while !FileManager.default.fileExists(atPath: "\(dir)/port") { try await Task.sleep(for: .milliseconds(20)) }
        let client = KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(file: "\(dir)/kubeconfig")))

        for ns in 0..<20 { _ = try await client.create(Namespace(metadata: ObjectMeta(name: "team-\(ns)"))) }
        // Bodies are generated per object (seeded by index) so this process keeps none of them.
        try await forEachConcurrently(0..<pods, width: 8) { i in
            var gen = SampleStream(seed: UInt64(i))
            let body = Self.object(of: gen.podEvent(type: "ADDED", index: i, resourceVersion: 1))
            _ = try await client.request("POST", path: "/api/v1/namespaces/team-\(i % 20)/pods", body: Self.strip(body, name: "pod-\(i)"))
        }
        try await forEachConcurrently(0..<secrets, width: 8) { i in
            var gen = SampleStream(seed: UInt64(i))
            let body = Self.object(of: gen.secretEvent(type: "ADDED", index: i, resourceVersion: 1))
            _ = try await client.request("POST", path: "/api/v1/namespaces/team-\(i % 20)/secrets", body: Self.strip(body, name: "secret-\(i)"))
        }
        try await forEachConcurrently(0..<serviceAccounts, width: 8) { i in
            _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "sa-\(i)", namespace: "team-\(i % 20)"), imagePullSecrets: [LocalObjectReference(name: "kubetrace-registry")]))
        }
        let clock = ContinuousClock()
        let t0 = clock.now
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let podR = Reflector<PodProjection>(client: client, logger: logger)
        let secretR = Reflector<ManagedSecret>(client: client, options: .managed(namespace: nil), logger: logger)
        let saR = Reflector<ServiceAccountProjection>(client: client, logger: logger)
        let synced: Double = try await withThrowingTaskGroup(of: Void.self) { group in
            let c1 = AsyncChannel<[WatchEvent<PodProjection>]>(), c2 = AsyncChannel<[WatchEvent<ManagedSecret>]>(), c3 = AsyncChannel<[WatchEvent<ServiceAccountProjection>]>()
            group.addTask { try await podR.run(into: c1) }
            group.addTask { try await secretR.run(into: c2) }
            group.addTask { try await saR.run(into: c3) }
            try await withThrowingTaskGroup(of: Void.self) { waits in
                waits.addTask { for await b in c1 where b.contains(where: { if case .synced = $0 { true } else { false } }) { return } }
                waits.addTask { for await b in c2 where b.contains(where: { if case .synced = $0 { true } else { false } }) { return } }
                waits.addTask { for await b in c3 where b.contains(where: { if case .synced = $0 { true } else { false } }) { return } }
                try await waits.waitForAll()
            }
            let seconds = (clock.now - t0).seconds
            group.cancelAll()
            return seconds
        }
        let afterSync = residentMegabytes()
        // The reflectors trim after their list; trim once more for this process's own request buffers.
        _ = mallocTrim(0)
        let after = residentMegabytes()
        let objects = Double(pods + secrets + serviceAccounts)
        DevClusterBench.report([
            // The watchers alone, in this process (the operator process's figures come from `operator`).
            ("watchers_initial_sync_s", synced), ("watchers_rss_mb_idle", idleRSS), ("watchers_rss_mb_22k_peak_sample", afterSync), ("watchers_rss_mb_22k", after),
            // Upper bound: everything this process holds beyond idle, divided by the objects cached.
            ("store_bytes_per_object", (after - idleRSS) * 1_048_576 / objects),
        ], output: output)
    }

    /// The `object` of an event line.
    static func object(of line: String) -> [UInt8] {
        let bytes = Array(line.utf8)
        let start = line.utf8.distance(from: line.startIndex, to: line.range(of: #""object":"#)!.upperBound)
        var end = bytes.count - 1
        while bytes[end] != UInt8(ascii: "}") { end -= 1 }
        return Array(bytes[start..<end])
    }

    /// Drops server-set metadata and names the object.
    static func strip(_ body: [UInt8], name: String) -> [UInt8] {
        guard var v = try? JSONValue.parse(body), var meta = v["metadata"]?.objectValue else { return body }
        for k in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generateName", "namespace"] { meta[k] = nil }
        meta["name"] = .string(name)
        v["metadata"] = .object(meta)
        v["status"] = v["status"]
        return v.jsonBytes()
    }
}
