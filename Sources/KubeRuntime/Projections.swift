public import KubeClient

/// The metadata every projection keeps.
public struct MetaProjection: Sendable, Equatable {
    public var name = ""
    public var namespace = ""
    /// The object's UID; kept as 16 bytes when it is a canonical UUID, as the API server writes them.
    public var uid: String {
        get { uidStorage.text }
        set { uidStorage = CompactUID(newValue) }
    }
    private var uidStorage = CompactUID("")
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

    /// Takes a metadata entry (true) or leaves it to the projection (false). Values that
    /// repeat across objects share their storage; labels and annotations only when `kept` says so.
    mutating func take(_ e: DecodedEntry, keeping kept: MetadataKept = .all) -> Bool {
        switch e.field {
        case .name: name = e.value
        case .namespace: namespace = e.sharedValue
        case .uid: uidStorage = CompactUID(e.valueBytes)
        case .resourceVersion: resourceVersion = e.value
        case .label: if kept.contains(.labels) { labels.append(e.sharedKey, e.sharedValue) }
        case .annotation: if kept.contains(.annotations) { annotations.append(e.sharedKey, e.value) }
        case .owner: owners.append((e.sharedKey, e.sharedValue))
        case .ownerController: controller = e.sharedValue
        case .deletionTimestamp: deleting = true
        default: return false
        }
        return true
    }
}

/// Which optional metadata a projection keeps: what its handlers read, nothing more.
public struct MetadataKept: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let labels = MetadataKept(rawValue: 1)
    public static let annotations = MetadataKept(rawValue: 2)
    public static let all: MetadataKept = [.labels, .annotations]
}

/// A UID in 16 bytes when it is a canonical lowercase UUID (what kube-apiserver
/// writes), as text otherwise; the text form round-trips exactly.
struct CompactUID: Sendable, Equatable {
    private enum Storage: Sendable, Equatable { case uuid(UInt64, UInt64), text(String) }
    private let storage: Storage

    init(_ s: String) {
        var s = s
        storage = s.withUTF8 { Self.parse(UnsafeRawBufferPointer($0)) }.map { .uuid($0.0, $0.1) } ?? .text(s)
    }

    init(_ bytes: UnsafeRawBufferPointer) {
        storage = Self.parse(bytes).map { .uuid($0.0, $0.1) } ?? .text(String(decoding: bytes, as: UTF8.self))
    }

    var text: String {
        switch storage {
        case .text(let s): return s
        case .uuid(let hi, let lo):
            let hex = Array("0123456789abcdef".utf8)
            return String(unsafeUninitializedCapacity: 36) { out in
                var o = 0
                for i in 0..<32 {
                    if i == 8 || i == 12 || i == 16 || i == 20 { out[o] = UInt8(ascii: "-"); o += 1 }
                    let word = i < 16 ? hi : lo
                    out[o] = hex[Int((word >> UInt64(60 - (i % 16) * 4)) & 0xf)]
                    o += 1
                }
                return o
            }
        }
    }

    /// 8-4-4-4-12 lowercase hex digits, or nil.
    private static func parse(_ b: UnsafeRawBufferPointer) -> (UInt64, UInt64)? {
        guard b.count == 36 else { return nil }
        var hi: UInt64 = 0, lo: UInt64 = 0, digits = 0
        for (i, c) in b.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard c == UInt8(ascii: "-") else { return nil }
                continue
            }
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            default: return nil
            }
            if digits < 16 { hi = hi << 4 | UInt64(v) } else { lo = lo << 4 | UInt64(v) }
            digits += 1
        }
        return (hi, lo)
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
    /// The optional metadata its handlers read (default: labels and annotations).
    static var metadataKept: MetadataKept { get }
    var meta: MetaProjection { get }
    init(entries: DecodedEntries)
}

extension Projection {
    public static var metadataKept: MetadataKept { .all }
}

/// A Secret: its type, the names of its data keys, and the values of the keys the caller
/// asked to keep (`ReflectorOptions.keptSecretValues`; none by default). Which keys is the
/// caller's knowledge, passed in at run time, so the type stays concrete and the watch path
/// stays specialized for it.
public struct SecretProjection: Projection, Equatable {
    public static let resource = Secret.resource
    public static let decoding = DecodingProfile.secret
    public var meta = MetaProjection()
    public var type = ""
    public var dataKeys: [String] = []
    public var values: [String: SecretBytes] = [:]

    public init(entries: DecodedEntries) {
        for e in entries where !meta.take(e) {
            switch e.field {
            case .secretType: type = e.sharedValue
            case .data:
                let key = e.sharedKey
                dataKeys.append(key)
                if entries.keepsValue(of: key) {
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
    /// The repair reads an account's pull Secret references, never its labels.
    public static let metadataKept: MetadataKept = []
    public var meta = MetaProjection()
    public var imagePullSecrets: [String] = []

    public init(entries: DecodedEntries) {
        for e in entries where !meta.take(e, keeping: Self.metadataKept) {
            if e.field == .pullSecret { imagePullSecrets.append(e.sharedValue) }
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
    /// The stuck-Pod repair reads owners, images, pull Secrets and waiting reasons, never labels.
    public static let metadataKept: MetadataKept = []
    public var meta = MetaProjection()
    public var serviceAccountName = ""
    /// The distinct images of its containers (spec and status), in first-seen order.
    public var images: [String] = []
    public var imagePullSecrets: [String] = []
    public var waiting: [Waiting] = []

    public init(entries: DecodedEntries) {
        for e in entries where !meta.take(e, keeping: Self.metadataKept) {
            switch e.field {
            case .serviceAccountName: serviceAccountName = e.sharedValue
            case .image:
                let image = e.sharedValue
                if !images.contains(image) { images.append(image) }
            case .pullSecret: imagePullSecrets.append(e.sharedValue)
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
