import Clocks
import Foundation
import KubeRuntime
import KubetraceTestKit
@testable import KubetraceOperator
import Synchronization
import Testing

/// Values recorded as they happen, with a bounded wait for the next ones.
final class Recorder<Value: Sendable>: Sendable {
    private let state = Mutex<(values: [Value], waiters: [(count: Int, id: UUID, c: CheckedContinuation<Void, Never>)])>(([], []))

    var values: [Value] { state.withLock { $0.values } }

    func append(_ value: Value) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.values.append(value)
            let n = s.values.count
            defer { s.waiters.removeAll { $0.count <= n } }
            return s.waiters.filter { $0.count <= n }.map(\.c)
        }
        ready.forEach { $0.resume() }
    }

    /// Until `count` values are recorded. The real-time limit only bounds a failing test; it is not
    /// how the test synchronises.
    func waitFor(count: Int, limit: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let id = UUID()
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        // Checked and registered under the lock, so a value appended meanwhile is not missed.
                        let now = self.state.withLock { s -> Bool in
                            if Task.isCancelled || s.values.count >= count { return true }
                            s.waiters.append((count, id, c))
                            return false
                        }
                        if now { c.resume() }
                    }
                } onCancel: {
                    let mine = self.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                        defer { s.waiters.removeAll { $0.id == id } }
                        return s.waiters.filter { $0.id == id }.map(\.c)
                    }
                    mine.forEach { $0.resume() }
                }
            }
            group.addTask {
                try await Task.sleep(for: limit)
                throw AwaitTimeout(description: "timed out after \(limit) waiting for \(count) values of \(Value.self)")
            }
            try await group.next()
            group.cancelAll()
        }
        // The waiter also returns when cancelled: say so rather than go on with too few values.
        try #require(values.count >= count, sourceLocation: sourceLocation)
    }
}

/// A value the test and the loop's closures share.
final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
}

/// A `CredentialLoop` in virtual time: a `TestClock` drives it, the jitter is fixed, and each
/// refresh, schedule and Event is recorded at its virtual second (seconds since `epoch`).
final class VirtualLoop: Sendable {
    /// Virtual second 0. The reference date keeps whole and binary-fraction seconds exact in a `Date`.
    static let epoch = Date(timeIntervalSinceReferenceDate: 0)

    enum Outcome: Sendable {
        /// Issued now, expiring `lifetime` seconds later.
        case succeed(lifetime: Double)
        case fail(RefreshFailure)
    }

    struct Report: Equatable, Sendable, CustomStringConvertible {
        var ok: Bool
        var next: Double?
        var description: String { "\(ok ? "ok" : "not ok"), next at \(next.map { "\($0)" } ?? "nil")" }
    }

    let testClock: TestClock<Duration>
    let sink: LogSink
    let loop: CredentialLoop
    /// The virtual second of each call of `refresh`.
    let calls: Recorder<Double>
    /// What the loop reported each time it scheduled its next run.
    let reports: Recorder<Report>
    /// Each Event's reason and virtual second, as `Reason@second`.
    let events: Recorder<String>
    /// What the next refreshes do, in order; once used up, each succeeds with a 1 h lifetime.
    let script: Shared<[Outcome]>
    /// What `current()` finds: the credential as stored (a Secret someone else may have written).
    let stored: Shared<RefreshResult?>

    init(stored: RefreshResult? = nil, script: [Outcome] = [], policy: RefreshPolicy = RefreshPolicy(), random: Double = 0.5) {
        let testClock = TestClock<Duration>()
        let clock = RuntimeClock(testClock, epoch: Self.epoch)
        let (calls, reports, events) = (Recorder<Double>(), Recorder<Report>(), Recorder<String>())
        let script = Shared(script)
        let stored = Shared(stored)
        let sink = LogSink()
        (self.testClock, self.calls, self.reports, self.events, self.sink) = (testClock, calls, reports, events, sink)
        self.script = script
        self.stored = stored
        loop = CredentialLoop(
            name: "kubeconfig-token", policy: policy, logger: sink.logger(), clock: clock, random: .fixed(random),
            current: { stored.withLock { $0 } },
            refresh: {
                let now = clock.date
                calls.append(Self.second(now))
                let outcome = script.withLock { $0.isEmpty ? Outcome.succeed(lifetime: 3600) : $0.removeFirst() }
                switch outcome {
                case .succeed(let lifetime): return RefreshResult(issuedAt: now, expiresAt: now.addingTimeInterval(lifetime))
                case .fail(let failure): throw failure
                }
            },
            onEvent: { reason, _, _ in events.append("\(reason)@\(Self.second(clock.date))") },
            report: { ok, next in reports.append(Report(ok: ok, next: next.map(Self.second))) })
    }

    static func second(_ date: Date) -> Double { date.timeIntervalSince(epoch) }
    static func date(_ second: Double) -> Date { epoch.addingTimeInterval(second) }

    /// Runs the loop while `body` drives the clock, then stops it.
    func run(_ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.loop.run() }
            try await body()
            group.cancelAll()
        }
    }

    func advance(to second: Double) async {
        await testClock.advance(to: .init(offset: .seconds(second)))
    }

    /// Until the loop sleeps on the test clock (so an advance reaches it). A sleep registered there
    /// is what `checkSuspension` reports by throwing; the real-time limit only bounds a failing test.
    func untilAsleep(limit: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: limit)
        while clock.now < end {
            do { try await testClock.checkSuspension() } catch { return }
            await Task.yield()
        }
        Issue.record("the loop never went to sleep on the test clock", sourceLocation: sourceLocation)
        throw AwaitTimeout(description: "the loop never went to sleep on the test clock")
    }

    /// The next refresh comes at exactly virtual second `t`: none up to a second before, one at `t`.
    func expectRefresh(at t: Double, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let before = calls.values.count
        try await untilAsleep(sourceLocation: sourceLocation)
        await advance(to: t - 1)
        // Asleep again: had the deadline come, the refresh would have been recorded before the loop slept again.
        try await untilAsleep(sourceLocation: sourceLocation)
        #expect(calls.values.count == before, "a refresh came before \(t): \(calls.values.suffix(3))", sourceLocation: sourceLocation)
        await advance(to: t)
        try await calls.waitFor(count: before + 1, sourceLocation: sourceLocation)
        #expect(calls.values.last == t, "refreshed at \(calls.values.last ?? -1), expected \(t)", sourceLocation: sourceLocation)
    }
}
