import Foundation
import KubeClient
import KubeRuntime
import Logging

/// Restores the read-only Role and RoleBinding when deleted or drifted, from the
/// single definition `manifest` and `doctor` use (`DesiredRBAC`). A changed roleRef
/// (immutable) is fixed by deleting and recreating the binding — only when the
/// operator owns it.
actor RBACHandler {
    let ctx: RepairContext
    private var role: RawProjection<Role>?
    private var binding: RawProjection<RoleBinding>?
    private var limiter = RepairRateLimiter<RepairKey>()

    init(ctx: RepairContext) { self.ctx = ctx }

    private var ns: String { ctx.operatorNamespace }
    private var names: ObjectNames { ctx.names }

    var desiredRole: Role {
        Role(metadata: ctx.objectMeta(names.readOnlyRole, namespace: ns), rules: DesiredRBAC.readOnlyRules)
    }

    var desiredBinding: RoleBinding {
        RoleBinding(metadata: ctx.objectMeta(names.readOnlyBinding, namespace: ns),
                    subjects: [Subject(kind: "ServiceAccount", name: names.readOnlyServiceAccount, namespace: ns)],
                    roleRef: RoleRef(kind: "Role", name: names.readOnlyRole))
    }

    func observe(role event: WatchEvent<RawProjection<Role>>) -> [RepairKey] {
        switch event {
        case .synced: return [.role]
        case .added(let r), .modified(let r):
            guard r.meta.name == names.readOnlyRole, r.meta.namespace == ns else { return [] }
            role = r
            return [.role]
        case .deleted(let r):
            guard r.meta.name == names.readOnlyRole, r.meta.namespace == ns else { return [] }
            role = nil
            return [.role]
        }
    }

    func observe(binding event: WatchEvent<RawProjection<RoleBinding>>) -> [RepairKey] {
        switch event {
        case .synced: return [.roleBinding]
        case .added(let b), .modified(let b):
            guard b.meta.name == names.readOnlyBinding, b.meta.namespace == ns else { return [] }
            binding = b
            return [.roleBinding]
        case .deleted(let b):
            guard b.meta.name == names.readOnlyBinding, b.meta.namespace == ns else { return [] }
            binding = nil
            return [.roleBinding]
        }
    }

    /// What is wrong with a Role, if anything. Rule order does not matter.
    static func drift(_ role: Role?, desired: Role) -> String? {
        guard let role else { return "was deleted" }
        return Set(role.rules ?? []) == Set(desired.rules ?? []) ? nil : "rules changed"
    }

    static func drift(_ binding: RoleBinding?, desired: RoleBinding) -> String? {
        guard let binding else { return "was deleted" }
        if binding.roleRef != desired.roleRef { return "roleRef changed" }
        func norm(_ s: [Subject]?) -> Set<Subject> {
            Set((s ?? []).map { Subject(kind: $0.kind, name: $0.name, namespace: $0.namespace, apiGroup: $0.kind == "ServiceAccount" ? nil : $0.apiGroup) })
        }
        return norm(binding.subjects) == norm(desired.subjects) ? nil : "subjects changed"
    }

    func reconcile(_ key: RepairKey) async -> RepairOutcome {
        let desiredRole = desiredRole, desiredBinding = desiredBinding
        let problem: String?
        let ref: ObjectReference
        switch key {
        case .role:
            problem = Self.drift(try? role?.object(), desired: desiredRole)
            ref = ObjectReference(apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", namespace: ns, name: names.readOnlyRole, uid: role?.meta.uid)
        case .roleBinding:
            problem = Self.drift(try? binding?.object(), desired: desiredBinding)
            ref = ObjectReference(apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", namespace: ns, name: names.readOnlyBinding, uid: binding?.meta.uid)
        default:
            return .healthy
        }
        guard let problem else { return .healthy }
        let now = Date()
        let (decision, deferred) = limiter.gate(key, now: now, episode: RepairReport(
            regarding: ref, reason: "RepairFailed", note: "another writer keeps changing \(ref.kind ?? "") \(ns)/\(ref.name ?? ""); repairs are now spaced out"))
        if let deferred { return deferred }
        do {
            let wrote = key == .role ? try await writeRole(desiredRole) : try await writeBinding(desiredBinding)
            guard wrote else { return .healthy }
            limiter.record(key, at: Date(), decision: decision)
            limiter.prune(now: now)
            return .repaired(RepairReport(regarding: ref, reason: "RBACRepaired", note: "\(ref.kind ?? "") \(problem); restored"))
        } catch {
            return .failed(RepairReport(regarding: ref, reason: "RepairFailed", note: RepairError.describe(error, verb: "restoring", object: "\(ref.kind ?? "") \(ns)/\(ref.name ?? "")")))
        }
    }

    private func writeRole(_ desired: Role) async throws -> Bool {
        let client = ctx.client
        return try await retryingConflicts { _ in
            let fresh: Role
            do {
                fresh = try await client.get(Role.self, namespace: ns, name: desired.metadata.name ?? "")
            } catch let e as KubeClientError where e.isNotFound {
                _ = try await client.create(desired, namespace: ns)
                return true
            }
            guard Self.drift(fresh, desired: desired) != nil else { return false }
            var updated = fresh
            updated.rules = desired.rules
            _ = try await client.update(updated)
            return true
        }
    }

    private func writeBinding(_ desired: RoleBinding) async throws -> Bool {
        let client = ctx.client
        return try await retryingConflicts { _ in
            let fresh: RoleBinding
            do {
                fresh = try await client.get(RoleBinding.self, namespace: ns, name: desired.metadata.name ?? "")
            } catch let e as KubeClientError where e.isNotFound {
                _ = try await client.create(desired, namespace: ns)
                return true
            }
            guard Self.drift(fresh, desired: desired) != nil else { return false }
            if fresh.roleRef != desired.roleRef {
                guard ctx.isManaged(fresh.metadata.labels) else {
                    throw RepairRefusal("RoleBinding \(ns)/\(desired.metadata.name ?? "") has roleRef \(fresh.roleRef.kind)/\(fresh.roleRef.name) and is not managed by kubetrace-operator; delete it so the operator can recreate it")
                }
                try await client.delete(RoleBinding.self, namespace: ns, name: desired.metadata.name ?? "",
                                        preconditionUID: fresh.metadata.uid, preconditionResourceVersion: fresh.metadata.resourceVersion)
                _ = try await client.create(desired, namespace: ns)
                return true
            }
            var updated = fresh
            updated.subjects = desired.subjects
            _ = try await client.update(updated)
            return true
        }
    }
}

extension RBACHandler {
    /// A no-op on the actor: returns once the actor is free to run it (the heartbeat).
    func ping() {}
}
