import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
@testable import KubetraceOperator
import Testing

/// `status`: the report from cluster objects, then the command against a running operator.
@Suite struct StatusReportTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static func time(_ offset: TimeInterval) -> String { RFC3339.format(now.addingTimeInterval(offset)) }

    func lease(holder: String, renewed: TimeInterval, watches: [String: WatchHealthRecord.Watch]) -> Lease {
        var meta = ObjectMeta(name: "kubetrace-operator-leader", namespace: "kubetrace-system")
        var record = WatchHealthRecord(at: Self.now.addingTimeInterval(-1), stats: [:])
        record.watches = watches
        meta.annotations = [WatchHealthRecord.annotation: record.encoded()]
        return Lease(metadata: meta, spec: Lease.Spec(holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: Self.time(-3600), renewTime: Self.time(renewed), leaseTransitions: 2))
    }

    func secret(_ name: String, annotations: [String: String]) -> Secret {
        Secret(metadata: ObjectMeta(name: name, namespace: "kubetrace-system", annotations: annotations), type: "Opaque", data: ["operator_token": SecretBytes("opaque-token")])
    }

    func event(_ reason: String, at offset: TimeInterval, object: String) -> Event {
        var e = Event(metadata: ObjectMeta(name: "\(object).\(Int(-offset))", namespace: "kubetrace-system"))
        e.reason = reason
        e.note = "\(reason) note"
        e.type = reason == "RepairFailed" ? "Warning" : "Normal"
        e.eventTime = Self.time(offset)
        e.regarding = ObjectReference(kind: "Secret", namespace: "kubetrace-system", name: object)
        return e
    }

    @Test func statesFromObjects() {
        let names = ObjectNames()
        let secrets = [
            "kubetrace-operator": secret("kubetrace-operator", annotations: ["kubetrace.net/operator-token-expires-at": Self.time(120), RefreshService.refreshedAtAnnotation: Self.time(-60)]),
            "kubetrace-registry": secret("kubetrace-registry", annotations: [PullCredentials.expiryAnnotation: Self.time(-5)]),
        ]
        let watches = [
            "pods@kubetrace-system": WatchHealthRecord.Watch(synced: true, events: 40, relists: 1, reconnects: 2, decodeErrors: 0, lastActivity: Self.time(-3)),
            "secrets@kubetrace-system": WatchHealthRecord.Watch(synced: true, events: 4, relists: 0, reconnects: 0, decodeErrors: 0, lastActivity: Self.time(-900)),
            "roles@kubetrace-system": WatchHealthRecord.Watch(synced: false, events: 0, relists: 0, reconnects: 5, decodeErrors: 0, lastActivity: nil),
        ]
        let events = [event("PullSecretRepaired", at: -30, object: "a"), event("RepairFailed", at: -10, object: "b"), event("Scheduled", at: -5, object: "c")]
        let r = StatusReport.build(names: names, secrets: secrets, lease: lease(holder: "op-1", renewed: -2, watches: watches), events: events, now: Self.now)
        #expect(r.credentials.map(\.state) == ["missing", "expiring", "expired"])
        #expect(r.credentials[1].lastRefresh == Self.now.addingTimeInterval(-60))
        #expect(r.leader.state == "held" && r.leader.holder == "op-1" && r.leader.transitions == 2)
        #expect(r.watches.map(\.state) == ["ok", "syncing", "stalled"])
        #expect(r.repairs.map(\.reason) == ["RepairFailed", "PullSecretRepaired"], "newest first, repairs only")
        #expect(!r.healthy)
        let text = r.text()
        #expect(text.contains("LEADER  op-1  held for 1h, renewed 2s ago, 2 transitions"), "\(text)")
        #expect(text.contains("operator-token        kubetrace-operator      2m          1m ago         expiring"), "\(text)")
        #expect(text.contains("secrets@kubetrace-system          yes     4        0        0           15m ago        stalled"), "\(text)")
        #expect(!text.contains("opaque-token"))
        let json = r.json
        #expect(json["leader"]?["leaseAgeSeconds"] == .int(3600))
        #expect(json["credentials"]?.arrayValue?[1]["expiresInSeconds"] == .int(120))

        // A renewal older than the lease duration: expired; an empty holder: released; no Lease: none.
        #expect(StatusReport.build(names: names, secrets: [:], lease: lease(holder: "op-1", renewed: -60, watches: [:]), events: [], now: Self.now).leader.state == "expired")
        #expect(StatusReport.build(names: names, secrets: [:], lease: lease(holder: "", renewed: -1, watches: [:]), events: [], now: Self.now).leader.state == "released")
        let none = StatusReport.build(names: names, secrets: [:], lease: nil, events: [], now: Self.now)
        #expect(none.leader.state == "none" && none.text().contains("leader election is off"))
    }

    @Test func agesReadLikePeopleWriteThem() {
        #expect([5, 59, 60, 3599, 3600, 7500, 86_400 * 3].map { StatusReport.age(TimeInterval($0)) } == ["5s", "59s", "1m", "59m", "1h", "2h5m", "3d"])
    }
}

