import Foundation
import Synchronization

/// What the repair workers reconcile: one key per object the operator keeps.
enum RepairKey: Hashable, Sendable, CustomStringConvertible {
    case pullSecret(namespace: String)
    case serviceAccount(namespace: String, name: String)
    case role
    case roleBinding
    case pod(namespace: String, name: String)

    var description: String {
        switch self {
        case .pullSecret(let ns): "pull-secret \(ns)"
        case .serviceAccount(let ns, let n): "serviceaccount \(ns)/\(n)"
        case .role: "role"
        case .roleBinding: "rolebinding"
        case .pod(let ns, let n): "pod \(ns)/\(n)"
        }
    }
}

/// A deduplicating work queue in the manner of client-go's workqueue: a key added
/// many times before it is taken is reconciled once; a key added while it is being
/// reconciled is reconciled again afterwards, never twice at the same time; a key
/// may be added for later (rate limits, retries). One dispatcher takes from it.
actor RepairQueue<Key: Hashable & Sendable> {
    private var ready: [Key] = []
    private var queued: Set<Key> = []
    private var delayed: [Key: Date] = [:]
    private var processing: Set<Key> = []
    private var dirty: Set<Key> = []
    private let stopped = Atomic<Bool>(false)
    private nonisolated let wakeup = Wakeup()
    private var shuttingDown: Bool { stopped.load(ordering: .acquiring) }

    var isEmpty: Bool { ready.isEmpty && delayed.isEmpty && processing.isEmpty }

    /// Adds `key` now, or at `at` (an earlier time wins over a later one already set).
    func add(_ key: Key, at: Date? = nil) {
        guard !shuttingDown else { return }
        if let at, at > Date() {
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
    func next() async -> Key? {
        while !shuttingDown, !Task.isCancelled {
            promoteDue()
            if !ready.isEmpty {
                let key = ready.removeFirst()
                queued.remove(key)
                processing.insert(key)
                return key
            }
            let deadline = delayed.values.min() ?? Date().addingTimeInterval(3600)
            _ = await wakeup.wait(until: deadline)
        }
        return nil
    }

    /// Marks `key` finished; a key added meanwhile goes back in line.
    func done(_ key: Key) {
        processing.remove(key)
        if dirty.remove(key) != nil { add(key) }
    }

    /// Stops handing out keys; `next()` returns nil. Callable from any context.
    nonisolated func shutDown() {
        stopped.store(true, ordering: .releasing)
        wakeup.poke()
    }

    private func promoteDue() {
        let now = Date()
        for (key, at) in delayed where at <= now {
            delayed[key] = nil
            if processing.contains(key) { dirty.insert(key) } else if queued.insert(key).inserted { ready.append(key) }
        }
    }
}

extension RepairQueue {
    /// A no-op on the actor: returns once the actor is free to run it.
    func ping() {}
}
