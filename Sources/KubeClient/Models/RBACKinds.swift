import Foundation

public struct PolicyRule: Codable, Sendable, Equatable, Hashable {
    public var apiGroups: [String]?
    public var resources: [String]?
    public var verbs: [String]
    public var resourceNames: [String]?
    public var nonResourceURLs: [String]?

    public init(apiGroups: [String]? = nil, resources: [String]? = nil, verbs: [String], resourceNames: [String]? = nil, nonResourceURLs: [String]? = nil) {
        self.apiGroups = apiGroups
        self.resources = resources
        self.verbs = verbs
        self.resourceNames = resourceNames
        self.nonResourceURLs = nonResourceURLs
    }

    /// rbac/v1 `PolicyRule.Verbs` has no `omitempty`: a Go server writes a nil slice as null.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        apiGroups = try c.decodeIfPresent([String].self, forKey: .apiGroups)
        resources = try c.decodeIfPresent([String].self, forKey: .resources)
        verbs = try c.decodeIfPresent([String].self, forKey: .verbs) ?? []
        resourceNames = try c.decodeIfPresent([String].self, forKey: .resourceNames)
        nonResourceURLs = try c.decodeIfPresent([String].self, forKey: .nonResourceURLs)
    }
}

public struct Role: KubeResource, Equatable {
    public static let resource = ResourceType(group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", kind: "Role")
    public var apiVersion: String? = "rbac.authorization.k8s.io/v1"
    public var kind: String? = "Role"
    public var metadata: ObjectMeta
    public var rules: [PolicyRule]?
    public init(metadata: ObjectMeta, rules: [PolicyRule]) {
        self.metadata = metadata
        self.rules = rules
    }
}

public struct ClusterRole: KubeResource, Equatable {
    public static let resource = ResourceType(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", kind: "ClusterRole", namespaced: false)
    public var apiVersion: String? = "rbac.authorization.k8s.io/v1"
    public var kind: String? = "ClusterRole"
    public var metadata: ObjectMeta
    public var rules: [PolicyRule]?
    public init(metadata: ObjectMeta, rules: [PolicyRule]) {
        self.metadata = metadata
        self.rules = rules
    }
}

public struct Subject: Codable, Sendable, Equatable, Hashable {
    public var kind: String
    public var apiGroup: String?
    public var name: String
    public var namespace: String?
    public init(kind: String, name: String, namespace: String? = nil, apiGroup: String? = nil) {
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.apiGroup = apiGroup
    }
}

public struct RoleRef: Codable, Sendable, Equatable, Hashable {
    public var apiGroup: String
    public var kind: String
    public var name: String
    public init(kind: String, name: String, apiGroup: String = "rbac.authorization.k8s.io") {
        self.apiGroup = apiGroup
        self.kind = kind
        self.name = name
    }
}

public struct RoleBinding: KubeResource, Equatable {
    public static let resource = ResourceType(group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", kind: "RoleBinding")
    public var apiVersion: String? = "rbac.authorization.k8s.io/v1"
    public var kind: String? = "RoleBinding"
    public var metadata: ObjectMeta
    public var subjects: [Subject]?
    public var roleRef: RoleRef
    public init(metadata: ObjectMeta, subjects: [Subject], roleRef: RoleRef) {
        self.metadata = metadata
        self.subjects = subjects
        self.roleRef = roleRef
    }
}

public struct ClusterRoleBinding: KubeResource, Equatable {
    public static let resource = ResourceType(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", kind: "ClusterRoleBinding", namespaced: false)
    public var apiVersion: String? = "rbac.authorization.k8s.io/v1"
    public var kind: String? = "ClusterRoleBinding"
    public var metadata: ObjectMeta
    public var subjects: [Subject]?
    public var roleRef: RoleRef
    public init(metadata: ObjectMeta, subjects: [Subject], roleRef: RoleRef) {
        self.metadata = metadata
        self.subjects = subjects
        self.roleRef = roleRef
    }
}
