import Foundation
import KubeClient
import Logging

/// The kubelet's registration and heartbeats, as kubernetes `pkg/kubelet/kubelet_node_status.go`
/// (`registerWithAPIServer`, `initialNode`, `updateNodeStatus`), `pkg/kubelet/nodestatus/setters.go`
/// (addresses, capacity, nodeInfo, the pressure and Ready conditions) and
/// `pkg/kubelet/nodelease` (the `kube-node-lease/<node>` Lease) do them.
struct NodeRegistration: Sendable {
    let context: ControllerContext
    let node: NodeOptions
    let address: String

    /// kubelet's `nodeLeaseDurationSeconds` (40) and lease renewal interval (a quarter of it: 10 s).
    static let leaseDurationSeconds = 40
    static let renewInterval: Duration = .seconds(10)
    /// `nodeStatusReportFrequency`: an unchanged status is posted again after 5 minutes.
    static let statusReportInterval: Duration = .seconds(300)
    /// What the devcluster's /version reports (APIServer.swift), as the kubelet reports its own.
    static let kubeletVersion = "v1.32.0-kubetrace-devcluster"
    static let leaseNamespace = "kube-node-lease"

    static let nodes = ResourceKind.find(group: "", version: "v1", plural: "nodes")!
    static let leases = ResourceKind.find(group: "coordination.k8s.io", version: "v1", plural: "leases")!
    private var identity: ControllerContext.Identity { ControllerContext.kubelet(node.name) }

    /// Registers, then renews the Lease every 10 s and re-posts the status every 5 minutes,
    /// until cancelled. Failed writes are retried at the next tick, as the kubelet does.
    func run() async {
        let clock = ContinuousClock()
        var backoff: Duration = .milliseconds(100)
        while !Task.isCancelled {
            do {
                try await register()
                break
            } catch {
                context.logger.info("node registration failed; retrying", metadata: ["node": "\(node.name)", "error": "\(error.status.message ?? "")"])
                do { try await clock.sleep(for: backoff) } catch { return }
                backoff = min(backoff * 2, .seconds(7))
            }
        }
        var lastStatus = clock.now
        while !Task.isCancelled {
            do { try await renewLease() } catch {
                context.logger.info("node lease renewal failed", metadata: ["node": "\(node.name)", "error": "\(error.status.message ?? "")"])
            }
            do { try await clock.sleep(for: Self.renewInterval) } catch { return }
            if clock.now - lastStatus >= Self.statusReportInterval {
                do {
                    try await postStatus()
                    lastStatus = clock.now
                } catch {
                    context.logger.info("node status update failed", metadata: ["node": "\(node.name)", "error": "\(error.status.message ?? "")"])
                }
            }
        }
    }

    /// `registerWithAPIServer`: create the Node (an existing one is taken over, as
    /// `tryRegisterWithAPIServer` does after AlreadyExists), post its status, take the Lease.
    func register() async throws(APIError) {
        do {
            _ = try await context.store.create(Self.nodes, namespace: nil, body: initialNode(), options: identity.options())
        } catch where error.status.reason == "AlreadyExists" {
            // Ours from an earlier start: the status below brings it up to date.
        }
        try await postStatus()
        try await renewLease()
        context.logger.info("node registered", metadata: ["node": "\(node.name)", "address": "\(address)"])
    }

    /// `initialNode`: the well-known labels (`kubernetes.io/hostname`, `kubernetes.io/os`,
    /// `kubernetes.io/arch` and their `beta.` forms; no `node-role.kubernetes.io/*`, so kubectl
    /// shows ROLES `<none>`) and the kubelet's annotations.
    func initialNode() -> JSONValue {
        let labels: [String: String] = [
            "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": Self.arch,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": Self.arch,
        ]
        return .object([
            "apiVersion": .string("v1"), "kind": .string("Node"),
            "metadata": .object(["name": .string(node.name), "labels": JSONValue.stringObject(labels),
                                 "annotations": JSONValue.stringObject(["node.alpha.kubernetes.io/ttl": "0",
                                                                        "volumes.kubernetes.io/controller-managed-attach-detach": "true"])]),
            "spec": .object([:]),
        ])
    }

    /// `updateNodeStatus` through `nodes/status`.
    func postStatus() async throws(APIError) {
        let current = try await context.store.get(Self.nodes, namespace: nil, name: node.name)
        var updated = current
        updated["status"] = status(previous: current["status"])
        _ = try await context.store.update(Self.nodes, namespace: nil, name: node.name, body: updated, options: identity.options(subresource: "status"))
    }

