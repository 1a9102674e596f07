import BenchSupport
import Foundation
import KubeClient
import KubeSim
import Synchronization

/// One chaos run: install, start the operator, faults and damages for `duration`, recovery, stop.
struct ChaosRun: Sendable {
    let seed: UInt64
    let duration: Duration
    let recoveryBound: Duration
    let repairBound: Duration
    let stopBound: Duration
    let memoryLimitMB: Double
    let writeLimit: Int
    let operatorBinary: String
    let verbose: Bool

    static let ns = "kubetrace-system"
    static let targets = ["chaos-a", "chaos-b"]
    static let host = "blr.vultrcr.com"
    /// The read-only token's lifetime: refreshed at ~80 %, which leaves an 8 s margin; the API
    /// outages stay shorter than that (the issue's bound: no expired token while an outage is
    /// shorter than the safety margin).
    static let tokenLifetime: TimeInterval = 40
    static let longestOutage = 4.5
    /// Two Kubetrace API faults start at least this far apart (so their outages never add up to the 8 s margin).
    static let apiFaultSpacing: Duration = .seconds(15)

    /// Objects the operator keeps, as the invariant checker names them.
    static var managedKeys: Set<String> {
        var keys: Set<String> = [
            InvariantChecker.key("secrets", ns, "kubetrace-registry"),
            InvariantChecker.key("serviceaccounts", ns, "kubetrace-readonly-user"),
            InvariantChecker.key("roles", ns, "kubetrace-readonly"),
            InvariantChecker.key("rolebindings", ns, "kubetrace-readonly-user"),
        ]
        for t in targets {
            keys.insert(InvariantChecker.key("secrets", t, "kubetrace-registry"))
            keys.insert(InvariantChecker.key("serviceaccounts", t, "default"))
        }
        return keys
    }

    func log(_ text: @autoclosure () -> String) { if verbose { print(text()) } }

    func run() async throws -> ChaosReport {
        var options = DevCluster.Options()
        options.bookmarkInterval = .seconds(2)
        return try await DevCluster.withRunning(options) { cluster in
            try await self.run(in: cluster)
        }
    }

