public import Foundation
public import KubeClient
public import Logging
import Synchronization

/// Leader election on a `coordination.k8s.io/v1` Lease, with client-go's defaults
/// and rules: acquire when the Lease is free or its holder let it lapse (measured
/// against the local time at which the record was last seen to change, so clock
/// skew between replicas does not matter), renew every retry period, and give up
/// leadership when no renewal succeeded within the renew deadline.
///
/// The rules are client-go's `tools/leaderelection/leaderelection.go`
/// (`tryAcquireOrRenew`, `renew`, `release`; `observedTime` is the local time the
/// record last changed). Time comes from the `RuntimeClock` and jitter from the
/// `RandomSource`, so a test can run an election in virtual time.
public final class LeaderElector: Sendable {
    public struct Timing: Sendable {
        public var leaseDuration: TimeInterval = 15
        public var renewDeadline: TimeInterval = 10
        public var retryPeriod: TimeInterval = 2
        public init() {}
    }

    let client: KubeClient
    let namespace: String
    let name: String
    public let identity: String
    let timing: Timing
    let logger: Logger
    let clock: RuntimeClock
    let random: RandomSource
    /// Labels a Lease this elector creates carries (who manages it).
    let leaseLabels: [String: String]
    /// Called with the new state each time leadership is gained or lost (for a metric).
    let onChange: @Sendable (_ leading: Bool) -> Void
    private let state = Mutex<(leading: Bool, observed: Lease.Spec?, observedAt: Duration?, healthy: Bool)>((false, nil, nil, true))
    private let stopped = Atomic<Bool>(false)
    private let wakeup = Wakeup()

    /// Annotations the holder stamps on the Lease at each acquire and renew (the
    /// watch-health record `status` reads); no extra writes.
    let annotations: @Sendable () -> [String: String]

    public init(client: KubeClient, namespace: String, name: String, identity: String, timing: Timing = Timing(), logger: Logger,
                leaseLabels: [String: String] = [:], clock: RuntimeClock = .system, random: RandomSource = .system,
                annotations: @escaping @Sendable () -> [String: String] = { [:] },
                onChange: @escaping @Sendable (_ leading: Bool) -> Void = { _ in }) {
        self.annotations = annotations
        self.leaseLabels = leaseLabels
        self.clock = clock
        self.random = random
        self.onChange = onChange
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self.logger = logger
    }

    public var isLeader: Bool { state.withLock { $0.leading } }
    /// False while the Lease cannot be read or written at all (for readiness).
    public var isHealthy: Bool { state.withLock { $0.healthy } }
    /// The current holder as last seen.
    public var holder: String? { state.withLock { $0.observed?.holderIdentity } }

