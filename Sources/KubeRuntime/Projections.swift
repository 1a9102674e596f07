public import KubeClient

/// The metadata every projection keeps.
public struct MetaProjection: Sendable, Equatable {
    public var name = ""
    public var namespace = ""
    public var uid = ""
    public var resourceVersion = ""
    public var labels = StringPairs()
    public var annotations = StringPairs()
    /// Owners as (kind, name); `controller` names the controlling owner, if any.
    public var owners: [(kind: String, name: String)] = []
    public var controller: String?
    public var deleting = false

    public init() {}

    public static func == (a: Self, b: Self) -> Bool {
        a.name == b.name && a.namespace == b.namespace && a.uid == b.uid && a.resourceVersion == b.resourceVersion
            && a.labels == b.labels && a.annotations == b.annotations && a.controller == b.controller && a.deleting == b.deleting
            && a.owners.map { "\($0.kind)/\($0.name)" } == b.owners.map { "\($0.kind)/\($0.name)" }
    }

    /// `namespace/name`, for messages and tests.
    public var key: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }

    /// The store key: both parts usually fit Swift's inline small strings, so
    /// hashing and comparing them touches no heap.
    public var storeKey: ObjectKey { ObjectKey(namespace: namespace, name: name) }

    mutating func take(_ e: DecodedEntry) -> Bool {
        switch e.field {
        case .name: name = e.value
        case .namespace: namespace = e.value
        case .uid: uid = e.value
        case .resourceVersion: resourceVersion = e.value
        case .label: labels.append(e.key, e.value)
        case .annotation: annotations.append(e.key, e.value)
        case .owner: owners.append((e.key, e.value))
        case .ownerController: controller = e.value
        case .deletionTimestamp: deleting = true
        default: return false
        }
        return true
    }
}

/// Where an object lives.
public struct ObjectKey: Hashable, Sendable {
    public var namespace: String
    public var name: String
    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }
}

/// Labels or annotations: a few pairs in arrival order. Cheaper to build than
/// a dictionary for every event; lookups are linear over a handful of entries.
public struct StringPairs: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(key: String, value: String)] = []

    public init() {}
    public init(dictionaryLiteral elements: (String, String)...) {
        for (k, v) in elements { append(k, v) }
    }

    public subscript(key: String) -> String? { pairs.last { $0.key == key }?.value }
    public var isEmpty: Bool { pairs.isEmpty }
    public var count: Int { pairs.count }

    mutating func append(_ key: String, _ value: String) { pairs.append((key, value)) }

    /// Equal when they hold the same keys and values, in any order.
    public static func == (a: Self, b: Self) -> Bool {
        a.pairs.count == b.pairs.count && a.pairs.allSatisfy { b[$0.key] == $0.value }
    }
}

/// A small struct holding only what the handlers need of an object, built
/// from the decoder's entries. The watch machinery is generic over it.
public protocol Projection: Sendable {
    /// Where the kind lives in the API.
    static var resource: ResourceType { get }
    /// What the decoder extracts for it.
    static var decoding: DecodingProfile { get }
    var meta: MetaProjection { get }
    init(entries: DecodedEntries)
}

/// A Secret: its type, the names of its data keys, and the values of the keys the operator manages.
public struct SecretProjection: Projection, Equatable {
    public static let resource = Secret.resource
    public static let decoding = DecodingProfile.secret
    /// Data keys whose values are kept (decoded, redacted in every printout).
    public static let managedKeys: Set<String> = [".dockerconfigjson", "kubeconfig", "operator_token", "vultr_api_key", "registry_id"]
    public var meta = MetaProjection()
    public var type = ""
    public var dataKeys: [String] = []
    public var values: [String: SecretBytes] = [:]

    public init(entries: DecodedEntries) {
        for e in entries where !meta.take(e) {
            switch e.field {
            case .secretType: type = e.value
            case .data:
                let key = e.key
                dataKeys.append(key)
                if Self.managedKeys.contains(key) {
                    // An undecodable value is kept as empty bytes: the handler sees it is corrupt.
                    values[key] = SecretBytes(Data(base64Encoded: e.value).map(Array.init) ?? [])
                }
            default: break
            }
        }
    }
}

public struct ServiceAccountProjection: Projection, Equatable {
    public static let resource = ServiceAccount.resource
    public static let decoding = DecodingProfile.serviceAccount
    public var meta = MetaProjection()
    public var imagePullSecrets: [String] = []

    public init(entries: DecodedEntries) {
        for e in entries where !meta.take(e) {
            if e.field == .pullSecret { imagePullSecrets.append(e.value) }
        }
    }
}

public struct PodProjection: Projection, Equatable {
    public static let resource = Pod.resource
    public static let decoding = DecodingProfile.pod
    public struct Waiting: Sendable, Equatable {
        public var reason: String
        public var message: String
    }
    public var meta = MetaProjection()
    public var serviceAccountName = ""
    public var images: [String] = []
    public var imagePullSecrets: [String] = []
    public var waiting: [Waiting] = []

    public init(entries: DecodedEntries) {
        for e in entries where !meta.take(e) {
            switch e.field {
            case .serviceAccountName: serviceAccountName = e.value
            case .image: images.append(e.value)
            case .pullSecret: imagePullSecrets.append(e.value)
            case .waiting: waiting.append(Waiting(reason: e.key, message: e.value))
            default: break
            }
        }
    }
}

/// Metadata plus the object's JSON, for kinds handled on cold paths (Roles, bindings, Leases).
public struct RawProjection<Kind: KubeResource>: Projection {
    public static var resource: ResourceType { Kind.resource }
    public static var decoding: DecodingProfile { .raw }
    public var meta = MetaProjection()
    public var json: [UInt8] = []

    public init(entries: DecodedEntries) {
        for e in entries where !meta.take(e) {
            if e.field == .raw { json = Array(e.value.utf8) }
        }
    }

    /// The full object, decoded with Codable.
    public func object() throws -> Kind { try JSONDecoder().decode(Kind.self, from: Data(json)) }
}

import Foundation
