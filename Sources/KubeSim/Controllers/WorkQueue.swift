import Synchronization

/// A de-duplicating queue of keys with delayed adds, after client-go `util/workqueue`
/// (`Type.Add`: a key already waiting is not added twice; `delaying_queue.go` `AddAfter`;
/// `default_rate_limiters.go` `ItemExponentialFailureRateLimiter` for retries). One consumer.
/// Time is an input: `promoteDue(now:)` moves the keys whose delay passed.
final class WorkQueue<Key: Hashable & Sendable>: Sendable {
    private struct State {
        var order: [Key] = []
        var waiting: Set<Key> = []
        var delayed: [Key: ContinuousClock.Instant] = [:]
        var failures: [Key: Int] = [:]
        var consumer: CheckedContinuation<Key?, Never>?
        var closed = false
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
        state.withLock { s in
            if let existing = s.delayed[key], existing <= at { return }
            s.delayed[key] = at
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
        let c = state.withLock { s -> CheckedContinuation<Key?, Never>? in
            s.closed = true
            defer { s.consumer = nil }
            return s.consumer
        }
        c?.resume(returning: nil)
    }

    /// Keys waiting now (not the delayed ones).
    var count: Int { state.withLock { $0.order.count } }
}
