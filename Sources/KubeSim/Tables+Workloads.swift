import Foundation
import KubeClient

/// Pods, Deployments, ReplicaSets and Nodes as kubernetes/pkg/printers/internalversion/printers.go
/// prints them (`printPod`, `printDeployment`, `printReplicaSet`, `printNode`), wide columns included.
extension Tables {
    static let nameDescription = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
    static let ageDescription = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"

    static func nameColumn() -> Column { Column(name: "Name", format: "name", description: nameDescription) }
    static func ageColumn() -> Column { Column(name: "Age", description: ageDescription) }

    // MARK: Pods

    static let podPrinter = Printer(columns: [
        nameColumn(),
        Column(name: "Ready", description: "The aggregate readiness state of this pod for accepting traffic."),
        Column(name: "Status", description: "The aggregate status of the containers in this pod."),
        Column(name: "Restarts", description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        ageColumn(),
        Column(name: "IP", description: "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", priority: 1),
        Column(name: "Node", description: "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename", priority: 1),
        Column(name: "Nominated Node", description: "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.", priority: 1),
        Column(name: "Readiness Gates", description: "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates", priority: 1),
    ]) { pod, now in
        let summary = podSummary(pod, now: now)
        let spec = pod["spec"], status = pod["status"]
        let ip = status?["podIPs"]?.arrayValue?.first?["ip"]?.stringValue ?? ""
        var gates = "<none>"
        if let required = spec?["readinessGates"]?.arrayValue, !required.isEmpty {
            let conditions = status?["conditions"]?.arrayValue ?? []
            let met = required.filter { gate in
                conditions.first { $0["type"] == gate["conditionType"] }?["status"]?.stringValue == "True"
            }.count
            gates = "\(met)/\(required.count)"
        }
        let cells: [JSONValue] = [
            .string(pod["metadata"]?["name"]?.stringValue ?? ""), .string(summary.ready), .string(summary.status), .string(summary.restarts),
            .string(since(pod["metadata"]?["creationTimestamp"]?.stringValue, now: now)),
            .string(orNone(ip)), .string(orNone(spec?["nodeName"]?.stringValue)), .string(orNone(status?["nominatedNodeName"]?.stringValue)), .string(gates),
        ]
        // A finished Pod's row says so (printers.go `podSuccessConditions` / `podFailedConditions`).
        var conditions: [JSONValue] = []
        switch status?["phase"]?.stringValue {
        case "Succeeded": conditions = [rowCompleted("Succeeded", "The pod has completed successfully.")]
        case "Failed": conditions = [rowCompleted("Failed", "The pod failed.")]
        default: break
        }
        return (cells, conditions)
    }

    private static func rowCompleted(_ reason: String, _ message: String) -> JSONValue {
        .object(["type": .string("Completed"), "status": .string("True"), "reason": .string(reason), "message": .string(message)])
    }

    /// READY, STATUS and RESTARTS of a Pod.
    struct PodSummary: Equatable, Sendable {
        var ready: String
        var status: String
        var restarts: String
    }

    /// printers.go `printPod`'s reason logic, in its order of precedence: the phase, or the
    /// Pod's own reason, or `SchedulingGated`; then the first unfinished init container
    /// (`Init:…`); then, once initialised, the last container that is waiting or terminated
    /// (its reason, `Signal:n` or `ExitCode:n`), `Completed` turning back into `Running` or
    /// `NotReady` while some container still runs; finally `Unknown` for a Pod deleted on a
    /// lost node and `Terminating` for any other deleted Pod not yet finished. RESTARTS counts
    /// the app containers' and sidecars' restarts, with the age of the last one.
    static func podSummary(_ pod: JSONValue, now: Date) -> PodSummary {
        let spec = pod["spec"], status = pod["status"]
        let phase = status?["phase"]?.stringValue ?? ""
        var reason = phase
        if let r = status?["reason"]?.stringValue, !r.isEmpty { reason = r }
        let conditions = status?["conditions"]?.arrayValue ?? []
        if conditions.contains(where: { $0["type"]?.stringValue == "PodScheduled" && $0["reason"]?.stringValue == "SchedulingGated" }) {
            reason = "SchedulingGated"
        }

        let initSpecs = spec?["initContainers"]?.arrayValue ?? []
        let sidecars = Set(initSpecs.filter { $0["restartPolicy"]?.stringValue == "Always" }.compactMap { $0["name"]?.stringValue })
        let total = (spec?["containers"]?.arrayValue?.count ?? 0) + sidecars.count
        var ready = 0
        var restarts = 0, sidecarRestarts = 0
        var lastRestart: Date?, lastSidecarRestart: Date?

        func finished(_ container: JSONValue) -> Date? {
            container["lastState"]?["terminated"]?["finishedAt"]?.stringValue.flatMap(RFC3339.parse)
        }
        func later(_ a: Date?, _ b: Date?) -> Date? {
            guard let b else { return a }
            guard let a else { return b }
            return max(a, b)
        }
        func terminatedReason(_ terminated: JSONValue) -> String? {
            if let r = terminated["reason"]?.stringValue, !r.isEmpty { return r }
            return nil
        }
        func exitDescription(_ terminated: JSONValue) -> String {
            if let signal = terminated["signal"]?.intValue, signal != 0 { return "Signal:\(signal)" }
            return "ExitCode:\(terminated["exitCode"]?.intValue ?? 0)"
        }

        var initializing = false
        let initStatuses = status?["initContainerStatuses"]?.arrayValue ?? []
        for (i, container) in initStatuses.enumerated() {
            let count = container["restartCount"]?.intValue ?? 0
            restarts += count
            lastRestart = later(lastRestart, finished(container))
            let isSidecar = sidecars.contains(container["name"]?.stringValue ?? "")
            if isSidecar {
                sidecarRestarts += count
                lastSidecarRestart = later(lastSidecarRestart, finished(container))
            }
            let state = container["state"]
            if let terminated = state?["terminated"], terminated.objectValue != nil, (terminated["exitCode"]?.intValue ?? 0) == 0 {
                continue
            }
            if isSidecar, container["started"] == .bool(true) {
                if container["ready"] == .bool(true) { ready += 1 }
                continue
            }
            if let terminated = state?["terminated"], terminated.objectValue != nil {
                reason = "Init:" + (terminatedReason(terminated) ?? exitDescription(terminated))
            } else if let waiting = state?["waiting"]?["reason"]?.stringValue, !waiting.isEmpty, waiting != "PodInitializing" {
                reason = "Init:" + waiting
            } else {
                reason = "Init:\(i)/\(initSpecs.count)"
            }
            initializing = true
            break
        }

        let initialized = conditions.first { $0["type"]?.stringValue == "Initialized" }?["status"]?.stringValue == "True"
        if !initializing || initialized {
            restarts = sidecarRestarts
            lastRestart = lastSidecarRestart
            var hasRunning = false
            for container in (status?["containerStatuses"]?.arrayValue ?? []).reversed() {
                restarts += container["restartCount"]?.intValue ?? 0
                lastRestart = later(lastRestart, finished(container))
                let state = container["state"]
                if let waiting = state?["waiting"]?["reason"]?.stringValue, !waiting.isEmpty {
                    reason = waiting
                } else if let terminated = state?["terminated"], terminated.objectValue != nil {
                    reason = terminatedReason(terminated) ?? exitDescription(terminated)
                } else if container["ready"] == .bool(true), state?["running"]?.objectValue != nil {
                    hasRunning = true
                    ready += 1
                }
            }
            if reason == "Completed", hasRunning {
                let podReady = conditions.contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" }
                reason = podReady ? "Running" : "NotReady"
            }
        }

        let deleting = pod["metadata"]?["deletionTimestamp"].map { $0 != .null } ?? false
        if deleting, status?["reason"]?.stringValue == "NodeLost" {
            reason = "Unknown"
        } else if deleting, phase != "Succeeded", phase != "Failed" {
            reason = "Terminating"
        }

        var restartCell = String(restarts)
        if restarts != 0, let lastRestart {
            restartCell = "\(restarts) (\(age(now.timeIntervalSince(lastRestart))) ago)"
        }
        return PodSummary(ready: "\(ready)/\(total)", status: reason, restarts: restartCell)
    }

    // MARK: Deployments and ReplicaSets

    private static let containersColumn = Column(name: "Containers", description: "Names of each container in the template.", priority: 1)
    private static let imagesColumn = Column(name: "Images", description: "Images referenced by each container in the template.", priority: 1)

    static let deploymentPrinter = Printer(columns: [
        nameColumn(),
        Column(name: "Ready", description: "Number of the pod with ready state"),
        Column(name: "Up-to-date", description: "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        Column(name: "Available", description: "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        ageColumn(), containersColumn, imagesColumn,
        Column(name: "Selector", description: "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", priority: 1),
    ]) { deployment, now in
        let status = deployment["status"]
        let desired = deployment["spec"]?["replicas"]?.intValue ?? 1
        let cells: [JSONValue] = [
            .string(deployment["metadata"]?["name"]?.stringValue ?? ""),
            .string("\(status?["readyReplicas"]?.intValue ?? 0)/\(desired)"),
            .int(status?["updatedReplicas"]?.intValue ?? 0), .int(status?["availableReplicas"]?.intValue ?? 0),
            .string(since(deployment["metadata"]?["creationTimestamp"]?.stringValue, now: now)),
        ] + templateCells(deployment)
        return (cells, [])
    }

    static let replicaSetPrinter = Printer(columns: [
        nameColumn(),
        Column(name: "Desired", type: "integer", description: "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
        Column(name: "Current", type: "integer", description: "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
        Column(name: "Ready", type: "integer", description: "The number of ready replicas for this replica set."),
        ageColumn(), containersColumn, imagesColumn,
        Column(name: "Selector", description: "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", priority: 1),
    ]) { replicaSet, now in
        let status = replicaSet["status"]
        let cells: [JSONValue] = [
            .string(replicaSet["metadata"]?["name"]?.stringValue ?? ""),
            .int(replicaSet["spec"]?["replicas"]?.intValue ?? 1), .int(status?["replicas"]?.intValue ?? 0), .int(status?["readyReplicas"]?.intValue ?? 0),
            .string(since(replicaSet["metadata"]?["creationTimestamp"]?.stringValue, now: now)),
        ] + templateCells(replicaSet)
        return (cells, [])
    }

    /// CONTAINERS, IMAGES (printers.go `layoutContainerCells`) and SELECTOR of a workload.
    private static func templateCells(_ workload: JSONValue) -> [JSONValue] {
        let containers = workload["spec"]?["template"]?["spec"]?["containers"]?.arrayValue ?? []
        return [
            .string(containers.map { $0["name"]?.stringValue ?? "" }.joined(separator: ",")),
            .string(containers.map { $0["image"]?.stringValue ?? "" }.joined(separator: ",")),
            .string(selectorString(workload["spec"]?["selector"])),
        ]
    }

    /// A LabelSelector as `metav1.LabelSelectorAsSelector(…).String()` writes it: requirements
    /// sorted by key, values sorted, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
    static func selectorString(_ selector: JSONValue?) -> String {
        var requirements: [(key: String, text: String)] = []
        for (key, value) in selector?["matchLabels"]?.objectValue ?? [:] {
            requirements.append((key, "\(key)=\(value.stringValue ?? "")"))
        }
        for expression in selector?["matchExpressions"]?.arrayValue ?? [] {
            let key = expression["key"]?.stringValue ?? ""
            let values = (expression["values"]?.arrayValue ?? []).compactMap(\.stringValue).sorted().joined(separator: ",")
            switch expression["operator"]?.stringValue {
            case "In": requirements.append((key, "\(key) in (\(values))"))
            case "NotIn": requirements.append((key, "\(key) notin (\(values))"))
            case "Exists": requirements.append((key, key))
            case "DoesNotExist": requirements.append((key, "!" + key))
            default: break
            }
        }
        // A stable sort by key, as labels.internalSelector sorts its requirements.
        return requirements.enumerated().sorted { ($0.element.key, $0.offset) < ($1.element.key, $1.offset) }.map(\.element.text).joined(separator: ",")
    }

    // MARK: Nodes

    static let nodePrinter = Printer(columns: [
        nameColumn(),
        Column(name: "Status", description: "The status of the node"),
        Column(name: "Roles", description: "The roles of the node"),
        ageColumn(),
        Column(name: "Version", description: "Kubelet Version reported by the node."),
        Column(name: "Internal-IP", description: addressesDescription, priority: 1),
        Column(name: "External-IP", description: addressesDescription, priority: 1),
        Column(name: "OS-Image", description: "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", priority: 1),
        Column(name: "Kernel-Version", description: "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", priority: 1),
        Column(name: "Container-Runtime", description: "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", priority: 1),
    ]) { node, now in
        let status = node["status"], info = status?["nodeInfo"]
        let addresses = status?["addresses"]?.arrayValue ?? []
        func address(_ type: String) -> String {
            orNone(addresses.first { $0["type"]?.stringValue == type }?["address"]?.stringValue)
        }
        func known(_ field: String) -> String {
            let value = info?[field]?.stringValue ?? ""
            return value.isEmpty ? "<unknown>" : value
        }
        let cells: [JSONValue] = [
            .string(node["metadata"]?["name"]?.stringValue ?? ""), .string(nodeStatus(node)), .string(nodeRoles(node)),
            .string(since(node["metadata"]?["creationTimestamp"]?.stringValue, now: now)), .string(info?["kubeletVersion"]?.stringValue ?? ""),
            .string(address("InternalIP")), .string(address("ExternalIP")), .string(known("osImage")), .string(known("kernelVersion")),
            .string(known("containerRuntimeVersion")),
        ]
        return (cells, [])
    }

    private static let addressesDescription = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP)."

    /// `Ready` or `NotReady` from the Ready condition (`Unknown` without one), then `SchedulingDisabled` when cordoned.
    static func nodeStatus(_ node: JSONValue) -> String {
        var parts: [String] = []
        if let ready = node["status"]?["conditions"]?.arrayValue?.last(where: { $0["type"]?.stringValue == "Ready" }) {
            parts.append(ready["status"]?.stringValue == "True" ? "Ready" : "NotReady")
        } else {
            parts.append("Unknown")
        }
        if node["spec"]?["unschedulable"] == .bool(true) { parts.append("SchedulingDisabled") }
        return parts.joined(separator: ",")
    }

    /// printers.go `findNodeRoles`: `node-role.kubernetes.io/<role>` labels and `kubernetes.io/role`, sorted, else `<none>`.
    static func nodeRoles(_ node: JSONValue) -> String {
        var roles = Set<String>()
        for (key, value) in node["metadata"]?["labels"]?.objectValue ?? [:] {
            if key.hasPrefix("node-role.kubernetes.io/") {
                let role = String(key.dropFirst("node-role.kubernetes.io/".count))
                if !role.isEmpty { roles.insert(role) }
            } else if key == "kubernetes.io/role", let role = value.stringValue, !role.isEmpty {
                roles.insert(role)
            }
        }
        return roles.isEmpty ? "<none>" : roles.sorted().joined(separator: ",")
    }

    private static func orNone(_ s: String?) -> String { (s ?? "").isEmpty ? "<none>" : s ?? "" }
}
