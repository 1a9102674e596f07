import Foundation

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
