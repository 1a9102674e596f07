import KubetraceTestKit
import Foundation
import KubeClient
import KubeRuntime
@testable import KubetraceOperator
import Testing

@Suite struct RepairRateLimiterTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    /// SPEC §6: five repairs in ten seconds are immediate; then 1 s, 2 s, 4 s … after the previous one.
    @Test func burstThenDoubling() {
        var limiter = RepairRateLimiter<String>()
        var now = t0
        for i in 0..<5 {
            let d = limiter.decide("s", now: now)
            #expect(d.at == now && !d.throttled, "repair \(i) must be immediate")
            limiter.record("s", at: now, decision: d)
            now += 0.1
        }
        var expected: [TimeInterval] = []
        var got: [TimeInterval] = []
        var previous = now - 0.1
        for (i, delay) in [1.0, 2, 4].enumerated() {
            let d = limiter.decide("s", now: previous + 0.01)
            #expect(d.throttled)
            #expect(d.startsEpisode == (i == 0), "one RepairFailed per episode")
            expected.append(delay)
            got.append(d.at.timeIntervalSince(previous))
            limiter.record("s", at: d.at, decision: d)
            previous = d.at
        }
        #expect(got.map { ($0 * 1000).rounded() } == expected.map { $0 * 1000 })
        // Another object is not affected.
        #expect(!limiter.decide("other", now: previous).throttled)
    }

    @Test func capAndResetByTheNextImmediateRepair() {
        var limiter = RepairRateLimiter<String>()
        limiter.cap = 4
        var now = t0
        for _ in 0..<5 { let d = limiter.decide("k", now: now); limiter.record("k", at: now, decision: d); now += 0.01 }
        var last = now
        var delays: [TimeInterval] = []
        for _ in 0..<5 {
            let d = limiter.decide("k", now: last)
            delays.append(d.at.timeIntervalSince(last))
            limiter.record("k", at: d.at, decision: d)
            last = d.at
        }
        // 1, 2, 4, then 8 capped to 4; after that the window holds fewer than five repairs: immediate again.
        #expect(zip(delays, [1.0, 2, 4, 4, 0]).allSatisfy { abs($0 - $1) < 0.05 }, "\(delays)")
        // Quiet for longer than the window: immediate again, and the doubling starts over.
        let later = last + 11
        let d = limiter.decide("k", now: later)
        #expect(!d.throttled && d.at == later)
        limiter.record("k", at: later, decision: d)
        limiter.prune(now: later + 20)
        #expect(!limiter.decide("k", now: later + 20).throttled)
    }

    @Test func failureBackoffDoublesAndCaps() {
        var f = FailureBackoff<String>()
        let delays = (0..<12).map { _ in f.failed("x") }
        #expect(Array(delays.prefix(4)) == [1, 2, 4, 8])
        #expect(delays.last == 300)
        f.succeeded("x")
        #expect(f.failed("x") == 1)
    }
}

@Suite struct WorkQueueTests {
    @Test func deduplicatesAndNeverRunsAKeyTwiceAtOnce() async throws {
        let q = WorkQueue<String>()
        await q.add("a"); await q.add("a"); await q.add("b")
        #expect(await q.next() == "a")
        // Added again while processing: comes back after done, not before.
        await q.add("a")
        #expect(await q.next() == "b")
        await q.done("b")
        await q.done("a")
        #expect(await q.next() == "a")
        await q.done("a")
        #expect(await q.isEmpty)
    }

    @Test func delayedKeysComeDueAndShutDownEndsTheWait() async throws {
        let q = WorkQueue<String>()
        let start = ContinuousClock.now
        await q.add("later", at: Date().addingTimeInterval(0.2))
        await q.add("now")
        #expect(await q.next() == "now")
        #expect(await q.next() == "later")
        #expect(ContinuousClock.now - start >= .milliseconds(190))
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { await q.next() }
            group.addTask { q.shutDown(); return "stopped" }
            var results: [String?] = []
            for try await r in group { results.append(r) }
            #expect(results.contains { $0 == nil }, "next() returns nil after shutDown")
        }
    }
}

@Suite struct PullSecretCheckTests {
    static func doc(_ host: String, user: String = "u") -> SecretBytes {
        SecretBytes(JSONValue.object(["auths": .object([host: .object(["username": .string(user), "password": .string("p"), "auth": .string("dTpw")])])]).jsonBytes())
    }

