import Synchronization

/// Which namespaces the handlers keep: the operator's own plus the opt-in targets —
/// fixed for a list, followed through a Namespace watch for a label selector.
final class NamespaceScope: Sendable {
    let operatorNamespace: String
    private let targetSet: Mutex<Set<String>>

    init(operatorNamespace: String, targets: TargetNamespaces?) {
        self.operatorNamespace = operatorNamespace
        if case .list(let names)? = targets {
            targetSet = Mutex(Set(names).subtracting([operatorNamespace]))
        } else {
            targetSet = Mutex([])
        }
    }

    /// A target namespace (not the operator's own).
    func isTarget(_ namespace: String) -> Bool { targetSet.withLock { $0.contains(namespace) } }
    func contains(_ namespace: String) -> Bool { namespace == operatorNamespace || isTarget(namespace) }
    var targets: [String] { targetSet.withLock { $0.sorted() } }

    /// For selector targets: a namespace came or went. Returns whether the set changed.
    @discardableResult
    func set(_ namespace: String, included: Bool) -> Bool {
        guard namespace != operatorNamespace else { return false }
        return targetSet.withLock { included ? $0.insert(namespace).inserted : $0.remove(namespace) != nil }
    }
}
