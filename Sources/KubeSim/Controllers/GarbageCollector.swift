import Foundation
import KubeClient
import Logging

/// kube-controller-manager's garbage collector (kubernetes `pkg/controller/garbagecollector/
/// garbagecollector.go`), without its dependency graph: the store is small and read directly.
///
/// - `collect` is `attemptToDeleteItem`: an object whose owners are all gone (absent, or present
///   under another uid) is deleted, with the propagation its own finalizers ask for; one with
///   some owners alive loses only its dangling references.
/// - `finalize` handles owners being deleted with the GC finalizers: `orphan`
///   (`orphanDependents`: the dependents lose their reference to it, then the finalizer goes)
///   and `foregroundDeletion` (`processDeletingDependentsItem`: dependents are deleted first;
///   the finalizer goes once none is left).
///
/// The store turns no `propagationPolicy` into these finalizers yet (k8s.io/apiserver
/// `registry/generic/registry/store.go` `deletionFinalizersForGarbageCollection`), so only
/// objects that carry them (set by a client) are orphaned or deleted in the foreground; every
/// other deletion is background, kubectl's default.
struct GarbageCollector: Sendable {
    let context: ControllerContext
    private var identity: ControllerContext.Identity { ControllerContext.controllerManager }

    static let orphanFinalizer = "orphan"
    static let foregroundFinalizer = "foregroundDeletion"

    /// The kind an owner reference names (`apiVersion` + `kind`), among those served.
    func kind(apiVersion: String, kind: String) -> ResourceKind? {
        context.store.servedKinds.first { $0.apiVersion == apiVersion && $0.kind == kind && !$0.virtual }
    }

    func kind(group: String, plural: String) -> ResourceKind? {
        context.store.servedKinds.first { $0.group == group && $0.plural == plural && !$0.virtual }
    }

    /// `attemptToDeleteItem`.
    func collect(_ kind: ResourceKind, _ key: ObjectKey) async throws(APIError) {
        guard let obj = try? await context.store.get(kind, namespace: kind.namespaced ? key.namespace : nil, name: key.name), !obj.metaDeleting else { return }
        let owners = obj.metaOwners
        guard !owners.isEmpty else { return }
        var solid: [OwnerRef] = [], dangling: [OwnerRef] = [], waiting: [OwnerRef] = []
        for ref in owners {
            guard let ownerKind = self.kind(apiVersion: ref.apiVersion, kind: ref.kind) else {
                // An unknown kind cannot be looked up: kept, as the real collector keeps retrying.
                solid.append(ref)
                continue
            }
            // A namespaced dependent's owners are in its namespace; cluster-scoped ones anywhere.
            let owner = try? await context.store.get(ownerKind, namespace: ownerKind.namespaced ? key.namespace : nil, name: ref.name)
            guard let owner, owner.metaUID == ref.uid else {
                dangling.append(ref)
                continue
            }
            if owner.metaDeleting && owner.metaFinalizers.contains(Self.foregroundFinalizer) && ref.blockOwnerDeletion {
                waiting.append(ref)
            } else {
                solid.append(ref)
            }
        }
        if !solid.isEmpty {
            guard !dangling.isEmpty || !waiting.isEmpty else { return }
            // Only the references to owners that are gone (or waiting on it) are removed.
            let drop = Set((dangling + waiting).map(\.uid))
            var updated = obj
            let rest = owners.filter { !drop.contains($0.uid) }
            updated.setMetaField("ownerReferences", .array(rest.map(\.json)))
            _ = try await context.store.update(kind, namespace: kind.namespaced ? key.namespace : nil, name: key.name, body: updated, options: identity.options())
            return
        }
        context.logger.debug("deleting an object whose owners are gone",
                             metadata: ["k8s.kind": "\(kind.kind)", "k8s.namespace": "\(key.namespace)", "k8s.name": "\(key.name)"])
        do {
            _ = try await context.store.delete(kind, namespace: kind.namespaced ? key.namespace : nil, name: key.name, preconditionUID: obj.metaUID,
                                               preconditionRV: nil, user: identity.options().user)
        } catch where error.isNotFound || error.isConflict {
            // Gone already, or replaced by a new object of the same name.
        }
    }

    /// The objects that name `uid` as an owner (the graph's `dependents`): a scan, which the
    /// devcluster's few thousand objects make cheap enough to do per deletion.
    func dependents(of uid: String, namespace: String?) async -> [(ResourceKind, JSONValue)] {
        guard !uid.isEmpty else { return [] }
        var out: [(ResourceKind, JSONValue)] = []
        for k in context.store.servedKinds where !k.virtual && k != .eventsV1Event {
            for (key, obj) in await context.store.stored(k) where (!k.namespaced || namespace == nil || key.namespace == namespace)
                && obj.metaOwners.contains(where: { $0.uid == uid }) {
                out.append((k, obj))
            }
        }
        return out
    }

    /// An owner being deleted with `orphan` or `foregroundDeletion`.
    func finalize(_ kind: ResourceKind, _ key: ObjectKey) async throws(APIError) {
        let ns: String? = kind.namespaced ? key.namespace : nil
        guard let owner = try? await context.store.get(kind, namespace: ns, name: key.name), owner.metaDeleting else { return }
        let finalizers = owner.metaFinalizers
        if finalizers.contains(Self.orphanFinalizer) {
            for (k, dep) in await dependents(of: owner.metaUID, namespace: ns) {
                var updated = dep
                let rest = dep.metaOwners.filter { $0.uid != owner.metaUID }
                updated.setMetaField("ownerReferences", rest.isEmpty ? nil : .array(rest.map(\.json)))
                do {
                    _ = try await context.store.update(k, namespace: k.namespaced ? dep.metaNamespace : nil, name: dep.metaName, body: updated, options: identity.options())
                } catch where error.isNotFound {}
            }
            try await removeFinalizer(Self.orphanFinalizer, from: owner, kind: kind)
            return
        }
        if finalizers.contains(Self.foregroundFinalizer) {
            let deps = await dependents(of: owner.metaUID, namespace: ns)
            if deps.isEmpty {
                try await removeFinalizer(Self.foregroundFinalizer, from: owner, kind: kind)
                return
            }
            for (k, dep) in deps where !dep.metaDeleting {
                do {
                    _ = try await context.store.delete(k, namespace: k.namespaced ? dep.metaNamespace : nil, name: dep.metaName, preconditionUID: dep.metaUID,
                                                       preconditionRV: nil, user: identity.options().user)
                } catch where error.isNotFound || error.isConflict {}
            }
            // The dependents' deletions bring the owner back (`ControllerManager` enqueues owners of deleted objects).
        }
    }

    private func removeFinalizer(_ name: String, from owner: JSONValue, kind: ResourceKind) async throws(APIError) {
        var updated = owner
        let rest = owner.metaFinalizers.filter { $0 != name }
        updated.setMetaField("finalizers", rest.isEmpty ? nil : .array(rest.map { .string($0) }))
        do {
            _ = try await context.store.update(kind, namespace: kind.namespaced ? owner.metaNamespace : nil, name: owner.metaName, body: updated, options: identity.options())
        } catch where error.isNotFound {}
    }
}
