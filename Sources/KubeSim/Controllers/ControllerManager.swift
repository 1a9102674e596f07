import Foundation
import KubeClient
import Logging

/// kube-controller-manager's Deployment, ReplicaSet and garbage-collector controllers, the
/// scheduler for the one node, and the node's registration and heartbeats, running in-process
/// on the devcluster's store. Every write goes through the store's ordinary write paths (as
/// `system:kube-controller-manager`, `system:kube-scheduler` or `system:node:<name>`), so
/// resourceVersions, generations, the status subresource and watches behave as over HTTP.
///
/// The controllers share one work queue fed by the store's change feed (the informers' event
/// handlers: each change enqueues the objects that depend on it) and one worker, so they
/// never race each other.
final class ControllerManager: Sendable {
    /// What one sync is about.
    enum Item: Hashable, Sendable {
        case deployment(ObjectKey)
        case replicaSet(ObjectKey)
        case schedule(ObjectKey)
        /// A dependent whose owners may be gone (`attemptToDeleteItem`).
        case collect(ResourceKind, ObjectKey)
        /// An owner being deleted with the `orphan` or `foregroundDeletion` finalizer.
        case finalize(ResourceKind, ObjectKey)
    }

    let store: ObjectStore
    let node: NodeOptions
    let nodeAddress: String
    let logger: Logger
    let queue = WorkQueue<Item>()
    private let context: ControllerContext
    private let replicaSets: ReplicaSetController
    private let deployments: DeploymentController
    private let scheduler: Scheduler
    private let collector: GarbageCollector
    private let registration: NodeRegistration

    init(store: ObjectStore, node: NodeOptions, nodeAddress: String, logger: Logger, now: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.node = node
        self.nodeAddress = nodeAddress
        self.logger = logger
        context = ControllerContext(store: store, now: now, logger: logger)
        replicaSets = ReplicaSetController(context: context)
        deployments = DeploymentController(context: context)
        scheduler = Scheduler(context: context, nodeName: node.name)
        collector = GarbageCollector(context: context)
        registration = NodeRegistration(context: context, node: node, address: nodeAddress)
    }

