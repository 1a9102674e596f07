import ArgumentParser
import BenchSupport
import Foundation
import KubeClient
import KubeSim

/// The operator as a process: start-up to `READY=1` with 22,000 watched objects,
/// its RSS then and with nothing to watch, and what it costs while nothing changes
/// (CPU time and context switches over a quiet minute — no polling anywhere).
struct OperatorBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "operator", abstract: "Operator process: start-up to READY, RSS, idle CPU and wake-ups.")

    @Option(help: "Pods in the operator's namespace.") var pods = 10_000
    @Option(help: "Secrets in the operator's namespace.") var secrets = 10_000
    @Option(help: "ServiceAccounts in the operator's namespace.") var serviceAccounts = 2_000
    @Option(help: "Seconds of quiet to measure the idle cost over.") var idleSeconds = 60
    @Option(help: "Where to write the JSON figures.") var output: String?

    func run() async throws {
        let (pods, secrets, accounts, idle) = (pods, secrets, serviceAccounts, idleSeconds)
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kubetrace-operator").path
        let figures = try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let ns = "kubetrace-system"
            for n in [ns, "empty-ns"] { _ = try await client.create(Namespace(metadata: ObjectMeta(name: n))) }
            for n in [ns, "empty-ns"] {
                _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: n), type: "kubernetes.io/dockerconfigjson",
                                                   data: [".dockerconfigjson": SecretBytes(#"{"auths":{"blr.vultrcr.com":{"auth":"dTpw"}}}"#)]))
            }
            // The 22,000 objects (Pods as kube-apiserver writes them).
            var gen = SampleStream(seed: 11)
            let podBodies = try (0..<pods).map { i -> [UInt8] in
                let event = try JSONValue.parse(Array(gen.podEvent(type: "ADDED", index: i, resourceVersion: 1).utf8))
                guard case .object(var obj)? = event["object"], case .object(var meta)? = obj["metadata"] else { return [] }
                meta["namespace"] = .string(ns); meta["resourceVersion"] = nil; meta["uid"] = nil
                meta["name"] = .string("web-\(i)")
                obj["metadata"] = .object(meta)
                return JSONValue.object(obj).jsonBytes()
            }
            try await forEachConcurrently(0..<pods, width: 8) { i in
                _ = try await client.request("POST", path: Pod.resource.path(namespace: ns), body: podBodies[i])
            }
            try await forEachConcurrently(0..<secrets, width: 8) { i in
                _ = try await client.create(Secret(metadata: ObjectMeta(name: "s-\(i)", namespace: ns), type: "Opaque", data: ["token": SecretBytes("value-\(i)-\(String(repeating: "x", count: 400))")]))
            }
            try await forEachConcurrently(0..<accounts, width: 8) { i in
                _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "sa-\(i)", namespace: ns)))
            }
            let dir = NSTemporaryDirectory() + "kt-operator-bench-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let kubeconfig = "\(dir)/kubeconfig"
            try cluster.kubeconfigYAML(server: await cluster.url()).write(toFile: kubeconfig, atomically: true, encoding: .utf8)

            func start(_ namespace: String) async throws -> (Process, Duration) {
                let notify = try DatagramListener(path: "\(dir)/notify-\(namespace).sock")
                let p = Process()
                p.executableURL = URL(fileURLWithPath: bin)
                p.arguments = ["run", "--kubeconfig", kubeconfig, "--namespace", namespace, "--token-source", "tokenrequest", "--leader-elect", "false"]
                var env = ["PATH": "/usr/bin:/bin", "HOME": dir, "NOTIFY_SOCKET": notify.path, "LOG_FORMAT": "json"]
                // Allocator tuning under test (e.g. MALLOC_ARENA_MAX) passes through.
                for (k, v) in ProcessInfo.processInfo.environment where k.hasPrefix("MALLOC_") || k.hasPrefix("GLIBC_TUNABLES") { env[k] = v }
                p.environment = env
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                let clock = ContinuousClock()
                let t0 = clock.now
                try p.run()
                // The blocking receive runs on a thread of its own: the devcluster answering the operator needs the cooperative pool.
                let ready = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                    Thread { c.resume(returning: notify.waitFor("READY=1", seconds: 120)) }.start()
                }
                guard ready else { p.terminate(); throw ValidationError("no READY=1 from the operator within 120 s") }
                return (p, clock.now - t0)
            }

            let (big, startup) = try await start(ns)
            // Settle: the first repairs and the token refresh are done.
            try await Task.sleep(for: .seconds(5))
            let rss22k = ProcessStats.rssMegabytes(big.processIdentifier)
            let anon22k = ProcessStats.rssMegabytes(big.processIdentifier, field: "RssAnon:")
            let before = ProcessStats.sample(big.processIdentifier)
            try await Task.sleep(for: .seconds(idle))
            let after = ProcessStats.sample(big.processIdentifier)
            big.terminate()
            big.waitUntilExit()

            let (small, _) = try await start("empty-ns")
            try await Task.sleep(for: .seconds(3))
            let rssIdle = ProcessStats.rssMegabytes(small.processIdentifier)
            let anonIdle = ProcessStats.rssMegabytes(small.processIdentifier, field: "RssAnon:")
            small.terminate()
            small.waitUntilExit()

            let cpuSeconds = after.cpuSeconds - before.cpuSeconds
            let objects = Double(pods + secrets + accounts)
            return [
                ("initial_sync_s", startup.seconds),
                ("rss_mb_22k", rss22k),
                ("rss_mb_idle", rssIdle),
                // Anonymous memory (heap, stacks) apart from the mapped binary and libraries.
                ("rss_anon_mb_22k", anon22k),
                ("rss_anon_mb_idle", anonIdle),
                ("bytes_per_cached_object", (rss22k - rssIdle) * 1_048_576 / objects),
                ("idle_cpu_pct", cpuSeconds / Double(idle) * 100),
                ("idle_wakeups_per_s", Double(after.contextSwitches - before.contextSwitches) / Double(idle)),
            ]
        }
        DevClusterBench.report(figures, output: output)
    }
}