    private func run(in cluster: DevCluster) async throws -> ChaosReport {
        let started = ContinuousClock.now
        let dir = NSTemporaryDirectory() + "kt-chaos-\(getpid())-\(seed)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The runner's own writers and checks never use up a fault meant for the operator.
        cluster.faults.exempt(userAgentPrefix: "kubectl/")
        cluster.kubetraceAPI.configure { $0.tokenLifetime = Self.tokenLifetime }
        let url = await cluster.url()
        func write(_ name: String, _ text: String) throws -> String {
            let p = "\(dir)/\(name)"
            guard FileManager.default.createFile(atPath: p, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else { throw ChaosFailure("cannot write \(p)") }
            return p
        }
        let admin = try write("admin.kubeconfig", cluster.kubeconfigYAML(server: url))
        let tokenFile = try write("operator_token", cluster.operatorToken + "\n")
        let vultrKeyFile = try write("vultr_api_key", cluster.vultrAPIKey + "\n")
        let caFile = try write("ca.crt", cluster.certificateAuthority?.certificate.certificatePEM ?? "")
        let kubectl = Kubectl(kubeconfig: admin)

        let checker = InvariantChecker(registryHost: Self.host, operatorNamespace: Self.ns, managedKeys: Self.managedKeys)
        let changes = cluster.changes()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { for await c in changes { await checker.observe(c) } }
            defer { group.cancelAll() }

            // Install as a user would: namespaces, the generated manifest, `kubectl apply --server-side`.
            for t in Self.targets {
                try await kubectl.must(["create", "namespace", t])
                try await kubectl.must(["create", "serviceaccount", "default", "-n", t])
            }
            // A controller's Pod pulling from the registry, made while the accounts lacked the pull
            // Secret: the ServiceAccount admission plugin gave it the account's empty list, so it
            // can only recover as a new Pod.
            let pod = try write("stuck-pod.yaml", """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web-7d9f-stuck
              namespace: \(Self.targets[0])
              ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, uid: 5f0c7a2e-0000-4000-8000-000000000001, controller: true}]
            spec:
              serviceAccountName: default
              containers: [{name: web, image: \(Self.host)/acme/web:1.4}]
            """)
            try await kubectl.must(["create", "-f", pod])
            let manifest = "\(dir)/kubetrace-operator.yaml"
            let gen = try await runTool(operatorBinary, ["manifest", "--kubeconfig", admin, "--cluster-id", "chaos", "--api-url", "\(url)\(KubetraceAPIEmulator.pathPrefix)",
                                                         "--operator-token-file", tokenFile, "--vultr-api-key-file", vultrKeyFile,
                                                         "--registry-id", DevCluster.vultrRegistryID, "--vultr-api-url", "\(url)\(VultrEmulator.pathPrefix)",
                                                         "--ca-file", caFile, "--target-namespaces", Self.targets.joined(separator: ","), "--output", manifest],
                                      environment: ["PATH": "/usr/bin:/bin", "HOME": dir])
            guard gen.status == 0 else { throw ChaosFailure("manifest failed: \(gen.stderr)") }
            try await kubectl.must(["apply", "--server-side", "-f", manifest])
            // The operator runs with its own ServiceAccount's token: exactly the manifest's RBAC.
            let token = try await kubectl.must(["create", "token", "kubetrace-operator", "-n", Self.ns, "--duration", "24h"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let operatorKubeconfig = try write("operator.kubeconfig", cluster.kubeconfigYAML(server: url, token: token))

            let op = try OperatorUnderTest(binary: operatorBinary, dir: dir, arguments: [
                "run", "--kubeconfig", operatorKubeconfig, "--ca-file", caFile, "--vultr-api-url", "\(url)\(VultrEmulator.pathPrefix)",
                "--registry-lifetime", "90s", "--target-namespaces", Self.targets.joined(separator: ","),
                "--watch-idle-timeout", "10s", "--log-level", "debug", "--lease-duration", "6s", "--renew-deadline", "4s", "--retry-period", "1s",
            ], environment: ["API_URL": "\(url)\(KubetraceAPIEmulator.pathPrefix)", "CLUSTER_ID": "chaos", "POD_NAMESPACE": Self.ns, "LOG_FORMAT": "json"])
            defer { op.forceKill() }
            guard await op.waitReady(seconds: 90) else { throw ChaosFailure("the operator sent no READY=1 within 90 s; its log:\n\(op.tail())") }
            try await awaitCondition("every managed object valid after start", within: .seconds(30)) { await checker.allHealthy }
            // The stuck Pod made before the operator started (below) now fails to pull: under the
            // manifest's RBAC the operator deletes it once so its controller recreates it.
            try await kubectl.must(["patch", "pod", "web-7d9f-stuck", "-n", Self.targets[0], "--subresource=status", "--type", "merge", "-p",
                                    #"{"status":{"phase":"Pending","containerStatuses":[{"name":"web","ready":false,"restartCount":0,"image":"blr.vultrcr.com/acme/web:1.4","state":{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image"}}}]}}"#])
            try await awaitCondition("the stuck Pod restarted by the operator", within: .seconds(30)) { await checker.podDeleted("\(Self.targets[0])/web-7d9f-stuck") }
            let violationsAtStart = await checker.violations
            guard violationsAtStart.isEmpty else { throw ChaosFailure("before any fault: \(violationsAtStart.joined(separator: "; "))") }

            let rssStart = ProcessStats.rssMegabytes(op.pid)
            let rss = Mutex((max: rssStart, last: rssStart))
            let faults = Mutex([String: Int]())
            let stop = Atomic<Bool>(false)

            // The clock: invariants every 250 ms, RSS and liveness every second.
            group.addTask {
                var n = 0
                while !stop.load(ordering: .relaxed) {
                    try await Task.sleep(for: .milliseconds(250))
                    await checker.tick(repairBound: repairBound)
                    n += 1
                    if n % 4 == 0 {
                        if let status = op.exitStatus { await checker.violate("the operator exited (status \(status)) during chaos; its log:\n\(op.tail())"); return }
                        let mb = ProcessStats.rssMegabytes(op.pid)
                        rss.withLock { $0 = (max($0.max, mb), mb) }
                        if mb > memoryLimitMB { await checker.violate("operator RSS \(mb) MB exceeds the limit \(memoryLimitMB) MB") }
                    }
                }
            }

            // Faults and damages, from one seeded sequence.
            var rng = SplitMix(seed: seed)
            let end = ContinuousClock.now.advanced(by: duration)
            var lastDamage: [String: ContinuousClock.Instant] = [:]
            var lastAPIFault: ContinuousClock.Instant?
            var step = 0
            while ContinuousClock.now < end {
                step += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 300...1500, using: &rng)))
                if await !checker.violations.isEmpty { break }
                if Bool.random(using: &rng) {
                    let name = try await injectFault(&rng, cluster: cluster, lastAPIFault: &lastAPIFault)
                    faults.withLock { $0[name, default: 0] += 1 }
                    log("chaos: step \(step): fault \(name)")
                } else {
                    // An outside writer: one object at a time, none more often than every 4 s
                    // (faster is a fight, which the rate limiter slows on purpose: SPEC §6).
                    let now = ContinuousClock.now
                    // Only a healthy object is damaged: a write onto a still-broken one can be a
                    // no-op (no change, nothing to observe), and its repair is already owed.
                    var candidates: [Damages.Damage] = []
                    for d in Damages.all where lastDamage[d.key].map({ now - $0 > .seconds(4) }) ?? true {
                        if await checker.isHealthy(d.key) { candidates.append(d) }
                    }
                    guard let damage = candidates.randomElement(using: &rng) else { continue }
                    let id = await checker.expectDamage(damage.key, damage.what)
                    let r = try await kubectl.run(damage.kubectl)
                    if r.status != 0 {
                        await checker.cancelDamage(id)
                        log("chaos: step \(step): damage \(damage.what) on \(damage.key) not made: \(r.stderr.prefix(200))")
                    } else {
                        lastDamage[damage.key] = now
                        faults.withLock { $0["outside-writer", default: 0] += 1 }
                        log("chaos: step \(step): damage #\(id) \(damage.what) on \(damage.key)")
                    }
                }
            }

            // Faults stop: everything must be repaired within the recovery bound.
            cluster.faults.clear()
            cluster.kubetraceAPI.outage(.unavailable, seconds: 0)
            if await checker.violations.isEmpty {
                do {
                    try await awaitCondition("every damage repaired after the faults stopped", within: recoveryBound) { await checker.allHealthy }
                } catch {
                    await checker.violate("\(error): still broken: \(await checker.unhealthy.joined(separator: ", "))")
                }
            }
            await checker.checkWriteBound(limit: writeLimit)
            stop.store(true, ordering: .relaxed)
            let rssEnd = ProcessStats.rssMegabytes(op.pid)
            let stopping = ContinuousClock.now
            let exit = await op.stop(within: stopBound)
            if exit != 0 { await checker.violate("the operator exited \(exit) on SIGTERM (want 0 within \(stopBound)); its log:\n\(op.tail())") }
            log("chaos: the operator stopped in \(ContinuousClock.now - stopping)")
            let forbidden = op.logLines(containing: "forbidden")
            if !forbidden.isEmpty { await checker.violate("the operator met 403s under its manifest's RBAC: \(forbidden.prefix(3).joined(separator: " | "))") }
            let leaked = op.logLines(containing: cluster.operatorToken) + op.logLines(containing: cluster.vultrAPIKey)
            if !leaked.isEmpty { await checker.violate("a secret appeared in the operator's log") }
            let violations = await checker.violations
            if !violations.isEmpty {
                // The operator's own account of the run, for whoever replays the seed (no secret is logged).
                let refreshes = op.logLines(containing: "\"event\":\"token_").suffix(30).joined(separator: "\n")
                print("chaos: the operator's refresh log:\n\(refreshes)\nchaos: the operator's log, last 25 lines:\n\(op.tail(25))")
            }
            return ChaosReport(seed: seed, seconds: Double((ContinuousClock.now - started).components.seconds), faults: faults.withLock { $0 },
                               summary: await checker.summary(), violations: violations,
                               rssStartMB: rssStart, rssMaxMB: rss.withLock { $0.max }, rssEndMB: rssEnd, operatorExit: exit)
        }
    }

    /// One fault from the mix; returns its name.
    private func injectFault(_ rng: inout SplitMix, cluster: DevCluster, lastAPIFault: inout ContinuousClock.Instant?) async throws -> String {
        var choice = Int.random(in: 0..<11, using: &rng)
        // Kubetrace API faults (7, 8, 10) keep the issue's precondition: each outage is shorter
        // than the margin, and they are spaced so that two never add up to more than it.
        if [7, 8, 10].contains(choice) {
            if let last = lastAPIFault, ContinuousClock.now - last < Self.apiFaultSpacing { choice = 0 } else { lastAPIFault = ContinuousClock.now }
        }
        switch choice {
        case 0:
            cluster.dropWatches()
            return "watch-drop"
        case 1:
            await cluster.compactHistory()
            cluster.dropWatches()
            return "compaction-410"
        case 2:
            // As kube-apiserver answers while its watch cache initialises.
            cluster.faults.failNext(.init(count: Int.random(in: 2...8, using: &rng), status: 429, retryAfterSeconds: 1))
            return "429-burst"
        case 3:
            cluster.faults.failNext(.init(count: Int.random(in: 2...8, using: &rng), status: 500))
            return "500-burst"
        case 4:
            cluster.faults.failNext(.init(count: Int.random(in: 1...4, using: &rng), status: 429, retryAfterSeconds: 1, plainText: true))
            return "429-plain-text"
        case 5:
            let ms = Int.random(in: 100...700, using: &rng)
            cluster.faults.setLatency(.milliseconds(ms))
            try await Task.sleep(for: .milliseconds(Int.random(in: 500...2500, using: &rng)))
            cluster.faults.setLatency(.zero)
            return "latency-spike"
        case 6:
            await cluster.restart()
            return "devcluster-restart"
        case 7:
            let failure: KubetraceAPIEmulator.Failure = [.unavailable, .rateLimited, .notJSON, .missingToken].randomElement(using: &rng)!
            cluster.kubetraceAPI.outage(failure, seconds: Double.random(in: 2...Self.longestOutage, using: &rng))
            return "api-outage"
        case 8:
            cluster.kubetraceAPI.outage(.unauthorized, seconds: 1)
            return "api-401"
        case 9:
            cluster.vultr.failNext(status: [500, 503, 429].randomElement(using: &rng)!)
            return "vultr-error"
        default:
            // An API outage as long as the longest allowed, at the worst moment: right when the
            // token is due (its refresh and first retries all fail).
            cluster.kubetraceAPI.outage(.unavailable, seconds: Self.longestOutage)
            return "api-outage-long"
        }
    }

    private func awaitCondition(_ what: String, within: Duration, _ condition: @Sendable () async -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: within)
        while ContinuousClock.now < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ChaosFailure("timed out after \(within): \(what)")
    }
}

