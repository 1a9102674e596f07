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
/// Reads take a lock and return copies of the projections (small structs sharing their
/// string storage with the reflector's own copy).
public final class ReflectorStore<P: Projection>: Sendable {
    private struct State: Sendable {
        var objects: [ObjectKey: P] = [:]
        var resourceVersion = ""
        var synced = false
    }

    private let state = Mutex(State())

    public init() {}

    /// The object `namespace/name` (namespace "" for a cluster-scoped kind), if present.
    public func get(namespace: String, name: String) -> P? {
        state.withLock { $0.objects[ObjectKey(namespace: namespace, name: name)] }
    }

    public subscript(key: ObjectKey) -> P? { state.withLock { $0.objects[key] } }

    /// Every object, or those of one namespace; in no particular order.
    public func list(namespace: String? = nil) -> [P] {
        state.withLock { s in
            guard let namespace else { return Array(s.objects.values) }
            return s.objects.values.filter { $0.meta.namespace == namespace }
        }
    }

    /// The keys of every object.
    public var keys: [ObjectKey] { state.withLock { Array($0.objects.keys) } }

    public var count: Int { state.withLock { $0.objects.count } }

    /// The resourceVersion the content reflects: the last list's, or the last applied change's.
    public var resourceVersion: String { state.withLock { $0.resourceVersion } }

    /// True once the initial state is in (client-go's `HasSynced`).
    public var hasSynced: Bool { state.withLock { $0.synced } }

    /// A (re)list: the content becomes `objects`. Sharing the dictionary costs nothing now; the
    /// reflector's next change copies its own once, as a relist already does.
    func replace(with objects: [ObjectKey: P], resourceVersion: String) {
        state.withLock { s in
            s.objects = objects
            s.resourceVersion = resourceVersion
            s.synced = true
        }
    }

    /// Applies a batch of watch events.
    func apply(_ events: [WatchEvent<P>], resourceVersion: String) {
        state.withLock { s in
            for event in events {
                switch event {
                case .added(let p), .modified(let p): s.objects[p.meta.storeKey] = p
                case .deleted(let p): s.objects[p.meta.storeKey] = nil
                case .synced: s.synced = true
                }
            }
            s.resourceVersion = resourceVersion
        }
    }
}
