import Synchronization

/// A reflector's objects, readable from anywhere: client-go's `Indexer` (the informer's
/// store, `tools/cache/store.go`) without the indexes.
///
/// **Guarantee.** The reflector applies every change to this store *before* it sends the
/// batch carrying that change to its channel, as client-go's informer updates its indexer
/// before it notifies the handlers (`tools/cache/shared_informer.go`, `HandleDeltas` →
/// `processDeltas`: `clientState.Add/Update/Delete`, then `distribute`). So a consumer that
/// received an `.added` or `.modified` event finds that object here, and does not find one it
/// received `.deleted` for — unless a later change already replaced it: the store may be
/// ahead of the events a consumer has taken, never behind them. A relist replaces the whole
/// content before its difference is sent.
///
/// There is one copy of the objects: the reflector applies each decoded change here (under
/// the lock, one change at a time) and computes the events from it, so sharing the store
/// costs a lock per change, not a second dictionary. Reads take the lock and return copies
/// of the projections (small structs sharing their string storage).
public final class ReflectorStore<P: Projection>: Sendable {
    private struct State: Sendable {
        var store = ProjectionStore<P>()
        var resourceVersion = ""
        var synced = false
    }

    private let state = Mutex(State())

    public init() {}

    /// The object `namespace/name` (namespace "" for a cluster-scoped kind), if present.
    public func get(namespace: String, name: String) -> P? {
        state.withLock { $0.store[ObjectKey(namespace: namespace, name: name)] }
    }

    public subscript(key: ObjectKey) -> P? { state.withLock { $0.store[key] } }

    /// Every object, or those of one namespace; in no particular order.
    public func list(namespace: String? = nil) -> [P] {
        state.withLock { s in
            guard let namespace else { return Array(s.store.objects.values) }
            return s.store.objects.values.filter { $0.meta.namespace == namespace }
        }
    }

    /// The keys of every object.
    public var keys: [ObjectKey] { state.withLock { Array($0.store.objects.keys) } }

    public var count: Int { state.withLock { $0.store.count } }

    /// The resourceVersion the content reflects: the last list's, or the last applied change's.
    public var resourceVersion: String { state.withLock { $0.resourceVersion } }

    /// True once the initial state is in (client-go's `HasSynced`).
    public var hasSynced: Bool { state.withLock { $0.synced } }

    /// A (re)list: the content becomes `items`; returns the difference as events.
    func replace(with items: [P], resourceVersion: String) -> [WatchEvent<P>] {
        state.withLock { s in
            let events = s.store.replace(with: items)
            s.resourceVersion = resourceVersion
            s.synced = true
            return events
        }
    }

    /// One watch change; returns the event to deliver (`.added` for a new key).
    func upsert(_ p: P) -> WatchEvent<P> {
        state.withLock { $0.store.upsert(p) }
    }

    /// One deletion; nil for an unknown key.
    func remove(_ p: P) -> WatchEvent<P>? {
        state.withLock { $0.store.remove(p) }
    }

    /// Where the events handed over so far leave the content.
    func setResourceVersion(_ rv: String) {
        state.withLock { $0.resourceVersion = rv }
    }
}