    static func view(type: String = PullSecretCheck.dockerConfigType, _ document: SecretBytes?, expires: String? = nil) -> PullSecretView {
        var s = Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: "ns"), type: type)
        if let document { s.data = [".dockerconfigjson": document] }
        if let expires { s.metadata.annotations = [PullCredentials.expiryAnnotation: expires] }
        return PullSecretView(s)
    }

    @Test func judgesEveryKindOfDamage() {
        let host = "blr.vultrcr.com"
        let good = PullCredentials(document: Self.doc(host, user: "new"), expiresAt: Date(timeIntervalSince1970: 2_000_000_000))
        #expect(PullSecretCheck.judgeSource(nil, host: host, lastKnownGood: good) == .missing)
        #expect(PullSecretCheck.judgeSource(Self.view(type: "Opaque", Self.doc(host)), host: host, lastKnownGood: good) == .foreignType("Opaque"))
        #expect(PullSecretCheck.judgeSource(Self.view(nil), host: host, lastKnownGood: good) == .keyMissing)
        #expect(PullSecretCheck.judgeSource(Self.view(SecretBytes("{not json")), host: host, lastKnownGood: good) == .notJSON)
        #expect(PullSecretCheck.judgeSource(Self.view(Self.doc("other.example.com")), host: host, lastKnownGood: good) == .wrongRegistry)
        // Older than the last known good (earlier expiry, or none): stale.
        #expect(PullSecretCheck.judgeSource(Self.view(Self.doc(host, user: "old"), expires: "2030-01-01T00:00:00Z"), host: host, lastKnownGood: good) == .stale)
        #expect(PullSecretCheck.judgeSource(Self.view(Self.doc(host, user: "old")), host: host, lastKnownGood: good) == .stale)
        // Newer credentials written by someone else are accepted.
        #expect(PullSecretCheck.judgeSource(Self.view(Self.doc(host, user: "newer"), expires: "2040-01-01T00:00:00Z"), host: host, lastKnownGood: good) == nil)
        #expect(PullSecretCheck.judgeSource(Self.view(good.document), host: host, lastKnownGood: good) == nil)
        // "https://host/v1/" keys count as the host.
        #expect(PullSecretCheck.hasCredentials(Self.doc("https://\(host)/v1/"), for: host))
        #expect(PullSecretCheck.judgeCopy(Self.view(Self.doc(host, user: "x")), source: good) == .outdatedCopy)
        #expect(PullSecretCheck.judgeCopy(Self.view(good.document), source: good) == nil)
    }

    @Test func imagesOnTheManagedRegistry() {
        #expect(PullSecretCheck.image("blr.vultrcr.com/acme/app:1", isOn: "blr.vultrcr.com"))
        #expect(PullSecretCheck.image("blr.vultrcr.com:443/acme/app", isOn: "blr.vultrcr.com"))
        #expect(!PullSecretCheck.image("blr.vultrcr.com.evil.io/acme/app", isOn: "blr.vultrcr.com"))
        #expect(!PullSecretCheck.image("nginx:1.27", isOn: "blr.vultrcr.com"))
        #expect(!PullSecretCheck.image("docker.io/library/nginx", isOn: "blr.vultrcr.com"))
    }

    @Test func targetNamespacesParseOrNameTheFault() throws {
        #expect(try TargetNamespaces.parse("apps, web,apps", flag: "--target-namespaces") == .list(["apps", "web"]))
        #expect(try TargetNamespaces.parse("selector=kubetrace.net/pull=true", flag: "--target-namespaces") == .selector("kubetrace.net/pull=true"))
        #expect(try TargetNamespaces.parse("", flag: "--target-namespaces") == nil)
        #expect(throws: CLIError.self) { try TargetNamespaces.parse("Apps", flag: "--target-namespaces") }
        do {
            _ = try TargetNamespaces.parse("apps,,web", flag: "TARGET_NAMESPACES")
            Issue.record("an empty name must be refused")
        } catch let e as CLIError {
            #expect(e.message.hasPrefix("TARGET_NAMESPACES: \"\" is not a namespace name"))
            #expect(e.exitCode == 2)
        }
        #expect(throws: CLIError.self) { try TargetNamespaces.parse("selector=", flag: "--target-namespaces") }
    }

    @Test func rbacDriftIgnoresRuleOrder() {
        let desired = Role(metadata: ObjectMeta(name: "r"), rules: DesiredRBAC.readOnlyRules + [PolicyRule(apiGroups: [""], resources: ["x"], verbs: ["get"])])
        var reordered = desired
        reordered.rules = desired.rules?.reversed()
        #expect(RBACHandler.drift(reordered, desired: desired) == nil)
        var widened = desired
        widened.rules?[0].verbs.append("delete")
        #expect(RBACHandler.drift(widened, desired: desired) == "rules changed")
        #expect(RBACHandler.drift(nil as Role?, desired: desired) == "was deleted")
        let binding = RoleBinding(metadata: ObjectMeta(name: "b"), subjects: [Subject(kind: "ServiceAccount", name: "sa", namespace: "ns")], roleRef: RoleRef(kind: "Role", name: "r"))
        var other = binding
        other.roleRef = RoleRef(kind: "ClusterRole", name: "admin")
        #expect(RBACHandler.drift(other, desired: binding) == "roleRef changed")
        other = binding
        other.subjects?.append(Subject(kind: "User", name: "mallory", apiGroup: "rbac.authorization.k8s.io"))
        #expect(RBACHandler.drift(other, desired: binding) == "subjects changed")
    }
}