    /// The setters of pkg/kubelet/nodestatus/setters.go: `NodeAddress` (InternalIP, Hostname),
    /// `MachineInfo` (capacity = allocatable: the machine's CPUs and memory, 110 pods),
    /// `VersionInfo`, `DaemonEndpoints`, and the conditions `MemoryPressureCondition`,
    /// `DiskPressureCondition`, `PIDPressureCondition`, `ReadyCondition` with their reasons and
    /// messages; lastTransitionTime kept while a condition's status stays the same.
    func status(previous: JSONValue?) -> JSONValue {
        let now = context.timestamp
        let memoryKi = ProcessInfo.processInfo.physicalMemory / 1024
        let capacity: JSONValue = JSONValue.stringObject([
            "cpu": String(ProcessInfo.processInfo.activeProcessorCount), "memory": "\(memoryKi)Ki", "pods": "110",
            "ephemeral-storage": "\(Self.diskKi())Ki", "hugepages-2Mi": "0",
        ])
        func condition(_ type: String, _ status: String, _ reason: String, _ message: String) -> JSONValue {
            let old = Conditions.get(previous, type)
            let since = old?["status"]?.stringValue == status ? (old?["lastTransitionTime"] ?? .string(now)) : .string(now)
            return .object(["type": .string(type), "status": .string(status), "lastHeartbeatTime": .string(now), "lastTransitionTime": since,
                            "reason": .string(reason), "message": .string(message)])
        }
        return .object([
            "capacity": capacity, "allocatable": capacity,
            "conditions": .array([
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ]),
            "addresses": .array([
                .object(["type": .string("InternalIP"), "address": .string(address)]),
                .object(["type": .string("Hostname"), "address": .string(node.name)]),
            ]),
            "daemonEndpoints": .object(["kubeletEndpoint": .object(["Port": .int(10250)])]),
            "nodeInfo": JSONValue.stringObject([
                "machineID": Self.read("/etc/machine-id"), "systemUUID": Self.read("/sys/class/dmi/id/product_uuid"),
                "bootID": Self.read("/proc/sys/kernel/random/boot_id"), "kernelVersion": Self.read("/proc/sys/kernel/osrelease"),
                "osImage": Self.osImage(), "containerRuntimeVersion": "kubetrace://0.1.0", "kubeletVersion": Self.kubeletVersion,
                "operatingSystem": "linux", "architecture": Self.arch,
            ]),
        ])
    }

    /// pkg/kubelet/nodelease `controller.go` `newLease` / `retryUpdateLease`: holder the node,
    /// 40 s, renewTime now (a MicroTime), owned by the Node so it goes with it.
    func renewLease() async throws(APIError) {
        let renew = JSONValue.string(RFC3339.formatMicro(context.now()))
        if var lease = try? await context.store.get(Self.leases, namespace: Self.leaseNamespace, name: node.name) {
            lease["spec"]?["renewTime"] = renew
            _ = try await context.store.update(Self.leases, namespace: Self.leaseNamespace, name: node.name, body: lease, options: identity.options())
            return
        }
        if (try? await context.store.get(.namespace, namespace: nil, name: Self.leaseNamespace)) == nil {
            let ns: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("Namespace"), "metadata": .object(["name": .string(Self.leaseNamespace)])])
            do { _ = try await context.store.create(.namespace, namespace: nil, body: ns, options: identity.options()) } catch where error.status.reason == "AlreadyExists" {}
        }
        let nodeObject = try await context.store.get(Self.nodes, namespace: nil, name: node.name)
        let lease: JSONValue = .object([
            "apiVersion": .string("coordination.k8s.io/v1"), "kind": .string("Lease"),
            "metadata": .object(["name": .string(node.name), "namespace": .string(Self.leaseNamespace),
                                 "ownerReferences": .array([.object(["apiVersion": .string("v1"), "kind": .string("Node"), "name": .string(node.name),
                                                                     "uid": .string(nodeObject.metaUID)])])]),
            "spec": .object(["holderIdentity": .string(node.name), "leaseDurationSeconds": .int(Self.leaseDurationSeconds), "renewTime": renew]),
        ])
        _ = try await context.store.create(Self.leases, namespace: Self.leaseNamespace, body: lease, options: identity.options())
    }

    // MARK: the machine

    static var arch: String {
        #if arch(arm64)
        "arm64"
        #else
        "amd64"
        #endif
    }

    private static func read(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `PRETTY_NAME` from /etc/os-release, as cadvisor reports it.
    private static func osImage() -> String {
        for line in read("/etc/os-release").split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            return String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return "Linux"
    }

    /// The root filesystem's size, as cadvisor's `ephemeral-storage` capacity.
    private static func diskKi() -> UInt64 {
        var s = statvfs()
        guard statvfs("/", &s) == 0 else { return 0 }
        return UInt64(s.f_blocks) * UInt64(s.f_frsize) / 1024
    }
}
