import ArgumentParser
import Foundation
import KubeClient
import KubeSim
import KubetraceOperator
import Logging

/// Repair latency: from the DELETE of a pull Secret, as an independent watcher sees
/// it, to its re-creation, over many trials. The trials rotate over target namespaces
/// so that no single object exceeds SPEC §6's five repairs in ten seconds: what is
/// measured is the unthrottled path, as ordinary churn meets it.
struct RepairBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "repair", abstract: "Repair latency: DELETE of a pull Secret to its re-creation.")

    @Option(help: "Trials.") var trials = 500
    @Option(help: "Target namespaces the trials rotate over.") var namespaces = 50
    @Option(help: "Milliseconds between trials (50 over 50 namespaces: each object at most 5 times in 10 s, within SPEC §6's immediate-repair limit).") var intervalMs = 50
    @Option(help: "Repairers, comma-separated: ours, kopf (a minimal kopf operator doing the same repair).") var peers = "ours,kopf"
    @Option(help: "Directory of the peer scripts.") var peerScripts = "scripts/bench-peers"
    @Option(help: "Where to write the JSON figures (default: $BENCH_OUT or .build/bench.json).") var output: String?

    func run() async throws {
        let trials = trials, namespaces = namespaces, interval = intervalMs, peers = peers.split(separator: ",").map(String.init), scripts = peerScripts
        let figures = try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let home = "kubetrace-system"
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: home)))
            let doc = SecretBytes(#"{"auths":{"blr.vultrcr.com":{"username":"u","password":"p","auth":"dTpw"}}}"#)
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: home), type: "kubernetes.io/dockerconfigjson",
                                               data: [".dockerconfigjson": doc]))
            try await forEachConcurrently(0..<namespaces, width: 8) { i in
                _ = try await client.create(Namespace(metadata: ObjectMeta(name: "t-\(i)", labels: ["kubetrace.net/pull-secret": "true"])))
                // The copies exist from the start, so every repairer begins from the same state.
                _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: "t-\(i)", labels: ["app.kubernetes.io/managed-by": "kubetrace-operator"]),
                                                   type: "kubernetes.io/dockerconfigjson", data: [".dockerconfigjson": doc]))
            }
            var logger = Logger(label: "bench")
            logger.logLevel = .error
            var config = RepairConfiguration()
            config.targetNamespaces = .selector("kubetrace.net/pull-secret=true")

            // The independent watcher: every pull Secret in the cluster, raw lines, receipt times.
            let (events, sink) = AsyncStream.makeStream(of: (type: String, namespace: String, at: ContinuousClock.Instant).self)
            let (_, body) = try await client.stream(path: Secret.resource.path(), query: [("watch", "1"), ("fieldSelector", "metadata.name=kubetrace-registry")])
            let kubeconfigPath = NSTemporaryDirectory() + "kt-repair-bench-\(getpid()).kubeconfig"
            try cluster.kubeconfigYAML(server: await cluster.url()).write(toFile: kubeconfigPath, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: kubeconfigPath) }
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var buffer: [UInt8] = []
                    for try await chunk in body {
                        let at = ContinuousClock.now
                        buffer += chunk
                        while let nl = buffer.firstIndex(of: 10) {
                            let line = Array(buffer[..<nl])
                            buffer.removeFirst(nl + 1)
                            if let e = try? JSONValue.parse(line), let type = e["type"]?.stringValue, let ns = e["object"]?["metadata"]?["namespace"]?.stringValue {
                                sink.yield((type, ns, at))
                            }
                        }
                    }
                }
                // Ticks let a trial notice that nothing came back (a repairer that is not ready).
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(250))
                        sink.yield(("TICK", "", ContinuousClock.now))
                    }
                }
                var iterator = events.makeAsyncIterator()
                /// Deletes the pull Secret of `ns` and returns the DELETE → ADDED time the
                /// watcher saw, in ms; nil when it is not back within `timeout`.
                func trial(_ ns: String, timeout: Duration = .seconds(10)) async throws -> Double? {
                    try await client.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
                    let started = ContinuousClock.now
                    var deletedAt: ContinuousClock.Instant?
                    while let e = await iterator.next() {
                        if e.at - started > timeout { return nil }
                        guard e.namespace == ns else { continue }
                        if e.type == "DELETED" { deletedAt = e.at }
                        if e.type == "ADDED", let d = deletedAt { return (e.at - d).seconds * 1000 }
                    }
                    throw ValidationError("the watcher ended")
                }
                /// Trials on a fixed schedule, rotating over the namespaces.
                func schedule() async throws -> [Double] {
                    var latencies: [Double] = []
                    let clock = ContinuousClock()
                    let start = clock.now
                    for i in 0..<trials {
                        try await clock.sleep(until: start + .milliseconds(Int64(i * interval)))
                        guard let ms = try await trial("t-\(i % namespaces)") else { throw ValidationError("trial \(i): the pull Secret was not re-created within 10 s") }
                        latencies.append(ms)
                    }
                    return latencies.sorted()
                }
                func percentiles(_ name: String, _ l: [Double]) -> [(String, Double)] {
                    func p(_ q: Double) -> Double { l[min(l.count - 1, Int(Double(l.count) * q))] }
                    return [("\(name)_p50_ms", p(0.50)), ("\(name)_p95_ms", p(0.95)), ("\(name)_p99_ms", p(0.99)), ("\(name)_max_ms", l.last ?? 0)]
                }
                var out: [(String, Double)] = [("repair_trials", Double(trials)), ("repair_namespaces", Double(namespaces))]

                if peers.contains("ours") {
                    let service = RepairService(client: client, configuration: config, logger: logger)
                    out += try await withThrowingTaskGroup(of: Void.self) { ours in
                        ours.addTask { try await service.runWatches() }
                        ours.addTask { await service.runWorkers() }
                        await service.sync.waitUntilSynced()
                        let figures = percentiles("repair", try await schedule()) + [("rss_mb_repair_bench", residentMegabytes())]
                        ours.cancelAll()
                        return figures
                    }
                }
                if peers.contains("kopf") {
                    // The same repair by a minimal kopf operator, same devcluster, same schedule.
                    let kopf = Process()
                    kopf.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    kopf.arguments = ["kopf", "run", "--standalone", "--all-namespaces", "--quiet", "\(scripts)/kopf_repair.py"]
                    var env = ProcessInfo.processInfo.environment
                    env["KUBECONFIG"] = kubeconfigPath
                    kopf.environment = env
                    kopf.standardOutput = FileHandle.nullDevice
                    try kopf.run()
                    // SIGKILL: kopf's graceful stop waits on its open watches.
                    defer { kill(kopf.processIdentifier, SIGKILL); kopf.waitUntilExit() }
                    // Warm-up: kopf repairs once its own cache holds the Secrets (its start-up is not timed);
                    // until then a deleted Secret is put back by the bench and tried again.
                    var warm = false
                    for _ in 0..<20 where !warm {
                        if try await trial("t-0", timeout: .seconds(3)) != nil { warm = true; break }
                        _ = try? await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: "t-0"), type: "kubernetes.io/dockerconfigjson",
                                                            data: [".dockerconfigjson": doc]))
                    }
                    guard warm else { throw ValidationError("kopf never repaired the warm-up Secret") }
                    try await Task.sleep(for: .seconds(10))  // let t-0 fall out of the rate window for a fair schedule
                    let latencies = try await schedule()
                    let kopfFigures = percentiles("kopf_repair", latencies)
                    out += kopfFigures
                    print("kopf repair: p50 \(String(format: "%.2f", kopfFigures[0].1)) ms, p99 \(String(format: "%.2f", kopfFigures[2].1)) ms")
                }
                group.cancelAll()
                return out
            }
        }
        DevClusterBench.report(figures, output: output)
    }
}
