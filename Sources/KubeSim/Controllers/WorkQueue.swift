import Synchronization

/// A de-duplicating queue of keys with delayed adds, after client-go `util/workqueue`
/// (`Type.Add`: a key already waiting is not added twice; `delaying_queue.go` `AddAfter`;
/// `default_rate_limiters.go` `ItemExponentialFailureRateLimiter` for retries). One consumer.
/// Time is an input: `promoteDue(now:)` moves the keys whose delay passed, and
/// `waitForDelayed()` sleeps until the earliest one is due or an earlier one is added (as
/// `delaying_queue.go`'s `waitingLoop` does with its heap and `waitingForAddCh`).
final class WorkQueue<Key: Hashable & Sendable>: Sendable {
    private struct State {
        var order: [Key] = []
        var waiting: Set<Key> = []
        var delayed: [Key: ContinuousClock.Instant] = [:]
        var failures: [Key: Int] = [:]
        var consumer: CheckedContinuation<Key?, Never>?
        var closed = false
        /// Bumped by every delayed add; the one `waitForDelayed` caller, waiting for it.
        var delayEpoch = 0
        var delayWaiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Retries: 10 ms doubling to 5 s (client-go's controllers start at 5 ms and cap at 1000 s).
    static func backoff(failures: Int) -> Duration { .milliseconds(min(5000, 10 << min(failures, 20))) }

    func add(_ key: Key) {
        let resume = state.withLock { s -> CheckedContinuation<Key?, Never>? in
            if s.closed || s.waiting.contains(key) { return nil }
            if let c = s.consumer {
                s.consumer = nil
                return c
            }
            s.waiting.insert(key)
            s.order.append(key)
            return nil
        }
        resume?.resume(returning: key)
    }

    /// Adds `key` once `at` has passed (an earlier pending time wins).
    func add(_ key: Key, at: ContinuousClock.Instant) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let existing = s.delayed[key], existing <= at { return nil }
            s.delayed[key] = at
            s.delayEpoch += 1
            defer { s.delayWaiter = nil }
            return s.delayWaiter
        }
        waiter?.resume()
    }

    /// Returns once the earliest delayed key is due, a delayed key was added, the queue shut
    /// down, or the caller cancelled. One caller at a time (the promoting loop).
    func waitForDelayed() async {
        let (due, epoch) = state.withLock { ($0.delayed.values.min(), $0.delayEpoch) }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.delayedAdded(since: epoch) }
            if let due { group.addTask { try? await Task.sleep(until: due, clock: .continuous) } }
            await group.next()
            group.cancelAll()
        }
    }

    private func delayedAdded(since epoch: Int) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    // Cancelled before the handler could see a waiter: it finds none, so check here.
                    if s.delayEpoch != epoch || s.closed || Task.isCancelled { return true }
                    s.delayWaiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.delayWaiter = nil }
                return s.delayWaiter
            }?.resume()
        }
    }

    /// `AddRateLimited`: again after a delay that doubles with each consecutive failure.
    func retry(_ key: Key, now: ContinuousClock.Instant) {
        let failures = state.withLock { s in
            s.failures[key, default: 0] += 1
            return s.failures[key]!
        }
        add(key, at: now.advanced(by: Self.backoff(failures: failures)))
    }

    /// `Forget`: the key succeeded; its next failure starts the back-off afresh.
    func forget(_ key: Key) { _ = state.withLock { $0.failures.removeValue(forKey: key) } }

    func promoteDue(now: ContinuousClock.Instant) {
        let due = state.withLock { s -> [Key] in
            let keys = s.delayed.filter { $0.value <= now }.map(\.key)
            for k in keys { s.delayed[k] = nil }
            return keys
        }
        for k in due { add(k) }
    }

    /// The next key, or nil once the queue is shut down or the waiting task cancelled.
    func next() async -> Key? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Key?, Never>) in
                let ready = state.withLock { s -> Key?? in
                    if s.closed { return .some(nil) }
                    if !s.order.isEmpty {
                        let k = s.order.removeFirst()
                        s.waiting.remove(k)
                        return .some(k)
                    }
                    s.consumer = c
                    return nil
                }
                if let ready { c.resume(returning: ready) }
            }
        } onCancel: {
            shutDown()
        }
    }

    func shutDown() {
        let (c, waiter) = state.withLock { s -> (CheckedContinuation<Key?, Never>?, CheckedContinuation<Void, Never>?) in
            s.closed = true
            defer { s.consumer = nil; s.delayWaiter = nil }
            return (s.consumer, s.delayWaiter)
        }
        c?.resume(returning: nil)
        waiter?.resume()
    }

    /// Whether a `waitForDelayed` caller is parked (tests wait for it before adding).
    var isWaitingForDelayed: Bool { state.withLock { $0.delayWaiter != nil } }

    /// Keys waiting now (not the delayed ones).
    var count: Int { state.withLock { $0.order.count } }
}
