import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// The daemon as systemd and Kubernetes run it: sd_notify, watchdog, reload, stop,
/// log formats, health and metrics endpoints.
@Suite(.timeLimit(.minutes(2))) struct RunModeTests {
    struct Setup {
        let dir: TempDir
        let kubeconfig: String
        let client: KubeClient
        let ns = "kubetrace-system"
    }

    func setup(_ cluster: DevCluster) async throws -> Setup {
        let dir = TempDir()
        let client = try await cliClient(cluster)
        let s = Setup(dir: dir, kubeconfig: dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url())), client: client)
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: s.ns)))
        _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: s.ns), type: "kubernetes.io/dockerconfigjson",
                                           data: [".dockerconfigjson": SecretBytes(#"{"auths":{"blr.vultrcr.com":{"username":"u","password":"pull-canary-7f3a","auth":"dTpw"}}}"#)]))
        return s
    }

    func runArgs(_ s: Setup, _ extra: [String] = []) -> [String] {
        ["run", "--kubeconfig", s.kubeconfig, "--namespace", s.ns, "--token-source", "tokenrequest"] + extra
    }

    @Test func notifySequenceWatchdogReloadAndStop() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let notify = try NotifyListener(path: "\(s.dir.path)/notify.sock")
            let op = try OperatorProcess(runArgs(s), dir: s.dir, name: "op",
                                         environment: ["NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "600000", "LOG_FORMAT": "text"])
            try await notify.messages.waitFor("READY=1", timeout: .seconds(30))
            // READY only after every watcher synced: by now all five kinds are being watched.
            #expect(cluster.openWatches >= 5)
            let ready = notify.all.first { $0.hasPrefix("READY=1") } ?? ""
            #expect(ready.contains("STATUS=watching 5 kinds"), "\(ready)")

            // Watchdog pings every 300 ms (half of 600 ms) while the loop is healthy: observe ~2 s of them.
            let pingsBefore = notify.all.filter { $0 == "WATCHDOG=1" }.count
            // An observation window, not synchronisation: the cadence needs time to show.
            try await Task.sleep(for: .seconds(2))
            let pings = notify.times.withLock { $0.filter { $0.text == "WATCHDOG=1" }.map(\.at) }
            #expect(pings.count >= pingsBefore + 4, "\(pings.count) pings")
            let gaps = zip(pings.dropFirst(), pings).map { ($0 - $1) }.sorted()
            let median = gaps[gaps.count / 2]
            #expect(median >= .milliseconds(200) && median <= .milliseconds(500), "median gap \(median)")

            // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
            op.signal(SIGHUP)
            try await notify.messages.waitFor("RELOADING=1", timeout: .seconds(10))
            let reloading = notify.all.first { $0.hasPrefix("RELOADING=1") } ?? ""
            let usec = reloading.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) }
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let nowUsec = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
            #expect(usec.map { nowUsec >= $0 && nowUsec - $0 < 10_000_000 } == true, "MONOTONIC_USEC is CLOCK_MONOTONIC: \(reloading)")
            try await notify.messages.waitFor("READY=1", count: 2, timeout: .seconds(10))
            let order = notify.all.filter { $0.hasPrefix("READY=1") || $0.hasPrefix("RELOADING=1") }.map { $0.split(separator: "\n").first.map(String.init) ?? "" }
            #expect(order == ["READY=1", "RELOADING=1", "READY=1"], "\(order)")
            try await op.lines.waitFor("reloaded credential files")

            // SIGTERM: STOPPING=1, exit 0, the Lease released.
            #expect(try await op.stop() == 0)
            #expect(notify.all.contains { $0.hasPrefix("STOPPING=1") })
            #expect(try await s.client.get(Lease.self, namespace: s.ns, name: "kubetrace-operator-leader").spec?.holderIdentity == "")
            #expect(!op.log.contains("pull-canary-7f3a"))
        }
    }

    @Test func abstractNotifySocket() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let notify = try NotifyListener(abstractName: "kubetrace-test-\(UUID().uuidString.prefix(8))")
            let op = try OperatorProcess(runArgs(s), dir: s.dir, name: "op", environment: ["NOTIFY_SOCKET": notify.address])
            try await notify.messages.waitFor("READY=1", timeout: .seconds(30))
            #expect(try await op.stop() == 0)
            #expect(notify.all.last?.hasPrefix("STOPPING=1") == true, "\(notify.all)")
        }
    }

    /// A stalled event loop must stop the watchdog pings (systemd then restarts the service).
    @Test func noWatchdogPingsWhenTheLoopStalls() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let notify = try NotifyListener(path: "\(s.dir.path)/notify.sock")
            let op = try OperatorProcess(runArgs(s), dir: s.dir, name: "op",
                                         environment: ["NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "600000",
                                                       "KUBETRACE_FAILPOINT": "stall-loop-after=3s", "LOG_FORMAT": "text"])
            try await notify.messages.waitFor("READY=1", timeout: .seconds(30))
            try await op.lines.waitFor("failpoint: stalling the loop", timeout: .seconds(20))
            let stalledAt = ContinuousClock.now
            try await op.lines.waitFor("withholding watchdog pings", timeout: .seconds(10))
            // Observe a window of 2 s after the stall was reported: no ping may arrive in it.
            let quietFrom = ContinuousClock.now
            // An observation window: absence can only be shown over time.
            try await Task.sleep(for: .seconds(2))
            let pings = notify.times.withLock { $0.filter { $0.text == "WATCHDOG=1" }.map(\.at) }
            #expect(pings.contains { $0 < stalledAt }, "pings while healthy")
            #expect(!pings.contains { $0 > quietFrom }, "no ping once the loop is stuck")
            _ = try await op.stop(SIGKILL)
        }
    }

    @Test func unreachableNotifySocketIsAWarningNotAnExit() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let op = try OperatorProcess(runArgs(s), dir: s.dir, name: "op", environment: ["NOTIFY_SOCKET": "\(s.dir.path)/missing/notify.sock", "LOG_FORMAT": "text"])
            try await op.lines.waitFor("cannot notify systemd; carrying on without it", timeout: .seconds(30))
            try await awaitObject(s.client, Lease.self, namespace: s.ns, name: "kubetrace-operator-leader", timeout: .seconds(20), "the operator still running and leading") {
                !($0?.spec?.holderIdentity ?? "").isEmpty
            }
            #expect(try await op.stop() == 0)
        }
    }

    @Test func badRunModeConfigurationExits2NamingTheInput() async throws {
        let dir = TempDir()
        let kubeconfig = dir.write("kubeconfig", """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
        contexts: [{name: c, context: {cluster: c}}]
        """)
        let format = try await runCLI(["run", "--kubeconfig", kubeconfig], environment: ["LOG_FORMAT": "yaml"])
        #expect(format.status == 2)
        #expect(format.stderr.contains("LOG_FORMAT: \"yaml\" is not one of auto, json, text, journald"), "\(format.stderr)")
        let flag = try await runCLI(["run", "--kubeconfig", kubeconfig, "--log-format", "xml"])
        #expect(flag.status == 2 && flag.stderr.contains("--log-format: \"xml\""))

        // A port already in use.
        let busy = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(busy) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(busy, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(busy, 1)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(busy, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let inUse = try await runCLI(["run", "--kubeconfig", kubeconfig, "--health-addr", "127.0.0.1:\(port)"])
        #expect(inUse.status == 2)
        #expect(inUse.stderr.contains("--health-addr: 127.0.0.1:\(port) is already in use"), "\(inUse.stderr)")
        let badAddr = try await runCLI(["run", "--kubeconfig", kubeconfig], environment: ["METRICS_ADDR": "localhost"])
        #expect(badAddr.status == 2 && badAddr.stderr.contains("METRICS_ADDR: \"localhost\" is not an address"))

        // A credentials directory whose kubeconfig is not one.
        let creds = TempDir()
        creds.write("kubeconfig", "clusters: [not, a, kubeconfig")
        let cred = try await runCLI(["run"], environment: ["CREDENTIALS_DIRECTORY": creds.path])
        #expect(cred.status == 2)
        #expect(cred.stderr.contains("\(creds.path)/kubeconfig"), "\(cred.stderr)")
    }

    @Test func healthReadinessAndMetricsEndpoints() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let op = try OperatorProcess(runArgs(s, ["--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"]), dir: s.dir, name: "op",
                                         environment: ["LOG_FORMAT": "json"])
            try await op.lines.waitFor("\"event\":\"ready\"", timeout: .seconds(30))
            func port(_ what: String) throws -> Int {
                let line = op.lines.all.first { $0.contains("serving") && $0.contains(what) } ?? ""
                let json = try JSONValue.parse(Array(line.utf8))
                return Int(json["port"]?.stringValue ?? "") ?? 0
            }
            let health = try port("/healthz"), metrics = try port("/metrics")
            #expect(health > 0 && metrics > 0 && health != metrics)
            let healthz = try await runTool("curl", ["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(health)/healthz"])
            #expect(healthz.stdout == "ok\n\n200", "\(healthz.stdout)")
            // Ready comes before the election is won (a standby is ready too): read the role after it.
            try await op.lines.waitFor("\"event\":\"leader_acquired\"", timeout: .seconds(30))
            let readyz = try await runTool("curl", ["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(health)/readyz"])
            #expect(readyz.stdout.hasSuffix("200") && readyz.stdout.hasPrefix("ok: leader"), "\(readyz.stdout)")
            let wrongPort = try await runTool("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(health)/metrics"])
            #expect(wrongPort.stdout == "404")

            // A repair, then the exposition.
            try await s.client.delete(Secret.self, namespace: s.ns, name: "kubetrace-registry")
            try await op.lines.waitFor("pull_secret_repaired")
            try await op.lines.waitFor("token_refreshed", timeout: .seconds(20))
            let scrape = try await runTool("curl", ["-s", "http://127.0.0.1:\(metrics)/metrics"])
            let samples = try parseExposition(scrape.stdout)
            #expect(samples["kubetrace_repairs_total{kind=\"pull_secret\",outcome=\"repaired\"}"] == 1, "\(scrape.stdout)")
            #expect(samples["kubetrace_leader"] == 1)
            #expect((samples["kubetrace_watch_events_total{watch=\"secrets@kubetrace-system\"}"] ?? 0) >= 2)
            #expect(samples.keys.contains { $0.hasPrefix("kubetrace_watch_relists_total") })
            #expect(samples.keys.contains { $0.hasPrefix("kubetrace_watch_reconnects_total") })
            #expect((samples["kubetrace_credential_refreshes_total{credential=\"kubeconfig-token\",outcome=\"success\"}"] ?? 0) >= 1)
            #expect((samples["kubetrace_credential_expiry_seconds{credential=\"kubeconfig-token\"}"] ?? 0) > 600)
            #expect(!scrape.stdout.contains("pull-canary-7f3a"))
            // The series the alerts rely on (deploy/monitoring/).
            #expect(samples["kubetrace_watch_synced{watch=\"secrets@kubetrace-system\"}"] == 1)
            let activity = samples["kubetrace_watch_last_activity_timestamp_seconds{watch=\"secrets@kubetrace-system\"}"] ?? 0
            #expect(abs(activity - Date().timeIntervalSince1970) < 120, "\(activity)")
            #expect((samples["kubetrace_watch_resource_version{watch=\"secrets@kubetrace-system\"}"] ?? 0) > 0)
            let expiry = samples["kubetrace_credential_expiry_timestamp_seconds{credential=\"kubeconfig-token\"}"] ?? 0
            #expect(expiry > Date().timeIntervalSince1970 + 600, "\(expiry)")
            #expect((samples["kubetrace_credential_safety_margin_seconds{credential=\"kubeconfig-token\"}"] ?? 0) > 0)
            #expect(samples["kubetrace_repairs_total{kind=\"role\",outcome=\"failed\"}"] == 0, "failure series exist at zero")
            let started = samples["kubetrace_start_time_seconds"] ?? 0
            #expect(started <= Date().timeIntervalSince1970 && started > Date().timeIntervalSince1970 - 120)
            try MonitoringTests.checkNames(exportedBy: samples)
            #expect(try await op.stop() == 0)
        }
    }

    /// `name{labels} value` lines, with `# HELP`/`# TYPE` comments; anything else fails.
    func parseExposition(_ text: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                Issue.record("not an exposition line: \(line)")
                continue
            }
            let name = String(line[..<space])
            #expect(name.range(of: #"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})?$"#, options: .regularExpression) != nil, "\(name)")
            out[name] = value
        }
        return out
    }
}