@Suite struct RepairNamingTests {
    @Test func eventReasonsBecomeJournalStyleNames() {
        #expect(RepairService.snake("PullSecretRepaired") == "pull_secret_repaired")
        #expect(RepairService.snake("RBACRepaired") == "rbac_repaired")
        #expect(RepairService.snake("PodRestartedAfterRepair") == "pod_restarted_after_repair")
    }
}

@Suite struct StatusLineTests {
    @Test func summarisesKindsLeadershipAndCredentials() {
        let status = OperatorStatus()
        let now = Date(timeIntervalSince1970: 1_000_000)
        #expect(status.summary(watching: 5, leading: nil, now: now) == "watching 5 kinds")
        status.report("kubeconfig-token", ok: true, next: now.addingTimeInterval(41 * 60))
        #expect(status.summary(watching: 5, leading: true, now: now) == "watching 5 kinds, leader, 1 credential ok, next refresh in 41m")
        status.report("registry-credentials", ok: false, next: now.addingTimeInterval(30))
        #expect(status.summary(watching: 6, leading: false, now: now) == "watching 6 kinds, standby, 1 of 2 credentials ok, next refresh in 30s")
    }

    @Test func listenAddressesParseOrNameTheFault() throws {
        #expect(try ListenAddress.parse(":8081", flag: "HEALTH_ADDR") == ListenAddress(host: "0.0.0.0", port: 8081))
        #expect(try ListenAddress.parse("[::1]:9090", flag: "HEALTH_ADDR") == ListenAddress(host: "::1", port: 9090))
        #expect(try ListenAddress.parse("off", flag: "HEALTH_ADDR") == nil)
        #expect(try ListenAddress.parse("", flag: "HEALTH_ADDR") == nil)
        #expect(throws: CLIError.self) { try ListenAddress.parse("127.0.0.1:99999", flag: "HEALTH_ADDR") }
    }

    @Test func journalFieldNames() {
        #expect(JournalLogHandler.fieldName("event") == "KUBETRACE_EVENT")
        #expect(JournalLogHandler.fieldName("k8s.namespace") == "KUBETRACE_K8S_NAMESPACE")
        #expect(JournalLogHandler.fieldName("cluster_id") == "KUBETRACE_CLUSTER_ID")
        #expect(JournalLogHandler.fieldName(String(repeating: "x", count: 100)).count == 64)
        let fields = JournalLogHandler.fields(label: "l", level: .warning, message: "m", metadata: ["event": "e"], file: "F.swift", function: "f()", line: 7)
        #expect(fields.contains("PRIORITY=4") && fields.contains("KUBETRACE_EVENT=e") && fields.contains("SYSLOG_IDENTIFIER=kubetrace-operator"))
    }
}

@Suite struct LabelSelectorSyntaxTests {
    @Test(arguments: ["a", "!legacy", "a=b", "a==b", "a!=b", "kubetrace.net/pull-secret=true", "env in (prod, dev),!legacy", "tier notin (x,y)", "a=", "app.kubernetes.io/name=web_1"])
    func acceptsWhatTheAPIServerAccepts(selector: String) {
        #expect(LabelSelectorSyntax.problem(selector) == nil)
    }

    @Test(arguments: [
        ("team in (a", "unbalanced '('"),
        ("a)", "unbalanced ')'"),
        ("a=b,,c=d", "\"\": empty requirement"),
        ("Bad Key=x", "\"Bad Key=x\": key \"Bad Key\": only letters, digits, '-', '_' and '.' are allowed"),
        ("a=-b", "\"a=-b\": value \"-b\": must start and end with a letter or digit"),
        ("a/b/c=d", "\"a/b/c=d\": key \"a/b/c\" has more than one '/'"),
        ("UPPER.example/x=y", "\"UPPER.example/x=y\": key prefix \"UPPER.example\" is not a DNS subdomain"),
        ("a within (b)", "\"a within (b)\": unknown operator \"within\""),
        ("a in b", "\"a in b\": in needs a parenthesised list"),
    ])
    func refusesWithTheReason(selector: String, problem: String) {
        #expect(LabelSelectorSyntax.problem(selector) == problem)
    }
}
