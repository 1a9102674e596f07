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
    /// Defined by a CustomResourceDefinition: stored as unstructured JSON, as
    /// apiextensions-apiserver does (no defaults, no strategy beyond metadata).
    public var custom = false
    /// `metadata.generation` is kept: set to 1 on create and bumped when anything but
    /// metadata and status changes (the kinds whose registry strategy does so:
    /// pkg/registry/apps/deployment/strategy.go `PrepareForUpdate`, the same in replicaset,
    /// pod, service, networkpolicy, admissionregistration and apiextensions; core kinds
    /// such as Secret leave it unset).
    public var generation = false
    /// Has a `status` subresource: the main resource ignores `status` and `…/status` ignores
    /// everything else (each kind's `PrepareForUpdate` and `statusStrategy.PrepareForUpdate`).
    public var statusSubresource = false
    /// For a custom kind: this version is the CRD's storage version.
    public var storageVersion = false

    /// A kind is who it is by group, version and resource: a CRD updated with other short
    /// names or subresources still stores and watches the same objects.
    public static func == (a: ResourceKind, b: ResourceKind) -> Bool {
        a.group == b.group && a.version == b.version && a.plural == b.plural
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(group)
        hasher.combine(version)
        hasher.combine(plural)
    }

    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    var listKind: String { kind + "List" }

    /// Every kind served, in discovery order.
    public static let all: [ResourceKind] = [
        ResourceKind(group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, shortNames: ["ns"]),
        ResourceKind(group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: true),
        // Served and stored, but the devcluster has no node of its own: a list is empty until a
        // client registers one (as a kubelet would).
        ResourceKind(group: "", version: "v1", plural: "nodes", singular: "node", kind: "Node", namespaced: false, shortNames: ["no"], statusSubresource: true),
        ResourceKind(group: "", version: "v1", plural: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", namespaced: true, shortNames: ["sa"]),
        ResourceKind(group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod", namespaced: true, shortNames: ["po"], statusSubresource: true),
        ResourceKind(group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, shortNames: ["cm"]),
        ResourceKind(group: "", version: "v1", plural: "endpoints", singular: "endpoints", kind: "Endpoints", namespaced: true, shortNames: ["ep"]),
        ResourceKind(group: "", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"]),
        ResourceKind(group: "", version: "v1", plural: "services", singular: "service", kind: "Service", namespaced: true, shortNames: ["svc"], statusSubresource: true),
        ResourceKind(group: "events.k8s.io", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"]),
        ResourceKind(group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", singular: "role", kind: "Role", namespaced: true),
        ResourceKind(group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", singular: "rolebinding", kind: "RoleBinding", namespaced: true),
        ResourceKind(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", singular: "clusterrole", kind: "ClusterRole", namespaced: false),
        ResourceKind(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", singular: "clusterrolebinding", kind: "ClusterRoleBinding", namespaced: false),
        ResourceKind(group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease", kind: "Lease", namespaced: true),
        ResourceKind(group: "apps", version: "v1", plural: "deployments", singular: "deployment", kind: "Deployment", namespaced: true, shortNames: ["deploy"],
                     generation: true, statusSubresource: true),
        ResourceKind(group: "apps", version: "v1", plural: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: true, shortNames: ["rs"],
                     generation: true, statusSubresource: true),
        ResourceKind(group: "networking.k8s.io", version: "v1", plural: "networkpolicies", singular: "networkpolicy", kind: "NetworkPolicy", namespaced: true, shortNames: ["netpol"],
                     generation: true),
        ResourceKind(group: "admissionregistration.k8s.io", version: "v1", plural: "validatingadmissionpolicies", singular: "validatingadmissionpolicy",
                     kind: "ValidatingAdmissionPolicy", namespaced: false, generation: true, statusSubresource: true),
        ResourceKind(group: "admissionregistration.k8s.io", version: "v1", plural: "validatingadmissionpolicybindings", singular: "validatingadmissionpolicybinding",
                     kind: "ValidatingAdmissionPolicyBinding", namespaced: false, generation: true),
        // Stored; each one Established serves its custom resources (CustomResources.swift).
        ResourceKind(group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", singular: "customresourcedefinition",
                     kind: "CustomResourceDefinition", namespaced: false, shortNames: ["crd", "crds"], generation: true, statusSubresource: true),
        ResourceKind(group: "authorization.k8s.io", version: "v1", plural: "selfsubjectaccessreviews", singular: "selfsubjectaccessreview",
                     kind: "SelfSubjectAccessReview", namespaced: false, verbs: ["create"], virtual: true),
    ]

    /// Subresources listed in discovery: (parent group, parent plural, subresource, kind, group, version, verbs).
    static let subresources: [(parentGroup: String, parent: String, name: String, kind: String, group: String, version: String, verbs: [String])] = [
        ("", "serviceaccounts", "token", "TokenRequest", "authentication.k8s.io", "v1", ["create"]),
        ("", "pods", "binding", "Binding", "", "v1", ["create"]),
        ("", "pods", "log", "Pod", "", "v1", ["get"]),
        ("", "pods", "status", "Pod", "", "v1", ["get", "patch", "update"]),
        ("", "services", "status", "Service", "", "v1", ["get", "patch", "update"]),
        ("apps", "deployments", "status", "Deployment", "", "", ["get", "patch", "update"]),
        ("apps", "deployments", "scale", "Scale", "autoscaling", "v1", ["get", "patch", "update"]),
        ("apps", "replicasets", "status", "ReplicaSet", "", "", ["get", "patch", "update"]),
        ("apps", "replicasets", "scale", "Scale", "autoscaling", "v1", ["get", "patch", "update"]),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies", "status", "ValidatingAdmissionPolicy", "", "", ["get", "patch", "update"]),
        ("apiextensions.k8s.io", "customresourcedefinitions", "status", "CustomResourceDefinition", "", "", ["get", "patch", "update"]),
    ]

    static func find(group: String, version: String, plural: String) -> ResourceKind? {
        all.first { $0.group == group && $0.version == version && $0.plural == plural }
    }
}

extension [ResourceKind] {
    func find(group: String, version: String, plural: String) -> ResourceKind? {
        first { $0.group == group && $0.version == version && $0.plural == plural }
    }

    /// The API groups served besides the core group, in discovery order, with their versions.
    var groups: [(name: String, versions: [String])] {
        var seen: [(name: String, versions: [String])] = []
        for k in self where !k.group.isEmpty {
            if let i = seen.firstIndex(where: { $0.name == k.group }) {
                if !seen[i].versions.contains(k.version) { seen[i].versions.append(k.version) }
            } else {
                seen.append((k.group, [k.version]))
            }
        }
        return seen
    }
}

/// The kinds the code names.
extension ResourceKind {
    static let namespace = find(group: "", version: "v1", plural: "namespaces")!
    static let secret = find(group: "", version: "v1", plural: "secrets")!
    static let serviceAccount = find(group: "", version: "v1", plural: "serviceaccounts")!
    static let pod = find(group: "", version: "v1", plural: "pods")!
    static let role = find(group: "rbac.authorization.k8s.io", version: "v1", plural: "roles")!
    static let roleBinding = find(group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings")!
    static let clusterRole = find(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles")!
    static let selfSubjectAccessReview = find(group: "authorization.k8s.io", version: "v1", plural: "selfsubjectaccessreviews")!
    /// Only for error messages: TokenRequest is a subresource, not a stored kind.
    static let tokenRequest = ResourceKind(group: "authentication.k8s.io", version: "v1", plural: "tokenrequests", singular: "tokenrequest", kind: "TokenRequest", namespaced: true)
    static let clusterRoleBinding = find(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings")!
    static let deployment = find(group: "apps", version: "v1", plural: "deployments")!
    static let replicaSet = find(group: "apps", version: "v1", plural: "replicasets")!
    static let service = find(group: "", version: "v1", plural: "services")!
    static let coreEvent = find(group: "", version: "v1", plural: "events")!
    static let eventsV1Event = find(group: "events.k8s.io", version: "v1", plural: "events")!
    static let validatingAdmissionPolicy = find(group: "admissionregistration.k8s.io", version: "v1", plural: "validatingadmissionpolicies")!
    static let validatingAdmissionPolicyBinding = find(group: "admissionregistration.k8s.io", version: "v1", plural: "validatingadmissionpolicybindings")!
    static let customResourceDefinition = find(group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions")!
}
