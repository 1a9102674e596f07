import KubetraceFormats
import Foundation
public import KubeClient
public import KubeRuntime
public import Logging
import AsyncAlgorithms
import Metrics
import Synchronization

/// Which watchers have delivered their initial state (readiness, `READY=1`).
public final class SyncTracker: Sendable {
    private let state = Mutex<(expected: Set<String>, synced: Set<String>, waiters: [CheckedContinuation<Void, Never>])>(([], [], []))

    public init() {}

    func expect(_ name: String) { state.withLock { _ = $0.expected.insert(name) } }

    func markSynced(_ name: String) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.synced.insert(name)
            guard s.expected.isSubset(of: s.synced) else { return [] }
            defer { s.waiters = [] }
            return s.waiters
        }
        ready.forEach { $0.resume() }
    }

    public var allSynced: Bool { state.withLock { !$0.expected.isEmpty && $0.expected.isSubset(of: $0.synced) } }
    public var summary: (synced: Int, expected: Int) { state.withLock { ($0.synced.intersection($0.expected).count, $0.expected.count) } }

    /// Returns once every expected watcher has synced (or at cancellation).
    public func waitUntilSynced() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if Task.isCancelled || (!s.expected.isEmpty && s.expected.isSubset(of: s.synced)) { return true }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in defer { s.waiters = [] }; return s.waiters }
            waiters.forEach { $0.resume() }
        }
    }
}

/// The repair side of the operator: watches feed the handler actors' state at all
/// times (a standby replica stays warm); the workers that write run only while leading.
public final class RepairService: Sendable {
    let ctx: RepairContext
    let scope: NamespaceScope
    let queue = WorkQueue<RepairKey>()
    let pullSecrets: PullSecretHandler
    let accounts: ServiceAccountHandler
    let rbac: RBACHandler
    let pods: StuckPodHandler
    /// Events about repairs, written off the workers' path (aggregated, bounded).
    let events: EventRecorder
    /// This service made its recorder, so its workers run it (alone, as in tests); otherwise its owner does.
    let ownsEvents: Bool
    /// The operator namespace's Secrets as this side's watch sees them, for the refresh side.
    let secretFeed: SecretFeed
    /// The reflectors' shared stores, which the handlers read.
    let secretStores = ScopedStores<ManagedSecret>()
    let accountStores = ScopedStores<ServiceAccountProjection>()
    public let sync = SyncTracker()
    /// Per watcher, for metrics and status.
    let watchStatsByName = Mutex<[String: WatchStats]>([:])
    public var watchStats: [String: WatchStats] { watchStatsByName.withLock { $0 } }
    let watchIdleTimeout: Duration
    private let failures = Mutex(FailureBackoff<RepairKey>())
    /// Reconciles running at once; keys are exclusive, so this bounds API load only.
    let concurrency = 4

    public convenience init(client: KubeClient, configuration: RepairConfiguration, logger: Logger, watchIdleTimeout: Duration = .seconds(90),
                            minter: (any PullCredentialMinter)? = nil) {
        self.init(client: client, configuration: configuration, logger: logger, watchIdleTimeout: watchIdleTimeout, minter: minter,
                  secretFeed: SecretFeed(namespace: configuration.names.namespace), events: nil)
    }

    /// `secretFeed` gets every event of the operator namespace's Secret watch (for the refresh side);
    /// with `events`, Events go to that recorder, which its owner runs (the daemon's one recorder).
    init(client: KubeClient, configuration: RepairConfiguration, logger: Logger, watchIdleTimeout: Duration = .seconds(90),
         minter: (any PullCredentialMinter)?, secretFeed: SecretFeed, events: EventRecorder?) {
        self.secretFeed = secretFeed
        self.ownsEvents = events == nil
        ctx = RepairContext(client: client, config: configuration, logger: logger)
        scope = NamespaceScope(operatorNamespace: configuration.names.namespace, targets: configuration.targetNamespaces)
        pullSecrets = PullSecretHandler(ctx: ctx, scope: scope, secrets: secretStores, minter: minter)
        accounts = ServiceAccountHandler(ctx: ctx, scope: scope, accounts: accountStores)
        rbac = RBACHandler(ctx: ctx)
        pods = StuckPodHandler(ctx: ctx, scope: scope, pullSecrets: pullSecrets, accounts: accounts)
        self.events = events ?? EventRecorder(client: client, reporter: .kubetraceOperator(instance: configuration.instance), logger: logger)
        self.watchIdleTimeout = watchIdleTimeout
    }

