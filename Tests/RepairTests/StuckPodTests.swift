import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
@testable import KubetraceOperator
import Testing

@Suite(.timeLimit(.minutes(2))) struct StuckPodTests {
    static func podYAML(_ name: String, owner: Bool, pullSecrets: [String] = []) -> String {
        let owners = owner ? """
          ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, uid: 5f0c7a2e-0000-4000-8000-000000000001, controller: true}]
        """ : ""
        let secrets = pullSecrets.isEmpty ? "" : "  imagePullSecrets: [\(pullSecrets.map { "{name: \($0)}" }.joined(separator: ", "))]\n"
        return """
        apiVersion: v1
        kind: Pod
        metadata:
          name: \(name)
          namespace: apps
        \(owners)
        spec:
          serviceAccountName: default
        \(secrets)  containers: [{name: web, image: blr.vultrcr.com/acme/web:1.4}]
        """
    }

    static let backOff = #"{"status":{"phase":"Pending","containerStatuses":[{"name":"web","ready":false,"restartCount":0,"image":"blr.vultrcr.com/acme/web:1.4","state":{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image \"blr.vultrcr.com/acme/web:1.4\""}}}]}}"#
    static let errPull = #"{"status":{"phase":"Pending","containerStatuses":[{"name":"web","ready":false,"restartCount":0,"image":"blr.vultrcr.com/acme/web:1.4","state":{"waiting":{"reason":"ErrImagePull","message":"failed to pull"}}}]}}"#

    func seedApps(_ admin: KubeClient) async throws {
        _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "apps")))
        // The account lost the reference (no pull Secret copy yet either).
        _ = try await admin.create(ServiceAccount(metadata: ObjectMeta(name: "default", namespace: "apps")))
    }

    func markStuck(_ f: RepairFixture, _ pod: String, _ status: String = backOff) async throws {
        _ = try await f.kubectl(["patch", "pod", pod, "-n", "apps", "--subresource=status", "--type", "merge", "-p", status])
    }

    @Test func ownedStuckPodIsRepairedThenDeletedOnce() async throws {
        // Created before the operator ran, while the account lacked the reference: the
        // ServiceAccount admission plugin copied the account's (empty) list, so the Pod lacks it
        // too. (A Pod created after the repair gets the reference from its account.)
        let seed: @Sendable (KubeClient) async throws -> Void = { admin in
            try await self.seedApps(admin)
            let pod = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-7d9f-x1","namespace":"apps","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f","uid":"5f0c7a2e-0000-4000-8000-000000000001","controller":true}]},"spec":{"serviceAccountName":"default","containers":[{"name":"web","image":"blr.vultrcr.com/acme/web:1.4"}]}}"#
            _ = try await admin.request("POST", path: "/api/v1/namespaces/apps/pods", body: Array(pod.utf8))
        }
        try await RepairFixture.with({ $0.targetNamespaces = .list(["apps"]) }, seed: seed) { f in
            #expect(try await f.client.get(Pod.self, namespace: "apps", name: "web-7d9f-x1").spec?.imagePullSecrets == nil)
            try await markStuck(f, "web-7d9f-x1")
            try await awaitObject(f.client, Pod.self, namespace: "apps", name: "web-7d9f-x1", "the stuck Pod deleted") { $0 == nil }
            // The plumbing was repaired first.
            let sa = try await f.client.get(ServiceAccount.self, namespace: "apps", name: "default")
            #expect(sa.imagePullSecrets == [LocalObjectReference(name: "kubetrace-registry")])
            let copy = try await f.client.get(Secret.self, namespace: "apps", name: "kubetrace-registry")
            #expect(copy.data?[".dockerconfigjson"] == f.goodDocument)
            try await f.logs.waitFor("pod_restarted_after_repair")
            let events = try await f.events(about: "web-7d9f-x1", reason: "PodRestartedAfterRepair", in: "apps")
            #expect(events.count == 1)
            #expect(events.first?.note?.contains("ReplicaSet web-7d9f") == true)
        }
    }

    @Test func podThatStillBacksOffAfterTheRepairIsDeleted() async throws {
        try await RepairFixture.with({ $0.targetNamespaces = .list(["apps"]) }, seed: seedApps) { f in
            try await f.awaitPullSecret(in: "apps", equal: f.goodDocument, "the copy in apps")
            _ = try await f.kubectl(["create", "-f", "-"], stdin: Self.podYAML("web-7d9f-x2", owner: true, pullSecrets: ["kubetrace-registry"]))
            // The copy is broken, the kubelet fails to pull.
            _ = try await f.kubectl(["delete", "secret", "kubetrace-registry", "-n", "apps"])
            try await markStuck(f, "web-7d9f-x2", Self.errPull)
            try await f.logs.waitFor("stuck_pod_watching")
            #expect(try await f.client.get(Pod.self, namespace: "apps", name: "web-7d9f-x2").metadata.name == "web-7d9f-x2", "not deleted before it is seen to still fail")
            // The kubelet's next attempt still backs off: now it is restarted.
            try await markStuck(f, "web-7d9f-x2", Self.backOff)
            try await awaitObject(f.client, Pod.self, namespace: "apps", name: "web-7d9f-x2", "the Pod deleted after still backing off") { $0 == nil }
        }
    }

    @Test func bareStuckPodIsRepairedButNeverDeleted() async throws {
        try await RepairFixture.with({ $0.targetNamespaces = .list(["apps"]) }, seed: seedApps) { f in
            _ = try await f.kubectl(["create", "-f", "-"], stdin: Self.podYAML("lonely", owner: false))
            try await markStuck(f, "lonely")
            try await f.logs.waitFor("stuck_pod_bare")
            try await awaitObject(f.client, ServiceAccount.self, namespace: "apps", name: "default", "apps/default repaired") {
                $0?.imagePullSecrets == [LocalObjectReference(name: "kubetrace-registry")]
            }
            try await markStuck(f, "lonely", Self.errPull)
            try await f.logs.waitFor("pull_secret_repaired")
            let pod = try await f.client.get(Pod.self, namespace: "apps", name: "lonely")
            #expect(pod.metadata.deletionTimestamp == nil)
            #expect(try await f.events(about: "lonely", reason: "PodRestartedAfterRepair", in: "apps").isEmpty)
        }
    }

    @Test func restartCanBeTurnedOff() async throws {
        try await RepairFixture.with({ $0.targetNamespaces = .list(["apps"]); $0.restartStuckPods = false }, seed: seedApps) { f in
            _ = try await f.kubectl(["create", "-f", "-"], stdin: Self.podYAML("web-7d9f-x3", owner: true))
            try await markStuck(f, "web-7d9f-x3")
            try await awaitObject(f.client, ServiceAccount.self, namespace: "apps", name: "default", "apps/default repaired") {
                $0?.imagePullSecrets == [LocalObjectReference(name: "kubetrace-registry")]
            }
            // A second status update is reconciled too; the Pod stays.
            try await markStuck(f, "web-7d9f-x3", Self.errPull)
            try await f.awaitPullSecret(in: "apps", equal: f.goodDocument, "the copy")
            #expect(try await f.client.get(Pod.self, namespace: "apps", name: "web-7d9f-x3").metadata.deletionTimestamp == nil)
        }
    }
}