    /// Runs `whileLeading` each time leadership is acquired and cancels it as soon as
    /// leadership is lost; returns when cancelled, releasing the Lease if held.
    public func run(whileLeading: @escaping @Sendable () async throws -> Void) async throws {
        while !Task.isCancelled, !stopped.load(ordering: .acquiring) {
            guard await acquire() else { break }
            setLeading(true)
            logger.info("became the leader", metadata: ["event": "leader_acquired", "lease": "\(namespace)/\(name)", "identity": "\(identity)"])
            let lost = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await whileLeading(); return false }
                group.addTask { await self.renewUntilLost() }
                let first = try await group.next() ?? false
                group.cancelAll()
                // The work must have stopped before anyone else may lead.
                while let _ = try? await group.next() {}
                return first
            }
            setLeading(false)
            if lost {
                logger.warning("lost the leadership; handlers stopped", metadata: ["event": "leader_lost", "lease": "\(namespace)/\(name)"])
            } else {
                break
            }
        }
    }

    private func setLeading(_ leading: Bool) {
        state.withLock { $0.leading = leading }
        onChange(leading)
    }

    /// Stops trying to acquire (graceful shutdown of a standby); callable from any context.
    public func stop() {
        stopped.store(true, ordering: .releasing)
        wakeup.poke()
    }

    /// Retries every retry period (with jitter) until the Lease is ours; false when cancelled or stopped.
    private func acquire() async -> Bool {
        while !Task.isCancelled, !stopped.load(ordering: .acquiring) {
            if await tryAcquireOrRenew() { return true }
            // client-go's JitterUntil with a factor of 1.2 (wait.Jitter).
            let jittered = timing.retryPeriod * (1 + 0.2 * random.unit())
            _ = await wakeup.wait(until: clock.date.addingTimeInterval(jittered), clock: clock)
        }
        return false
    }

    /// Renews every retry period; returns true once renewal failed for the whole renew deadline.
    private func renewUntilLost() async -> Bool {
        var lastRenew = clock.elapsed
        while !Task.isCancelled {
            try? await clock.sleep(for: .seconds(timing.retryPeriod))
            if Task.isCancelled { return false }
            if await tryAcquireOrRenew() {
                lastRenew = clock.elapsed
            } else if clock.elapsed - lastRenew >= .seconds(timing.renewDeadline) {
                return true
            } else if holder != identity && holder?.isEmpty == false {
                return true  // someone else holds it now
            }
        }
        return false
    }

    /// One attempt; true when this process holds the Lease afterwards.
    func tryAcquireOrRenew() async -> Bool {
        let now = clock.date
        let micro = RFC3339.formatMicro(now)
        do {
            let lease: Lease
            do {
                lease = try await client.get(Lease.self, namespace: namespace, name: name)
            } catch let e as KubeClientError where e.isNotFound {
                let spec = Lease.Spec(holderIdentity: identity, leaseDurationSeconds: Int(timing.leaseDuration), acquireTime: micro, renewTime: micro, leaseTransitions: 0)
                var meta = ObjectMeta(name: name, namespace: namespace)
                if !leaseLabels.isEmpty { meta.labels = leaseLabels }
                let extra = annotations()
                if !extra.isEmpty { meta.annotations = extra }
                let created = try await client.create(Lease(metadata: meta, spec: spec), namespace: namespace)
                observe(created.spec)
                return true
            }
            let spec = lease.spec ?? Lease.Spec()
            observe(spec)
            let held = spec.holderIdentity.map { !$0.isEmpty } ?? false
            let mine = spec.holderIdentity == identity
            if held, !mine {
                let duration = TimeInterval(spec.leaseDurationSeconds ?? Int(timing.leaseDuration))
                let now = clock.elapsed
                let seenAt = state.withLock { $0.observedAt } ?? now
                if now - seenAt < .seconds(duration) { return false }
            }
            var updated = lease
            var next = spec
            next.holderIdentity = identity
            next.leaseDurationSeconds = Int(timing.leaseDuration)
            next.renewTime = micro
            if !mine {
                next.acquireTime = micro
                next.leaseTransitions = (spec.leaseTransitions ?? 0) + (held ? 1 : 0)
            }
            updated.spec = next
            let extra = annotations()
            if !extra.isEmpty { updated.metadata.annotations = (updated.metadata.annotations ?? [:]).merging(extra) { _, new in new } }
            let written = try await client.update(updated)
            observe(written.spec)
            return true
        } catch {
            state.withLock { $0.healthy = false }
            if !(error is CancellationError), (error as? KubeClientError)?.isConflict != true {
                logger.debug("lease attempt failed", metadata: ["lease": "\(namespace)/\(name)", "error": "\(error)"])
            }
            return false
        }
    }

    /// Remembers the record and, when it changed, the local time it was seen.
    private func observe(_ spec: Lease.Spec?) {
        state.withLock { s in
            s.healthy = true
            if s.observed != spec || s.observedAt == nil {
                s.observed = spec
                s.observedAt = clock.elapsed
            }
        }
    }

    /// On graceful exit: hand the Lease over at once instead of after its duration.
    /// Throws when the Lease could not be handed over; another replica then takes over once it
    /// lapses (client-go's `release`, which reports the failure to its caller the same way).
    public func release() async throws {
        guard holder == identity else { return }
        var lease = try await client.get(Lease.self, namespace: namespace, name: name)
        guard lease.spec?.holderIdentity == identity else { return }
        lease.spec?.holderIdentity = ""
        lease.spec?.leaseDurationSeconds = 1
        lease.spec?.renewTime = RFC3339.formatMicro(clock.date)
        _ = try await client.update(lease)
        observe(lease.spec)
        logger.info("released the lease", metadata: ["event": "leader_released", "lease": "\(namespace)/\(name)"])
    }
}
