import Foundation
import KubeClient
import Logging
import Synchronization

/// kube-scheduler for a one-node cluster (kubernetes `pkg/scheduler/schedule_one.go`
/// `ScheduleOne`): a Pod with no `spec.nodeName`, not being deleted and asking for
/// `default-scheduler` is bound to the node when the node exists, is schedulable and matches
/// the Pod's `nodeSelector`; otherwise it is marked `PodScheduled=False` `Unschedulable` with the
/// scheduler's message (`handleSchedulingFailure` → `updatePod`). There is one node, so no
/// scoring, preemption or taint handling.
final class Scheduler: Sendable {
    let context: ControllerContext
    let nodeName: String
    /// Whether the store's refusal to bind was logged already.

    init(context: ControllerContext, nodeName: String) {
        self.context = context
        self.nodeName = nodeName
    }

    static let defaultSchedulerName = "default-scheduler"
    private static let nodes = ResourceKind.find(group: "", version: "v1", plural: "nodes")!
    private var identity: ControllerContext.Identity { ControllerContext.scheduler }

    /// Whether this scheduler should place `pod` (`frameworkForPod` / the pod informer's filter:
    /// unassigned, not terminating, our scheduler name).
    static func wants(_ pod: JSONValue) -> Bool {
        (pod.stringAt("spec", "nodeName") ?? "").isEmpty && !pod.metaDeleting
            && (pod.stringAt("spec", "schedulerName") ?? defaultSchedulerName) == defaultSchedulerName
            && !["Succeeded", "Failed"].contains(PodState.phase(pod))
    }

    /// Returns when to try again (the node is not registered yet), if at all.
    func sync(_ key: ObjectKey) async throws(APIError) -> Duration? {
        guard let pod = try? await context.store.get(.pod, namespace: key.namespace, name: key.name), Self.wants(pod) else { return nil }
        guard let node = try? await context.store.get(Self.nodes, namespace: nil, name: nodeName) else { return .seconds(1) }
        if node["spec"]?["unschedulable"] == .bool(true) {
            try await markUnschedulable(pod, "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
            return nil
        }
        let selector = JSONValue.stringMap(pod["spec"]?["nodeSelector"])
        let labels = node.metaLabels
        if selector.contains(where: { labels[$0.key] != $0.value }) {
            try await markUnschedulable(pod, "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
            return nil
        }
        try await bind(pod)
        return nil
    }

    /// kube-scheduler's bind (pkg/scheduler/framework/plugins/defaultbinder `Bind`): POST
    /// `pods/NAME/binding` with the Pod's uid; the store sets `spec.nodeName` and `PodScheduled`.
    private func bind(_ pod: JSONValue) async throws(APIError) {
        try await context.store.bind(namespace: pod.metaNamespace, name: pod.metaName, uid: pod["metadata"]?["uid"]?.stringValue,
                                     node: nodeName, options: identity.options())
    }

    private func markUnschedulable(_ pod: JSONValue, _ message: String) async throws(APIError) {
        try await setScheduledCondition(pod, status: "False", reason: "Unschedulable", message: message)
    }

    /// pkg/api/v1/pod/util.go `UpdatePodCondition`: lastTransitionTime moves only with the status.
    private func setScheduledCondition(_ pod: JSONValue, status: String, reason: String?, message: String?) async throws(APIError) {
        var condition: [String: JSONValue] = ["type": .string("PodScheduled"), "status": .string(status), "lastProbeTime": .null,
                                              "lastTransitionTime": .string(context.timestamp)]
        if let reason { condition["reason"] = .string(reason) }
        if let message { condition["message"] = .string(message) }
        var conditions = pod["status"]?["conditions"]?.arrayValue ?? []
        if let i = conditions.firstIndex(where: { $0["type"]?.stringValue == "PodScheduled" }) {
            let old = conditions[i]
            if old["status"]?.stringValue == status { condition["lastTransitionTime"] = old["lastTransitionTime"] }
            if JSONValue.object(condition) == old { return }
            conditions[i] = .object(condition)
        } else {
            conditions.append(.object(condition))
        }
        var updated = pod
        updated["status"]?["conditions"] = .array(conditions)
        _ = try await context.store.update(.pod, namespace: pod.metaNamespace, name: pod.metaName, body: updated, options: identity.options(subresource: "status"))
    }
}
