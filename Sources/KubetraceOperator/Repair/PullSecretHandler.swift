import KubetraceFormats
import Foundation
import KubeClient
import KubeRuntime
import Logging

/// Keeps the `kubernetes.io/dockerconfigjson` pull Secret: in the operator's namespace
/// from the last known good credentials, and a copy in every target namespace.
actor PullSecretHandler {
    let ctx: RepairContext
    let scope: NamespaceScope
    /// Mints new pull credentials when the Secret is broken and none are known (the refresh
    /// side's registry credentials).
    let minter: (any PullCredentialMinter)?
    /// The Secret watches' shared stores (read, never copied).
    let secrets: ScopedStores<ManagedSecret>
    private(set) var lastKnownGood: PullCredentials?
    private var limiter = RepairRateLimiter<String>()
    private var lastRepair: [String: Date] = [:]

    init(ctx: RepairContext, scope: NamespaceScope, secrets: ScopedStores<ManagedSecret>, minter: (any PullCredentialMinter)?) {
        self.ctx = ctx
        self.scope = scope
        self.secrets = secrets
        self.minter = minter
    }

    /// The namespace's pull Secret as its watch last saw it.
    private func secret(in namespace: String) -> ManagedSecret? { secrets.get(namespace: namespace, name: name) }

    private var name: String { ctx.names.registrySecret }
    private var home: String { ctx.operatorNamespace }

    /// Takes in a watch event; returns the keys to reconcile.
    func observe(_ event: WatchEvent<ManagedSecret>) -> [RepairKey] {
        switch event {
        case .synced:
            return ([home] + scope.targets).map { .pullSecret(namespace: $0) }
        case .added(let s), .modified(let s):
            // Kept whatever the namespace: one selected by label later has its copy known.
            guard s.meta.name == name else { return [] }
            if s.meta.namespace == home, adopt(s) {
                // New good credentials: every copy follows.
                return ([home] + scope.targets).map { .pullSecret(namespace: $0) }
            }
            return scope.contains(s.meta.namespace) ? [.pullSecret(namespace: s.meta.namespace)] : []
        case .deleted(let s):
            guard s.meta.name == name else { return [] }
            return scope.contains(s.meta.namespace) ? [.pullSecret(namespace: s.meta.namespace)] : []
        }
    }

    /// Adopts a valid, not older source Secret as the last known good credentials.
    private func adopt(_ s: ManagedSecret) -> Bool {
        let view = PullSecretView(s)
        guard PullSecretCheck.judgeSource(view, host: ctx.config.registryHost, lastKnownGood: lastKnownGood) == nil,
              let document = view.document else { return false }
        let fresh = PullCredentials(document: document, expiresAt: view.expiresAt.flatMap(RFC3339.parse))
        guard fresh != lastKnownGood else { return false }
        lastKnownGood = fresh
        return true
    }

    /// Whether the namespace's pull Secret is as it should be, by the watch's view.
    func isHealthy(_ namespace: String) -> Bool {
        problem(namespace, secret(in: namespace).map(PullSecretView.init)) == nil
    }

    /// When this handler last repaired the namespace's Secret.
    func lastRepairTime(_ namespace: String) -> Date? { lastRepair[namespace] }

    private func problem(_ namespace: String, _ view: PullSecretView?) -> PullSecretProblem? {
        if namespace == home {
            return PullSecretCheck.judgeSource(view, host: ctx.config.registryHost, lastKnownGood: lastKnownGood)
        }
        guard let source = lastKnownGood else { return nil }  // copies follow once the source is known
        return PullSecretCheck.judgeCopy(view, source: source)
    }

    func reconcile(namespace: String) async -> RepairOutcome {
        guard scope.contains(namespace), let problem = problem(namespace, secret(in: namespace).map(PullSecretView.init)) else { return .healthy }
        let ref = ObjectReference(apiVersion: "v1", kind: "Secret", namespace: namespace, name: name, uid: secret(in: namespace)?.meta.uid)
        guard let credentials = lastKnownGood else {
            guard let minter else {
                return .failed(RepairReport(regarding: ref, reason: "RepairFailed",
                                            note: "pull Secret \(namespace)/\(name) \(problem) and no good credentials are known to restore it; re-run kubetrace-operator manifest or configure registry credential minting"))
            }
            do {
                try await minter.mintPullCredentials()
                lastRepair[namespace] = Date()
                return .repaired(RepairReport(regarding: ref, reason: "PullSecretRepaired", note: "pull Secret \(problem); wrote freshly minted credentials"))
            } catch {
                return .failed(RepairReport(regarding: ref, reason: "RepairFailed", note: "pull Secret \(namespace)/\(name) \(problem); minting new credentials failed: \(error)"))
            }
        }
        let now = Date()
        let (decision, deferred) = limiter.gate(namespace, now: now, episode: RepairReport(
            regarding: ref, reason: "RepairFailed",
            note: "another writer keeps reverting pull Secret \(namespace)/\(name) (\(problem)); repairs are now spaced out"))
        if let deferred { return deferred }
        do {
            guard try await write(namespace: namespace, credentials: credentials, problem: problem) else { return .healthy }
            limiter.record(namespace, at: Date(), decision: decision)
            limiter.prune(now: now)
            lastRepair[namespace] = Date()
            return .repaired(RepairReport(regarding: ref, reason: "PullSecretRepaired",
                                          note: "pull Secret \(problem); restored from the last known good credentials"))
        } catch {
            return .failed(RepairReport(regarding: ref, reason: "RepairFailed", note: RepairError.describe(error, verb: "repairing", object: "Secret \(namespace)/\(name)")))
        }
    }

    /// Writes the desired Secret; false when a fresh read shows nothing to do.
    /// One request per write, so the Secret is never seen half-written.
    private func write(namespace: String, credentials: PullCredentials, problem: PullSecretProblem) async throws -> Bool {
        let client = ctx.client
        func desired() -> Secret {
            var s = Secret(metadata: ctx.objectMeta(name, namespace: namespace), type: PullSecretCheck.dockerConfigType)
            s.data = [".dockerconfigjson": credentials.document]
            if let e = credentials.expiresAt { s.metadata.annotations = [PullCredentials.expiryAnnotation: RFC3339.format(e)] }
            return s
        }
        return try await retryingConflicts { attempt in
            if problem == .missing, attempt == 1 {
                // The common case, in one round trip.
                _ = try await client.create(desired(), namespace: namespace)
                return true
            }
            let fresh: Secret
            do {
                fresh = try await client.get(Secret.self, namespace: namespace, name: name)
            } catch let e as KubeClientError where e.isNotFound {
                _ = try await client.create(desired(), namespace: namespace)
                return true
            }
            let view = PullSecretView(fresh)
            guard let now = self.problem(namespace, view) else { return false }
            if case .foreignType = now {
                guard view.managed else {
                    throw RepairRefusal("Secret \(namespace)/\(name) has type \(view.type) and is not managed by kubetrace-operator; delete it so the operator can recreate it as kubernetes.io/dockerconfigjson")
                }
                // The type is immutable: replace the operator's own object.
                try await client.delete(Secret.self, namespace: namespace, name: name,
                                        preconditionUID: fresh.metadata.uid, preconditionResourceVersion: fresh.metadata.resourceVersion)
                _ = try await client.create(desired(), namespace: namespace)
                return true
            }
            var updated = fresh
            var data = fresh.data ?? [:]
            data[".dockerconfigjson"] = credentials.document
            updated.data = data
            var annotations = fresh.metadata.annotations ?? [:]
            annotations[PullCredentials.expiryAnnotation] = credentials.expiresAt.map { RFC3339.format($0) }
            updated.metadata.annotations = annotations.isEmpty ? nil : annotations
            _ = try await client.update(updated)
            return true
        }
    }
}

/// A repair the operator will not make (the object is not its own).
struct RepairRefusal: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension PullSecretHandler {
    /// A no-op on the actor (the heartbeat) — except under the test failpoint
    /// `stall-loop-after`, which blocks the actor's thread for good, as a runaway
    /// computation would.
    func ping() {
        guard let after = Failpoints.stall, let readyAt = Failpoints.readyAt else { return }
        if ContinuousClock.now - readyAt >= after {
            ctx.logger.warning("failpoint: stalling the loop", metadata: ["event": "failpoint_stall"])
            while true { usleep(1_000_000) }
        }
    }
}