/// The outside writers' repertoire: what a careless human or another controller does.
enum Damages {
    struct Damage: Sendable {
        var key: String
        var what: String
        var kubectl: [String]
    }

    static var all: [Damage] {
        let ns = ChaosRun.ns
        var list: [Damage] = []
        for n in [ns] + ChaosRun.targets {
            let key = InvariantChecker.key("secrets", n, "kubetrace-registry")
            list.append(Damage(key: key, what: "delete pull Secret", kubectl: ["delete", "secret", "kubetrace-registry", "-n", n, "--wait=false"]))
            // The API server refuses a .dockerconfigjson that is not JSON or is missing, as it should:
            // what gets through is valid JSON that holds nothing usable, or the wrong registry.
            list.append(Damage(key: key, what: "empty auths", kubectl: ["patch", "secret", "kubetrace-registry", "-n", n, "--type", "merge",
                                                                       "-p", #"{"data":{".dockerconfigjson":"eyJhdXRocyI6e319"}}"#]))
            list.append(Damage(key: key, what: "empty document", kubectl: ["patch", "secret", "kubetrace-registry", "-n", n, "--type", "merge",
                                                                          "-p", #"{"data":{".dockerconfigjson":"e30="}}"#]))
            list.append(Damage(key: key, what: "wrong registry", kubectl: ["patch", "secret", "kubetrace-registry", "-n", n, "--type", "merge",
                                                                          "-p", #"{"data":{".dockerconfigjson":"eyJhdXRocyI6eyJldmlsLmV4YW1wbGUuY29tIjp7ImF1dGgiOiJlRHA1In19fQ=="}}"#]))
        }
        for (n, sa) in [(ns, "kubetrace-readonly-user")] + ChaosRun.targets.map({ ($0, "default") }) {
            list.append(Damage(key: InvariantChecker.key("serviceaccounts", n, sa), what: "strip imagePullSecrets",
                               kubectl: ["patch", "serviceaccount", sa, "-n", n, "--type", "json", "-p", #"[{"op":"replace","path":"/imagePullSecrets","value":[{"name":"other"}]}]"#]))
        }
        let role = InvariantChecker.key("roles", ns, "kubetrace-readonly")
        list.append(Damage(key: role, what: "empty Role rules", kubectl: ["patch", "role", "kubetrace-readonly", "-n", ns, "--type", "json", "-p", #"[{"op":"replace","path":"/rules","value":[]}]"#]))
        list.append(Damage(key: role, what: "delete Role", kubectl: ["delete", "role", "kubetrace-readonly", "-n", ns, "--wait=false"]))
        let binding = InvariantChecker.key("rolebindings", ns, "kubetrace-readonly-user")
        list.append(Damage(key: binding, what: "swap RoleBinding subjects", kubectl: ["patch", "rolebinding", "kubetrace-readonly-user", "-n", ns, "--type", "json",
                                                                                       "-p", #"[{"op":"replace","path":"/subjects","value":[{"kind":"ServiceAccount","name":"intruder","namespace":"kubetrace-system"}]}]"#]))
        list.append(Damage(key: binding, what: "delete RoleBinding", kubectl: ["delete", "rolebinding", "kubetrace-readonly-user", "-n", ns, "--wait=false"]))
        return list
    }
}
