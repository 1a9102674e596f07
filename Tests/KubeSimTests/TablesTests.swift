import KubetraceTestKit
import Foundation
import KubeClient
@testable import KubeSim
import Testing

/// Server-side printing: the cell functions on their own, then real `kubectl get` against a
/// devcluster whose Pods, Deployment, ReplicaSet and Node carry the status a kubelet and the
/// controllers would write (through `…/status`).
@Suite(.timeLimit(.minutes(2))) struct TablesTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func pod(_ json: String) throws -> JSONValue { try JSONValue.parse(Array(json.utf8)) }

    static func ago(_ seconds: TimeInterval) -> String { RFC3339.format(now.addingTimeInterval(-seconds)) }

    // MARK: cell functions

    @Test func humanDurationMatchesApimachinery() {
        let cases: [(TimeInterval, String)] = [
            (-5, "<invalid>"), (-1.5, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (125, "2m5s"), (599, "9m59s"), (600, "10m"),
            (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 30 * 60, "3h30m"), (8 * 3600 + 59 * 60, "8h"), (47 * 3600, "47h"),
            (50 * 3600, "2d2h"), (72 * 3600, "3d"), (9 * 86400, "9d"), (729 * 86400, "729d"), (800 * 86400, "2y70d"), (3650 * 86400, "10y"),
        ]
        for (seconds, expected) in cases { #expect(Tables.age(seconds) == expected, "\(seconds)") }
        #expect(Tables.since(nil, now: Self.now) == "<unknown>")
    }

    @Test func runningReadyPod() throws {
        let p = try Self.pod(#"{"metadata":{"name":"a"},"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"app","ready":true,"restartCount":0,"state":{"running":{}}}]}}"#)
        #expect(Tables.podSummary(p, now: Self.now) == .init(ready: "1/1", status: "Running", restarts: "0"))
    }

    @Test func waitingReasonOverridesThePhase() throws {
        let p = try Self.pod(#"{"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Pending","containerStatuses":[{"name":"app","ready":false,"restartCount":0,"state":{"waiting":{"reason":"ImagePullBackOff"}}}]}}"#)
        #expect(Tables.podSummary(p, now: Self.now) == .init(ready: "0/1", status: "ImagePullBackOff", restarts: "0"))
        let creating = try Self.pod(#"{"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Pending","containerStatuses":[{"name":"app","state":{"waiting":{"reason":"ContainerCreating"}}}]}}"#)
        #expect(Tables.podSummary(creating, now: Self.now).status == "ContainerCreating")
    }

    @Test func crashLoopCountsRestartsWithTheAgeOfTheLast() throws {
        let p = try Self.pod(#"{"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Running","containerStatuses":[{"name":"app","ready":false,"restartCount":3,"state":{"waiting":{"reason":"CrashLoopBackOff"}},"lastState":{"terminated":{"exitCode":1,"reason":"Error","finishedAt":"\#(Self.ago(150))"}}}]}}"#)
        // printers.go writes the last restart with HumanDuration (`translateTimestampSince`).
        #expect(Tables.podSummary(p, now: Self.now) == .init(ready: "0/1", status: "CrashLoopBackOff", restarts: "3 (2m30s ago)"))
    }

    @Test func terminatedWithoutReasonShowsSignalOrExitCode() throws {
        let exit = try Self.pod(#"{"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Failed","containerStatuses":[{"name":"app","state":{"terminated":{"exitCode":137}}}]}}"#)
        #expect(Tables.podSummary(exit, now: Self.now).status == "ExitCode:137")
        let signal = try Self.pod(#"{"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Failed","containerStatuses":[{"name":"app","state":{"terminated":{"exitCode":0,"signal":9}}}]}}"#)
        #expect(Tables.podSummary(signal, now: Self.now).status == "Signal:9")
        let completed = try Self.pod(#"{"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Succeeded","containerStatuses":[{"name":"app","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]}}"#)
        #expect(Tables.podSummary(completed, now: Self.now) == .init(ready: "0/1", status: "Completed", restarts: "0"))
    }

    @Test func completedTurnsBackIntoRunningWhileAContainerRuns() throws {
        func pod(ready: Bool) throws -> JSONValue {
            try Self.pod(#"{"spec":{"containers":[{"name":"a"},{"name":"b"}]},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"\#(ready ? "True" : "False")"}],"containerStatuses":[{"name":"a","ready":true,"state":{"running":{}}},{"name":"b","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]}}"#)
        }
        #expect(Tables.podSummary(try pod(ready: true), now: Self.now) == .init(ready: "1/2", status: "Running", restarts: "0"))
        #expect(Tables.podSummary(try pod(ready: false), now: Self.now).status == "NotReady")
    }

    @Test func initContainersComeFirst() throws {
        let spec = #""spec":{"initContainers":[{"name":"i1"},{"name":"i2"}],"containers":[{"name":"app"}]}"#
        let running = try Self.pod(#"{\#(spec),"status":{"phase":"Pending","initContainerStatuses":[{"name":"i1","state":{"terminated":{"exitCode":0}}},{"name":"i2","state":{"running":{}}}],"containerStatuses":[{"name":"app","state":{"waiting":{"reason":"PodInitializing"}}}]}}"#)
        #expect(Tables.podSummary(running, now: Self.now) == .init(ready: "0/1", status: "Init:1/2", restarts: "0"))
        let pulling = try Self.pod(#"{\#(spec),"status":{"phase":"Pending","initContainerStatuses":[{"name":"i1","state":{"waiting":{"reason":"ErrImagePull"}}}]}}"#)
        #expect(Tables.podSummary(pulling, now: Self.now).status == "Init:ErrImagePull")
        let failed = try Self.pod(#"{\#(spec),"status":{"phase":"Pending","initContainerStatuses":[{"name":"i1","restartCount":2,"state":{"terminated":{"exitCode":1,"reason":"Error"}},"lastState":{"terminated":{"exitCode":1,"finishedAt":"\#(Self.ago(5))"}}}]}}"#)
        #expect(Tables.podSummary(failed, now: Self.now) == .init(ready: "0/1", status: "Init:Error", restarts: "2 (5s ago)"))
        let noReason = try Self.pod(#"{\#(spec),"status":{"phase":"Pending","initContainerStatuses":[{"name":"i1","state":{"terminated":{"exitCode":3}}}]}}"#)
        #expect(Tables.podSummary(noReason, now: Self.now).status == "Init:ExitCode:3")
        let initializing = try Self.pod(#"{\#(spec),"status":{"phase":"Pending","initContainerStatuses":[{"name":"i1","state":{"waiting":{"reason":"PodInitializing"}}}]}}"#)
        #expect(Tables.podSummary(initializing, now: Self.now).status == "Init:0/2")
    }

    @Test func sidecarsCountInReadyAndRestarts() throws {
        let p = try Self.pod(#"{"spec":{"initContainers":[{"name":"proxy","restartPolicy":"Always"}],"containers":[{"name":"app"}]},"status":{"phase":"Running","conditions":[{"type":"Initialized","status":"True"},{"type":"Ready","status":"True"}],"initContainerStatuses":[{"name":"proxy","started":true,"ready":true,"restartCount":1,"state":{"running":{}},"lastState":{"terminated":{"exitCode":1,"finishedAt":"\#(Self.ago(30))"}}}],"containerStatuses":[{"name":"app","ready":true,"state":{"running":{}}}]}}"#)
        #expect(Tables.podSummary(p, now: Self.now) == .init(ready: "2/2", status: "Running", restarts: "1 (30s ago)"))
    }

    @Test func deletionWinsUnlessThePodFinished() throws {
        let running = try Self.pod(#"{"metadata":{"deletionTimestamp":"\#(Self.ago(1))"},"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Running","containerStatuses":[{"name":"app","ready":true,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}"#)
        #expect(Tables.podSummary(running, now: Self.now).status == "Terminating")
        let succeeded = try Self.pod(#"{"metadata":{"deletionTimestamp":"\#(Self.ago(1))"},"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Succeeded","containerStatuses":[{"name":"app","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]}}"#)
        #expect(Tables.podSummary(succeeded, now: Self.now).status == "Completed")
        let lost = try Self.pod(#"{"metadata":{"deletionTimestamp":"\#(Self.ago(1))"},"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Running","reason":"NodeLost"}}"#)
        #expect(Tables.podSummary(lost, now: Self.now).status == "Unknown")
        let gated = try Self.pod(#"{"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"SchedulingGated"}]}}"#)
        #expect(Tables.podSummary(gated, now: Self.now) == .init(ready: "0/1", status: "SchedulingGated", restarts: "0"))
        let evicted = try Self.pod(#"{"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Failed","reason":"Evicted"}}"#)
        #expect(Tables.podSummary(evicted, now: Self.now).status == "Evicted")
    }

    @Test func selectorsNodesAndTableShape() throws {
        let selector = try Self.pod(#"{"matchLabels":{"b":"2","a":"1"},"matchExpressions":[{"key":"env","operator":"In","values":["prod","dev"]},{"key":"canary","operator":"DoesNotExist"}]}"#)
        #expect(Tables.selectorString(selector) == "a=1,b=2,!canary,env in (dev,prod)")
        let node = try Self.pod(#"{"metadata":{"name":"n","labels":{"node-role.kubernetes.io/worker":"","node-role.kubernetes.io/control-plane":"","kubernetes.io/role":"edge"}},"spec":{"unschedulable":true},"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#)
        #expect(Tables.nodeStatus(node) == "NotReady,SchedulingDisabled")
        #expect(Tables.nodeRoles(node) == "control-plane,edge,worker")
        #expect(Tables.nodeStatus(try Self.pod(#"{"metadata":{"name":"n"}}"#)) == "Unknown")

        let finished = try Self.pod(#"{"metadata":{"name":"done","namespace":"default","resourceVersion":"7","managedFields":[{}]},"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Succeeded"}}"#)
        let table = try #require(Tables.object(.pod, finished.jsonBytes(), includeObject: nil, now: Self.now))
        #expect(table["kind"] == .string("Table") && table["apiVersion"] == .string("meta.k8s.io/v1"))
        #expect(table["metadata"]?["resourceVersion"] == .string("7"))
        let columns = table["columnDefinitions"]?.arrayValue ?? []
        #expect(columns.map { $0["name"]?.stringValue ?? "" } == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"])
        #expect(columns.map { $0["priority"]?.intValue ?? -1 } == [0, 0, 0, 0, 0, 1, 1, 1, 1])
        let row = try #require(table["rows"]?.arrayValue?.first)
        #expect(row["object"]?["kind"] == .string("PartialObjectMetadata"))
        #expect(row["object"]?["metadata"]?["name"] == .string("done"))
        #expect(row["object"]?["metadata"]?["managedFields"] == nil)
        #expect(row["conditions"]?.arrayValue?.first?["reason"] == .string("Succeeded"))
        let none = try #require(Tables.object(.pod, finished.jsonBytes(), includeObject: "None", now: Self.now))
        #expect(none["rows"]?.arrayValue?.first?["object"] == nil)
        #expect(Tables.object(.secret, finished.jsonBytes(), includeObject: nil, now: Self.now) == nil)
    }

    // MARK: real kubectl

    private struct Kubectl: Sendable {
        let env: [String: String]
        func callAsFunction(_ args: String..., stdin: String? = nil) async throws -> ProcessResult {
            try await run("kubectl", Array(args), environment: env, stdin: stdin)
        }

        /// Runs `kubectl`, expects success and answers the output's lines split into cells
        /// (kubectl pads columns with at least three spaces; a cell has at most one in a row).
        func table(_ args: String...) async throws -> [[String]] {
            let result = try await run("kubectl", Array(args), environment: env)
            #expect(result.status == 0, "\(args): \(result.stderr)")
            return result.stdout.split(separator: "\n").map { line in
                line.split(separator: try! Regex("\\s{2,}")).map(String.init)
            }
        }

        /// Status through `…/status`, as the kubelet or a controller writes it.
        func status(_ resource: String, _ status: String) async throws {
            let result = try await run("kubectl", ["patch", resource, "--subresource=status", "--type=merge", "-p", #"{"status":\#(status)}"#], environment: env)
            #expect(result.status == 0, "\(resource): \(result.stderr)")
        }
    }

    private static func withKubectl(_ body: @Sendable (Kubectl) async throws -> Void) async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            try await body(Kubectl(env: ["KUBECONFIG": dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))]))
        }
    }

    static let node = "tables-node"

    private static func podYAML(_ name: String, extra: String = "") -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata:
          name: \(name)
        \(extra)spec:
          nodeName: \(node)
          containers:
          - name: app
            image: example.com/web:v1

        """
    }

    private static func containerStatus(ready: Bool, restarts: Int = 0, state: String, lastState: String = "{}") -> String {
        #"[{"name":"app","image":"example.com/web:v1","imageID":"","ready":\#(ready),"started":\#(ready),"restartCount":\#(restarts),"state":\#(state),"lastState":\#(lastState)}]"#
    }

    private static func runningStatus(ip: String) -> String {
        let now = RFC3339.format(Date())
        return #"{"phase":"Running","podIP":"\#(ip)","podIPs":[{"ip":"\#(ip)"}],"hostIP":"10.0.0.5","conditions":[{"type":"Initialized","status":"True"},{"type":"Ready","status":"True"},{"type":"ContainersReady","status":"True"},{"type":"PodScheduled","status":"True"}],"containerStatuses":\#(containerStatus(ready: true, state: #"{"running":{"startedAt":"\#(now)"}}"#))}"#
    }

    /// Pods as the kubelet reports them: Running and Ready, stuck pulling, crash-looping
    /// after three restarts, and being deleted.
    private static func createPods(_ kubectl: Kubectl) async throws {
        let manifests = [podYAML("web-1"), podYAML("pull-1"), podYAML("crash-1"), podYAML("term-1", extra: "  finalizers: [example.com/hold]\n")]
        #expect(try await kubectl("create", "-f", "-", stdin: manifests.joined(separator: "---\n")).status == 0)
        try await kubectl.status("pod/web-1", runningStatus(ip: "10.244.0.7"))
        try await kubectl.status("pod/term-1", runningStatus(ip: "10.244.0.9"))
        try await kubectl.status("pod/pull-1", #"{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"True"}],"containerStatuses":\#(containerStatus(ready: false, state: #"{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image"}}"#))}"#)
        let finished = RFC3339.format(Date().addingTimeInterval(-30))
        let crash = containerStatus(ready: false, restarts: 3, state: #"{"waiting":{"reason":"CrashLoopBackOff"}}"#,
                                    lastState: #"{"terminated":{"exitCode":1,"reason":"Error","startedAt":"\#(finished)","finishedAt":"\#(finished)"}}"#)
        try await kubectl.status("pod/crash-1", #"{"phase":"Running","podIP":"10.244.0.8","podIPs":[{"ip":"10.244.0.8"}],"conditions":[{"type":"Ready","status":"False"}],"containerStatuses":\#(crash)}"#)
        #expect(try await kubectl("delete", "pod", "term-1", "--wait=false").status == 0)
    }

    static let age = "^[0-9]+s$"

    @Test func kubectlGetPodsPrintsTheServersColumns() async throws {
        try await Self.withKubectl { kubectl in
            try await Self.createPods(kubectl)
            let plain = try await kubectl("get", "pods")
            #expect(plain.status == 0, "\(plain.stderr)")
            let lines = plain.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "NAME      READY   STATUS             RESTARTS      AGE", "\(plain.stdout)")
            #expect(lines.dropFirst().contains { $0.wholeMatch(of: try! Regex(#"web-1     1/1     Running            0             [0-9]+s"#)) != nil }, "\(plain.stdout)")
            #expect(lines.dropFirst().contains { $0.wholeMatch(of: try! Regex(#"crash-1   0/1     CrashLoopBackOff   3 \([3-9][0-9]s ago\)   [0-9]+s"#)) != nil }, "\(plain.stdout)")

            let rows = try await kubectl.table("get", "pods")
            Self.expectRows(rows, header: ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], [
                ["crash-1", "0/1", "CrashLoopBackOff", #"^3 \([0-9]+s ago\)$"#, Self.age],
                ["pull-1", "0/1", "ImagePullBackOff", "0", Self.age],
                ["term-1", "1/1", "Terminating", "0", Self.age],
                ["web-1", "1/1", "Running", "0", Self.age],
            ])
            let wide = try await kubectl.table("get", "pods", "-o", "wide")
            Self.expectRows(wide, header: ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"], [
                ["crash-1", "0/1", "CrashLoopBackOff", #"^3 \([0-9]+s ago\)$"#, Self.age, "10.244.0.8", Self.node, "<none>", "<none>"],
                ["pull-1", "0/1", "ImagePullBackOff", "0", Self.age, "<none>", Self.node, "<none>", "<none>"],
                ["term-1", "1/1", "Terminating", "0", Self.age, "10.244.0.9", Self.node, "<none>", "<none>"],
                ["web-1", "1/1", "Running", "0", Self.age, "10.244.0.7", Self.node, "<none>", "<none>"],
            ])
            // A GET of one object is printed too.
            let one = try await kubectl.table("get", "pod", "web-1")
            Self.expectRows(one, header: ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], [["web-1", "1/1", "Running", "0", Self.age]])
            // kubectl reads NAMESPACE and labels from each row's PartialObjectMetadata, and
            // sorts rows by a field of the whole object (`includeObject=Object`).
            let all = try await kubectl.table("get", "pods", "-A", "--show-labels", "--sort-by=.status.podIP")
            #expect(all.first == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"], "\(all)")
            #expect(all.dropFirst().map { [$0[0], $0[1], $0.last ?? ""] } == [
                ["default", "pull-1", "<none>"], ["default", "web-1", "<none>"], ["default", "crash-1", "<none>"], ["default", "term-1", "<none>"],
            ], "\(all)")
            // Asking for the object itself still answers it.
            let json = try await kubectl("get", "pod", "web-1", "-o", "jsonpath={.status.podIP}")
            #expect(json.stdout == "10.244.0.7")
        }
    }

    @Test func kubectlGetWorkloadsAndNodes() async throws {
        try await Self.withKubectl { kubectl in
            let deployment = """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
            spec:
              replicas: 3
              selector:
                matchLabels:
                  app: web
              template:
                metadata:
                  labels:
                    app: web
                spec:
                  containers:
                  - name: app
                    image: example.com/web:v1
                  - name: proxy
                    image: example.com/proxy:v2
            ---
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata:
              name: web-7c5d8b9f4d
            spec:
              replicas: 3
              selector:
                matchLabels:
                  app: web
                  pod-template-hash: 7c5d8b9f4d
              template:
                metadata:
                  labels:
                    app: web
                    pod-template-hash: 7c5d8b9f4d
                spec:
                  containers:
                  - name: app
                    image: example.com/web:v1
                  - name: proxy
                    image: example.com/proxy:v2
            ---
            apiVersion: v1
            kind: Node
            metadata:
              name: \(Self.node)
              labels:
                node-role.kubernetes.io/control-plane: ""
            spec:
              unschedulable: true

            """
            let created = try await kubectl("create", "-f", "-", stdin: deployment)
            #expect(created.status == 0, "\(created.stderr)")
            try await kubectl.status("deployment/web", #"{"observedGeneration":1,"replicas":3,"updatedReplicas":3,"readyReplicas":2,"availableReplicas":2,"unavailableReplicas":1}"#)
            try await kubectl.status("replicaset/web-7c5d8b9f4d", #"{"observedGeneration":1,"replicas":3,"fullyLabeledReplicas":3,"readyReplicas":2,"availableReplicas":2}"#)
            try await kubectl.status("node/\(Self.node)", #"{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}],"addresses":[{"type":"InternalIP","address":"10.0.0.5"},{"type":"Hostname","address":"tables-node"}],"nodeInfo":{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"6.1.0-18-amd64","osImage":"Debian GNU/Linux 12 (bookworm)","containerRuntimeVersion":"containerd://1.7.13","kubeletVersion":"v1.32.4","kubeProxyVersion":"","operatingSystem":"linux","architecture":"amd64"}}"#)

            let workloads = try await kubectl.table("get", "deploy,rs")
            Self.expectRows(Array(workloads.prefix(2)), header: ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], [["deployment.apps/web", "2/3", "3", "2", Self.age]])
            Self.expectRows(Array(workloads.dropFirst(2).filter { !$0.isEmpty }), header: ["NAME", "DESIRED", "CURRENT", "READY", "AGE"], [["replicaset.apps/web-7c5d8b9f4d", "3", "3", "2", Self.age]])
            let wide = try await kubectl.table("get", "deploy,rs", "-o", "wide")
            Self.expectRows(Array(wide.prefix(2)), header: ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
                            [["deployment.apps/web", "2/3", "3", "2", Self.age, "app,proxy", "example.com/web:v1,example.com/proxy:v2", "app=web"]])
            Self.expectRows(Array(wide.dropFirst(2).filter { !$0.isEmpty }), header: ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
                            [["replicaset.apps/web-7c5d8b9f4d", "3", "3", "2", Self.age, "app,proxy", "example.com/web:v1,example.com/proxy:v2", "app=web,pod-template-hash=7c5d8b9f4d"]])

            let nodes = try await kubectl.table("get", "nodes")
            Self.expectRows(nodes, header: ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], [[Self.node, "Ready,SchedulingDisabled", "control-plane", Self.age, "v1.32.4"]])
            let wideNodes = try await kubectl.table("get", "nodes", "-o", "wide")
            Self.expectRows(wideNodes, header: ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
                            [[Self.node, "Ready,SchedulingDisabled", "control-plane", Self.age, "v1.32.4", "10.0.0.5", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "containerd://1.7.13"]])
            // Events keep their own columns, listed or got by name.
            let event = """
            apiVersion: v1
            kind: Event
            metadata:
              name: web.1
            involvedObject:
              kind: Deployment
              name: web
              namespace: default
            reason: ScalingReplicaSet
            message: Scaled up replica set web-7c5d8b9f4d from 0 to 3
            type: Normal
            source:
              component: deployment-controller
            firstTimestamp: \(RFC3339.format(Date()))
            lastTimestamp: \(RFC3339.format(Date()))
            count: 1

            """
            #expect(try await kubectl("create", "-f", "-", stdin: event).status == 0)
            for args in [["get", "events"], ["get", "event", "web.1"]] {
                let events = try await run("kubectl", args, environment: kubectl.env)
                Self.expectRows(events.stdout.split(separator: "\n").map { $0.split(separator: try! Regex("\\s{2,}")).map(String.init) },
                                header: ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
                                [[Self.age, "Normal", "ScalingReplicaSet", "deployment/web", "Scaled up replica set web-7c5d8b9f4d from 0 to 3"]])
            }
            let one = try await kubectl.table("get", "deployment", "web")
            let noPods = try await kubectl("get", "pods")
            #expect(noPods.status == 0 && noPods.stdout.isEmpty && noPods.stderr == "No resources found in default namespace.\n", "\(noPods)")
            Self.expectRows(one, header: ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], [["web", "2/3", "3", "2", Self.age]])
        }
    }

    /// The header exactly, then each row's cells: literally, or as a regular expression when
    /// the expected cell starts with `^`.
    static func expectRows(_ lines: [[String]], header: [String], _ rows: [[String]], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(lines.first == header, "\(lines)", sourceLocation: sourceLocation)
        let actual = Array(lines.dropFirst())
        #expect(actual.count == rows.count, "\(lines)", sourceLocation: sourceLocation)
        for (got, want) in zip(actual, rows) {
            let matches = got.count == want.count && zip(got, want).allSatisfy { cell, pattern in
                pattern.hasPrefix("^") ? cell.wholeMatch(of: try! Regex(String(pattern.dropFirst().dropLast()))) != nil : cell == pattern
            }
            #expect(matches, "\(got) != \(want)", sourceLocation: sourceLocation)
        }
    }
}