    // MARK: watches → handlers

    /// Runs every watcher until cancelled.
    public func runWatches() async throws {
        let ns = ctx.operatorNamespace
        let names = ctx.names
        let secretField = "metadata.name=\(names.registrySecret)"
        // Where Secrets, ServiceAccounts and Pods are watched: per namespace for a
        // list (namespaced permissions suffice), cluster-wide for a label selector.
        var scopes: [String?] = [ns]
        switch ctx.config.targetNamespaces {
        case .list(let list)?: scopes += list.filter { $0 != ns }.map { Optional($0) }
        case .selector?: scopes = [nil]
        case nil: break
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for s in scopes {
                let where_ = s ?? "all"
                // The operator namespace's Secrets are watched whole, once: the pull Secret for the
                // repair, and (through `secretFeed`) the kubeconfig and operator Secrets for the refresh.
                let home = s == ns
                let secrets = watch(ManagedSecret.self, "secrets@\(where_)", namespace: s, fieldSelector: home ? nil : secretField,
                                    stores: secretStores, in: &group) {
                    if home { self.secretFeed.publish($0) }
                    return await self.pullSecrets.observe($0) + (await self.stuckPods(affectedBy: $0, named: names.registrySecret))
                }
                if home { secretFeed.attach(secrets) }
                watch(ServiceAccountProjection.self, "serviceaccounts@\(where_)", namespace: s, stores: accountStores, in: &group) {
                    await self.accounts.observe($0) + (await self.stuckPods(affectedBy: $0))
                }
                watch(PodProjection.self, "pods@\(where_)", namespace: s, in: &group) { await self.pods.observe($0) }
            }
            if !scopes.contains(ns) {
                // Cluster-wide scope: the pull Secrets come from the watch above; the operator
                // namespace's other Secrets, for the refresh, from this one.
                // Not in `secretStores`: the handlers read the store of the watch that drives them.
                secretFeed.attach(watch(ManagedSecret.self, "secrets@\(ns)", namespace: ns, in: &group) { self.secretFeed.publish($0); return [] })
            }
            watch(RawProjection<Role>.self, "roles@\(ns)", namespace: ns, fieldSelector: "metadata.name=\(names.readOnlyRole)", in: &group) { await self.rbac.observe(role: $0) }
            watch(RawProjection<RoleBinding>.self, "rolebindings@\(ns)", namespace: ns, fieldSelector: "metadata.name=\(names.readOnlyBinding)", in: &group) { await self.rbac.observe(binding: $0) }
            if case .selector(let selector)? = ctx.config.targetNamespaces {
                watch(RawProjection<Namespace>.self, "namespaces", namespace: nil, labelSelector: selector, in: &group) { await self.namespaceChanged($0) }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Starts a reflector and its consumer in `group`; returns the reflector's shared store.
    @discardableResult
    private func watch<P: Projection>(_ type: P.Type, _ name: String, namespace: String?, fieldSelector: String? = nil, labelSelector: String? = nil,
                                      stores: ScopedStores<P>? = nil, in group: inout ThrowingTaskGroup<Void, any Error>,
                                      handle: @escaping @Sendable (WatchEvent<P>) async -> [RepairKey]) -> ReflectorStore<P> {
        var options = ReflectorOptions.managed(namespace: namespace)
        options.fieldSelector = fieldSelector
        options.labelSelector = labelSelector
        options.idleTimeout = watchIdleTimeout
        let reflector = Reflector<P>(client: ctx.client, options: options, logger: ctx.logger)
        watchStatsByName.withLock { $0[name] = reflector.stats }
        stores?.add(reflector.store, namespace: namespace)
        sync.expect(name)
        let channel = AsyncChannel<[WatchEvent<P>]>()
        group.addTask { [logger = ctx.logger] in
            try await reflector.run(into: channel)
            // A reflector returns only when cancelled; anything else would silently stop repairs.
            if !Task.isCancelled {
                logger.critical("the \(name) watch stopped unexpectedly", metadata: ["event": "watch_stopped"])
                throw WatchStopped(name: name)
            }
        }
        group.addTask {
            for await batch in channel {
                for event in batch {
                    for key in await handle(event) { await self.queue.add(key) }
                    if case .synced = event { self.sync.markSynced(name) }
                }
            }
        }
        return reflector.store
    }

    /// A stuck Pod waits on its namespace's plumbing (`RepairOutcome.waiting`): a change to the
    /// pull Secret or to a ServiceAccount there brings the namespace's stuck Pods back
    /// (with `name`, only a change to the object of that name does).
    private func stuckPods<P: Projection>(affectedBy event: WatchEvent<P>, named name: String? = nil) async -> [RepairKey] {
        switch event {
        case .added(let o), .modified(let o), .deleted(let o):
            if let name, o.meta.name != name { return [] }
            return await pods.keys(in: o.meta.namespace)
        case .synced: return []
        }
    }

    /// Selector targets: a namespace came into scope or left it.
    private func namespaceChanged(_ event: WatchEvent<RawProjection<Namespace>>) async -> [RepairKey] {
        switch event {
        case .synced: return []
        case .added(let n), .modified(let n):
            guard scope.set(n.meta.name, included: !n.meta.deleting) , !n.meta.deleting else { return [] }
            ctx.logger.info("target namespace selected", metadata: ["event": "target_namespace_added", "k8s.namespace": "\(n.meta.name)"])
            return [.pullSecret(namespace: n.meta.name)]
                + ctx.config.targetServiceAccounts.map { .serviceAccount(namespace: n.meta.name, name: $0) }
                + (await pods.keys(in: n.meta.name))
        case .deleted(let n):
            scope.set(n.meta.name, included: false)
            return []
        }
    }

    /// Distinct kinds watched (for `STATUS=`).
    public var watchedKinds: Int { ctx.config.targetNamespaces.map { if case .selector = $0 { 6 } else { 5 } } ?? 5 }

    /// One round trip through the work queue and every handler actor (the loop's heartbeat).
    public func heartbeat() async {
        await queue.ping()
        await pullSecrets.ping()
        await accounts.ping()
        await rbac.ping()
        await pods.ping()
    }

    // MARK: workers (leader only)

    /// Reconciles queued keys until cancelled or until `drain()`; in-flight
    /// reconciles finish before it returns.
    public func runWorkers() async {
        // Judging needs the watches' view: an empty cache would read as "everything deleted".
        await sync.waitUntilSynced()
        if Task.isCancelled { return }
        // Everything is looked at again on (re)gaining leadership.
        await enqueueAll()
        guard ownsEvents else { await reconcileQueued(); return }
        await withTaskGroup(of: Void.self) { recorder in
            recorder.addTask { await self.events.run() }
            await reconcileQueued()
            // Drained (not cancelled): the last reconciles' Events are written before the workers return.
            if !Task.isCancelled { await events.waitUntilWritten() }
            recorder.cancelAll()
        }
    }

    private func reconcileQueued() async {
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            while let key = await queue.next() {
                if running >= concurrency {
                    await group.next()
                    running -= 1
                }
                running += 1
                group.addTask {
                    await self.reconcile(key)
                    await self.queue.done(key)
                }
            }
        }
    }

    /// Stops taking new work; `runWorkers` returns once in-flight reconciles end.
    /// Synchronous, for graceful-shutdown handlers.
    public func drain() { queue.shutDown() }

    private func enqueueAll() async {
        var keys: [RepairKey] = [.role, .roleBinding]
        for ns in [ctx.operatorNamespace] + scope.targets {
            keys.append(.pullSecret(namespace: ns))
            keys += await pods.keys(in: ns)
        }
        keys.append(.serviceAccount(namespace: ctx.operatorNamespace, name: ctx.names.readOnlyServiceAccount))
        for ns in scope.targets { keys += ctx.config.targetServiceAccounts.map { .serviceAccount(namespace: ns, name: $0) } }
        for key in keys { await queue.add(key) }
    }

    func reconcile(_ key: RepairKey) async {
        let outcome: RepairOutcome
        switch key {
        case .pullSecret(let ns): outcome = await pullSecrets.reconcile(namespace: ns)
        case .serviceAccount(let ns, let name): outcome = await accounts.reconcile(namespace: ns, name: name)
        case .role, .roleBinding: outcome = await rbac.reconcile(key)
        case .pod(let ns, let name): outcome = await pods.reconcile(namespace: ns, name: name)
        }
        await report(key, outcome)
    }

    private func report(_ key: RepairKey, _ outcome: RepairOutcome) async {
        let kind = Self.kindLabel(key)
        switch outcome {
        case .healthy:
            failures.withLock { $0.succeeded(key) }
        case .repaired(let r):
            failures.withLock { $0.succeeded(key) }
            Counter(label: "kubetrace_repairs_total", dimensions: [("kind", kind), ("outcome", "repaired")]).increment()
            events.record(r.event(warning: false))
            ctx.logger.info("\(r.note)", metadata: ["event": "\(Self.snake(r.reason))", "object": "\(r.regarding.namespace ?? "")/\(r.regarding.name ?? "")", "kind": "\(r.regarding.kind ?? "")"])
        case .throttled(let until, let episode):
            await queue.add(key, at: until)
            Counter(label: "kubetrace_repairs_total", dimensions: [("kind", kind), ("outcome", "throttled")]).increment()
            if let episode {
                events.record(episode.event(warning: true))
                ctx.logger.warning("\(episode.note)", metadata: ["event": "repair_throttled", "object": "\(episode.regarding.namespace ?? "")/\(episode.regarding.name ?? "")"])
            }
        case .waiting(let keys):
            // The keys this one depends on; their watches bring it back once they change. A key
            // in failure backoff keeps its retry time (a Pod's churn must not hurry it).
            for k in keys where failures.withLock({ $0.failureCount(k) }) == 0 { await queue.add(k) }
            ctx.logger.debug("waiting on other repairs", metadata: ["key": "\(key)", "waiting_on": "\(keys.map(\.description).joined(separator: ", "))"])
        case .failed(let r):
            let (delay, count) = failures.withLock { f in (f.failed(key), f.failureCount(key)) }
            await queue.add(key, at: Date().addingTimeInterval(delay))
            Counter(label: "kubetrace_repairs_total", dimensions: [("kind", kind), ("outcome", "failed")]).increment()
            // One line per attempt: the backoff (1 s … 5 min) limits the rate.
            events.record(r.event(warning: true))
            // The stuck Pods waiting on this repair say why on themselves too (`kubectl describe pod`).
            for pod in await pods.waiting(on: key) {
                events.record(RepairReport(regarding: pod, reason: "RepairFailed",
                                           note: "Pod cannot pull from \(ctx.config.registryHost): \(r.note)").event(warning: true))
            }
            ctx.logger.warning("\(r.note)", metadata: ["event": "repair_failed", "object": "\(r.regarding.namespace ?? "")/\(r.regarding.name ?? "")",
                                                       "kind": "\(r.regarding.kind ?? "")", "attempt": "\(count)", "retry_in": "\(Int(delay))s"])
        }
    }

    /// Every value `kindLabel` gives, so the metrics can be present at zero.
    static let kindLabels = ["pull_secret", "service_account", "role", "role_binding", "pod"]

    static func kindLabel(_ key: RepairKey) -> String {
        switch key {
        case .pullSecret: "pull_secret"
        case .serviceAccount: "service_account"
        case .role: "role"
        case .roleBinding: "role_binding"
        case .pod: "pod"
        }
    }

    /// `PullSecretRepaired` → `pull_secret_repaired`, `RBACRepaired` → `rbac_repaired`:
    /// the journal's KUBETRACE_EVENT style.
    static func snake(_ reason: String) -> String {
        let chars = Array(reason)
        var out = ""
        for (i, c) in chars.enumerated() {
            if c.isUppercase, i > 0 {
                let afterLower = chars[i - 1].isLowercase
                let acronymEnd = chars[i - 1].isUppercase && i + 1 < chars.count && chars[i + 1].isLowercase
                if afterLower || acronymEnd { out.append("_") }
            }
            out.append(contentsOf: c.lowercased())
        }
        return out
    }
}

/// A watch ended without being cancelled: the process exits non-zero so its supervisor restarts it.
struct WatchStopped: Error, CustomStringConvertible {
    var name: String
    var description: String { "the \(name) watch stopped unexpectedly" }
}
