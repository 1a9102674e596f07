import KubetraceTestKit
import Foundation
import KubeClient
@testable import KubeSim
import Logging
import Synchronization
import Testing

/// kube-controller-manager's controllers, the scheduler and the node's registration, in-process
/// on a devcluster's store, checked through real `kubectl` where a user would look. The test
/// plays the kubelet: it marks the node's Pods Running and Ready through `pods/status`.
@Suite(.timeLimit(.minutes(2))) struct ControllerTests {
    static let node = "controller-test-node"

    /// A devcluster with the controllers running and a kubelet stand-in marking Pods ready.
    private static func withControllers(ready: Bool = true, _ body: @Sendable (DevCluster, Kubectl) async throws -> Void) async throws {
        try await DevCluster.withRunning { cluster in
            var options = NodeOptions()
            options.name = node
            let manager = ControllerManager(store: cluster.store, node: options, nodeAddress: "127.0.0.1", logger: DevCluster.quietLogger)
            let dir = TempDir()
            let kubectl = Kubectl(env: ["KUBECONFIG": dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))])
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await manager.run() }
                if ready {
                    let changes = cluster.changes()
                    group.addTask { await FakeKubelet(store: cluster.store, node: node).run(changes) }
                }
                do {
                    try await body(cluster, kubectl)
                } catch {
                    group.cancelAll()
                    throw error
                }
                group.cancelAll()
            }
        }
    }

    static func deploymentYAML(name: String = "web", replicas: Int = 3, image: String = "example.com/web:v1", extra: String = "") -> String {
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: \(name)
        spec:
          replicas: \(replicas)
        \(extra)  selector:
            matchLabels:
              app: \(name)
          strategy:
            type: RollingUpdate
            rollingUpdate:
              maxSurge: 1
              maxUnavailable: 0
          template:
            metadata:
              labels:
                app: \(name)
            spec:
              containers:
              - name: app
                image: \(image)

        """
    }

    // MARK: Deployments

    @Test func deploymentCreatesAReplicaSetWithTheHashAndBoundPodsThenRollsOut() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML()).status == 0)
            try await until(cluster, "3 pods of web ready") { await pods(store, app: "web").filter(PodState.isReady).count == 3 }

            let rss = await replicaSets(store, app: "web")
            try #require(rss.count == 1)
            let rs = rss[0]
            let hash = try #require(rs["spec"]?["template"]?["metadata"]?["labels"]?["pod-template-hash"]?.stringValue)
            #expect(rs.metaName == "web-\(hash)")
            #expect(rs["spec"]?["selector"]?["matchLabels"]?["pod-template-hash"]?.stringValue == hash)
            #expect(rs.metaLabels["pod-template-hash"] == hash)
            #expect(rs.metaController?.kind == "Deployment" && rs.metaController?.name == "web" && rs.metaController?.blockOwnerDeletion == true)
            #expect(rs.metaAnnotations["deployment.kubernetes.io/revision"] == "1")
            #expect(rs.metaAnnotations["deployment.kubernetes.io/desired-replicas"] == "3")
            #expect(rs.metaAnnotations["deployment.kubernetes.io/max-replicas"] == "4")
            #expect(hash.allSatisfy { "bcdfghjklmnpqrstvwxz2456789".contains($0) })

            for pod in await pods(store, app: "web") {
                #expect(pod.metaName.hasPrefix("web-\(hash)-") && pod.metaName.count == "web-\(hash)-".count + 5)
                #expect(pod.stringAt("spec", "nodeName") == Self.node)
                #expect(pod.metaLabels["pod-template-hash"] == hash)
                #expect(pod.metaController?.uid == rs.metaUID && pod.metaController?.blockOwnerDeletion == true)
            }

            let status = try await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
            #expect(status.stdout.contains("deployment \"web\" successfully rolled out"))

            let d = try await store.get(.deployment, namespace: "default", name: "web")
            #expect(d.intAt("status", "observedGeneration") == d.metaGeneration)
            #expect(d.intAt("status", "replicas") == 3 && d.intAt("status", "updatedReplicas") == 3)
            #expect(d.intAt("status", "readyReplicas") == 3 && d.intAt("status", "availableReplicas") == 3)
            #expect(d["status"]?["unavailableReplicas"] == nil)
            #expect(d.metaAnnotations["deployment.kubernetes.io/revision"] == "1")
            let available = try #require(Conditions.get(d["status"], "Available"))
            #expect(available["status"] == .string("True") && available["reason"] == .string("MinimumReplicasAvailable"))
            #expect(available["message"] == .string("Deployment has minimum availability."))
            let progressing = try #require(Conditions.get(d["status"], "Progressing"))
            #expect(progressing["status"] == .string("True") && progressing["reason"] == .string("NewReplicaSetAvailable"))
            #expect(progressing["message"] == .string("ReplicaSet \"web-\(hash)\" has successfully progressed."))

            let describe = try await kubectl("describe", "deployment", "web")
            #expect(describe.stdout.contains("Scaled up replica set web-\(hash) from 0 to 3"), "\(describe.stdout)\(describe.stderr)")
            #expect(describe.stdout.contains("NewReplicaSet:   web-\(hash) (3/3 replicas created)"), "\(describe.stdout)")

            // The ReplicaSet's own status, as `kubectl get rs` reads it.
            let rsNow = try await store.get(.replicaSet, namespace: "default", name: rs.metaName)
            for field in ["replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas"] { #expect(rsNow.intAt("status", field) == 3, "\(field)") }
            #expect(rsNow.intAt("status", "observedGeneration") == rsNow.metaGeneration)
        }
    }

    @Test func withoutReadyPodsTheDeploymentIsNotAvailableAndRolloutStatusWaits() async throws {
        try await Self.withControllers(ready: false) { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML(replicas: 2)).status == 0)
            try await until(cluster, "web observed with 2 pods") {
                guard let d = try? await store.get(.deployment, namespace: "default", name: "web") else { return false }
                return d.intAt("status", "replicas") == 2 && d.intAt("status", "unavailableReplicas") == 2
            }
            let d = try await store.get(.deployment, namespace: "default", name: "web")
            let available = try #require(Conditions.get(d["status"], "Available"))
            #expect(available["status"] == .string("False") && available["reason"] == .string("MinimumReplicasUnavailable"))
            #expect(available["message"] == .string("Deployment does not have minimum availability."))
            let progressing = try #require(Conditions.get(d["status"], "Progressing"))
            #expect(progressing["status"] == .string("True"))
            #expect(["NewReplicaSetCreated", "ReplicaSetUpdated"].contains(progressing["reason"]?.stringValue ?? ""))
            let status = try await kubectl("rollout", "status", "deployment/web", "--watch=false")
            #expect(status.stdout.contains("Waiting for deployment \"web\" rollout to finish: 0 of 2 updated replicas are available..."), "\(status.stdout)")
        }
    }

    @Test func setImageRollsOutWithoutEverHavingFewerThanTheReplicasAvailable() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML()).status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            let first = await replicaSets(store, app: "web")
            try #require(first.count == 1)

            // Counted from the change feed: every committed state of the Pods, in order.
            let recorder = PodCounts(store: store, app: "web")
            try await withThrowingTaskGroup(of: Void.self) { group in
                let changes = cluster.changes()
                await recorder.start()
                group.addTask { for await change in changes where change.resource == "pods" || change.resource == "replicasets" { await recorder.apply(change) } }
                let set = try await kubectl("set", "image", "deployment/web", "app=example.com/web:v2")
                #expect(set.status == 0, "\(set.stderr)")
                let status = try await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
                #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
                group.cancelAll()
            }
            let (minimum, maximum, samples) = await recorder.result
            #expect(samples > 6, "the rollout was seen change by change")
            #expect(minimum >= 3, "never fewer than 3 available pods (maxUnavailable 0)")
            // maxSurge bounds the ReplicaSets' replicas (deployment_util.go NewRSNewReplicas sums
            // spec.replicas), not the Pods: an old Pod the ReplicaSet controller has not deleted yet
            // can briefly make 5, on a real cluster too.
            let replicaPeak = await recorder.replicaPeak
            #expect(replicaPeak == 4, "never more than 4 replicas across the ReplicaSets (maxSurge 1), and the surge used")
            #expect(maximum <= 5, "at most one old Pod not yet deleted beyond that")

            let rss = await replicaSets(store, app: "web")
            #expect(rss.count == 2)
            let new = try #require(rss.first { $0.metaUID != first[0].metaUID })
            let old = try #require(rss.first { $0.metaUID == first[0].metaUID })
            #expect(DeploymentUtil.replicas(new) == 3 && DeploymentUtil.replicas(old) == 0)
            #expect(new.metaAnnotations["deployment.kubernetes.io/revision"] == "2")
            #expect(new["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first?["image"] == .string("example.com/web:v2"))
            for pod in await pods(store, app: "web") { #expect(pod.metaController?.uid == new.metaUID) }
            let d = try await store.get(.deployment, namespace: "default", name: "web")
            #expect(d.metaAnnotations["deployment.kubernetes.io/revision"] == "2")
            #expect(Conditions.get(d["status"], "Progressing")?["message"] == .string("ReplicaSet \"\(new.metaName)\" has successfully progressed."))
            let history = try await kubectl("rollout", "history", "deployment/web")
            #expect(history.status == 0 && history.stdout.contains("1 ") && history.stdout.contains("2 "), "\(history.stdout)\(history.stderr)")
        }
    }

    @Test func rolloutUndoGoesBackToTheOldReplicaSetUnderANewRevision() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML(replicas: 2)).status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            let first = try #require(await replicaSets(store, app: "web").first)
            #expect(try await kubectl("set", "image", "deployment/web", "app=example.com/web:v2").status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            let undo = try await kubectl("rollout", "undo", "deployment/web")
            #expect(undo.status == 0, "\(undo.stdout)\(undo.stderr)")
            let status = try await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
            let rss = await replicaSets(store, app: "web")
            #expect(rss.count == 2, "the first ReplicaSet is reused")
            let back = try #require(rss.first { $0.metaUID == first.metaUID })
            #expect(DeploymentUtil.replicas(back) == 2)
            #expect(back.metaAnnotations["deployment.kubernetes.io/revision"] == "3")
            #expect(back.metaAnnotations["deployment.kubernetes.io/revision-history"] == "1")
            let d = try await store.get(.deployment, namespace: "default", name: "web")
            #expect(d.metaAnnotations["deployment.kubernetes.io/revision"] == "3")
        }
    }

    @Test func revisionHistoryLimitPrunesOldReplicaSets() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML(replicas: 1, extra: "  revisionHistoryLimit: 1\n")).status == 0)
            for version in 2...4 {
                #expect(try await kubectl("set", "image", "deployment/web", "app=example.com/web:v\(version)").status == 0)
                #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            }
            try await until(cluster, "only the current and one old ReplicaSet left") { await replicaSets(store, app: "web").count == 2 }
            let revisions = await replicaSets(store, app: "web").map { $0.metaAnnotations["deployment.kubernetes.io/revision"] ?? "" }.sorted()
            #expect(revisions == ["3", "4"])
        }
    }

    @Test func scalingUpAndDown() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML(replicas: 2)).status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            #expect(try await kubectl("scale", "deployment/web", "--replicas=5").status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            #expect(await pods(store, app: "web").count == 5)
            #expect(await replicaSets(store, app: "web").count == 1, "scaling is not a rollout")
            #expect(try await kubectl("scale", "deployment/web", "--replicas=1").status == 0)
            try await until(cluster, "one pod left") { await pods(store, app: "web").count == 1 }
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            let rs = try #require(await replicaSets(store, app: "web").first)
            #expect(rs.metaAnnotations["deployment.kubernetes.io/desired-replicas"] == "1")
            let out = try await kubectl("get", "deployment", "web", "-o", "jsonpath={.status.replicas}/{.status.availableReplicas}")
            #expect(out.stdout == "1/1")
        }
    }

    @Test func deletingADeploymentRemovesItsReplicaSetsAndPods() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML()).status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            #expect(try await kubectl("delete", "deployment", "web").status == 0)
            try await until(cluster, "no ReplicaSet and no Pod of web") {
                let noReplicaSets = await replicaSets(store, app: "web").isEmpty
                let noPods = await pods(store, app: "web", active: false).isEmpty
                return noReplicaSets && noPods
            }
            let listed = try await kubectl("get", "pods", "-l", "app=web", "-o", "name")
            #expect(listed.status == 0 && listed.stdout.isEmpty)
        }
    }

    @Test func aDeletedPodIsReplaced() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML()).status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            let before = Set(await pods(store, app: "web").map(\.metaName))
            let victim = try #require(before.sorted().first)
            #expect(try await kubectl("delete", "pod", victim).status == 0)
            try await until(cluster, "a replacement pod, ready") {
                let now = await pods(store, app: "web")
                return now.count == 3 && now.filter(PodState.isReady).count == 3 && !now.contains { $0.metaName == victim }
            }
            let after = Set(await pods(store, app: "web").map(\.metaName))
            #expect(after.subtracting(before).count == 1)
        }
    }

    @Test func orphanPodsMatchingAReplicaSetAreAdoptedAndSurplusDeleted() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            // A bare Pod with the Deployment's labels before the Deployment exists.
            let pod: JSONValue = .object([
                "apiVersion": .string("v1"), "kind": .string("Pod"),
                "metadata": .object(["name": .string("stray"), "labels": .object(["app": .string("solo")])]),
                "spec": .object(["nodeName": .string(Self.node), "containers": .array([.object(["name": .string("app"), "image": .string("example.com/web:v1")])])]),
            ])
            _ = try await store.create(.pod, namespace: "default", body: pod)
            let rsYAML = """
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata:
              name: solo
            spec:
              replicas: 2
              selector:
                matchLabels:
                  app: solo
              template:
                metadata:
                  labels:
                    app: solo
                spec:
                  containers:
                  - name: app
                    image: example.com/web:v1

            """
            #expect(try await kubectl("create", "-f", "-", stdin: rsYAML).status == 0)
            try await until(cluster, "2 pods for solo, the stray one adopted") {
                let p = await pods(store, app: "solo")
                return p.count == 2 && p.allSatisfy { $0.metaController?.name == "solo" }
            }
            #expect(await pods(store, app: "solo").contains { $0.metaName == "stray" })
            #expect(try await kubectl("scale", "rs/solo", "--replicas=0").status == 0)
            try await until(cluster, "no pod for solo") { await pods(store, app: "solo").isEmpty }
        }
    }

    @Test func podsTheStoreRefusesShowAsReplicaFailure() async throws {
        try await Self.withControllers { cluster, _ in
            let store = cluster.store
            // No containers: every Pod create is refused (`spec.containers: Required value`).
            let rs: JSONValue = .object([
                "apiVersion": .string("apps/v1"), "kind": .string("ReplicaSet"), "metadata": .object(["name": .string("broken")]),
                "spec": .object(["replicas": .int(1), "selector": .object(["matchLabels": .object(["app": .string("broken")])]),
                                 "template": .object(["metadata": .object(["labels": .object(["app": .string("broken")])]),
                                                      "spec": .object(["containers": .array([])])])]),
            ])
            _ = try await store.create(.replicaSet, namespace: "default", body: rs)
            try await until(cluster, "the ReplicaFailure condition") {
                let now = try? await store.get(.replicaSet, namespace: "default", name: "broken")
                return Conditions.get(now?["status"], "ReplicaFailure") != nil
            }
            let now = try await store.get(.replicaSet, namespace: "default", name: "broken")
            let failure = try #require(Conditions.get(now["status"], "ReplicaFailure"))
            #expect(failure["status"] == .string("True") && failure["reason"] == .string("FailedCreate"))
            #expect(failure["message"]?.stringValue?.contains("spec.containers") == true, "\(failure)")
            #expect(now.intAt("status", "replicas") == 0)
        }
    }

    @Test func recreateScalesTheOldReplicaSetDownBeforeTheNewOneUp() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            let yaml = Self.deploymentYAML(replicas: 2).replacingOccurrences(of: """
                type: RollingUpdate
                rollingUpdate:
                  maxSurge: 1
                  maxUnavailable: 0
            """, with: "    type: Recreate")
            #expect(try await kubectl("create", "-f", "-", stdin: yaml).status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            let recorder = PodCounts(store: store, app: "web")
            try await withThrowingTaskGroup(of: Void.self) { group in
                let changes = cluster.changes()
                await recorder.start()
                group.addTask { for await change in changes where change.resource == "pods" { await recorder.apply(change) } }
                let set = try await kubectl("set", "image", "deployment/web", "app=example.com/web:v2")
                #expect(set.status == 0, "\(set.stderr)")
                let status = try await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
                #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
                group.cancelAll()
            }
            let (minimum, maximum, _) = await recorder.result
            #expect(minimum == 0, "Recreate stops every old pod first")
            #expect(maximum <= 2)
        }
    }

    @Test func aRolloutStuckPastItsProgressDeadlineIsReported() async throws {
        try await Self.withControllers(ready: false) { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML(replicas: 1, extra: "  progressDeadlineSeconds: 1\n")).status == 0)
            // Past its deadline once the Pod exists: before that, the Pod's creation is progress
            // (DeploymentProgressing compares the replica counts) and resets the condition, as on
            // a real cluster, so on a loaded host the deadline can pass, then reset, then pass.
            try await until(cluster, "web past its progress deadline") {
                let d = try? await store.get(.deployment, namespace: "default", name: "web")
                return d?["status"]?["replicas"] == .int(1) && d?["status"]?["updatedReplicas"] == .int(1)
                    && Conditions.get(d?["status"], "Progressing")?["reason"] == .string("ProgressDeadlineExceeded")
            }
            let rs = try #require(await replicaSets(store, app: "web").first)
            let d = try await store.get(.deployment, namespace: "default", name: "web")
            let progressing = try #require(Conditions.get(d["status"], "Progressing"))
            #expect(progressing["status"] == .string("False"))
            #expect(progressing["message"] == .string("ReplicaSet \"\(rs.metaName)\" has timed out progressing."))
            let status = try await kubectl("rollout", "status", "deployment/web", "--timeout=10s")
            #expect(status.status != 0)
            #expect(status.stderr.contains("deployment \"web\" exceeded its progress deadline"), "\(status.stderr)")
        }
    }

    @Test func aPausedDeploymentDoesNotRollOutUntilResumed() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML(replicas: 2)).status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            #expect(try await kubectl("rollout", "pause", "deployment/web").status == 0)
            #expect(try await kubectl("set", "image", "deployment/web", "app=example.com/web:v2").status == 0)
            try await until(cluster, "the paused change observed") {
                guard let d = try? await store.get(.deployment, namespace: "default", name: "web") else { return false }
                return d.intAt("status", "observedGeneration") == d.metaGeneration && Conditions.get(d["status"], "Progressing")?["reason"] == .string("DeploymentPaused")
            }
            let d = try await store.get(.deployment, namespace: "default", name: "web")
            let progressing = try #require(Conditions.get(d["status"], "Progressing"))
            #expect(progressing["status"] == .string("Unknown") && progressing["message"] == .string("Deployment is paused"))
            #expect(await replicaSets(store, app: "web").count == 1, "no rollout while paused")
            #expect(try await kubectl("rollout", "resume", "deployment/web").status == 0)
            let status = try await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
            #expect(await replicaSets(store, app: "web").count == 2)
        }
    }

    @Test func minReadySecondsDelaysAvailability() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            #expect(try await kubectl("create", "-f", "-", stdin: Self.deploymentYAML(replicas: 1, extra: "  minReadySeconds: 2\n")).status == 0)
            try await until(cluster, "the pod ready") { await replicaSets(store, app: "web").first?.intAt("status", "readyReplicas") == 1 }
            #expect(await replicaSets(store, app: "web").first?.intAt("status", "availableReplicas") == 0, "ready but not yet for 2 s")
            let status = try await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
            let pod = try #require(await pods(store, app: "web").first)
            let readySince = try #require(PodState.readyCondition(pod)?["lastTransitionTime"]?.stringValue.flatMap(RFC3339.parse))
            #expect(Date().timeIntervalSince(readySince) >= 2)
        }
    }

    // MARK: garbage collection with the GC finalizers (kubectl --cascade → propagationPolicy → the
    // store's finalizers, as k8s.io/apiserver `deletionFinalizersForGarbageCollection`)

    @Test func cascadeOrphanLeavesThePodsBehind() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            let yaml = """
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata:
              name: solo
            spec:
              replicas: 2
              selector:
                matchLabels:
                  app: solo
              template:
                metadata:
                  labels:
                    app: solo
                spec:
                  containers:
                  - name: app
                    image: example.com/web:v1

            """
            #expect(try await kubectl("create", "-f", "-", stdin: yaml).status == 0)
            try await until(cluster, "2 pods for solo") { await pods(store, app: "solo").count == 2 }
            #expect(try await kubectl("delete", "rs", "solo", "--cascade=orphan", "--timeout=20s").status == 0)
            try await until(cluster, "solo gone") { (try? await store.get(.replicaSet, namespace: "default", name: "solo")) == nil }
            let left = await pods(store, app: "solo")
            #expect(left.count == 2)
            #expect(left.allSatisfy { $0.metaOwners.isEmpty })
        }
    }

    @Test func cascadeForegroundRemovesTheReplicaSetsBeforeTheDeployment() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            let yaml = Self.deploymentYAML()
            #expect(try await kubectl("create", "-f", "-", stdin: yaml).status == 0)
            #expect(try await kubectl("rollout", "status", "deployment/web", "--timeout=30s").status == 0)
            let rs = try #require(await replicaSets(store, app: "web").first)
            let changes = cluster.changes()
            #expect(try await kubectl("delete", "deployment", "web", "--cascade=foreground", "--wait=false").status == 0)
            let order = try await within(.seconds(20), "the deployment deleted") {
                var deleted: [String] = []
                for await c in changes where c.type == "DELETED" && (c.resource == "replicasets" || c.resource == "deployments") {
                    deleted.append("\(c.resource)/\(c.name)")
                    if c.resource == "deployments" { break }
                }
                return deleted
            }
            #expect(order == ["replicasets/\(rs.metaName)", "deployments/web"])
            try await until(cluster, "no pod of web") { await pods(store, app: "web", active: false).isEmpty }
        }
    }

    // MARK: scheduler and node

    @Test func theNodeRegistersAndHoldsItsLease() async throws {
        try await Self.withControllers { cluster, kubectl in
            let store = cluster.store
            try await until(cluster, "the node and its lease") {
                let node = try? await store.get(NodeRegistration.nodes, namespace: nil, name: Self.node)
                let lease = try? await store.get(NodeRegistration.leases, namespace: "kube-node-lease", name: Self.node)
                return node != nil && lease != nil
            }
            let node = try await store.get(NodeRegistration.nodes, namespace: nil, name: Self.node)
            #expect(node.metaLabels["kubernetes.io/hostname"] == Self.node && node.metaLabels["kubernetes.io/os"] == "linux")
            #expect(!node.metaLabels.keys.contains { $0.hasPrefix("node-role.kubernetes.io/") })
            let ready = try #require(Conditions.get(node["status"], "Ready"))
            #expect(ready["status"] == .string("True") && ready["reason"] == .string("KubeletReady") && ready["message"] == .string("kubelet is posting ready status"))
            for (type, reason) in [("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"), ("PIDPressure", "KubeletHasSufficientPID")] {
                let c = try #require(Conditions.get(node["status"], type))
                #expect(c["status"] == .string("False") && c["reason"] == .string(reason))
            }
            #expect(node["status"]?["addresses"]?.arrayValue?.contains(.object(["type": .string("InternalIP"), "address": .string("127.0.0.1")])) == true)
            #expect(node["status"]?["capacity"]?["pods"] == .string("110") && node["status"]?["allocatable"]?["pods"] == .string("110"))
            let lease = try await store.get(NodeRegistration.leases, namespace: "kube-node-lease", name: Self.node)
            #expect(lease["spec"]?["holderIdentity"] == .string(Self.node) && lease["spec"]?["leaseDurationSeconds"] == .int(40))
            #expect(lease.metaOwners.first?.uid == node.metaUID)
            let wait = try await kubectl("wait", "--for=condition=Ready", "node/\(Self.node)", "--timeout=10s")
            #expect(wait.status == 0, "\(wait.stdout)\(wait.stderr)")
        }
    }

    /// The scheduler's verdicts that need no binding write: a Pod for another scheduler is left
    /// alone, one whose nodeSelector no node matches is marked Unschedulable as kube-scheduler does.
    @Test func unschedulablePodsGetTheSchedulersCondition() async throws {
        try await Self.withControllers { cluster, _ in
            let store = cluster.store
            try await until(cluster, "the node") { (try? await store.get(NodeRegistration.nodes, namespace: nil, name: Self.node)) != nil }
            func pod(_ name: String, _ spec: [String: JSONValue]) -> JSONValue {
                var s = spec
                s["containers"] = .array([.object(["name": .string("app"), "image": .string("example.com/web:v1")])])
                return .object(["apiVersion": .string("v1"), "kind": .string("Pod"), "metadata": .object(["name": .string(name)]), "spec": .object(s)])
            }
            _ = try await store.create(.pod, namespace: "default", body: pod("elsewhere", ["nodeSelector": .object(["disk": .string("ssd")])]))
            try await until(cluster, "elsewhere marked unschedulable") {
                let p = try? await store.get(.pod, namespace: "default", name: "elsewhere")
                return Conditions.get(p?["status"], "PodScheduled")?["reason"] == .string("Unschedulable")
            }
            let p = try await store.get(.pod, namespace: "default", name: "elsewhere")
            let c = try #require(Conditions.get(p["status"], "PodScheduled"))
            #expect(c["status"] == .string("False"))
            #expect(c["message"]?.stringValue?.hasPrefix("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.") == true)
            #expect(p.stringAt("spec", "nodeName") == nil)
        }
    }

    /// A Pod nobody placed is bound by the scheduler through `pods/binding`.
    @Test func aBarePodIsBoundToTheNode() async throws {
        try await Self.withControllers { cluster, _ in
            let store = cluster.store
            try await until(cluster, "the node") { (try? await store.get(NodeRegistration.nodes, namespace: nil, name: Self.node)) != nil }
            let pod: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("Pod"), "metadata": .object(["name": .string("bare")]),
                                          "spec": .object(["containers": .array([.object(["name": .string("app"), "image": .string("example.com/web:v1")])])])])
            _ = try await store.create(.pod, namespace: "default", body: pod)
            // Bound through pods/binding, as kube-scheduler binds.
            try await until(cluster, "bare bound", timeout: .seconds(3)) {
                let p = try? await store.get(.pod, namespace: "default", name: "bare")
                return p?.stringAt("spec", "nodeName") == Self.node && Conditions.get(p?["status"], "PodScheduled")?["status"] == .string("True")
            }
            // A bound Pod cannot be bound again (BindingREST's conflict).
            await #expect(throws: APIError.self) {
                try await store.bind(namespace: "default", name: "bare", uid: nil, node: "elsewhere", options: WriteOptions())
            }
        }
    }

    // MARK: pure parts

    @Test func podTemplateHashIsStableAndChangesWithTheTemplateAndCollisions() {
        let t: JSONValue = .object(["metadata": .object(["labels": .object(["app": .string("web")])]),
                                    "spec": .object(["containers": .array([.object(["name": .string("app"), "image": .string("a:v1")])])])])
        var t2 = t
        t2["spec"]?["containers"] = .array([.object(["name": .string("app"), "image": .string("a:v2")])])
        let h = PodTemplateHash.compute(t, collisionCount: nil)
        #expect(h == PodTemplateHash.compute(t, collisionCount: nil))
        #expect(h != PodTemplateHash.compute(t2, collisionCount: nil))
        #expect(h != PodTemplateHash.compute(t, collisionCount: 1))
        #expect(!h.isEmpty && h.count <= 10 && h.allSatisfy { "bcdfghjklmnpqrstvwxz2456789".contains($0) })
        // `rand.SafeEncodeString("123")`: '1' is 49 → 49 % 27 = 22 → "5"; '2' → "6"; '3' → "7".
        #expect(PodTemplateHash.safeEncode("123") == "567")
        var f = FNV32a()
        f.write(Array("a".utf8))
        #expect(f.value == 0xe40c292c, "FNV-1a 32 of \"a\"")
    }

    @Test func theWorkQueueDeduplicatesDelaysAndShutsDown() async throws {
        let queue = WorkQueue<String>()
        queue.add("a")
        queue.add("b")
        queue.add("a")
        #expect(queue.count == 2, "a key already waiting is not added twice")
        #expect(await queue.next() == "a")
        queue.add("a")
        #expect(await queue.next() == "b")
        #expect(await queue.next() == "a", "a key added again while processed comes back")
        let start = ContinuousClock.now
        queue.add("later", at: start.advanced(by: .seconds(10)))
        queue.promoteDue(now: start.advanced(by: .seconds(9)))
        #expect(queue.count == 0)
        queue.promoteDue(now: start.advanced(by: .seconds(10)))
        #expect(queue.count == 1)
        #expect(await queue.next() == "later")
        #expect(WorkQueue<String>.backoff(failures: 1) == .milliseconds(20) && WorkQueue<String>.backoff(failures: 30) == .seconds(5))
        async let waiting = queue.next()
        queue.shutDown()
        #expect(await waiting == nil)
    }

    /// The promoting loop sleeps until a delayed key is due, not on a timer: a new delayed add
    /// wakes it, a due key ends the wait, and shutting down ends it too.
    @Test func theDelayedWaitEndsOnAnAddADueKeyOrShutdown() async throws {
        let queue = WorkQueue<String>()
        // Until the waiter is registered (then an add must wake it), yielding, bounded.
        func registered() async throws {
            try await within(.seconds(5), "the wait registered") { while !queue.isWaitingForDelayed { await Task.yield() } }
        }
        let first = Task { await queue.waitForDelayed() }
        try await registered()
        queue.add("x", at: ContinuousClock.now.advanced(by: .seconds(3600)))
        try await within(.seconds(5), "a delayed add wakes the wait") { await first.value }
        // The earliest key (due now) ends the next wait at once; the hour-long one does not hold it.
        queue.add("y", at: ContinuousClock.now)
        try await within(.seconds(5), "a due key ends the wait") { await queue.waitForDelayed() }
        queue.promoteDue(now: ContinuousClock.now)
        #expect(queue.count == 1)
        let closing = Task { await queue.waitForDelayed() }
        try await registered()
        queue.shutDown()
        try await within(.seconds(5), "shutdown ends the wait") { await closing.value }
    }

    @Test func fencepostsRoundAsTheDeploymentControllerDoes() {
        typealias U = DeploymentUtil
        #expect(U.resolveFenceposts(maxSurge: .string("25%"), maxUnavailable: .string("25%"), desired: 10) == (3, 2))
        #expect(U.resolveFenceposts(maxSurge: .int(0), maxUnavailable: .int(0), desired: 3) == (0, 1))
        #expect(U.resolveFenceposts(maxSurge: .string("25%"), maxUnavailable: .string("25%"), desired: 1) == (1, 0))
        #expect(U.resolveFenceposts(maxSurge: .int(1), maxUnavailable: .int(0), desired: 3) == (1, 0))
    }

    @Test func scaleDownDeletesUnscheduledThenPendingThenNotReadyPodsFirst() {
        func pod(_ name: String, node: String?, phase: String, ready: Bool) -> JSONValue {
            var spec: [String: JSONValue] = [:]
            if let node { spec["nodeName"] = .string(node) }
            return .object(["metadata": .object(["name": .string(name), "uid": .string(name), "creationTimestamp": .string("2026-01-01T00:00:00Z")]),
                            "spec": .object(spec),
                            "status": .object(["phase": .string(phase), "conditions": .array([.object(["type": .string("Ready"), "status": .string(ready ? "True" : "False"),
                                                                                                          "lastTransitionTime": .string("2026-01-01T00:00:00Z")])])])])
        }
        let pods = [pod("running-ready", node: "n", phase: "Running", ready: true), pod("pending", node: "n", phase: "Pending", ready: false),
                    pod("unscheduled", node: nil, phase: "Pending", ready: false), pod("running-unready", node: "n", phase: "Running", ready: false)]
        let order = ReplicaSetController.podsToDelete(pods, related: pods, count: 3, now: Date()).map(\.metaName)
        #expect(order == ["unscheduled", "pending", "running-unready"])
    }
}

// MARK: - helpers

/// `kubectl` against the devcluster.
private struct Kubectl: Sendable {
    let env: [String: String]
    func callAsFunction(_ args: String..., stdin: String? = nil) async throws -> ProcessResult {
        try await run("kubectl", Array(args), environment: env, stdin: stdin)
    }
}

/// Waits until `condition` holds, checking it now and after every committed change.
private func until(_ cluster: DevCluster, _ what: String, timeout: Duration = .seconds(30), _ condition: @escaping @Sendable () async -> Bool) async throws {
    try await within(timeout, what) {
        let changes = cluster.changes()
        if await condition() { return }
        for await _ in changes {
            if await condition() { return }
        }
    }
}

/// The active Pods (or all, with `active: false`) labelled `app=<app>` in default.
private func pods(_ store: ObjectStore, app: String, active: Bool = true) async -> [JSONValue] {
    await store.stored(.pod).values.filter { $0.metaNamespace == "default" && $0.metaLabels["app"] == app && (!active || PodState.isActive($0)) }
}

private func replicaSets(_ store: ObjectStore, app: String) async -> [JSONValue] {
    await store.stored(.replicaSet).values.filter { $0.metaNamespace == "default" && $0.metaLabels["app"] == app }
}

/// Follows the Pods of one app through the change feed and records the fewest available and
/// the most existing Pods seen in any committed state.
private actor PodCounts {
    let store: ObjectStore
    let app: String
    private var current: [String: JSONValue] = [:]
    private var minimum = Int.max
    private var maximum = 0
    private var samples = 0

    init(store: ObjectStore, app: String) {
        self.store = store
        self.app = app
    }

    func start() async {
        for pod in await pods(store, app: app, active: false) { current[pod.metaName] = pod }
        for rs in await replicaSets(store, app: app) { replicas[rs.metaName] = rs["spec"]?["replicas"]?.intValue ?? 1 }
        replicaMaximum = replicas.values.reduce(0, +)
        sample()
    }

    /// The ReplicaSets' `spec.replicas` by name.
    private var replicas: [String: Int] = [:]
    private var replicaMaximum = 0
    /// The most replicas the ReplicaSets asked for at once (when their changes are fed in).
    var replicaPeak: Int { replicaMaximum }

    func apply(_ change: ObservedChange) {
        guard change.namespace == "default", change.object.metaLabels["app"] == app else { return }
        if change.resource == "replicasets" {
            replicas[change.name] = change.type == "DELETED" ? nil : (change.object["spec"]?["replicas"]?.intValue ?? 1)
            replicaMaximum = max(replicaMaximum, replicas.values.reduce(0, +))
            return
        }
        if change.type == "DELETED" { current[change.name] = nil } else { current[change.name] = change.object }
        sample()
    }

    private func sample() {
        let live = current.values.filter { !$0.metaDeleting }
        minimum = min(minimum, live.filter(PodState.isReady).count)
        maximum = max(maximum, live.count)
        samples += 1
    }

    var result: (Int, Int, Int) { (minimum, maximum, samples) }
}

/// The kubelet's part for these tests: every Pod bound to the node is reported Running and Ready
/// (pods/status, as the kubelet's status manager writes it).
private struct FakeKubelet: Sendable {
    let store: ObjectStore
    let node: String

    func run(_ changes: AsyncStream<ObservedChange>) async {
        for pod in await store.stored(.pod).values { await handle(pod) }
        for await change in changes where change.resource == "pods" && change.type != "DELETED" { await handle(change.object) }
    }

    private var user: UserInfo { UserInfo(name: "system:node:\(node)", groups: ["system:nodes", "system:authenticated"]) }

    private func handle(_ pod: JSONValue) async {
        guard pod.stringAt("spec", "nodeName") == node else { return }
        if pod.metaDeleting {
            // The containers are stopped at once; the kubelet then deletes the Pod for good.
            _ = try? await store.delete(.pod, namespace: pod.metaNamespace, name: pod.metaName, preconditionUID: pod.metaUID, preconditionRV: nil,
                                        user: user, gracePeriodSeconds: 0)
            return
        }
        guard !PodState.isReady(pod) else { return }
        let now = RFC3339.format(Date())
        func condition(_ type: String) -> JSONValue {
            .object(["type": .string(type), "status": .string("True"), "lastProbeTime": .null, "lastTransitionTime": .string(now)])
        }
        var updated = pod
        updated["status"] = .object([
            "phase": .string("Running"), "qosClass": pod["status"]?["qosClass"] ?? .string("BestEffort"), "startTime": .string(now),
            "hostIP": .string("127.0.0.1"), "podIP": .string("10.244.0.\(Int.random(in: 2...250))"),
            "conditions": .array(["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"].map(condition)),
        ])
        var options = WriteOptions(user: user)
        options.subresource = "status"
        options.manager = "kubelet"
        // A conflict means the Pod changed meanwhile: its next change brings it back here.
        _ = try? await store.update(.pod, namespace: pod.metaNamespace, name: pod.metaName, body: updated, options: options)
    }
}
