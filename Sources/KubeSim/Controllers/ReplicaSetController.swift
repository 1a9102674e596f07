import Foundation
import KubeClient
import Logging

/// kube-controller-manager's ReplicaSet controller (kubernetes `pkg/controller/replicaset/replica_set.go`).
/// It reads the store directly, so it never acts on a stale cache and needs none of the
/// real controller's expectations.
struct ReplicaSetController: Sendable {
    let context: ControllerContext

    /// `burstReplicas`: at most this many creations or deletions per sync.
    static let burstReplicas = 500
    private var identity: ControllerContext.Identity { ControllerContext.controllerManager }

    /// `syncReplicaSet`: claim the matching Pods, create or delete to reach `spec.replicas`
    /// (`manageReplicas`), then write the status (`calculateStatus`, `updateReplicaSetStatus`).
    /// Returns when to look again: a ReplicaSet with `minReadySeconds` whose Pods are ready but not
    /// yet available is resynced then, as the real controller's `enqueueAfter`.
    func sync(_ key: ObjectKey) async throws(APIError) -> Duration? {
        let store = context.store
        guard let rs = try? await store.get(.replicaSet, namespace: key.namespace, name: key.name) else { return nil }
        let selector = LabelSelector(rs["spec"]?["selector"])
        let candidates = await context.list(.pod, namespace: key.namespace).filter(PodState.isActive)
        let owned = try await claimPods(rs, selector: selector, pods: candidates)
        var manageError: APIError?
        if !rs.metaDeleting {
            do { try await manageReplicas(rs, owned: owned) } catch { manageError = error }
        }
        let status = calculateStatus(rs, pods: owned, manageError: manageError)
        if rs["status"] != status {
            var updated = rs
            updated["status"] = status
            _ = try await store.update(.replicaSet, namespace: key.namespace, name: key.name, body: updated, options: identity.options(subresource: "status"))
        }
        if let manageError { throw manageError }
        let minReady = rs.intAt("spec", "minReadySeconds")
        let replicas = rs.intAt("spec", "replicas")
        if minReady > 0, status.intAt("readyReplicas") == replicas, status.intAt("availableReplicas") != replicas {
            return .seconds(minReady)
        }
        return nil
    }

    /// pkg/controller/controller_ref_manager.go `PodControllerRefManager.ClaimPods`: our Pods
    /// that still match are kept, those that stopped matching are released, orphans that match
    /// are adopted (not while the ReplicaSet is being deleted); Pods of other controllers are
    /// left alone.
    private func claimPods(_ rs: JSONValue, selector: LabelSelector, pods: [JSONValue]) async throws(APIError) -> [JSONValue] {
        var owned: [JSONValue] = []
        for pod in pods {
            let matches = selector.matches(pod.metaLabels)
            if let ref = pod.metaController {
                guard ref.uid == rs.metaUID else { continue }
                if matches { owned.append(pod) } else { try await setOwners(pod, pod.metaOwners.filter { $0.uid != rs.metaUID }) }
                continue
            }
            guard matches, !rs.metaDeleting, !pod.metaDeleting else { continue }
            if let adopted = try await setOwners(pod, pod.metaOwners + [OwnerRef.controller(of: rs, kind: .replicaSet)]) { owned.append(adopted) }
        }
        return owned
    }

    /// Writes a Pod's owner references, guarded by its resourceVersion; nil when it is gone.
    @discardableResult
    private func setOwners(_ pod: JSONValue, _ owners: [OwnerRef]) async throws(APIError) -> JSONValue? {
        var updated = pod
        updated.setMetaField("ownerReferences", owners.isEmpty ? nil : .array(owners.map(\.json)))
        do {
            return try await context.store.update(.pod, namespace: pod.metaNamespace, name: pod.metaName, body: updated, options: identity.options())
        } catch where error.isNotFound {
            return nil
        }
    }

