public import Foundation
import Synchronization

/// A deduplicating work queue in the manner of client-go's workqueue: a key added
/// many times before it is taken is reconciled once; a key added while it is being
/// reconciled is reconciled again afterwards, never twice at the same time; a key
/// may be added for later (rate limits, retries). One dispatcher takes from it.
///
/// client-go's `util/workqueue` splits this into a queue (dirty/processing sets),
/// a delaying queue (a heap of keys waiting for their time) and a rate-limited
/// queue on top; here the first two are one actor and the rate limit is the
/// caller's: it computes a time and calls `add(_:at:)`.
public actor WorkQueue<Key: Hashable & Sendable> {
    private var ready: [Key] = []
    private var queued: Set<Key> = []
    private var delayed: [Key: Date] = [:]
    private var processing: Set<Key> = []
    private var dirty: Set<Key> = []
    private let stopped = Atomic<Bool>(false)
    private nonisolated let wakeup = Wakeup()
    private let clock: RuntimeClock
    private var shuttingDown: Bool { stopped.load(ordering: .acquiring) }

    public init(clock: RuntimeClock = .system) { self.clock = clock }

    /// True when nothing is ready, delayed or being processed.
    public var isEmpty: Bool { ready.isEmpty && delayed.isEmpty && processing.isEmpty }

    /// Adds `key` now, or at `at` (an earlier time wins over a later one already set).
    public func add(_ key: Key, at: Date? = nil) {
        guard !shuttingDown else { return }
        if let at, at > clock.date {
            if queued.contains(key) { return }
            if let existing = delayed[key], existing <= at { return }
            delayed[key] = at
            wakeup.poke()
            return
        }
        delayed[key] = nil
        if processing.contains(key) { dirty.insert(key); return }
        if queued.insert(key).inserted {
            ready.append(key)
            wakeup.poke()
        }
    }

    /// The next key to reconcile; waits for one. Nil after `shutDown()` or on cancellation.
    public func next() async -> Key? {
        while !shuttingDown, !Task.isCancelled {
            promoteDue()
            if !ready.isEmpty {
                let key = ready.removeFirst()
                queued.remove(key)
                processing.insert(key)
                return key
            }
            let deadline = delayed.values.min() ?? clock.date.addingTimeInterval(3600)
            _ = await wakeup.wait(until: deadline, clock: clock)
        }
        return nil
    }

    /// Marks `key` finished; a key added meanwhile goes back in line.
    public func done(_ key: Key) {
        processing.remove(key)
        if dirty.remove(key) != nil { add(key) }
    }

    /// Stops handing out keys; `next()` returns nil. Callable from any context.
    public nonisolated func shutDown() {
        stopped.store(true, ordering: .releasing)
        wakeup.poke()
    }

    private func promoteDue() {
        let now = clock.date
        for (key, at) in delayed where at <= now {
            delayed[key] = nil
            if processing.contains(key) { dirty.insert(key) } else if queued.insert(key).inserted { ready.append(key) }
        }
    }
}

extension WorkQueue {
    /// A no-op on the actor: returns once the actor is free to run it.
    public func ping() {}
}
