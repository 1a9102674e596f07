import Foundation
import KubeClient
import KubeRuntime
import Logging

/// Pods waiting with `ErrImagePull`/`ImagePullBackOff` on the managed registry:
/// their namespace's pull Secret and ServiceAccount reference are repaired first;
/// a controller-owned Pod is then deleted once, so its owner recreates it, when it
/// cannot recover by itself — it lacks the pull Secret in its own (immutable)
/// `imagePullSecrets`, or it still backs off after a repair. Bare Pods are never deleted.
///
/// The plumbing is the other handlers' job: this handler reads their view (never calls
/// their `reconcile`) and, while the namespace's pull Secret or the Pod's ServiceAccount
/// needs repair, answers `.waiting(on:)` with their keys. The queue reconciles those
/// (one at a time per key, with their Events and metrics), and the Secret or
/// ServiceAccount watch that sees the repair brings the namespace's stuck Pods back
/// (`keys(in:)`), as controller-runtime maps a watched object to the requests it affects.
actor StuckPodHandler {
    let ctx: RepairContext
    let scope: NamespaceScope
    let pullSecrets: PullSecretHandler
    let accounts: ServiceAccountHandler
    private var stuck: [ObjectKey: PodProjection] = [:]
    /// When each stuck Pod (by uid) was first seen stuck.
    private var stuckSince: [String: Date] = [:]
    /// The resourceVersion a Pod had when the repair of its namespace was confirmed.
    private var repairedAt: [String: String] = [:]
    /// Pods deleted once already (by uid); never twice.
    private var restarted: Set<String> = []
    private var restartedOwners: [String: Date] = [:]
    private var told: Set<String> = []

    init(ctx: RepairContext, scope: NamespaceScope, pullSecrets: PullSecretHandler, accounts: ServiceAccountHandler) {
        self.ctx = ctx
        self.scope = scope
        self.pullSecrets = pullSecrets
        self.accounts = accounts
    }

    func observe(_ event: WatchEvent<PodProjection>) -> [RepairKey] {
        switch event {
        case .synced: return []
        case .added(let p), .modified(let p):
            if PullSecretCheck.isStuck(p, host: ctx.config.registryHost), !p.meta.deleting {
                stuck[p.meta.storeKey] = p
                if stuckSince[p.meta.uid] == nil { stuckSince[p.meta.uid] = Date() }
                return scope.contains(p.meta.namespace) ? [.pod(namespace: p.meta.namespace, name: p.meta.name)] : []
            }
            forget(p)
            return []
        case .deleted(let p):
            forget(p)
            return []
        }
    }

    private func forget(_ p: PodProjection) {
        guard stuck.removeValue(forKey: p.meta.storeKey) != nil else { return }
        stuckSince[p.meta.uid] = nil
        repairedAt[p.meta.uid] = nil
        told.remove(p.meta.uid)
    }

    /// The stuck Pods whose plumbing `key` is: the namespace's pull Secret, or a ServiceAccount
    /// they run as (by the watch's view).
    func waiting(on key: RepairKey) -> [ObjectReference] {
        let matches: (PodProjection) -> Bool
        switch key {
        case .pullSecret(let ns): matches = { $0.meta.namespace == ns }
        case .serviceAccount(let ns, let name): matches = { $0.meta.namespace == ns && ($0.serviceAccountName.isEmpty ? "default" : $0.serviceAccountName) == name }
        default: return []
        }
        return stuck.values.filter { matches($0) && scope.contains($0.meta.namespace) }
            .sorted { $0.meta.name < $1.meta.name }
            .map { ObjectReference(apiVersion: "v1", kind: "Pod", namespace: $0.meta.namespace, name: $0.meta.name, uid: $0.meta.uid) }
    }

    /// The stuck Pods of a namespace that just came into scope.
    func keys(in namespace: String) -> [RepairKey] {
        stuck.keys.filter { $0.namespace == namespace }.map { .pod(namespace: $0.namespace, name: $0.name) }
    }

    func reconcile(namespace: String, name: String) async -> RepairOutcome {
        guard scope.contains(namespace), let pod = stuck[ObjectKey(namespace: namespace, name: name)] else { return .healthy }
        let ref = ObjectReference(apiVersion: "v1", kind: "Pod", namespace: namespace, name: name, uid: pod.meta.uid)
        let secretName = ctx.names.registrySecret

        // The namespace's plumbing first, by the other handlers' view.
        var pending: [RepairKey] = []
        if !(await pullSecrets.isHealthy(namespace)) { pending.append(.pullSecret(namespace: namespace)) }
        let account = ObjectKey(namespace: namespace, name: pod.serviceAccountName.isEmpty ? "default" : pod.serviceAccountName)
        let accountKept = await accounts.isKept(account)
        if await accounts.needsRepair(account) { pending.append(.serviceAccount(namespace: account.namespace, name: account.name)) }
        if !pending.isEmpty { return .waiting(on: pending) }
        // Repaired since the Pod got stuck (a minute's slack for the watch that saw it stuck).
        let since = (stuckSince[pod.meta.uid] ?? .distantPast).addingTimeInterval(-60)
        var repairedNow = false
        if let last = await pullSecrets.lastRepairTime(namespace), last >= since { repairedNow = true }
        if let last = await accounts.lastRepairTime(account), last >= since { repairedNow = true }

        guard pod.meta.controller != nil else {
            if !told.contains(pod.meta.uid) {
                told.insert(pod.meta.uid)
                ctx.logger.info("a bare Pod is stuck pulling from the managed registry; its pull plumbing is repaired, but the operator never deletes bare Pods",
                                metadata: ["event": "stuck_pod_bare", "object": "\(namespace)/\(name)"])
            }
            return .healthy
        }
        guard ctx.config.restartStuckPods, !restarted.contains(pod.meta.uid) else { return .healthy }
        // A Pod's imagePullSecrets are fixed at creation: one made while its account lacked
        // the reference can only recover as a new Pod, which gets the repaired list.
        let lacksSecret = !pod.imagePullSecrets.contains(secretName) && accountKept
        let stillBacksOff = repairedAt[pod.meta.uid].map { $0 != pod.meta.resourceVersion } ?? false
        if !(lacksSecret || stillBacksOff) {
            if repairedNow, repairedAt[pod.meta.uid] == nil {
                repairedAt[pod.meta.uid] = pod.meta.resourceVersion
                ctx.logger.info("stuck Pod's pull plumbing repaired; it is restarted if it still backs off",
                                metadata: ["event": "stuck_pod_watching", "object": "\(namespace)/\(name)"])
            }
            return .healthy
        }
        // A template that itself lacks the Secret would make every new Pod the same:
        // one restart per owner in ten minutes keeps that from becoming a loop.
        let owner = "\(namespace)/\(pod.meta.controller ?? "")"
        if let last = restartedOwners[owner], Date().timeIntervalSince(last) < 600 { return .healthy }
        do {
            try await ctx.client.delete(Pod.self, namespace: namespace, name: name, preconditionUID: pod.meta.uid)
        } catch let e as KubeClientError where e.isNotFound || e.isConflict {
            return .healthy  // already gone or replaced
        } catch {
            return .failed(RepairReport(regarding: ref, reason: "RepairFailed", note: RepairError.describe(error, verb: "deleting", object: "Pod \(namespace)/\(name)")))
        }
        restarted.insert(pod.meta.uid)
        restartedOwners[owner] = Date()
        if restarted.count > 10_000 { restarted.removeAll() }
        restartedOwners = restartedOwners.filter { Date().timeIntervalSince($0.value) < 600 }
        let why = lacksSecret ? "it lacks \(secretName) in its imagePullSecrets" : "it still backed off after the repair"
        return .repaired(RepairReport(regarding: ref, reason: "PodRestartedAfterRepair",
                                      note: "deleted so its \(pod.meta.owners.first { $0.name == pod.meta.controller }?.kind ?? "owner") \(pod.meta.controller ?? "") recreates it: \(why)"))
    }
}

extension StuckPodHandler {
    /// A no-op on the actor: returns once the actor is free to run it (the heartbeat).
    func ping() {}
}
