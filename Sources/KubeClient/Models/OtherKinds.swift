import Foundation

/// `coordination.k8s.io/v1` Lease, for leader election. Times are MicroTime strings.
public struct Lease: KubeResource, Equatable {
    public static let resource = ResourceType(group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease")
    public struct Spec: Codable, Sendable, Equatable {
        public var holderIdentity: String?
        public var leaseDurationSeconds: Int?
        public var acquireTime: String?
        public var renewTime: String?
        public var leaseTransitions: Int?
        public init(holderIdentity: String? = nil, leaseDurationSeconds: Int? = nil, acquireTime: String? = nil, renewTime: String? = nil, leaseTransitions: Int? = nil) {
            self.holderIdentity = holderIdentity
            self.leaseDurationSeconds = leaseDurationSeconds
            self.acquireTime = acquireTime
            self.renewTime = renewTime
            self.leaseTransitions = leaseTransitions
        }
    }
    public var apiVersion: String? = "coordination.k8s.io/v1"
    public var kind: String? = "Lease"
    public var metadata: ObjectMeta
    public var spec: Spec?
    public init(metadata: ObjectMeta, spec: Spec) {
        self.metadata = metadata
        self.spec = spec
    }
}

public struct ObjectReference: Codable, Sendable, Equatable {
    public var apiVersion: String?
    public var kind: String?
    public var namespace: String?
    public var name: String?
    public var uid: String?
    public var resourceVersion: String?
    public init(apiVersion: String? = nil, kind: String? = nil, namespace: String? = nil, name: String? = nil, uid: String? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.uid = uid
    }
}

/// `events.k8s.io/v1` Event.
public struct Event: KubeResource, Equatable {
    public static let resource = ResourceType(group: "events.k8s.io", version: "v1", plural: "events", kind: "Event")
    public struct Series: Codable, Sendable, Equatable {
        public var count: Int
        public var lastObservedTime: String
        public init(count: Int, lastObservedTime: String) {
            self.count = count
            self.lastObservedTime = lastObservedTime
        }
        /// A zero `metav1.MicroTime` is written as null.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            count = try c.decodeIfPresent(Int.self, forKey: .count) ?? 0
            lastObservedTime = try c.decodeIfPresent(String.self, forKey: .lastObservedTime) ?? ""
        }
    }
    public var apiVersion: String? = "events.k8s.io/v1"
    public var kind: String? = "Event"
    public var metadata: ObjectMeta
    public var eventTime: String?
    public var reportingController: String?
    public var reportingInstance: String?
    public var action: String?
    public var reason: String?
    public var note: String?
    public var type: String?
    public var regarding: ObjectReference?
    public var series: Series?
    public init(metadata: ObjectMeta) { self.metadata = metadata }
}

/// core/v1 Event, the fallback where `events.k8s.io` is not served.
public struct CoreEvent: KubeResource, Equatable {
    public static let resource = ResourceType(group: "", version: "v1", plural: "events", kind: "Event")
    public struct Source: Codable, Sendable, Equatable {
        public var component: String?
        public var host: String?
        public init(component: String? = nil, host: String? = nil) {
            self.component = component
            self.host = host
        }
    }
    public var apiVersion: String? = "v1"
    public var kind: String? = "Event"
    public var metadata: ObjectMeta
    public var involvedObject: ObjectReference
    public var reason: String?
    public var message: String?
    public var type: String?
    public var source: Source?
    public var firstTimestamp: String?
    public var lastTimestamp: String?
    public var count: Int?
    public var reportingComponent: String?
    public var reportingInstance: String?
    public init(metadata: ObjectMeta, involvedObject: ObjectReference) {
        self.metadata = metadata
        self.involvedObject = involvedObject
    }
}

/// `authentication.k8s.io/v1` TokenRequest, posted to `serviceaccounts/NAME/token`.
public struct TokenRequest: Codable, Sendable {
    public struct BoundObjectReference: Codable, Sendable, Equatable {
        public var kind: String
        public var apiVersion: String
        public var name: String
        public var uid: String?
    }
    public struct Spec: Codable, Sendable {
        public var audiences: [String]
        public var expirationSeconds: Int?
        public var boundObjectRef: BoundObjectReference?
        init(audiences: [String], expirationSeconds: Int?, boundObjectRef: BoundObjectReference?) {
            self.audiences = audiences
            self.expirationSeconds = expirationSeconds
            self.boundObjectRef = boundObjectRef
        }
        /// authentication/v1 `TokenRequestSpec.Audiences` has no `omitempty` (nil → null).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            audiences = try c.decodeIfPresent([String].self, forKey: .audiences) ?? []
            expirationSeconds = try c.decodeIfPresent(Int.self, forKey: .expirationSeconds)
            boundObjectRef = try c.decodeIfPresent(BoundObjectReference.self, forKey: .boundObjectRef)
        }
    }
    public struct Status: Codable, Sendable {
        public var token: SecretString
        public var expirationTimestamp: String
        /// A zero `metav1.Time` is written as null; the caller checks the expiry it needs.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            token = try c.decodeIfPresent(SecretString.self, forKey: .token) ?? SecretString("")
            expirationTimestamp = try c.decodeIfPresent(String.self, forKey: .expirationTimestamp) ?? ""
        }
    }
    public var apiVersion: String = "authentication.k8s.io/v1"
    public var kind: String = "TokenRequest"
    public var spec: Spec
    public var status: Status?

    public init(audiences: [String], expirationSeconds: Int?) {
        spec = Spec(audiences: audiences, expirationSeconds: expirationSeconds, boundObjectRef: nil)
    }
}

extension SecretString: Codable {
    public init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(String.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

/// `authorization.k8s.io/v1` SelfSubjectAccessReview: "may I do this?".
public struct SelfSubjectAccessReview: Codable, Sendable {
    public struct ResourceAttributes: Codable, Sendable, Equatable {
        public var namespace: String?
        public var verb: String
        public var group: String?
        public var resource: String
        public var subresource: String?
        public var name: String?
        public init(namespace: String?, verb: String, group: String?, resource: String, subresource: String? = nil, name: String? = nil) {
            self.namespace = namespace
            self.verb = verb
            self.group = group
            self.resource = resource
            self.subresource = subresource
            self.name = name
        }
    }
    public struct Spec: Codable, Sendable {
        public var resourceAttributes: ResourceAttributes
    }
    public struct Status: Codable, Sendable {
        public var allowed: Bool
        public var denied: Bool?
        public var reason: String?
        public var evaluationError: String?
    }
    public var apiVersion: String = "authorization.k8s.io/v1"
    public var kind: String = "SelfSubjectAccessReview"
    public var spec: Spec
    public var status: Status?
    public init(_ attributes: ResourceAttributes) { spec = Spec(resourceAttributes: attributes) }
}
