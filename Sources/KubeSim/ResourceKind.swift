/// A kind the devcluster serves, with where it lives in the API.
public struct ResourceKind: Sendable, Hashable {
    public var group: String
    public var version: String
    public var plural: String
    public var singular: String
    public var kind: String
    public var namespaced: Bool
    public var shortNames: [String] = []
    public var verbs: [String] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    /// Served but never stored (reviews): only `create`.
    public var virtual = false

    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    var listKind: String { kind + "List" }

    /// Every kind served, in discovery order.
    public static let all: [ResourceKind] = [
        ResourceKind(group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, shortNames: ["ns"]),
        ResourceKind(group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: true),
        ResourceKind(group: "", version: "v1", plural: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", namespaced: true, shortNames: ["sa"]),
        ResourceKind(group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod", namespaced: true, shortNames: ["po"]),
        ResourceKind(group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, shortNames: ["cm"]),
        ResourceKind(group: "", version: "v1", plural: "endpoints", singular: "endpoints", kind: "Endpoints", namespaced: true, shortNames: ["ep"]),
        ResourceKind(group: "", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"]),
        ResourceKind(group: "events.k8s.io", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"]),
        ResourceKind(group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", singular: "role", kind: "Role", namespaced: true),
        ResourceKind(group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", singular: "rolebinding", kind: "RoleBinding", namespaced: true),
        ResourceKind(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", singular: "clusterrole", kind: "ClusterRole", namespaced: false),
        ResourceKind(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", singular: "clusterrolebinding", kind: "ClusterRoleBinding", namespaced: false),
        ResourceKind(group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease", kind: "Lease", namespaced: true),
        ResourceKind(group: "apps", version: "v1", plural: "deployments", singular: "deployment", kind: "Deployment", namespaced: true, shortNames: ["deploy"]),
        ResourceKind(group: "networking.k8s.io", version: "v1", plural: "networkpolicies", singular: "networkpolicy", kind: "NetworkPolicy", namespaced: true, shortNames: ["netpol"]),
        // None are served; the kind exists because operator frameworks (kopf) list and watch it at start.
        ResourceKind(group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", singular: "customresourcedefinition",
                     kind: "CustomResourceDefinition", namespaced: false, shortNames: ["crd", "crds"]),
        ResourceKind(group: "authorization.k8s.io", version: "v1", plural: "selfsubjectaccessreviews", singular: "selfsubjectaccessreview",
                     kind: "SelfSubjectAccessReview", namespaced: false, verbs: ["create"], virtual: true),
    ]

    /// Subresources listed in discovery: (parent plural, subresource, kind, group, version, verbs).
    static let subresources: [(parent: String, name: String, kind: String, group: String, version: String, verbs: [String])] = [
        ("serviceaccounts", "token", "TokenRequest", "authentication.k8s.io", "v1", ["create"]),
        ("pods", "status", "Pod", "", "v1", ["get", "patch", "update"]),
    ]

    static func find(group: String, version: String, plural: String) -> ResourceKind? {
        all.first { $0.group == group && $0.version == version && $0.plural == plural }
    }

    /// The API groups served besides the core group, in discovery order.
    static var groups: [String] {
        var seen: [String] = []
        for k in all where !k.group.isEmpty && !seen.contains(k.group) { seen.append(k.group) }
        return seen
    }
}
