import KubetraceTestKit
import Foundation
import KubeClient
@testable import KubeSim
import Logging
import Synchronization
import Testing

// MARK: - harness

/// An image puller standing in for the registry: known references resolve, others fail as
/// containerd's NotFound; a reference listed in `needsSecret` resolves only when the Pod's
/// pull Secrets include that Secret.
final class TestPuller: ImagePulling {
    let images: [String: NodeImage]
    let needsSecret: [String: String]
    init(images: [String: NodeImage], needsSecret: [String: String] = [:]) {
        self.images = images
        self.needsSecret = needsSecret
    }

    func pull(_ reference: String, pullSecrets: [JSONValue], policy: String) async throws(ImagePullError) -> NodeImage {
        guard let image = images[reference] else {
            throw ImagePullError("ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image \"\(reference)\": not found")
        }
        if let secret = needsSecret[reference], !pullSecrets.contains(where: { $0["metadata"]?["name"]?.stringValue == secret }) {
            throw ImagePullError("ErrImagePull", "rpc error: code = Unknown desc = failed to pull and unpack image \"\(reference)\": 401 Unauthorized")
        }
        return image
    }
}

struct NodeFixture: Sendable {
    let cluster: DevCluster
    let kubelet: Kubelet
    let client: KubeClient
    var store: ObjectStore { cluster.store }
    var root: String { kubelet.root }
}

let testImages: [String: NodeImage] = [
    "sh:1": NodeImage(reference: "sh:1", executable: "/bin/sh", user: (65532, 65532)),
    "rootsh:1": NodeImage(reference: "rootsh:1", executable: "/bin/sh"),
    "py:1": NodeImage(reference: "py:1", executable: "/usr/bin/python3.11", user: (65532, 65532)),
    "private:1": NodeImage(reference: "private:1", executable: "/bin/sh", user: (65532, 65532)),
    "blr.vultrcr.com/kubetrace/kubetrace-operator:0.1.0": NodeImage(reference: "blr.vultrcr.com/kubetrace/kubetrace-operator:0.1.0", executable: "/usr/bin/python3.11", user: (65532, 65532)),
]

/// A devcluster with a node: the kubelet and the root CA publisher run against its store.
func withNode(volumeSyncDelay: Duration = .milliseconds(500), _ body: @escaping @Sendable (NodeFixture) async throws -> Void) async throws {
    try await DevCluster.withRunning { cluster in
        let network = try NodeNetwork.setUp()
        defer { network.tearDown() }
        let dir = TempDir()
        var options = NodeOptions()
        options.directory = dir.path + "/kubelet"
        options.backoffInitial = .milliseconds(200)
        options.backoffMax = .seconds(1)
        options.volumeSyncDelay = volumeSyncDelay
        options.images = testImages
        let port = await cluster.port()
        let ca = cluster.certificateAuthority?.certificate.certificatePEM
        let logger = DevCluster.quietLogger
        let kubelet = Kubelet(store: cluster.store, tokens: cluster.tokens, options: options, network: network, apiServerHost: "127.0.0.1",
                              apiServerPort: port, caPEM: ca, puller: TestPuller(images: testImages, needsSecret: ["private:1": "regcred"]), logger: logger)
        cluster.nodeRoutes.podLogs = { ns, pod, query in try await kubelet.podLogs(namespace: ns, pod: pod, query: query) }
        let publisher = RootCACertPublisher(store: cluster.store, caPEM: ca, logger: logger)
        let client = try await adminClient(cluster)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await kubelet.run() }
            group.addTask { await publisher.run() }
            let outcome: Result<Void, any Error>
            do { outcome = .success(try await body(NodeFixture(cluster: cluster, kubelet: kubelet, client: client))) } catch { outcome = .failure(error) }
            group.cancelAll()
            // Bounded by the suite's time limit: the kubelet stops every Pod first.
            try await group.waitForAll()
            try outcome.get()
        }
        _ = dir
    }
}

/// A Pod bound to the test node.
func testPod(_ name: String, containers: [JSONValue], spec extra: [String: JSONValue] = [:]) -> JSONValue {
    var spec: [String: JSONValue] = [
        "nodeName": .string(NodeOptions().name), "containers": .array(containers), "terminationGracePeriodSeconds": .int(5),
        "automountServiceAccountToken": .bool(false),
    ]
    for (k, v) in extra { spec[k] = v }
    return .object(["apiVersion": .string("v1"), "kind": .string("Pod"),
                    "metadata": .object(["name": .string(name), "namespace": .string("default")]), "spec": .object(spec)])
}

func shContainer(_ name: String, _ script: String, image: String = "sh:1", extra: [String: JSONValue] = [:]) -> JSONValue {
    var c: [String: JSONValue] = ["name": .string(name), "image": .string(image), "command": .array([.string("/bin/sh"), .string("-c"), .string(script)])]
    for (k, v) in extra { c[k] = v }
    return .object(c)
}

func json(_ text: String) -> JSONValue { try! JSONValue.parse(Array(text.utf8)) }

extension NodeFixture {
    @discardableResult
    func create(_ pod: JSONValue) async throws -> JSONValue {
        let r = try await client.request("POST", path: "/api/v1/namespaces/default/pods", body: pod.jsonBytes())
        return try JSONValue.parse(r.body)
    }

    func createObject(_ path: String, _ object: JSONValue) async throws {
        _ = try await client.request("POST", path: path, body: object.jsonBytes())
    }

    /// Waits (bounded) until `predicate` holds for the Pod (nil: gone), following the store's changes.
    @discardableResult
    func awaitPod(_ name: String, timeout: Duration = .seconds(20), _ what: String, _ predicate: @escaping @Sendable (JSONValue?) -> Bool) async throws -> JSONValue? {
        let changes = cluster.changes()
        let store = self.store
        return try await within(timeout, what) {
            let current = try? await store.get(.pod, namespace: "default", name: name)
            if predicate(current) { return current }
            for await c in changes where c.resource == "pods" && c.name == name && c.namespace == "default" {
                let obj: JSONValue? = c.type == "DELETED" ? nil : c.object
                if predicate(obj) { return obj }
            }
            throw TimedOut(what: what)
        }
    }

    func logs(_ pod: String, _ query: [(String, String)] = []) async throws -> HTTPResponse {
        try await client.exchange("GET", path: "/api/v1/namespaces/default/pods/\(pod)/log", query: query)
    }
}

func status(_ pod: JSONValue?, _ container: String) -> JSONValue? {
    (pod?["status"]?["containerStatuses"]?.arrayValue ?? []).first { $0["name"]?.stringValue == container }
}

func condition(_ pod: JSONValue?, _ type: String) -> String? {
    (pod?["status"]?["conditions"]?.arrayValue ?? []).first { $0["type"]?.stringValue == type }?["status"]?.stringValue
}

func text(_ r: HTTPResponse) -> String { String(decoding: r.body, as: UTF8.self) }

// MARK: - pure parts

@Suite struct KubeletUnitTests {
    @Test func expansionFollowsKubelet() {
        let vars = ["A": "x", "B": "y"]
        #expect(PodEnvironment.expand("$(A)-$(B)", { vars[$0] }) == "x-y")
        #expect(PodEnvironment.expand("$$(A)", { vars[$0] }) == "$(A)")
        #expect(PodEnvironment.expand("$(C)", { vars[$0] }) == "$(C)")
        #expect(PodEnvironment.expand("$(A", { vars[$0] }) == "$(A")
        #expect(PodEnvironment.expand("a$b$", { vars[$0] }) == "a$b$")
    }

    @Test func goDurations() {
        #expect(GoDuration.format(.milliseconds(200)) == "200ms")
        #expect(GoDuration.format(.seconds(10)) == "10s")
        #expect(GoDuration.format(.seconds(80)) == "1m20s")
        #expect(GoDuration.format(.seconds(300)) == "5m0s")
        #expect(GoDuration.format(.milliseconds(1500)) == "1.5s")
    }

