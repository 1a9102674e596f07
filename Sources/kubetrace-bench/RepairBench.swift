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

    @Option(help: "Trials.") var trials = 1000
    @Option(help: "Target namespaces the trials rotate over.") var namespaces = 250
    @Option(help: "Where to write the JSON figures (default: $BENCH_OUT or .build/bench.json).") var output: String?

    func run() async throws {
        let trials = trials, namespaces = namespaces
        let figures = try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let home = "kubetrace-system"
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: home)))
            let doc = SecretBytes(#"{"auths":{"blr.vultrcr.com":{"username":"u","password":"p","auth":"dTpw"}}}"#)
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: home), type: "kubernetes.io/dockerconfigjson",
                                               data: [".dockerconfigjson": doc]))
            try await forEachConcurrently(0..<namespaces, width: 8) { i in
                _ = try await client.create(Namespace(metadata: ObjectMeta(name: "t-\(i)", labels: ["kubetrace.net/pull-secret": "true"])))
            }
            var logger = Logger(label: "bench")
            logger.logLevel = .error
            var config = RepairConfiguration()
            config.targetNamespaces = .selector("kubetrace.net/pull-secret=true")
            let service = RepairService(client: client, configuration: config, logger: logger)

            // The independent watcher: every pull Secret in the cluster, raw lines, receipt times.
            let (events, sink) = AsyncStream.makeStream(of: (type: String, namespace: String, at: ContinuousClock.Instant).self)
            let (_, body) = try await client.stream(path: Secret.resource.path(), query: [("watch", "1"), ("fieldSelector", "metadata.name=kubetrace-registry")])
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
                group.addTask { try await service.runWatches() }
                group.addTask { await service.runWorkers() }
                var iterator = events.makeAsyncIterator()
                // Every target namespace gets its copy first.
                var copies = Set<String>()
                while copies.count < namespaces, let e = await iterator.next() {
                    if e.type == "ADDED", e.namespace.hasPrefix("t-") { copies.insert(e.namespace) }
                }
                var latencies: [Double] = []
                latencies.reserveCapacity(trials)
                let clock = ContinuousClock()
                let started = clock.now
                for i in 0..<trials {
                    let ns = "t-\(i % namespaces)"
                    try await client.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
                    var deletedAt: ContinuousClock.Instant?
                    while let e = await iterator.next() {
                        guard e.namespace == ns else { continue }
                        if e.type == "DELETED" { deletedAt = e.at }
                        if e.type == "ADDED", let d = deletedAt {
                            latencies.append((e.at - d).seconds * 1000)
                            break
                        }
                    }
                }
                let wall = (clock.now - started).seconds
                group.cancelAll()
                latencies.sort()
                func p(_ q: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * q))] }
                return [
                    ("repair_trials", Double(latencies.count)),
                    ("repair_latency_p50_ms", p(0.50)),
                    ("repair_latency_p90_ms", p(0.90)),
                    ("repair_latency_p99_ms", p(0.99)),
                    ("repair_latency_max_ms", latencies.last ?? 0),
                    ("repair_trials_per_s", Double(latencies.count) / wall),
                    ("rss_mb_repair_bench", residentMegabytes()),
                ]
            }
        }
        DevClusterBench.report(figures, output: output)
    }
}
