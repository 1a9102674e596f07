import KubeRuntime
import Synchronization

/// The shared stores of the reflectors that watch one kind, one per watched scope (a
/// namespace, or all namespaces): handlers read objects here instead of keeping copies.
final class ScopedStores<P: Projection>: Sendable {
    private let stores = Mutex<[(namespace: String?, store: ReflectorStore<P>)]>([])

    init() {}

    /// Registers the store of a reflector watching `namespace` (nil: all namespaces).
    func add(_ store: ReflectorStore<P>, namespace: String?) {
        stores.withLock { $0.append((namespace, store)) }
    }

    /// `namespace/name` as the watch covering that namespace last saw it.
    func get(namespace: String, name: String) -> P? {
        let candidates = stores.withLock { all in
            all.filter { $0.namespace == namespace } + all.filter { $0.namespace == nil }
        }
        for c in candidates {
            if let p = c.store.get(namespace: namespace, name: name) { return p }
        }
        return nil
    }
}
