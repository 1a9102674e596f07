import Foundation

/// A Secret. `data` values are `SecretBytes`, so printing a Secret never shows them.
public struct Secret: KubeResource, Equatable {
    public static let resource = ResourceType(group: "", version: "v1", plural: "secrets", kind: "Secret")
    public var apiVersion: String? = "v1"
    public var kind: String? = "Secret"
    public var metadata: ObjectMeta
    public var type: String?
    public var data: [String: SecretBytes]?
    public var immutable: Bool?

    public init(metadata: ObjectMeta, type: String? = nil, data: [String: SecretBytes]? = nil) {
        self.metadata = metadata
        self.type = type
        self.data = data
    }
}

public struct ServiceAccount: KubeResource, Equatable {
    public static let resource = ResourceType(group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount")
    public var apiVersion: String? = "v1"
    public var kind: String? = "ServiceAccount"
    public var metadata: ObjectMeta
    public var imagePullSecrets: [LocalObjectReference]?
    public var secrets: [LocalObjectReference]?
    public var automountServiceAccountToken: Bool?

    public init(metadata: ObjectMeta, imagePullSecrets: [LocalObjectReference]? = nil) {
        self.metadata = metadata
        self.imagePullSecrets = imagePullSecrets
    }
}

public struct Namespace: KubeResource, Equatable {
    public static let resource = ResourceType(group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false)
    public var apiVersion: String? = "v1"
    public var kind: String? = "Namespace"
    public var metadata: ObjectMeta
    public init(metadata: ObjectMeta) { self.metadata = metadata }
}

/// The Pod fields the operator needs (read and delete only: never written back whole).
public struct Pod: KubeResource, Equatable {
    public static let resource = ResourceType(group: "", version: "v1", plural: "pods", kind: "Pod")
    public struct Container: Codable, Sendable, Equatable {
        public var name: String
        public var image: String?
    }
    public struct Spec: Codable, Sendable, Equatable {
        public var serviceAccountName: String?
        public var containers: [Container]?
        public var initContainers: [Container]?
        public var imagePullSecrets: [LocalObjectReference]?
    }
    public struct ContainerStatus: Codable, Sendable, Equatable {
        public struct Waiting: Codable, Sendable, Equatable {
            public var reason: String?
            public var message: String?
        }
        public struct State: Codable, Sendable, Equatable {
            public var waiting: Waiting?
        }
        public var name: String
        public var image: String?
        public var ready: Bool?
        public var restartCount: Int?
        public var state: State?
    }
    public struct Status: Codable, Sendable, Equatable {
        public var phase: String?
        public var containerStatuses: [ContainerStatus]?
        public var initContainerStatuses: [ContainerStatus]?
    }
    public var apiVersion: String? = "v1"
    public var kind: String? = "Pod"
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?
}

/// Opaque ConfigMap data (not secret).
public struct ConfigMap: KubeResource, Equatable {
    public static let resource = ResourceType(group: "", version: "v1", plural: "configmaps", kind: "ConfigMap")
    public var apiVersion: String? = "v1"
    public var kind: String? = "ConfigMap"
    public var metadata: ObjectMeta
    public var data: [String: String]?
    public init(metadata: ObjectMeta, data: [String: String]? = nil) {
        self.metadata = metadata
        self.data = data
    }
}