/// A stuck Pod waits on its namespace's plumbing; when that repair fails, the Pod itself says
/// why (`kubectl describe pod`), as it did when the Pod's reconcile made the repair itself.
@Suite(.timeLimit(.minutes(2))) struct StuckPodWaitingTests {
    @Test func aFailingPlumbingRepairIsReportedOnTheWaitingPod() async throws {
        let ns = RepairFixture.ns
        let seed: @Sendable (KubeClient) async throws -> Void = { admin in
            // No pull Secret and no way to mint one: its repair fails until someone provides it.
            _ = try await admin.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
            let pod = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"api-1","namespace":"\#(ns)"},"spec":{"containers":[{"name":"api","image":"blr.vultrcr.com/acme/api:2"}]}}"#
            _ = try await admin.request("POST", path: "/api/v1/namespaces/\(ns)/pods", body: Array(pod.utf8))
            let status = StuckPodTests.backOff.replacingOccurrences(of: "\"web\"", with: "\"api\"").replacingOccurrences(of: "acme/web:1.4", with: "acme/api:2")
            _ = try await admin.request("PATCH", path: "/api/v1/namespaces/\(ns)/pods/api-1/status", body: Array(status.utf8),
                                        contentType: "application/merge-patch+json")
        }
        try await RepairFixture.with(seed: seed) { f in
            try await f.logs.waitFor("repair_failed", count: 3, timeout: .seconds(30))
            let onPod = try await f.events(about: "api-1", reason: "RepairFailed", in: ns)
            #expect(!onPod.isEmpty, "\(f.logs.all.joined(separator: "\n"))")
            #expect(onPod.first?.note?.hasPrefix("Pod cannot pull from blr.vultrcr.com: pull Secret") == true, "\(onPod.first?.note ?? "")")
            #expect(onPod.first?.type == "Warning")
            // Retried on the pull Secret's own backoff, not on every Pod change: aggregated on the Pod.
            #expect(onPod.count == 1)
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct AdversaryTests {
    /// Another writer strips the reference as soon as it is restored, eight times:
    /// the first repairs are immediate, then they are spaced 1 s, 2 s, 4 s … apart
    /// (SPEC §6), with one RepairFailed Event for the episode.
    @Test func aRevertingWriterMeetsBoundedBackedOffRepairs() async throws {
        try await RepairFixture.with { f in
            let ns = RepairFixture.ns
            let restored: @Sendable (ServiceAccount?) -> Bool = { $0?.imagePullSecrets?.contains(LocalObjectReference(name: "kubetrace-registry")) == true }
            try await awaitObject(f.client, ServiceAccount.self, namespace: ns, name: "kubetrace-readonly-user", "the account created", restored)
            var delays: [Duration] = []
            for _ in 0..<8 {
                let revertedAt = ContinuousClock.now
                _ = try await f.client.patch(ServiceAccount.self, namespace: ns, name: "kubetrace-readonly-user", .merge(.object(["imagePullSecrets": .array([])])))
                try await awaitObject(f.client, ServiceAccount.self, namespace: ns, name: "kubetrace-readonly-user", timeout: .seconds(20), "the reference restored", restored)
                delays.append(ContinuousClock.now - revertedAt)
            }
            // Immediate first: the creation at start and four or five restorations come before the
            // first deferral (judged by order, not wall-clock, which a loaded machine stretches).
            let lines = f.logs.all
            let firstThrottle = lines.firstIndex { $0.contains("repair_throttled") } ?? lines.count
            let immediate = lines[..<firstThrottle].filter { $0.contains("service_account_repaired") }.count
            #expect(immediate >= 5, "\(lines.joined(separator: "\n"))")
            // Then spaced at least 1 s, 2 s, 4 s after the previous repair.
            #expect(delays[5] >= .milliseconds(900) && delays[6] >= .milliseconds(1900) && delays[7] >= .milliseconds(3900), "\(delays)")
            // No extra writes: one creation and eight restorations (the last may not be logged yet).
            let repairs = lines.filter { $0.contains("service_account_repaired") }.count
            #expect(repairs == 8 || repairs == 9, "\(repairs)")
            let throttled = try await f.events(about: "kubetrace-readonly-user", reason: "RepairFailed")
            #expect(throttled.count == 1)
            #expect(throttled.first?.note?.contains("another writer keeps removing") == true)
        }
    }
}