    @Test func backoffDoublesCapsAndExpires() {
        var b = ContainerBackoff(initial: .seconds(10), max: .seconds(300))
        let t0 = ContinuousClock.now
        b.next("k", at: t0)
        #expect(b.get("k") == .seconds(10))
        #expect(b.isInBackOff("k", since: t0, now: t0 + .seconds(5)))
        #expect(!b.isInBackOff("k", since: t0, now: t0 + .seconds(10)))
        for i in 1...6 { b.next("k", at: t0 + .seconds(i)) }
        #expect(b.get("k") == .seconds(300))
        // Untouched for 2 × max: starts over.
        b.next("k", at: t0 + .seconds(6 + 601))
        #expect(b.get("k") == .seconds(10))
    }

    @Test func runAsNonRootMessages() {
        let pod = json(#"{"metadata":{"name":"p","namespace":"ns","uid":"u-1"},"spec":{"securityContext":{"runAsNonRoot":true}}}"#)
        let c = json(#"{"name":"c"}"#)
        #expect(throws: ContainerConfigError(message: "container has runAsNonRoot and image will run as root (pod: \"p_ns(u-1)\", container: c)")) {
            try PodSecurity.resolve(pod: pod, container: c, image: NodeImage(reference: "x", executable: "/bin/sh"))
        }
        let explicitRoot = json(#"{"name":"c","securityContext":{"runAsUser":0}}"#)
        #expect(throws: ContainerConfigError(message: "container's runAsUser breaks non-root policy (pod: \"p_ns(u-1)\", container: c)")) {
            try PodSecurity.resolve(pod: pod, container: explicitRoot, image: NodeImage(reference: "x", executable: "/bin/sh"))
        }
        let ok = try? PodSecurity.resolve(pod: pod, container: c, image: NodeImage(reference: "x", executable: "/bin/sh", user: (65532, 65532)))
        #expect(ok?.uid == 65532 && ok?.gid == 65532)
    }

    @Test func securityOfTheOperatorManifest() throws {
        let pod = json(#"{"metadata":{"name":"p","namespace":"ns","uid":"u"},"spec":{"securityContext":{"runAsNonRoot":true,"fsGroup":65532,"supplementalGroups":[4]}}}"#)
        let c = json(#"{"name":"c","securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"runAsUser":65532,"runAsGroup":65532,"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE"]},"seccompProfile":{"type":"RuntimeDefault"}}}"#)
        let s = try PodSecurity.resolve(pod: pod, container: c, image: NodeImage(reference: "x", executable: "/x"))
        #expect(s == ContainerSecurity(uid: 65532, gid: 65532, supplementalGroups: [65532, 4], noNewPrivileges: true, readOnlyRootFilesystem: true,
                                       capabilities: ["NET_BIND_SERVICE"], seccompProfile: "RuntimeDefault"))
    }

    @Test func environmentErrorsAreTheKubelets() {
        let pod = json(#"{"metadata":{"name":"p","namespace":"ns","uid":"u"},"spec":{}}"#)
        let missing = json(#"{"name":"c","env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]}"#)
        #expect(throws: ContainerConfigError(message: "secret \"s\" not found")) {
            try PodEnvironment.variables(pod: pod, container: missing, objects: PodObjects(secrets: ["s": nil]), serviceEnv: [], podIP: "", hostIP: "")
        }
        let secret = json(#"{"metadata":{"name":"s"},"data":{"other":"eA=="}}"#)
        #expect(throws: ContainerConfigError(message: "couldn't find key k in Secret ns/s")) {
            try PodEnvironment.variables(pod: pod, container: missing, objects: PodObjects(secrets: ["s": secret]), serviceEnv: [], podIP: "", hostIP: "")
        }
        let optional = json(#"{"name":"c","env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"s","key":"k","optional":true}}},{"name":"Y","value":"$(KUBERNETES_SERVICE_HOST)/$(X)"}]}"#)
        let vars = try? PodEnvironment.variables(pod: pod, container: optional, objects: PodObjects(secrets: ["s": nil]),
                                                 serviceEnv: PodEnvironment.serviceEnvironment(host: "10.0.0.1", port: 6443), podIP: "", hostIP: "")
        #expect(vars?.first { $0.0 == "Y" }?.1 == "10.0.0.1/$(X)")
        #expect(vars?.first { $0.0 == "KUBERNETES_PORT" }?.1 == "tcp://10.0.0.1:6443")
    }

    @Test(.timeLimit(.minutes(1))) func aKillDeadlineOnlyMovesEarlierAndWakesItsWaiter() async {
        let start = ContinuousClock.now
        let deadline = KillDeadline(start + .seconds(600))
        deadline.shorten(to: start + .seconds(900))
        #expect(deadline.instant == start + .seconds(600), "a longer grace period is ignored")
        // The waiter is asleep until 600 s; shortening wakes it.
        async let waited: Void = deadline.wait()
        deadline.shorten(to: .now + .milliseconds(200))
        await waited
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test func criLogRendering() {
        let date = Date(timeIntervalSince1970: 1_700_000_000.5)
        let line = CRILog.record(.stdout, Array("hello".utf8), at: date)
        #expect(String(decoding: line, as: UTF8.self) == "2023-11-14T22:13:20.5Z stdout F hello\n")
        var q = try! PodLogQuery(["timestamps": "true", "limitBytes": "40"], now: date)
        q.tailLines = nil
        var r = LogRenderer(query: q)
        let out = r.render(completeLines(line + line).lines)
        #expect(String(decoding: out, as: UTF8.self) == "2023-11-14T22:13:20.500000000Z hello\n202")
    }
}

// MARK: - graceful deletion (the store alone)

@Suite(.timeLimit(.minutes(1))) struct PodGracefulDeletionTests {
    @Test func boundPodsAreMarkedThenRemovedUnboundAtOnce() async throws {
        let store = ObjectStore()
        func make(_ name: String, node: String?) async throws -> JSONValue {
            var spec: [String: JSONValue] = ["containers": .array([json(#"{"name":"c","image":"x"}"#)])]
            if let node { spec["nodeName"] = .string(node) }
            return try await store.create(.pod, namespace: "default", body: .object(["metadata": .object(["name": .string(name)]), "spec": .object(spec)]))
        }
        _ = try await make("unbound", node: nil)
        guard case .object(let gone) = try await store.delete(.pod, namespace: "default", name: "unbound", preconditionUID: nil, preconditionRV: nil) else { Issue.record("no object"); return }
        #expect(gone["metadata"]?["deletionTimestamp"] != nil)
        #expect((try? await store.get(.pod, namespace: "default", name: "unbound")) == nil)

        let bound = try await make("bound", node: "n1")
        guard case .object(let marked) = try await store.delete(.pod, namespace: "default", name: "bound", preconditionUID: nil, preconditionRV: nil) else { Issue.record("no object"); return }
        #expect(marked["metadata"]?["deletionGracePeriodSeconds"] == .int(30))
        #expect(marked["metadata"]?["deletionTimestamp"] != nil)
        // A longer (or no) grace period leaves it pending; a shorter one moves the timestamp.
        _ = try await store.delete(.pod, namespace: "default", name: "bound", preconditionUID: nil, preconditionRV: nil, gracePeriodSeconds: 60)
        #expect(try await store.get(.pod, namespace: "default", name: "bound")["metadata"]?["deletionGracePeriodSeconds"] == .int(30))
        _ = try await store.delete(.pod, namespace: "default", name: "bound", preconditionUID: nil, preconditionRV: nil, gracePeriodSeconds: 10)
        #expect(try await store.get(.pod, namespace: "default", name: "bound")["metadata"]?["deletionGracePeriodSeconds"] == .int(10))
        // The kubelet's final delete: grace 0 with the uid as precondition.
        _ = try await store.delete(.pod, namespace: "default", name: "bound", preconditionUID: bound["metadata"]?["uid"]?.stringValue, preconditionRV: nil, gracePeriodSeconds: 0)
        #expect((try? await store.get(.pod, namespace: "default", name: "bound")) == nil)

        _ = try await make("forced", node: "n1")
        _ = try await store.delete(.pod, namespace: "default", name: "forced", preconditionUID: nil, preconditionRV: nil, gracePeriodSeconds: 0)
        #expect((try? await store.get(.pod, namespace: "default", name: "forced")) == nil)
    }
}

extension PodGracefulDeletionTests {
    @Test func aNegativeGracePeriodOnATerminatingPodBecomesOne() async throws {
        let store = ObjectStore()
        let body = json(#"{"metadata":{"name":"p"},"spec":{"nodeName":"n1","containers":[{"name":"c","image":"x"}]}}"#)
        _ = try await store.create(.pod, namespace: "default", body: body)
        _ = try await store.delete(.pod, namespace: "default", name: "p", preconditionUID: nil, preconditionRV: nil, gracePeriodSeconds: 30)
        // delete.go `BeforeDelete`: negative becomes 1 before the terminating check, so it
        // shortens the period to 1 rather than deleting at once.
        _ = try await store.delete(.pod, namespace: "default", name: "p", preconditionUID: nil, preconditionRV: nil, gracePeriodSeconds: -1)
        let pod = try? await store.get(.pod, namespace: "default", name: "p")
        #expect(pod != nil, "a negative grace period deleted the terminating Pod at once")
        #expect(pod?["metadata"]?["deletionGracePeriodSeconds"] == .int(1))
    }
}

// MARK: - the kubelet with real processes

@Suite(.enabled(if: getuid() == 0, "needs root: network namespaces, mounts, setuid"), .timeLimit(.minutes(3)), .serialized)
struct KubeletTests {
    @Test func environmentFromFieldsSecretsAndTheServiceVariables() async throws {
        try await withNode { node in
            try await node.createObject("/api/v1/namespaces/default/secrets", json(#"{"metadata":{"name":"env-secret"},"stringData":{"key":"s3cr3t-value"}}"#))
            let script = #"echo "ns=$POD_NAMESPACE name=$POD_NAME node=$NODE ip=$POD_IP"; echo "label=$APP"; echo "svc=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT $KUBERNETES_PORT"; [ "$SECRET" = "s3cr3t-value" ] && echo secret-ok; echo "expanded=$(EXPANDED)"; echo "host=$HOSTNAME path=$PATH"; id -u; id -g"#
            let c = shContainer("c", script, extra: [
                "env": json(#"[{"name":"POD_NAMESPACE","valueFrom":{"fieldRef":{"fieldPath":"metadata.namespace"}}},{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},{"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}},{"name":"POD_IP","valueFrom":{"fieldRef":{"fieldPath":"status.podIP"}}},{"name":"APP","valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['app']"}}},{"name":"SECRET","valueFrom":{"secretKeyRef":{"name":"env-secret","key":"key"}}},{"name":"EXPANDED","value":"$(POD_NAME)-x"}]"#),
            ])
            var pod = testPod("env", containers: [c], spec: ["restartPolicy": .string("Never")])
            pod = json(String(decoding: pod.jsonBytes(), as: UTF8.self).replacingOccurrences(of: #""namespace":"default""#, with: #""namespace":"default","labels":{"app":"demo"}"#))
            try await node.create(pod)
            let done = try await node.awaitPod("env", "env pod succeeded") { $0?["status"]?["phase"]?.stringValue == "Succeeded" }
            let podIP = done?["status"]?["podIP"]?.stringValue ?? "?"
            let log = text(try await node.logs("env"))
            let hasSecret = log.contains("secret-ok")
            #expect(hasSecret, "the secretKeyRef value reached the process")
            #expect(!log.contains("s3cr3t-value"))
            #expect(log.contains("ns=default name=env node=\(NodeOptions().name) ip=\(podIP)"), "\(log)")
            #expect(log.contains("label=demo"), "\(log)")
            #expect(log.contains("svc=127.0.0.1:\(await node.cluster.port()) tcp://127.0.0.1:\(await node.cluster.port())"), "\(log)")
            #expect(log.contains("expanded=env-x"), "\(log)")
            #expect(log.contains("host=env path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), "\(log)")
            #expect(log.contains("65532\n65532\n"), "the image user: \(log)")
            #expect(status(done, "c")?["state"]?["terminated"]?["reason"]?.stringValue == "Completed")
            #expect(condition(done, "Ready") == "False")

            // A missing key: CreateContainerConfigError with the kubelet's message.
            let bad = shContainer("c", "true", extra: ["env": json(#"[{"name":"X","valueFrom":{"secretKeyRef":{"name":"env-secret","key":"nope"}}}]"#)])
            try await node.create(testPod("bad-env", containers: [bad]))
            let waiting = try await node.awaitPod("bad-env", "CreateContainerConfigError") {
                status($0, "c")?["state"]?["waiting"]?["reason"]?.stringValue == "CreateContainerConfigError"
            }
            #expect(status(waiting, "c")?["state"]?["waiting"]?["message"]?.stringValue == "couldn't find key nope in Secret default/env-secret")
        }
    }

    @Test func secretVolumeModesAndFsGroup() async throws {
        try await withNode { node in
            try await node.createObject("/api/v1/namespaces/default/secrets", json(#"{"metadata":{"name":"op"},"stringData":{"operator_token":"tok-value"}}"#))
            let read = #"if cat /var/run/secrets/kubetrace/operator_token >/dev/null 2>/tmp/err; then echo readable; stat -L -c '%a %u:%g' /var/run/secrets/kubetrace/operator_token; else cat /tmp/err; exit 13; fi"#
            func pod(_ name: String, mode: Int, fsGroup: Bool) -> JSONValue {
                var sc: [String: JSONValue] = ["runAsNonRoot": .bool(true)]
                if fsGroup { sc["fsGroup"] = .int(65532) }
                let c = shContainer("c", read, extra: [
                    "securityContext": json(#"{"allowPrivilegeEscalation":false,"runAsUser":65532,"runAsGroup":65532,"capabilities":{"drop":["ALL"]}}"#),
                    "volumeMounts": json(#"[{"name":"operator-token","mountPath":"/var/run/secrets/kubetrace","readOnly":true}]"#),
                ])
                return testPod(name, containers: [c], spec: [
                    "restartPolicy": .string("Never"), "securityContext": .object(sc),
                    "volumes": json(#"[{"name":"operator-token","secret":{"secretName":"op","defaultMode":\#(mode),"items":[{"key":"operator_token","path":"operator_token"}]}}]"#),
                ])
            }
            // The manifest's defect: 0400 root-owned, and the container runs as 65532.
            try await node.create(pod("no-fsgroup", mode: 0o400, fsGroup: false))
            let failed = try await node.awaitPod("no-fsgroup", "no-fsgroup pod failed") { $0?["status"]?["phase"]?.stringValue == "Failed" }
            #expect(status(failed, "c")?["state"]?["terminated"]?["exitCode"] == .int(13))
            let log = text(try await node.logs("no-fsgroup"))
            #expect(log.contains("Permission denied"), "\(log)")
            #expect(failed?["status"]?["conditions"]?.arrayValue?.contains { $0["type"] == .string("Ready") && $0["reason"] == .string("PodCompleted") } == true)

            try await node.create(pod("fsgroup", mode: 0o440, fsGroup: true))
            let ok = try await node.awaitPod("fsgroup", "fsgroup pod succeeded") { $0?["status"]?["phase"]?.stringValue == "Succeeded" }
            #expect(text(try await node.logs("fsgroup")) == "readable\n440 0:65532\n")
            _ = ok
        }
    }

    @Test func secretUpdatesReachARunningPodThroughTheDataSwap() async throws {
        try await withNode(volumeSyncDelay: .milliseconds(800)) { node in
            try await node.createObject("/api/v1/namespaces/default/secrets", json(#"{"metadata":{"name":"rot"},"stringData":{"v":"first"}}"#))
            let script = #"last=; while :; do v=$(cat /etc/rot/v); if [ "$v" != "$last" ]; then echo "v=$v"; last=$v; fi; sleep 0.05; done"#
            let c = shContainer("c", script, extra: ["volumeMounts": json(#"[{"name":"rot","mountPath":"/etc/rot"}]"#)])
            let created = try await node.create(testPod("rot", containers: [c], spec: ["volumes": json(#"[{"name":"rot","secret":{"secretName":"rot"}}]"#)]))
            let uid = created["metadata"]?["uid"]?.stringValue ?? ""
            try await node.awaitPod("rot", "rot running") { status($0, "c")?["state"]?["running"] != nil }
            let dir = "\(node.root)/pods/\(uid)/volumes/kubernetes.io~secret/rot"
            let (_, body) = try await node.client.stream(path: "/api/v1/namespaces/default/pods/rot/log", query: [("follow", "true")])
            let store = node.store, client = node.client
            let outcome = try await within(.seconds(20), "the updated value in the container") {
                var lines = LineReader(body)
                let first = try await lines.next()
                let before = try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/..data")
                let updatedAt = ContinuousClock.now
                var secret = try await store.get(.secret, namespace: "default", name: "rot")
                secret = json(String(decoding: secret.jsonBytes(), as: UTF8.self).replacingOccurrences(of: Data("first".utf8).base64EncodedString(), with: Data("second".utf8).base64EncodedString()))
                _ = try await client.request("PUT", path: "/api/v1/namespaces/default/secrets/rot", body: secret.jsonBytes())
                var second: String?
                while let line = try await lines.next() { if line == "v=second" { second = line; break } }
                let elapsed = ContinuousClock.now - updatedAt
                let after = try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/..data")
                return (first, second, elapsed, before, after)
            }
            #expect(outcome.0 == "v=first")
            #expect(outcome.1 == "v=second")
            #expect(outcome.2 >= .milliseconds(800), "written after the sync delay")
            #expect(outcome.3 != outcome.4, "the ..data symlink was swapped")
            body.cancel()
        }
    }

    @Test func kubeAPIAccessVolume() async throws {
        try await withNode { node in
            try await node.createObject("/api/v1/namespaces/default/serviceaccounts", json(#"{"metadata":{"name":"default"}}"#))
            let script = #"d=/var/run/secrets/kubernetes.io/serviceaccount; ls $d; cat $d/namespace; echo; head -1 $d/ca.crt; test -s $d/token && echo token-present"#
            var pod = testPod("sa", containers: [shContainer("c", script)], spec: ["restartPolicy": .string("Never")])
            pod = json(String(decoding: pod.jsonBytes(), as: UTF8.self).replacingOccurrences(of: #""automountServiceAccountToken":false"#, with: #""automountServiceAccountToken":true"#))
            let created = try await node.create(pod)
            let volume = (created["spec"]?["volumes"]?.arrayValue ?? []).first { $0["name"]?.stringValue?.hasPrefix("kube-api-access-") == true }
            #expect(volume != nil, "the ServiceAccount admission added kube-api-access")
            try await node.awaitPod("sa", "sa pod succeeded") { $0?["status"]?["phase"]?.stringValue == "Succeeded" }
            let log = text(try await node.logs("sa"))
            #expect(log.contains("ca.crt\nnamespace\ntoken\n"), "\(log)")
            #expect(log.contains("default\n-----BEGIN CERTIFICATE-----\ntoken-present"), "\(log)")
            let cm = try await node.store.get(.kubeletConfigMap, namespace: "default", name: "kube-root-ca.crt")
            #expect(cm["data"]?["ca.crt"]?.stringValue == node.cluster.certificateAuthority?.certificate.certificatePEM)
        }
    }

    @Test func projectedTokenVerifiesWithTheDevcluster() async throws {
        try await withNode { node in
            try await node.createObject("/api/v1/namespaces/default/serviceaccounts", json(#"{"metadata":{"name":"default"}}"#))
            var pod = testPod("sa2", containers: [shContainer("c", "exec sleep 600")])
            pod = json(String(decoding: pod.jsonBytes(), as: UTF8.self).replacingOccurrences(of: #""automountServiceAccountToken":false"#, with: #""automountServiceAccountToken":true"#))
            let created = try await node.create(pod)
            try await node.awaitPod("sa2", "sa2 running") { status($0, "c")?["state"]?["running"] != nil }
            let uid = created["metadata"]?["uid"]?.stringValue ?? ""
            let volume = (created["spec"]?["volumes"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }.first { $0.hasPrefix("kube-api-access-") } ?? ""
            let dir = "\(node.root)/pods/\(uid)/volumes/kubernetes.io~projected/\(volume)"
            let token = try String(contentsOfFile: dir + "/token", encoding: .utf8)
            let claims = node.cluster.tokens.verify(token, now: Date())
            #expect(claims?.namespace == "default" && claims?.name == "default")
            #expect(claims.map { $0.expiry.timeIntervalSinceNow > 3500 && $0.expiry.timeIntervalSinceNow <= 3607 } == true)
            #expect(try String(contentsOfFile: dir + "/namespace", encoding: .utf8) == "default")
            // The token authenticates against the API server.
            let asPod = try await adminClient(node.cluster, token: token)
            let review = try await asPod.exchange("POST", path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                                  body: json(#"{"spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}"#).jsonBytes())
            #expect(review.status == 201)
        }
    }

    @Test func runAsNonRootWithARootImage() async throws {
        try await withNode { node in
            let created = try await node.create(testPod("rootimg", containers: [shContainer("c", "true", image: "rootsh:1")],
                                                        spec: ["securityContext": json(#"{"runAsNonRoot":true}"#)]))
            let uid = created["metadata"]?["uid"]?.stringValue ?? ""
            let pod = try await node.awaitPod("rootimg", "CreateContainerConfigError") {
                status($0, "c")?["state"]?["waiting"]?["reason"]?.stringValue == "CreateContainerConfigError"
            }
            #expect(status(pod, "c")?["state"]?["waiting"]?["message"]?.stringValue
                    == "container has runAsNonRoot and image will run as root (pod: \"rootimg_default(\(uid))\", container: c)")
            #expect(pod?["status"]?["phase"]?.stringValue == "Pending")
        }
    }

    @Test func readinessProbeDrivesReady() async throws {
        try await withNode { node in
            try await node.createObject("/api/v1/namespaces/default/configmaps", json(#"{"metadata":{"name":"ctl"},"data":{"state":"ready"}}"#))
            let script = #"mkdir -p /tmp/www && cd /tmp/www && touch ready && (/usr/bin/python3.11 -m http.server 8081 --bind 0.0.0.0 >/dev/null 2>&1 &) ; while [ "$(cat /etc/ctl/state)" = ready ]; do sleep 0.1; done; rm ready; echo unready; exec sleep 600"#
            let c = shContainer("c", script, extra: [
                "ports": json(#"[{"name":"health","containerPort":8081}]"#),
                "readinessProbe": json(#"{"httpGet":{"path":"/ready","port":"health"},"periodSeconds":1,"failureThreshold":1}"#),
                "volumeMounts": json(#"[{"name":"ctl","mountPath":"/etc/ctl"}]"#),
            ])
            try await node.create(testPod("ready", containers: [c], spec: ["volumes": json(#"[{"name":"ctl","configMap":{"name":"ctl"}}]"#)]))
            let ready = try await node.awaitPod("ready", "Ready True") { condition($0, "Ready") == "True" }
            #expect(condition(ready, "ContainersReady") == "True")
            #expect(condition(ready, "Initialized") == "True")
            #expect(condition(ready, "PodScheduled") == "True")
            #expect(condition(ready, "PodReadyToStartContainers") == "True")
            #expect(status(ready, "c")?["ready"] == .bool(true))
            #expect(status(ready, "c")?["started"] == .bool(true))
            #expect(ready?["status"]?["phase"]?.stringValue == "Running")
            #expect(ready?["status"]?["hostIP"]?.stringValue == node.kubelet.network.nodeAddress)
            let podIP = ready?["status"]?["podIP"]?.stringValue ?? ""
            #expect(!podIP.isEmpty && ready?["status"]?["podIPs"] == .array([.object(["ip": .string(podIP)])]))
            #expect(ready?["status"]?["startTime"]?.stringValue != nil)
            _ = try await node.client.request("PATCH", path: "/api/v1/namespaces/default/configmaps/ctl", body: Array(#"{"data":{"state":"stop"}}"#.utf8),
                                              contentType: "application/merge-patch+json")
            let unready = try await node.awaitPod("ready", "Ready False") { condition($0, "Ready") == "False" }
            #expect(status(unready, "c")?["ready"] == .bool(false))
            #expect(unready?["status"]?["phase"]?.stringValue == "Running")
        }
    }

    @Test func livenessFailureRestartsTheContainer() async throws {
        try await withNode { node in
            let c = shContainer("c", "echo up; exec sleep 600", extra: [
                "livenessProbe": json(#"{"tcpSocket":{"port":9999},"periodSeconds":1,"failureThreshold":2}"#),
            ])
            try await node.create(testPod("live", containers: [c], spec: ["terminationGracePeriodSeconds": .int(2)]))
            let restarted = try await node.awaitPod("live", timeout: .seconds(30), "restartCount 1") { (status($0, "c")?["restartCount"]?.intValue ?? 0) >= 1 }
            let last = status(restarted, "c")?["lastState"]?["terminated"]
            #expect(last?["exitCode"] == .int(143), "SIGTERM ended sleep: \(String(describing: last))")
            let events = try await node.client.request("GET", path: "/api/v1/namespaces/default/events")
            #expect(text(events).contains("Liveness probe failed: dial tcp"), "an Unhealthy event")
            #expect(text(events).contains("Container c failed liveness probe, will be restarted"))
        }
    }

    @Test func crashLoopBackOffGrows() async throws {
        try await withNode { node in
            let created = try await node.create(testPod("crash", containers: [shContainer("c", "echo one; echo two; echo three; exit 3")]))
            let uid = created["metadata"]?["uid"]?.stringValue ?? ""
            let first = try await node.awaitPod("crash", "CrashLoopBackOff") {
                status($0, "c")?["state"]?["waiting"]?["reason"]?.stringValue == "CrashLoopBackOff"
            }
            let s = status(first, "c")
            #expect(s?["state"]?["waiting"]?["message"]?.stringValue == "back-off 200ms restarting failed container=c pod=crash_default(\(uid))")
            #expect(s?["lastState"]?["terminated"]?["exitCode"] == .int(3))
            #expect(s?["lastState"]?["terminated"]?["reason"]?.stringValue == "Error")
            #expect(first?["status"]?["phase"]?.stringValue == "Running")
            let capped = try await node.awaitPod("crash", timeout: .seconds(30), "back-off capped at 1s") {
                status($0, "c")?["state"]?["waiting"]?["message"]?.stringValue?.hasPrefix("back-off 1s ") == true
            }
            #expect((status(capped, "c")?["restartCount"]?.intValue ?? 0) >= 4)

            // Logs: the last run (the container waits), --previous, tailLines.
            let current = try await node.logs("crash")
            #expect(current.status == 200 && text(current) == "one\ntwo\nthree\n")
            #expect(current.head.headers.first { $0.0.lowercased() == "content-type" }?.1 == "text/plain")
            #expect(text(try await node.logs("crash", [("previous", "true")])) == "one\ntwo\nthree\n")
            #expect(text(try await node.logs("crash", [("tailLines", "1")])) == "three\n")
            let stamped = text(try await node.logs("crash", [("tailLines", "1"), ("timestamps", "true")]))
            #expect(stamped.hasSuffix("Z three\n") && stamped.count == "2026-01-01T00:00:00.000000000Z three\n".count, "\(stamped)")
            #expect(text(try await node.logs("crash", [("limitBytes", "5")])) == "one\nt")
        }
    }

    @Test func imagePullBackOffUntilThePullSecretExists() async throws {
        try await withNode { node in
            try await node.create(testPod("pull", containers: [shContainer("c", "exec sleep 600", image: "private:1")],
                                          spec: ["imagePullSecrets": json(#"[{"name":"regcred"}]"#)]))
            let failed = try await node.awaitPod("pull", "ErrImagePull") { status($0, "c")?["state"]?["waiting"]?["reason"]?.stringValue == "ErrImagePull" }
            #expect(status(failed, "c")?["state"]?["waiting"]?["message"]?.stringValue?.contains("401 Unauthorized") == true)
            let backoff = try await node.awaitPod("pull", "ImagePullBackOff") { status($0, "c")?["state"]?["waiting"]?["reason"]?.stringValue == "ImagePullBackOff" }
            #expect(status(backoff, "c")?["state"]?["waiting"]?["message"]?.stringValue == "Back-off pulling image \"private:1\"")
            try await node.createObject("/api/v1/namespaces/default/secrets", json(#"{"metadata":{"name":"regcred"},"type":"kubernetes.io/dockerconfigjson","stringData":{".dockerconfigjson":"{\"auths\":{}}"}}"#))
            let running = try await node.awaitPod("pull", timeout: .seconds(20), "running after the secret appeared") { status($0, "c")?["state"]?["running"] != nil }
            #expect(status(running, "c")?["imageID"]?.stringValue?.hasPrefix("private@sha256:") == true)
            #expect(status(running, "c")?["containerID"]?.stringValue?.hasPrefix("containerd://") == true)
        }
    }

    @Test func gracefulDeletionSendsSIGTERMThenRemovesThePod() async throws {
        try await withNode { node in
            let script = #"trap 'echo got SIGTERM; exit 0' TERM; echo started; while :; do sleep 0.1; done"#
            let created = try await node.create(testPod("term", containers: [shContainer("c", script)], spec: ["terminationGracePeriodSeconds": .int(20)]))
            let uid = created["metadata"]?["uid"]?.stringValue ?? ""
            try await node.awaitPod("term", "term running") { status($0, "c")?["state"]?["running"] != nil }
            let deletedAt = ContinuousClock.now
            let answer = try await node.client.request("DELETE", path: "/api/v1/namespaces/default/pods/term")
            let marked = try JSONValue.parse(answer.body)
            #expect(answer.status == 200)
            #expect(marked["metadata"]?["deletionTimestamp"] != nil)
            #expect(marked["metadata"]?["deletionGracePeriodSeconds"] == .int(20))
            try await node.awaitPod("term", "pod removed") { $0 == nil }
            #expect(ContinuousClock.now - deletedAt < .seconds(10), "the process ended on SIGTERM, well within the grace period")
            let log = try String(contentsOfFile: "\(node.root)/pods/default_term_\(uid)/c/0.log", encoding: .utf8)
            #expect(log.contains(" stdout F started\n") && log.contains(" stdout F got SIGTERM\n"), "\(log)")
            #expect(!FileManager.default.fileExists(atPath: "\(node.root)/pods/\(uid)"), "volumes cleaned up")
        }
    }

    @Test func logsFollowAndErrors() async throws {
        try await withNode { node in
            let script = #"for i in 1 2 3; do echo line$i; sleep 0.3; done; echo err >&2"#
            try await node.create(testPod("follow", containers: [shContainer("c", script), shContainer("d", "exec sleep 600")],
                                          spec: ["restartPolicy": .string("Never")]))
            try await node.awaitPod("follow", "follow running") { status($0, "c")?["state"]?["running"] != nil }
            let noContainer = try await node.logs("follow")
            #expect(noContainer.status == 400)
            #expect(text(noContainer).contains("a container name must be specified for pod follow, choose one of: [c d]"))
            let noPrevious = try await node.logs("follow", [("container", "c"), ("previous", "true")])
            #expect(noPrevious.status == 400 && text(noPrevious).contains(#"previous terminated container \"c\" in pod \"follow\" not found"#), "\(text(noPrevious))")
            let (_, body) = try await node.client.stream(path: "/api/v1/namespaces/default/pods/follow/log", query: [("container", "c"), ("follow", "true")])
            let all = try await within(.seconds(10), "follow to the end") {
                var out: [UInt8] = []
                for try await chunk in body { out += chunk }
                return String(decoding: out, as: UTF8.self)
            }
            #expect(all == "line1\nline2\nline3\nerr\n")

            // kubectl logs, unchanged.
            let dir = TempDir()
            let env = ["KUBECONFIG": dir.write("kubeconfig", node.cluster.kubeconfigYAML(server: await node.cluster.url()))]
            let kubectl = try await run("kubectl", ["logs", "follow", "-c", "c", "--tail=2"], environment: env)
            #expect(kubectl.status == 0 && kubectl.stdout == "line3\nerr\n", "\(kubectl.stdout) \(kubectl.stderr)")
            // kubectl delete waits until the kubelet has stopped the Pod and removed it.
            let deleted = try await run("kubectl", ["delete", "pod", "follow", "--timeout=20s"], environment: env)
            #expect(deleted.status == 0, "\(deleted.stderr)")
            #expect((try? await node.store.get(.pod, namespace: "default", name: "follow")) == nil)
        }
    }

    @Test func missingSecretVolumeWaitsThenMounts() async throws {
        try await withNode { node in
            let c = shContainer("c", "cat /etc/late/k; echo; exec sleep 600", extra: ["volumeMounts": json(#"[{"name":"late","mountPath":"/etc/late"}]"#)])
            try await node.create(testPod("late", containers: [c], spec: ["volumes": json(#"[{"name":"late","secret":{"secretName":"late"}}]"#)]))
            let waiting = try await node.awaitPod("late", "ContainerCreating") {
                status($0, "c")?["state"]?["waiting"]?["reason"]?.stringValue == "ContainerCreating" && $0?["status"]?["startTime"] != nil
            }
            #expect(waiting?["status"]?["phase"]?.stringValue == "Pending")
            let events = try await within(.seconds(10), "a FailedMount event") {
                while true {
                    let list = text(try await node.client.request("GET", path: "/api/v1/namespaces/default/events"))
                    if list.contains("FailedMount") { return list }
                    await Task.yield()
                }
            }
            #expect(events.contains(#"MountVolume.SetUp failed for volume \"late\" : secret \"late\" not found"#))
            try await node.createObject("/api/v1/namespaces/default/secrets", json(#"{"metadata":{"name":"late"},"stringData":{"k":"here"}}"#))
            try await node.awaitPod("late", "running once the Secret exists") { status($0, "c")?["state"]?["running"] != nil }
        }
    }

    @Test func initContainerFillsAnEmptyDir() async throws {
        try await withNode { node in
            let initC = shContainer("init", "echo from-init > /work/msg")
            var initObj = initC.objectValue!
            initObj["volumeMounts"] = json(#"[{"name":"work","mountPath":"/work"}]"#)
            let main = shContainer("main", "cat /work/msg", extra: ["volumeMounts": json(#"[{"name":"work","mountPath":"/work"}]"#)])
            try await node.create(testPod("init", containers: [main], spec: [
                "restartPolicy": .string("Never"), "initContainers": .array([.object(initObj)]), "volumes": json(#"[{"name":"work","emptyDir":{}}]"#),
            ]))
            let done = try await node.awaitPod("init", "init pod succeeded") { $0?["status"]?["phase"]?.stringValue == "Succeeded" }
            #expect(text(try await node.logs("init", [("container", "main")])) == "from-init\n")
            let initStatus = done?["status"]?["initContainerStatuses"]?.arrayValue?.first
            #expect(initStatus?["state"]?["terminated"]?["reason"]?.stringValue == "Completed")
            #expect(condition(done, "Initialized") == "True")
        }
    }

    @Test func projectedTokensAreRefreshedAtEightyPercent() throws {
        let dir = TempDir()
        let minted = Mutex(0)
        var volumes = PodVolumes(podDirectory: dir.path + "/pod") { _, _, lifetime, now in
            minted.withLock { $0 += 1 }
            return ("token-\(minted.withLock { $0 })", now.addingTimeInterval(TimeInterval(lifetime)))
        }
        let pod = json(#"{"metadata":{"name":"p","namespace":"default","uid":"u"},"spec":{"volumes":[{"name":"t","projected":{"sources":[{"serviceAccountToken":{"path":"token","expirationSeconds":3607}}]}}]}}"#)
        var objects = PodObjects()
        objects.serviceAccountUID = "sa-uid"
        let t0 = Date()
        try volumes.sync(pod: pod, objects: objects, podIP: "10.0.0.2", hostIP: "10.0.0.1", now: t0)
        defer { volumes.tearDown() }
        #expect(volumes.nextRefresh == t0.addingTimeInterval(3607 - 721))
        try volumes.sync(pod: pod, objects: objects, podIP: "10.0.0.2", hostIP: "10.0.0.1", now: t0.addingTimeInterval(2800))
        #expect(minted.withLock { $0 } == 1)
        try volumes.sync(pod: pod, objects: objects, podIP: "10.0.0.2", hostIP: "10.0.0.1", now: t0.addingTimeInterval(2890))
        #expect(minted.withLock { $0 } == 2)
        let token = try String(contentsOfFile: dir.path + "/pod/volumes/kubernetes.io~projected/t/token", encoding: .utf8)
        #expect(token == "token-2")
    }

    @Test func stoppingTheKubeletStopsItsPodsAndKeepsThem() async throws {
        try await DevCluster.withRunning { cluster in
            let network = try NodeNetwork.setUp()
            defer { network.tearDown() }
            let dir = TempDir()
            var options = NodeOptions()
            options.directory = dir.path + "/kubelet"
            let kubelet = Kubelet(store: cluster.store, tokens: cluster.tokens, options: options, network: network, apiServerHost: "127.0.0.1",
                                  apiServerPort: await cluster.port(), caPEM: nil, puller: TestPuller(images: testImages), logger: DevCluster.quietLogger)
            let running = Task { await kubelet.run() }
            let script = #"trap 'echo got SIGTERM; exit 0' TERM; echo started; while :; do sleep 0.1; done"#
            let created = try await cluster.store.create(.pod, namespace: "default", body: testPod("stay", containers: [shContainer("c", script)]))
            let uid = created["metadata"]?["uid"]?.stringValue ?? ""
            let changes = cluster.changes()
            let store = cluster.store
            try await within(.seconds(20), "stay running") {
                if status(try? await store.get(.pod, namespace: "default", name: "stay"), "c")?["state"]?["running"] != nil { return }
                for await c in changes where c.resource == "pods" && status(c.object, "c")?["state"]?["running"] != nil { return }
            }
            running.cancel()
            await running.value
            let log = try String(contentsOfFile: "\(kubelet.root)/pods/default_stay_\(uid)/c/0.log", encoding: .utf8)
            #expect(log.contains(" stdout F got SIGTERM\n"), "\(log)")
            #expect((try? await cluster.store.get(.pod, namespace: "default", name: "stay")) != nil, "the Pod stays in the store")
            #expect(!FileManager.default.fileExists(atPath: "\(kubelet.root)/pods/\(uid)"), "volumes cleaned up")
        }
    }

    @Test func anImageChangeKillsAndRestartsTheContainer() async throws {
        try await withNode { node in
            let script = #"trap 'exit 0' TERM; echo "uid=$(id -u)"; while :; do sleep 0.1; done"#
            // restartPolicy Never: a changed definition restarts the container all the same.
            try await node.create(testPod("img", containers: [shContainer("c", script)], spec: ["restartPolicy": .string("Never")]))
            try await node.awaitPod("img", "img running") { status($0, "c")?["state"]?["running"] != nil }
            let current = try await node.client.request("GET", path: "/api/v1/namespaces/default/pods/img")
            let changed = text(current).replacingOccurrences(of: #""image":"sh:1""#, with: #""image":"rootsh:1""#)
            #expect(changed != text(current))
            let put = try await node.client.exchange("PUT", path: "/api/v1/namespaces/default/pods/img", body: Array(changed.utf8))
            #expect(put.status == 200, "\(text(put))")
            let restarted = try await node.awaitPod("img", "restarted with the new image") {
                status($0, "c")?["restartCount"] == .int(1) && status($0, "c")?["state"]?["running"] != nil
            }
            #expect(status(restarted, "c")?["image"]?.stringValue == "rootsh:1")
            #expect(status(restarted, "c")?["lastState"]?["terminated"]?["exitCode"] == .int(0), "SIGTERM first: the trap ran")
            #expect(restarted?["status"]?["phase"]?.stringValue == "Running")
            #expect(text(try await node.logs("img", [("previous", "true")])) == "uid=65532\n")
            let log = try await within(.seconds(10), "the new container's first line") {
                while true {
                    let t = text(try await node.logs("img"))
                    if !t.isEmpty { return t }
                    await Task.yield()
                }
            }
            #expect(log == "uid=0\n", "the new image's user")
            let events = text(try await node.client.request("GET", path: "/api/v1/namespaces/default/events"))
            #expect(events.contains("Container c definition changed, will be restarted"), "a Killing event")
            #expect(events.contains(#"Pulling image \"rootsh:1\""#))
        }
    }

    @Test func aShorterGracePeriodWhileTerminatingKillsSooner() async throws {
        try await withNode { node in
            let script = #"trap 'echo ignoring SIGTERM' TERM; echo started; while :; do sleep 0.1; done"#
            try await node.create(testPod("slow", containers: [shContainer("c", script)], spec: ["terminationGracePeriodSeconds": .int(60)]))
            try await node.awaitPod("slow", "slow running") { status($0, "c")?["state"]?["running"] != nil }
            let (_, body) = try await node.client.stream(path: "/api/v1/namespaces/default/pods/slow/log", query: [("follow", "true")])
            let store = node.store
            // Terminating with 60 s; the container ignores SIGTERM.
            _ = try await store.delete(.pod, namespace: "default", name: "slow", preconditionUID: nil, preconditionRV: nil)
            try await within(.seconds(20), "SIGTERM in the container") {
                var lines = LineReader(body)
                while let line = try await lines.next() { if line == "ignoring SIGTERM" { return } }
                throw TimedOut(what: "the log ended")
            }
            body.cancel()
            // Shortened to 3 s: the kubelet kills it then, not after 60 s.
            let shortenedAt = ContinuousClock.now
            _ = try await store.delete(.pod, namespace: "default", name: "slow", preconditionUID: nil, preconditionRV: nil, gracePeriodSeconds: 3)
            try await node.awaitPod("slow", timeout: .seconds(30), "pod removed") { $0 == nil }
            let elapsed = ContinuousClock.now - shortenedAt
            #expect(elapsed >= .seconds(2), "SIGKILL came after the shortened grace period, not at once: \(elapsed)")
            #expect(elapsed < .seconds(12), "SIGKILL came after \(elapsed)")
        }
    }

    @Test func subPathsStayInsideTheirVolume() async throws {
        try await withNode { node in
            let outside = TempDir()
            func pod(_ name: String, subPath: String, expr: Bool = false) -> JSONValue {
                let key = expr ? "subPathExpr" : "subPath"
                let initC = shContainer("init", "ln -s \(outside.path) /work/link", image: "rootsh:1",
                                        extra: ["volumeMounts": json(#"[{"name":"work","mountPath":"/work"}]"#)])
                var mount: [String: JSONValue] = ["name": .string("work"), "mountPath": .string("/data")]
                mount[key] = .string(subPath)
                let main = shContainer("main", "echo hi > /data/f && cat /data/f", image: "rootsh:1",
                                       extra: ["volumeMounts": .array([.object(mount)]), "env": json(#"[{"name":"DIR","value":"a"}]"#)])
                return testPod(name, containers: [main], spec: [
                    "restartPolicy": .string("Never"), "initContainers": .array([initC]), "volumes": json(#"[{"name":"work","emptyDir":{}}]"#),
                ])
            }
            func configError(_ name: String) async throws -> String? {
                let p = try await node.awaitPod(name, "\(name): CreateContainerConfigError") {
                    status($0, "main")?["state"]?["waiting"]?["reason"]?.stringValue == "CreateContainerConfigError"
                }
                return status(p, "main")?["state"]?["waiting"]?["message"]?.stringValue
            }
            try await node.create(pod("abs", subPath: outside.path + "/abs"))
            #expect(try await configError("abs") == "error SubPath `\(outside.path)/abs` must not be an absolute path")
            try await node.create(pod("dots", subPath: "x/../../../dots"))
            #expect(try await configError("dots") == "unable to provision SubPath `x/../../../dots`: must not contain '..'")
            try await node.create(pod("link-dir", subPath: "link/made"))
            #expect(try await configError("link-dir") == #"failed to create subPath directory for volumeMount "work" of container "main""#)
            try await node.create(pod("link", subPath: "link"))
            #expect(try await configError("link") == #"failed to prepare subPath for volumeMount "work" of container "main""#)
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty, "nothing was created outside the volume")

            // Inside the volume: created, and subPathExpr expands the container's variables.
            try await node.create(pod("ok", subPath: "$(DIR)/b", expr: true))
            try await node.awaitPod("ok", "ok succeeded") { $0?["status"]?["phase"]?.stringValue == "Succeeded" }
            #expect(text(try await node.logs("ok", [("container", "main")])) == "hi\n")
        }
    }

    @Test func mountsAndPodDirectoriesOfACrashedRunAreRemovedAtStart() async throws {
        try await DevCluster.withRunning { cluster in
            let network = try NodeNetwork.setUp()
            defer { network.tearDown() }
            let dir = TempDir()
            defer { VolumeMounts.unmountAll(under: dir.path) }
            var options = NodeOptions()
            options.directory = dir.path + "/kubelet"
            let root = dir.path + "/kubelet"
            // What a SIGKILLed devcluster leaves: a secret volume's tmpfs holding a token, and logs.
            let secret = root + "/pods/stale-uid/volumes/kubernetes.io~secret/token"
            try VolumeMounts.mountTmpfs(at: secret)
            #expect(FileManager.default.createFile(atPath: secret + "/token", contents: Data("stale-token".utf8)))
            let oldLogs = root + "/pods/default_old_stale-uid/c"
            try FileManager.default.createDirectory(atPath: oldLogs, withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: oldLogs + "/0.log", contents: Data()))
            let real = VolumeMounts.realpath(root)
            func mounted() -> [String] { VolumeMounts.mounts().map(\.target).filter { $0.hasPrefix(real + "/") } }
            #expect(mounted().count == 1)

            let kubelet = Kubelet(store: cluster.store, tokens: cluster.tokens, options: options, network: network, apiServerHost: "127.0.0.1",
                                  apiServerPort: await cluster.port(), caPEM: nil, puller: TestPuller(images: testImages), logger: DevCluster.quietLogger)
            let running = Task { await kubelet.run() }
            // A Pod created now runs: the kubelet is past its start.
            let created = try await cluster.store.create(.pod, namespace: "default", body: testPod("fresh", containers: [shContainer("c", "exec sleep 600")]))
            let uid = created["metadata"]?["uid"]?.stringValue ?? ""
            let changes = cluster.changes()
            let store = cluster.store
            try await within(.seconds(20), "fresh running") {
                if status(try? await store.get(.pod, namespace: "default", name: "fresh"), "c")?["state"]?["running"] != nil { return }
                for await c in changes where c.resource == "pods" && status(c.object, "c")?["state"]?["running"] != nil { return }
            }
            let leftOver = mounted()
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: root + "/pods")) ?? []
            running.cancel()
            await running.value
            #expect(leftOver.isEmpty, "stale mounts: \(leftOver)")
            #expect(!entries.contains("stale-uid") && !entries.contains("default_old_stale-uid"), "\(entries)")
            #expect(entries.contains("default_fresh_\(uid)"), "the new Pod's logs: \(entries)")
        }
    }

    /// deploy/base.yaml's Pod template, with a stand-in for the operator that reads its token file
    /// and serves /healthz and /readyz on the `health` port.
    static func operatorPod(_ name: String, fsGroup: Bool) -> JSONValue {
        let program = """
        import http.server, os, sys
        try:
            open(os.environ["OPERATOR_TOKEN_FILE"]).read()
        except OSError as e:
            print(f"cannot read the operator token: {e}", file=sys.stderr)
            sys.exit(1)
        print("namespace", os.environ["POD_NAMESPACE"], "args", sys.argv[1:], flush=True)
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path in ("/healthz", "/readyz") else 404)
                self.end_headers()
            def log_message(self, *a):
                pass
        http.server.HTTPServer(("0.0.0.0", 8081), H).serve_forever()
        """
        var podSC = #"{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}}"#
        if fsGroup { podSC = #"{"runAsNonRoot":true,"fsGroup":65532,"seccompProfile":{"type":"RuntimeDefault"}}"# }
        let spec = """
        {"nodeName":"\(NodeOptions().name)","serviceAccountName":"kubetrace-operator","automountServiceAccountToken":true,
         "imagePullSecrets":[{"name":"kubetrace-registry"}],"securityContext":\(podSC),"terminationGracePeriodSeconds":30,
         "containers":[{"name":"operator","image":"blr.vultrcr.com/kubetrace/kubetrace-operator:0.1.0","imagePullPolicy":"Always",
           "command":["/usr/bin/python3.11","-c",\(String(decoding: JSONValue.string(program).jsonBytes(), as: UTF8.self))],"args":["run"],
           "env":[{"name":"API_URL","value":"https://gateway.kubetrace.net"},{"name":"POD_NAMESPACE","valueFrom":{"fieldRef":{"fieldPath":"metadata.namespace"}}},
                  {"name":"OPERATOR_TOKEN_FILE","value":"/var/run/secrets/kubetrace/operator_token"},{"name":"HEALTH_ADDR","value":"0.0.0.0:8081"}],
           "ports":[{"name":"health","containerPort":8081,"protocol":"TCP"},{"name":"metrics","containerPort":8080,"protocol":"TCP"}],
           "livenessProbe":{"httpGet":{"path":"/healthz","port":"health"},"initialDelaySeconds":10,"periodSeconds":10,"timeoutSeconds":2,"failureThreshold":3},
           "readinessProbe":{"httpGet":{"path":"/readyz","port":"health"},"initialDelaySeconds":5,"periodSeconds":10,"timeoutSeconds":2,"failureThreshold":3},
           "securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"runAsNonRoot":true,"runAsUser":65532,"runAsGroup":65532,
                              "capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}},
           "volumeMounts":[{"name":"operator-token","mountPath":"/var/run/secrets/kubetrace","readOnly":true}]}],
         "volumes":[{"name":"operator-token","secret":{"secretName":"kubetrace-operator","defaultMode":256,"items":[{"key":"operator_token","path":"operator_token"}]}}]}
        """
        return .object(["apiVersion": .string("v1"), "kind": .string("Pod"),
                        "metadata": .object(["name": .string(name), "namespace": .string("kubetrace-system"), "labels": .object(["app.kubernetes.io/name": .string("kubetrace-operator")])]),
                        "spec": json(spec)])
    }

    @Test func theOperatorManifestOnTheNode() async throws {
        try await withNode { node in
            try await node.createObject("/api/v1/namespaces", json(#"{"metadata":{"name":"kubetrace-system"}}"#))
            try await node.createObject("/api/v1/namespaces/kubetrace-system/serviceaccounts", json(#"{"metadata":{"name":"kubetrace-operator"}}"#))
            try await node.createObject("/api/v1/namespaces/kubetrace-system/secrets", json(#"{"metadata":{"name":"kubetrace-operator"},"stringData":{"operator_token":"kt_op_test"}}"#))
            try await node.createObject("/api/v1/namespaces/kubetrace-system/secrets", json(#"{"metadata":{"name":"kubetrace-registry"},"type":"kubernetes.io/dockerconfigjson","stringData":{".dockerconfigjson":"{\"auths\":{}}"}}"#))
            let store = node.store, changes = node.cluster.changes()
            func awaitOperator(_ name: String, _ what: String, _ predicate: @escaping @Sendable (JSONValue) -> Bool) async throws -> JSONValue {
                try await within(.seconds(30), what) {
                    if let p = try? await store.get(.pod, namespace: "kubetrace-system", name: name), predicate(p) { return p }
                    for await c in changes where c.resource == "pods" && c.name == name && predicate(c.object) { return c.object }
                    throw TimedOut(what: what)
                }
            }
            // As shipped: the 0400 root-owned token file is unreadable for uid 65532.
            _ = try await node.client.request("POST", path: "/api/v1/namespaces/kubetrace-system/pods", body: Self.operatorPod("as-shipped", fsGroup: false).jsonBytes())
            let crashing = try await awaitOperator("as-shipped", "CrashLoopBackOff") { status($0, "operator")?["state"]?["waiting"]?["reason"]?.stringValue == "CrashLoopBackOff" }
            #expect(status(crashing, "operator")?["lastState"]?["terminated"]?["exitCode"] == .int(1))
            let log = text(try await node.client.exchange("GET", path: "/api/v1/namespaces/kubetrace-system/pods/as-shipped/log", query: [("previous", "true")]))
            #expect(log.contains("cannot read the operator token: [Errno 13] Permission denied"), "\(log)")

            // With fsGroup 65532 the file is 0440 root:65532: the operator starts and turns Ready.
            _ = try await node.client.request("POST", path: "/api/v1/namespaces/kubetrace-system/pods", body: Self.operatorPod("fixed", fsGroup: true).jsonBytes())
            let ready = try await awaitOperator("fixed", "Ready") { condition($0, "Ready") == "True" }
            #expect(status(ready, "operator")?["restartCount"] == .int(0))
            let started = text(try await node.client.exchange("GET", path: "/api/v1/namespaces/kubetrace-system/pods/fixed/log"))
            #expect(started == "namespace kubetrace-system args ['run']\n", "\(started)")
        }
    }
}

/// The lines of a streamed body.
struct LineReader: @unchecked Sendable {
    var iterator: HTTPBody.AsyncIterator
    var buffer: [UInt8] = []
    init(_ body: HTTPBody) { iterator = body.makeAsyncIterator() }
    mutating func next() async throws -> String? {
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            guard let chunk = try await iterator.next() else { return nil }
            buffer += chunk
        }
    }
}
