import Foundation
import KubeRuntime
import KubetraceFormats
import Synchronization

/// One watch of the operator namespace's Secrets, two readers. The repair side's watch
/// publishes every event here; the refresh side (which runs only while leading) reads
/// from here instead of keeping a second watch of the same Secrets.
///
/// A subscriber first gets the current state from the watch's shared store (`.added` for
/// each Secret, then `.synced` once the watch has synced), then every later event, in
/// order: an informer's late handler registration, as client-go's `AddEventHandler`
/// replays the store. The store may be ahead of the events (see `ReflectorStore`), so a
/// change can arrive twice (in the replay and as an event); readers are idempotent.
/// The feed keeps no copy of the Secrets.
///
/// Each subscriber has a bounded buffer: one that falls `bufferLimit` events behind is
/// ended, and subscribes again to start over from the store.
final class SecretFeed: Sendable {
    private struct State {
        var store: ReflectorStore<ManagedSecret>?
        var synced = false
        var subscribers: [Int: AsyncStream<WatchEvent<ManagedSecret>>.Continuation] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())
    /// The namespace whose Secrets this feed carries.
    let namespace: String
    let bufferLimit: Int

    init(namespace: String, bufferLimit: Int = 1024) {
        self.namespace = namespace
        self.bufferLimit = bufferLimit
    }

    /// The store of the watch that publishes here (replayed to each new subscriber).
    func attach(_ store: ReflectorStore<ManagedSecret>) {
        state.withLock { $0.store = store }
    }

    /// Called by the watch, in order, after its store has the change.
    func publish(_ event: WatchEvent<ManagedSecret>) {
        let subscribers = state.withLock { s -> [(Int, AsyncStream<WatchEvent<ManagedSecret>>.Continuation)] in
            if case .synced = event { s.synced = true }
            return Array(s.subscribers)
        }
        for (id, c) in subscribers {
            if case .dropped = c.yield(event) {
                // Too far behind: end it; it subscribes again and starts from the store.
                state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
                c.finish()
            }
        }
    }

    /// The current state, then every change. Ends when the caller stops iterating, or when it
    /// falls too far behind (then subscribe again).
    func subscribe() -> AsyncStream<WatchEvent<ManagedSecret>> {
        let (stream, continuation) = AsyncStream<WatchEvent<ManagedSecret>>.makeStream(bufferingPolicy: .bufferingOldest(bufferLimit))
        let id = state.withLock { s -> Int in
            // Under the feed's lock, so no event published meanwhile is missed.
            let current = s.store?.list() ?? []
            for secret in current.sorted(by: { $0.meta.name < $1.meta.name }) { continuation.yield(.added(secret)) }
            if s.synced { continuation.yield(.synced) }
            s.nextID += 1
            s.subscribers[s.nextID] = continuation
            return s.nextID
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Subscribers now (tests).
    var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}
