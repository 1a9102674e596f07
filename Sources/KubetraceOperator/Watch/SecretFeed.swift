import Foundation
import KubeRuntime
import KubetraceFormats
import Synchronization

/// One watch of the operator namespace's Secrets, two readers. The repair side's watch
/// publishes every event here; the refresh side (which runs only while leading) reads
/// from here instead of keeping a second watch of the same Secrets.
///
/// A subscriber first gets the current state (`.added` for each Secret, then `.synced`
/// once the watch has synced), then every later event, in order: an informer's late
/// handler registration, as client-go's `AddEventHandler` replays the store.
final class SecretFeed: Sendable {
    private struct State {
        var latest: [String: ManagedSecret] = [:]
        var synced = false
        var subscribers: [Int: AsyncStream<WatchEvent<ManagedSecret>>.Continuation] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())
    /// The namespace whose Secrets this feed carries.
    let namespace: String

    init(namespace: String) { self.namespace = namespace }

    /// Called by the watch, in order.
    func publish(_ event: WatchEvent<ManagedSecret>) {
        state.withLock { s in
            switch event {
            case .added(let secret), .modified(let secret): s.latest[secret.meta.name] = secret
            case .deleted(let secret): s.latest[secret.meta.name] = nil
            case .synced: s.synced = true
            }
            for c in s.subscribers.values { c.yield(event) }
        }
    }

    /// The current state, then every change; ends when the caller stops iterating (or is cancelled).
    func subscribe() -> AsyncStream<WatchEvent<ManagedSecret>> {
        let (stream, continuation) = AsyncStream<WatchEvent<ManagedSecret>>.makeStream()
        let id = state.withLock { s -> Int in
            for secret in s.latest.values.sorted(by: { $0.meta.name < $1.meta.name }) { continuation.yield(.added(secret)) }
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