@Suite(.timeLimit(.minutes(2))) struct StatusCommandTests {
    /// Runs a command with stdin/stdout/stderr on /dev/null, no other descriptor, an empty
    /// signal mask and default signal dispositions; waits for it with waitpid(2) on its own
    /// thread and returns its exit status. For tmux, whose client forks a long-lived server:
    /// Foundation's Process passes the child a socket it watches for the exit (a daemon
    /// keeps it open, so the exit is never seen), and system(3) would hand the server every
    /// descriptor this test process has open (other tests' pipes would never reach EOF).
    static func detached(_ path: String, _ args: [String]) async -> Int32 {
        await withCheckedContinuation { cont in
            onOwnThread { cont.resume(returning: spawnAndWait(path, args)) }
        }
    }

    /// The blocking part of `detached` (also for cleanup in a `defer`: tmux answers in milliseconds).
    static func spawnAndWait(_ path: String, _ args: [String]) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // Every other descriptor this process has open stays behind (glibc ignores ones closed meanwhile).
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in open where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE, SIGQUIT] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        guard posix_spawn(&pid, path, &actions, &attributes, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    }

    @Test func statusAgainstARunningOperatorJSONWatchAndTmux() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await BackupRestoreTests().setup(cluster)
            let api = await cluster.url() + "/kubetrace-api"
            let ca = s.dir.write("ca.crt", cluster.certificateAuthority!.certificate.certificatePEM)
            let op = try OperatorProcess(["run", "--kubeconfig", s.kubeconfig, "--namespace", "kubetrace-system", "--api-url", api, "--ca-file", ca, "--cluster-id", "c-1"],
                                         dir: s.dir, name: "op", environment: ["LOG_FORMAT": "text"])
            try await op.lines.waitFor("token_refreshed", timeout: .seconds(30))
            try await op.lines.waitFor("became the leader", timeout: .seconds(30))
            try await s.client.delete(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            try await op.lines.waitFor("pull_secret_repaired", timeout: .seconds(30))

            // The one-shot JSON view, from the cluster only. The watch record rides on the
            // Lease renewals (every 2 s): wait for one that shows the Secrets watch synced.
            let args = ["status", "--kubeconfig", s.kubeconfig, "--namespace", "kubetrace-system"]
            var doc = JSONValue.null
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let r = try await runCLI(args + ["--output", "json"])
                #expect(r.status == 0, "\(r.stderr)")
                doc = try JSONValue.parse(Array(r.stdout.utf8))
                // The record written at acquire time predates the initial sync: wait for one after it.
                if doc["watches"]?.arrayValue?.contains(where: { $0["name"]?.stringValue == "secrets@kubetrace-system" && $0["synced"] == .bool(true) }) == true,
                   doc["repairs"]?.arrayValue?.isEmpty == false { break }
                try await Task.sleep(for: .milliseconds(250))  // the next renewal; bounded by the deadline
            }
            let creds = doc["credentials"]?.arrayValue ?? []
            let kubeconfig = creds.first { $0["name"]?.stringValue == "kubeconfig-token" }
            #expect(kubeconfig?["state"]?.stringValue == "ok", "\(doc)")
            #expect((kubeconfig?["expiresInSeconds"].flatMap { if case .int(let i) = $0 { i } else { nil } } ?? 0) > 60)
            #expect(kubeconfig?["lastRefresh"]?.stringValue != nil)
            #expect(doc["leader"]?["state"]?.stringValue == "held")
            #expect(op.log.contains("became the leader") && (doc["leader"]?["holder"]?.stringValue.map { op.log.contains("identity=\($0)") || op.log.contains($0) } ?? false), "\(doc)")
            let secretsWatch = doc["watches"]?.arrayValue?.first { $0["name"]?.stringValue == "secrets@kubetrace-system" }
            #expect(secretsWatch?["state"]?.stringValue == "ok" && secretsWatch?["synced"] == .bool(true), "\(doc)")
            let repair = doc["repairs"]?.arrayValue?.first
            #expect(repair?["reason"]?.stringValue == "PullSecretRepaired" && repair?["object"]?.stringValue == "Secret kubetrace-system/kubetrace-registry", "\(doc)")
            let text = try await runCLI(args)
            #expect(text.stdout.contains("LEADER  ") && text.stdout.contains("PullSecretRepaired"), "\(text.stdout)")
            let docText = String(decoding: doc.jsonBytes(), as: UTF8.self)
            for canary in [cluster.operatorToken, BackupRestoreTests.pullCanary] { #expect(!text.stdout.contains(canary) && !docText.contains(canary)) }

            // --watch --output json: a line now; when the repair happens again, a line showing
            // the aggregated Event's count 2 (keys are sorted: count comes first).
            let watcher = try OperatorProcess(args + ["--watch", "--output", "json"], dir: s.dir, name: "status", stdoutToo: true)
            try await watcher.lines.waitFor(#""repairs":[{"count":1,"note":"pull Secret deleted"#, timeout: .seconds(20))
            #expect(!watcher.lines.all.contains { $0.contains(#""count":2,"note":"pull Secret deleted"#) })
            try await s.client.delete(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            try await watcher.lines.waitFor(#""repairs":[{"count":2,"note":"pull Secret deleted"#, timeout: .seconds(20))
            #expect(try await watcher.stop(SIGTERM) == 0)

            // The TTY view under tmux.
            let session = "kubetrace-status-\(UUID().uuidString.prefix(8))"
            let command = ([binaryDirectory().appendingPathComponent("kubetrace-operator").path] + args + ["--watch"]).joined(separator: " ")
            // The tmux server it starts keeps inherited pipes open: give it none.
            let started = await Self.detached("/usr/bin/tmux", ["new-session", "-d", "-s", session, "-x", "140", "-y", "45", command])
            #expect(started == 0)
            // Also when an expectation below throws: no tmux server outlives the test.
            defer { _ = Self.spawnAndWait("/usr/bin/tmux", ["kill-session", "-t", session]) }
            var screen = ""
            let tmuxDeadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < tmuxDeadline {
                screen = try await runTool("tmux", ["capture-pane", "-p", "-t", session]).stdout
                if screen.contains("PullSecretRepaired") && screen.contains("secrets@kubetrace-system") { break }
                try await Task.sleep(for: .milliseconds(200))  // the next redraw; bounded by the deadline
            }
            #expect(screen.hasPrefix("kubetrace-operator status · namespace kubetrace-system"), "\(screen)")
            #expect(screen.contains("kubeconfig-token") && screen.contains("(watching; Ctrl-C to stop)"), "\(screen)")
            #expect(screen.contains("PullSecretRepaired") && screen.contains("secrets@kubetrace-system"), "\(screen)")
            #expect(await Self.detached("/usr/bin/tmux", ["has-session", "-t", session]) == 0, "the view is still running until we end it")
            #expect(try await op.stop() == 0)
        }
    }
}
