public import Foundation
public import KubeRuntime
import KubeClient
public import Logging
import Metrics
import Synchronization

/// What one refresh learned.
public struct RefreshResult: Sendable {
    public var issuedAt: Date?
    public var expiresAt: Date?
}

/// Refreshes one credential on its deadline, forever: one refresh in flight at
/// a time, failures retried with capped backoff (always before expiry), a
/// warning as expiry nears, and an early wake-up when someone else changed it. Time and
/// jitter are inputs (`clock`, `random`), so a test runs the schedule in virtual time.
public actor CredentialLoop {
    public nonisolated let name: String
    let policy: RefreshPolicy
    let refresh: @Sendable () async throws -> RefreshResult
    let current: @Sendable () async -> RefreshResult?
    let logger: Logger
    let onEvent: @Sendable (_ reason: String, _ note: String, _ warning: Bool) async -> Void
    /// Told whether the credential is good and when it is next refreshed (`STATUS=`).
    let report: @Sendable (_ ok: Bool, _ next: Date?) -> Void
    nonisolated let wakeup = Wakeup()
    let clock: RuntimeClock
    let random: RandomSource
    private var state = RefreshResult()
    private var failures = 0
    private var warned = false
    private let expiryGauge: Gauge
    /// The expiry as a Unix time: alerts compare it with `time()` between refreshes.
    private let expiryTimestamp: Gauge
    private let success: Counter
    private let failure: Counter

    public init(name: String, policy: RefreshPolicy, logger: Logger, clock: RuntimeClock = .system, random: RandomSource = .system,
                current: @escaping @Sendable () async -> RefreshResult?,
                refresh: @escaping @Sendable () async throws -> RefreshResult,
                onEvent: @escaping @Sendable (_ reason: String, _ note: String, _ warning: Bool) async -> Void = { _, _, _ in },
                report: @escaping @Sendable (_ ok: Bool, _ next: Date?) -> Void = { _, _ in }) {
        self.name = name
        self.report = report
        self.policy = policy
        self.clock = clock
        self.random = random
        self.refresh = refresh
        self.current = current
        self.onEvent = onEvent
        var l = logger
        l[metadataKey: "credential"] = "\(name)"
        self.logger = l
        expiryGauge = Gauge(label: "kubetrace_credential_expiry_seconds", dimensions: [("credential", name)])
        expiryTimestamp = Gauge(label: "kubetrace_credential_expiry_timestamp_seconds", dimensions: [("credential", name)])
        Gauge(label: "kubetrace_credential_safety_margin_seconds", dimensions: [("credential", name)]).record(policy.safetyMargin)
        success = Counter(label: "kubetrace_credential_refreshes_total", dimensions: [("credential", name), ("outcome", "success")])
        failure = Counter(label: "kubetrace_credential_refreshes_total", dimensions: [("credential", name), ("outcome", "failure")])
    }

    private func recordExpiry() {
        guard let e = state.expiresAt else { return }
        expiryGauge.record(e.timeIntervalSince(clock.date))
        expiryTimestamp.record(e.timeIntervalSince1970)
    }

    /// An outside writer changed the credential: re-read it and reschedule.
    public nonisolated func externalChange() { wakeup.poke() }

    public func run() async {
        if let known = await current() { state = known; recordExpiry() }
        let start = clock.date
        var next = state.expiresAt == nil ? start : policy.nextRefresh(issuedAt: state.issuedAt, expiresAt: state.expiresAt, now: start, random: random.unit())
        report(state.expiresAt.map { $0 > start } ?? false, next)
        while !Task.isCancelled {
            let reason = await wakeup.wait(until: next, clock: clock)
            if Task.isCancelled { return }
            let now = clock.date
            if reason == .poked, let known = await current() {
                // Woken early: someone else wrote the credential. Adopt it and reschedule.
                state = known
                failures = 0
                recordExpiry()
                next = policy.nextRefresh(issuedAt: known.issuedAt, expiresAt: known.expiresAt, now: now, random: random.unit())
                report(known.expiresAt.map { $0 > now } ?? false, next)
                logger.info("credential changed by another writer; rescheduled", metadata: ["next_refresh_in": "\(Self.human(next.timeIntervalSince(now)))"])
                continue
            }
            next = await refreshOnce()
        }
    }

    /// A refresh under way: concurrent callers share it (actors are reentrant at `await`).
    private var inFlight: Task<Date, Never>?
    /// How many times `refreshOnce` was called (tests observe callers arriving).
    private(set) var callers = 0

    /// One refresh, single flight; returns when to run next.
    public func refreshOnce() async -> Date {
        callers += 1
        if let inFlight { return await inFlight.value }
        // Unstructured so that callers arriving meanwhile can await the same run; it is awaited here and cleared.
        let task = Task { await self.performRefresh() }
        inFlight = task
        defer { inFlight = nil }
        return await task.value
    }

    private func performRefresh() async -> Date {
        do {
            let result = try await refresh()
            let now = clock.date
            state = RefreshResult(issuedAt: result.issuedAt ?? now, expiresAt: result.expiresAt)
            failures = 0
            warned = false
            success.increment()
            let next = policy.nextRefresh(issuedAt: state.issuedAt, expiresAt: state.expiresAt, now: now, random: random.unit())
            let expiresIn = state.expiresAt.map { Self.human($0.timeIntervalSince(now)) } ?? "unknown"
            if let e = state.expiresAt { expiryGauge.record(e.timeIntervalSince(now)); expiryTimestamp.record(e.timeIntervalSince1970) }
            report(true, next)
            // Constant messages, the facts as metadata (the logger carries `credential`).
            logger.info("credential refreshed", metadata: [
                "event": "token_refreshed", "expires_in": "\(expiresIn)", "next_refresh_in": "\(Self.human(next.timeIntervalSince(now)))"])
            await onEvent("TokenRefreshed", "\(name) refreshed; expires in \(expiresIn)", false)
            return next
        } catch {
            failures += 1
            failure.increment()
            let now = clock.date
            let f = error as? RefreshFailure
            let delay = policy.retryDelay(failures: failures, expiresAt: state.expiresAt, now: now, random: random.unit(), retryAfter: f?.retryAfter)
            let message = f?.message ?? "\(error)"
            let facts: Logger.Metadata = ["event": "token_refresh_failed", "error": "\(message)", "attempt": "\(failures)", "retry_in": "\(Self.human(delay))"]
            if f?.needsAttention == true {
                // Retrying cannot help until a person acts: an error, once per attempt, with what to do in `error`.
                logger.error("credential refresh failed; it needs attention", metadata: facts)
            } else {
                logger.warning("credential refresh failed", metadata: facts)
            }
            report(false, now.addingTimeInterval(delay))
            if failures == 1 { await onEvent("TokenRefreshFailed", "\(name) refresh failed: \(message)", true) }
            if let e = state.expiresAt { expiryGauge.record(e.timeIntervalSince(now)); expiryTimestamp.record(e.timeIntervalSince1970) }
            if !warned, policy.expiringSoon(issuedAt: state.issuedAt, expiresAt: state.expiresAt, now: now) {
                warned = true
                let left = state.expiresAt.map { Self.human($0.timeIntervalSince(now)) } ?? "?"
                logger.warning("credential expires soon and could not be refreshed", metadata: ["event": "token_expiring_soon", "expires_in": "\(left)"])
                await onEvent("TokenExpiringSoon", "\(name) expires in \(left) and could not be refreshed: \(message)", true)
            }
            return now.addingTimeInterval(delay)
        }
    }

    /// The credential's known expiry.
    public var expiresAt: Date? { state.expiresAt }

    static func human(_ seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded())
        if s >= 7200 { return "\(s / 3600)h\(s % 3600 / 60)m" }
        if s >= 120 { return "\(s / 60)m" }
        return "\(max(s, 0))s"
    }
}