    /// Runs until cancelled.
    func run() async {
        // Subscribed before the first listing, so nothing committed in between is missed.
        let changes = store.hub.observe()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.registration.run() }
            group.addTask {
                for await change in changes { await self.enqueue(for: change) }
            }
            group.addTask { await self.promoteDelayed() }
            await enqueueExisting()
            group.addTask { await self.work() }
            await group.next()
            group.cancelAll()
            queue.shutDown()
        }
    }

    // MARK: event handlers

    /// The informers' event handlers: `deployment_controller.go` (`addReplicaSet`,
    /// `updateReplicaSet`: the owning Deployment, or for an orphan every matching one),
    /// `replica_set.go` (`addPod`/`updatePod`/`deletePod`: the owning ReplicaSet, or the matching
    /// ones for an orphan), the scheduler's unassigned-pod queue, and the garbage collector's
    /// graph changes (a deleted owner's dependents; an owned object's owners).
    func enqueue(for change: ObservedChange) async {
        guard let kind = collector.kind(group: change.group, plural: change.resource) else { return }
        let namespace = change.namespace ?? ""
        let key = ObjectKey(namespace: namespace, name: change.name)
        let obj = change.object
        let deleted = change.type == "DELETED"
        switch kind {
        case .pod:
            if !deleted && Scheduler.wants(obj) { queue.add(.schedule(key)) }
            if let ref = obj.metaController {
                if ref.kind == "ReplicaSet" { queue.add(.replicaSet(ObjectKey(namespace: namespace, name: ref.name))) }
            } else if !deleted {
                for rs in await context.list(.replicaSet, namespace: namespace) where LabelSelector(rs["spec"]?["selector"]).matches(obj.metaLabels) {
                    queue.add(.replicaSet(ObjectKey(namespace: namespace, name: rs.metaName)))
                }
            }
        case .replicaSet:
            queue.add(.replicaSet(key))
            if let ref = obj.metaController {
                if ref.kind == "Deployment" { queue.add(.deployment(ObjectKey(namespace: namespace, name: ref.name))) }
            } else if !deleted {
                for d in await context.list(.deployment, namespace: namespace) where LabelSelector(d["spec"]?["selector"]).matches(obj.metaLabels) {
                    queue.add(.deployment(ObjectKey(namespace: namespace, name: d.metaName)))
                }
            }
        case .deployment:
            queue.add(.deployment(key))
        default:
            break
        }
        if deleted {
            for (k, dep) in await collector.dependents(of: obj.metaUID, namespace: kind.namespaced ? namespace : nil) {
                queue.add(.collect(k, ObjectKey(namespace: dep.metaNamespace, name: dep.metaName)))
            }
            for ref in obj.metaOwners {
                guard let ownerKind = collector.kind(apiVersion: ref.apiVersion, kind: ref.kind) else { continue }
                queue.add(.finalize(ownerKind, ObjectKey(namespace: ownerKind.namespaced ? namespace : "", name: ref.name)))
            }
        } else {
            if !obj.metaOwners.isEmpty { queue.add(.collect(kind, key)) }
            if obj.metaDeleting, !Set(obj.metaFinalizers).isDisjoint(with: [GarbageCollector.orphanFinalizer, GarbageCollector.foregroundFinalizer]) {
                queue.add(.finalize(kind, key))
            }
        }
    }

    /// The informers' initial list: everything already stored is looked at once.
    private func enqueueExisting() async {
        for d in await context.list(.deployment, namespace: nil) { queue.add(.deployment(ObjectKey(namespace: d.metaNamespace, name: d.metaName))) }
        for rs in await context.list(.replicaSet, namespace: nil) { queue.add(.replicaSet(ObjectKey(namespace: rs.metaNamespace, name: rs.metaName))) }
        for pod in await context.list(.pod, namespace: nil) where Scheduler.wants(pod) {
            queue.add(.schedule(ObjectKey(namespace: pod.metaNamespace, name: pod.metaName)))
        }
        for k in store.servedKinds where !k.virtual && k != .eventsV1Event {
            for obj in await context.list(k, namespace: nil) where !obj.metaOwners.isEmpty {
                queue.add(.collect(k, ObjectKey(namespace: obj.metaNamespace, name: obj.metaName)))
            }
        }
    }

    // MARK: the worker

    private func work() async {
        let clock = ContinuousClock()
        while let item = await queue.next() {
            do {
                let again = try await sync(item)
                queue.forget(item)
                if let again { queue.add(item, at: clock.now.advanced(by: again)) }
            } catch {
                if error.isNotFound {
                    queue.forget(item)
                    continue
                }
                // Conflicts are routine (someone wrote in between): the next try reads afresh.
                logger.debug("sync failed; retrying", metadata: ["item": "\(item)", "error": "\(error.status.message ?? "")"])
                queue.retry(item, now: clock.now)
            }
        }
    }

    func sync(_ item: Item) async throws(APIError) -> Duration? {
        switch item {
        case .deployment(let key): return try await deployments.sync(key)
        case .replicaSet(let key): return try await replicaSets.sync(key)
        case .schedule(let key): return try await scheduler.sync(key)
        case .collect(let kind, let key):
            try await collector.collect(kind, key)
            return nil
        case .finalize(let kind, let key):
            try await collector.finalize(kind, key)
            return nil
        }
    }

    /// Moves delayed keys (minReadySeconds, progress deadlines, retries) into the queue when due.
    private func promoteDelayed() async {
        let clock = ContinuousClock()
        while !Task.isCancelled {
            queue.promoteDue(now: clock.now)
            await queue.waitForDelayed()
        }
    }
}