    /// `manageReplicas`: too few Pods → create from the template (`slowStartBatch` stops at the
    /// first failure); too many → delete the ones `getPodsToDelete` ranks first.
    private func manageReplicas(_ rs: JSONValue, owned: [JSONValue]) async throws(APIError) {
        let diff = owned.count - rs.intAt("spec", "replicas")
        if diff < 0 {
            for _ in 0..<min(-diff, Self.burstReplicas) { try await createPod(rs) }
        } else if diff > 0 {
            let related = await relatedPods(rs)
            let now = context.now()
            for pod in Self.podsToDelete(owned, related: related, count: min(diff, Self.burstReplicas), now: now) {
                do {
                    _ = try await context.store.delete(.pod, namespace: pod.metaNamespace, name: pod.metaName, preconditionUID: pod.metaUID, preconditionRV: nil,
                                                       user: identity.options().user)
                } catch where error.isNotFound {
                    continue
                }
            }
        }
    }

    /// controller_utils.go `GetPodFromTemplate` + `RealPodControl.CreatePods`: the template's
    /// labels, annotations, finalizers and spec; `generateName` `<rs>-` (`getPodsPrefix`); this
    /// ReplicaSet as controller owner.
    private func createPod(_ rs: JSONValue) async throws(APIError) {
        let template = rs["spec"]?["template"]
        var meta: [String: JSONValue] = [
            "generateName": .string(rs.metaName + "-"),
            "ownerReferences": .array([OwnerRef.controller(of: rs, kind: .replicaSet).json]),
        ]
        for field in ["labels", "annotations", "finalizers"] {
            if let v = template?["metadata"]?[field], v != .null { meta[field] = v }
        }
        let spec = template?["spec"]?.objectValue ?? [:]
        let body: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("Pod"), "metadata": .object(meta), "spec": .object(spec)])
        _ = try await context.store.create(.pod, namespace: rs.metaNamespace, body: body, options: identity.options())
    }

    /// `getIndirectlyRelatedPods`: the active Pods of every ReplicaSet with the same controller
    /// (a Deployment's old and new ReplicaSets), for ranking by how crowded their node is.
    private func relatedPods(_ rs: JSONValue) async -> [JSONValue] {
        let owner = rs.metaController?.uid
        let siblings = Set(await context.list(.replicaSet, namespace: rs.metaNamespace)
            .filter { $0.metaUID == rs.metaUID || (owner != nil && $0.metaController?.uid == owner) }.map(\.metaUID))
        return await context.list(.pod, namespace: rs.metaNamespace).filter { PodState.isActive($0) && siblings.contains($0.metaController?.uid ?? "") }
    }

    /// replica_set_utils.go `calculateStatus`: the Pods counted, those whose labels carry the
    /// whole template's labels, ready, available; the `ReplicaFailure` condition while creating
    /// or deleting fails; `observedGeneration`.
    func calculateStatus(_ rs: JSONValue, pods: [JSONValue], manageError: APIError?) -> JSONValue {
        let templateLabels = JSONValue.stringMap(rs["spec"]?["template"]?["metadata"]?["labels"])
        let minReady = rs.intAt("spec", "minReadySeconds")
        let now = context.now()
        var fullyLabeled = 0, ready = 0, available = 0
        for pod in pods {
            let labels = pod.metaLabels
            if templateLabels.allSatisfy({ labels[$0.key] == $0.value }) { fullyLabeled += 1 }
            if PodState.isReady(pod) {
                ready += 1
                if PodState.isAvailable(pod, minReadySeconds: minReady, now: now) { available += 1 }
            }
        }
        var status = rs["status"]?.objectValue ?? [:]
        status["replicas"] = .int(pods.count)
        // `omitempty` on every field but `replicas`.
        for (k, v) in [("fullyLabeledReplicas", fullyLabeled), ("readyReplicas", ready), ("availableReplicas", available), ("observedGeneration", rs.metaGeneration)] {
            status[k] = v == 0 ? nil : .int(v)
        }
        let failure = Conditions.get(.object(status), "ReplicaFailure")
        if let manageError, failure == nil {
            // `calculateStatus`: FailedCreate while short of Pods, FailedDelete while over.
            let reason = pods.count > rs.intAt("spec", "replicas") ? "FailedDelete" : "FailedCreate"
            Conditions.set(&status, .object(["type": .string("ReplicaFailure"), "status": .string("True"), "reason": .string(reason),
                                             "message": .string(manageError.status.message ?? ""), "lastTransitionTime": .string(context.timestamp)]))
        } else if manageError == nil, failure != nil {
            Conditions.remove(&status, "ReplicaFailure")
        }
        return .object(status)
    }

    // MARK: which Pods go first

    /// controller_utils.go `getPodsToDelete` / `ActivePodsWithRanks.Less`: the `count` Pods a
    /// scale-down deletes, ranked by how crowded their node is with related Pods.
    static func podsToDelete(_ pods: [JSONValue], related: [JSONValue], count: Int, now: Date) -> [JSONValue] {
        guard count < pods.count else { return pods }
        var perNode: [String: Int] = [:]
        for p in related { perNode[p.stringAt("spec", "nodeName") ?? "", default: 0] += 1 }
        let ranked = pods.map { ($0, perNode[$0.stringAt("spec", "nodeName") ?? ""] ?? 0) }
        return ranked.sorted { deleteFirst($0.0, rank: $0.1, before: $1.0, rank: $1.1, now: now) }.prefix(count).map(\.0)
    }

    /// `ActivePodsWithRanks.Less` with the LogarithmicScaleDown gate on (the default since 1.22):
    /// unassigned < assigned; Pending < Unknown < Running; not ready < ready; lower
    /// `controller.kubernetes.io/pod-deletion-cost` first; more related Pods on the node first;
    /// ready more recently first (by power-of-two buckets); more container restarts first;
    /// created more recently first (by buckets); then by uid.
    static func deleteFirst(_ a: JSONValue, rank ra: Int, before b: JSONValue, rank rb: Int, now: Date) -> Bool {
        let na = a.stringAt("spec", "nodeName") ?? "", nb = b.stringAt("spec", "nodeName") ?? ""
        if na.isEmpty != nb.isEmpty { return na.isEmpty }
        let order = ["Pending": 0, "Unknown": 1, "Running": 2]
        let pa = order[PodState.phase(a)] ?? 0, pb = order[PodState.phase(b)] ?? 0
        if pa != pb { return pa < pb }
        let readyA = PodState.isReady(a), readyB = PodState.isReady(b)
        if readyA != readyB { return !readyA }
        let costA = Int(a.metaAnnotations["controller.kubernetes.io/pod-deletion-cost"] ?? "") ?? 0
        let costB = Int(b.metaAnnotations["controller.kubernetes.io/pod-deletion-cost"] ?? "") ?? 0
        if costA != costB { return costA < costB }
        if ra != rb { return ra > rb }
        if readyA && readyB {
            let ta = readySince(a), tb = readySince(b)
            if ta != tb {
                guard let ta, let tb else { return ta == nil }
                let diff = logRank(ta, now: now) - logRank(tb, now: now)
                if diff == 0 { return a.metaUID < b.metaUID }
                return diff < 0
            }
        }
        let ca = restarts(a), cb = restarts(b)
        if ca != cb { return ca > cb }
        let ta = a.metaCreated, tb = b.metaCreated
        if ta != tb {
            guard let ta, let tb else { return ta == nil }
            let diff = logRank(ta, now: now) - logRank(tb, now: now)
            if diff == 0 { return a.metaUID < b.metaUID }
            return diff < 0
        }
        return false
    }

    /// `logarithmicRankDiff`'s bucket: ⌊log2(nanoseconds since t)⌋, -1 for the future.
    private static func logRank(_ t: Date, now: Date) -> Int {
        let ns = now.timeIntervalSince(t) * 1e9
        return ns > 0 ? Int(log2(ns)) : -1
    }

    private static func readySince(_ pod: JSONValue) -> Date? {
        PodState.readyCondition(pod)?["lastTransitionTime"]?.stringValue.flatMap(RFC3339.parse)
    }

    /// `maxContainerRestarts`.
    private static func restarts(_ pod: JSONValue) -> Int {
        (pod["status"]?["containerStatuses"]?.arrayValue ?? []).map { $0.intAt("restartCount") }.max() ?? 0
    }
}
