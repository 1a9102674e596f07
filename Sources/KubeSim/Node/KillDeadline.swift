import Synchronization

/// When stopping containers get SIGKILL: the end of their grace period, which may move earlier
/// (never later) while they stop — pod_workers.go `calculateEffectiveGracePeriod`: "a grace
/// period can only decrease", so `kubectl delete --grace-period=N` or `--force` on a terminating
/// Pod shortens the wait.
final class KillDeadline: Sendable {
    private struct State {
        var deadline: ContinuousClock.Instant
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }
    private let state: Mutex<State>

    init(_ deadline: ContinuousClock.Instant) {
        state = Mutex(State(deadline: deadline))
    }

    var instant: ContinuousClock.Instant { state.withLock { $0.deadline } }

    /// Moves the deadline to `earlier` if that is earlier, waking the waiters.
    func shorten(to earlier: ContinuousClock.Instant) {
        let woken = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard earlier < s.deadline else { return [] }
            s.deadline = earlier
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in woken { w.resume() }
    }

    /// Returns once the deadline has passed, or when the task is cancelled.
    func wait() async {
        while !Task.isCancelled {
            let deadline = instant
            if ContinuousClock.now >= deadline { return }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
                group.addTask { await self.moved(from: deadline) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Returns once the deadline is no longer `deadline`, or on cancellation.
    private func moved(from deadline: ContinuousClock.Instant) async {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Cancelled before this point: the handler found no waiter, so resume here.
                let resumeNow = state.withLock { s -> Bool in
                    if s.deadline != deadline || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
