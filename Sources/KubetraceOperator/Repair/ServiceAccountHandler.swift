import Foundation
import KubeClient
import KubeRuntime
import Logging

/// Keeps the pull Secret in `imagePullSecrets` of the managed ServiceAccount and of
/// the configured ones in target namespaces, and recreates the managed one if deleted.
actor ServiceAccountHandler {
    let ctx: RepairContext
    let scope: NamespaceScope
    /// The ServiceAccount watches' shared stores (read, never copied).
    let accounts: ScopedStores<ServiceAccountProjection>
    private var limiter = RepairRateLimiter<ObjectKey>()
    /// When this handler last restored each account.
    private var lastRepair: [ObjectKey: Date] = [:]

    init(ctx: RepairContext, scope: NamespaceScope, accounts: ScopedStores<ServiceAccountProjection>) {
        self.ctx = ctx
        self.scope = scope
        self.accounts = accounts
    }

    private var secretName: String { ctx.names.registrySecret }

    /// The managed ServiceAccount, recreated when deleted.
    private func isManaged(_ key: ObjectKey) -> Bool {
        key.namespace == ctx.operatorNamespace && key.name == ctx.names.readOnlyServiceAccount
    }

    /// Whether the account must reference the pull Secret.
    func isKept(_ key: ObjectKey) -> Bool {
        isManaged(key) || (scope.isTarget(key.namespace) && ctx.config.targetServiceAccounts.contains(key.name))
    }

    func observe(_ event: WatchEvent<ServiceAccountProjection>) -> [RepairKey] {
        switch event {
        case .synced:
            var keys: [RepairKey] = [.serviceAccount(namespace: ctx.operatorNamespace, name: ctx.names.readOnlyServiceAccount)]
            for ns in scope.targets { keys += ctx.config.targetServiceAccounts.map { .serviceAccount(namespace: ns, name: $0) } }
            return keys
        case .added(let sa), .modified(let sa):
            guard isKept(sa.meta.storeKey) else { return [] }
            return sa.imagePullSecrets.contains(secretName) ? [] : [.serviceAccount(namespace: sa.meta.namespace, name: sa.meta.name)]
        case .deleted(let sa):
            guard isKept(sa.meta.storeKey) else { return [] }
            return isManaged(sa.meta.storeKey) ? [.serviceAccount(namespace: sa.meta.namespace, name: sa.meta.name)] : []
        }
    }

    /// Whether the account references the pull Secret, by the watch's view.
    func references(_ key: ObjectKey) -> Bool { account(key)?.imagePullSecrets.contains(secretName) ?? false }

    private func account(_ key: ObjectKey) -> ServiceAccountProjection? { accounts.get(namespace: key.namespace, name: key.name) }

    /// Whether `reconcile` has a write to make, by the watch's view: a kept account that
    /// lacks the reference, or the managed one missing (other accounts are not ours to create).
    func needsRepair(_ key: ObjectKey) -> Bool {
        guard isKept(key) else { return false }
        guard let cached = account(key) else { return isManaged(key) }
        return !cached.imagePullSecrets.contains(secretName)
    }

    /// When this handler last restored the account.
    func lastRepairTime(_ key: ObjectKey) -> Date? { lastRepair[key] }

    func reconcile(namespace: String, name: String) async -> RepairOutcome {
        let key = ObjectKey(namespace: namespace, name: name)
        guard isKept(key) else { return .healthy }
        let cached = account(key)
        if let cached, cached.imagePullSecrets.contains(secretName) { return .healthy }
        if cached == nil, !isManaged(key) { return .healthy }  // target accounts are not the operator's to create
        var ref = ObjectReference(apiVersion: "v1", kind: "ServiceAccount", namespace: namespace, name: name, uid: cached?.meta.uid)
        let what = cached == nil ? "was deleted" : "lacked \(secretName) in imagePullSecrets"
        let now = Date()
        let (decision, deferred) = limiter.gate(key, now: now, episode: RepairReport(
            regarding: ref, reason: "RepairFailed",
            note: "another writer keeps removing \(secretName) from ServiceAccount \(namespace)/\(name); repairs are now spaced out"))
        if let deferred { return deferred }
        do {
            guard let written = try await write(key) else { return .healthy }
            // The Event names the object as written (a recreated account has a new uid), so
            // `kubectl describe`, which matches on uid, finds it.
            ref.uid = written
            limiter.record(key, at: Date(), decision: decision)
            limiter.prune(now: now)
            lastRepair[key] = Date()
            return .repaired(RepairReport(regarding: ref, reason: "ServiceAccountRepaired", note: "ServiceAccount \(what); restored"))
        } catch {
            return .failed(RepairReport(regarding: ref, reason: "RepairFailed", note: RepairError.describe(error, verb: "repairing", object: "ServiceAccount \(namespace)/\(name)")))
        }
    }

    /// Creates the managed account, or adds the reference with a JSON Patch guarded
    /// by a `test` of the resourceVersion: the list has no merge key, so a merge or
    /// strategic-merge patch would replace other entries. Returns the written account's uid;
    /// nil when nothing was needed.
    private func write(_ key: ObjectKey) async throws -> String? {
        let client = ctx.client
        return try await retryingConflicts { _ in
            let fresh: ServiceAccount
            do {
                fresh = try await client.get(ServiceAccount.self, namespace: key.namespace, name: key.name)
            } catch let e as KubeClientError where e.isNotFound && isManaged(key) {
                var sa = ServiceAccount(metadata: ctx.objectMeta(key.name, namespace: key.namespace),
                                        imagePullSecrets: [LocalObjectReference(name: secretName)])
                sa.automountServiceAccountToken = false
                return try await client.create(sa, namespace: key.namespace).metadata.uid ?? ""
            }
            let existing = fresh.imagePullSecrets ?? []
            if existing.contains(where: { $0.name == secretName }) { return nil }
            let entry = JSONValue.object(["name": .string(secretName)])
            let add: JSONPatchOperation = fresh.imagePullSecrets == nil
                ? .add("/imagePullSecrets", .array([entry]))
                : .add("/imagePullSecrets/-", entry)
            return try await client.patch(ServiceAccount.self, namespace: key.namespace, name: key.name,
                                          .json([.test("/metadata/resourceVersion", .string(fresh.metadata.resourceVersion ?? "")), add])).metadata.uid ?? ""
        }
    }
}

extension ServiceAccountHandler {
    /// A no-op on the actor: returns once the actor is free to run it (the heartbeat).
    func ping() {}
}
