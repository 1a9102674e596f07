import Foundation
import KubeClient

/// Key of one stored object.
struct ObjectKey: Hashable, Comparable, Sendable {
    var namespace: String
    var name: String
    static func < (a: ObjectKey, b: ObjectKey) -> Bool { (a.namespace, a.name) < (b.namespace, b.name) }
}

/// One change, as a watch would report it.
struct ChangeEvent: Sendable {
    var type: String  // ADDED, MODIFIED, DELETED
    var kind: ResourceKind
    var key: ObjectKey
    var object: JSONValue
    var resourceVersion: Int
}

/// The devcluster's state: every object of every kind under one global,
/// strictly increasing resourceVersion, with the API server's write semantics
/// (uid, generateName, optimistic concurrency, finalizers, Secret rules).
actor ObjectStore {
    private var objects: [ResourceKind: [ObjectKey: JSONValue]] = [:]
    private(set) var resourceVersion = 1
    /// Recent changes (bounded), for watches resumed from a resourceVersion.
    private(set) var history: [ChangeEvent] = []
    let historyLimit: Int
    private let now: @Sendable () -> Date

    init(historyLimit: Int = 10_000, now: @escaping @Sendable () -> Date = Date.init) {
        self.historyLimit = historyLimit
        self.now = now
        // The namespaces every cluster starts with.
        var seeded: [ObjectKey: JSONValue] = [:]
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            resourceVersion += 1
            seeded[ObjectKey(namespace: "", name: ns)] = .object([
                "apiVersion": .string("v1"), "kind": .string("Namespace"),
                "metadata": .object(["name": .string(ns), "uid": .string(UUID().uuidString.lowercased()),
                                     "resourceVersion": .string(String(resourceVersion)),
                                     "creationTimestamp": .string(RFC3339.format(now()))]),
                "status": .object(["phase": .string("Active")]),
            ])
        }
        objects[.namespace] = seeded
    }

    // MARK: reads

    func get(_ kind: ResourceKind, namespace: String?, name: String) throws(APIError) -> JSONValue {
        guard let obj = objects[kind]?[ObjectKey(namespace: namespace ?? "", name: name)] else { throw .notFound(kind, name) }
        return obj
    }

    struct ListResult {
        var items: [JSONValue]
        var resourceVersion: Int
        var continueToken: String?
        var remaining: Int?
    }

    /// Lists in key order; `limit`/`continue` page through it.
    func list(_ kind: ResourceKind, namespace: String?, selector: Selector, limit: Int?, continueToken: String?) throws(APIError) -> ListResult {
        var after: ObjectKey?
        if let continueToken, !continueToken.isEmpty {
            guard let data = Data(base64Encoded: continueToken),
                  let parts = String(data: data, encoding: .utf8)?.split(separator: "\u{0}", omittingEmptySubsequences: false),
                  parts.count == 2 else {
                throw APIError.badRequest("continue key is not valid: illegal base64 data")
            }
            after = ObjectKey(namespace: String(parts[0]), name: String(parts[1]))
        }
        let all = (objects[kind] ?? [:])
            .filter { key, obj in (namespace == nil || key.namespace == namespace) && (after.map { key > $0 } ?? true) && selector.matches(obj) }
            .sorted { $0.key < $1.key }
        if let limit, limit > 0, all.count > limit {
            let page = all.prefix(limit)
            let last = page.last!.key
            let token = Data("\(last.namespace)\u{0}\(last.name)".utf8).base64EncodedString()
            return ListResult(items: page.map(\.value), resourceVersion: resourceVersion, continueToken: token,
                              remaining: selector.isEmpty ? all.count - limit : nil)
        }
        return ListResult(items: all.map(\.value), resourceVersion: resourceVersion, continueToken: nil, remaining: nil)
    }

    // MARK: writes

    func create(_ kind: ResourceKind, namespace: String?, body: JSONValue) throws(APIError) -> JSONValue {
        guard case .object(var obj) = body else { throw APIError.badRequest("the body of the request was not a JSON object") }
        try checkTypeMeta(kind, obj)
        var meta = obj["metadata"]?.objectValue ?? [:]
        let ns = try resolveNamespace(kind, path: namespace, meta: meta)
        var name = meta["name"]?.stringValue ?? ""
        if name.isEmpty, let prefix = meta["generateName"]?.stringValue, !prefix.isEmpty {
            repeat { name = prefix + Self.randomSuffix() } while objects[kind]?[ObjectKey(namespace: ns ?? "", name: name)] != nil
        }
        guard !name.isEmpty else { throw APIError.invalid(kind, "", field: "metadata.name", "Required value: name or generateName is required") }
        try validateName(kind, name)
        if let ns, objects[.namespace]?[ObjectKey(namespace: "", name: ns)] == nil {
            throw APIError.notFound(.namespace, ns)
        }
        let key = ObjectKey(namespace: ns ?? "", name: name)
        if objects[kind]?[key] != nil { throw APIError.alreadyExists(kind, name) }
        meta["name"] = .string(name)
        if let ns { meta["namespace"] = .string(ns) } else { meta["namespace"] = nil }
        meta["uid"] = .string(UUID().uuidString.lowercased())
        meta["creationTimestamp"] = .string(RFC3339.format(now()))
        meta["deletionTimestamp"] = nil
        meta["generation"] = .int(1)
        obj["metadata"] = .object(meta)
        obj["apiVersion"] = .string(kind.apiVersion)
        obj["kind"] = .string(kind.kind)
        try normalize(kind, &obj, name: name)
        return commit("ADDED", kind, key, obj)
    }

    /// PUT semantics: replace, guarded by `metadata.resourceVersion` when given.
    func update(_ kind: ResourceKind, namespace: String?, name: String, body: JSONValue) throws(APIError) -> JSONValue {
        guard case .object(var obj) = body else { throw APIError.badRequest("the body of the request was not a JSON object") }
        try checkTypeMeta(kind, obj)
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        guard let current = objects[kind]?[key]?.objectValue else { throw APIError.notFound(kind, name) }
        var meta = obj["metadata"]?.objectValue ?? [:]
        if let bodyName = meta["name"]?.stringValue, bodyName != name {
            throw APIError.badRequest("the name of the object (\(bodyName)) does not match the name on the URL (\(name))")
        }
        _ = try resolveNamespace(kind, path: namespace, meta: meta)
        let currentMeta = current["metadata"]?.objectValue ?? [:]
        if let rv = meta["resourceVersion"]?.stringValue, !rv.isEmpty, rv != currentMeta["resourceVersion"]?.stringValue {
            throw APIError.conflict(kind, name)
        }
        if let uid = meta["uid"]?.stringValue, !uid.isEmpty, uid != currentMeta["uid"]?.stringValue {
            throw APIError(409, "Conflict", "Operation cannot be fulfilled on \(kind.plural)\(kind.groupSuffix) \"\(name)\": Precondition failed: UID in precondition: \(uid), UID in object meta: \(currentMeta["uid"]?.stringValue ?? "")")
        }
        if kind == .roleBinding || kind == .clusterRoleBinding, obj["roleRef"] != current["roleRef"] {
            throw APIError.invalid(kind, name, field: "roleRef", "Invalid value: cannot change roleRef")
        }
        // Server-owned metadata survives a PUT.
        for k in ["uid", "creationTimestamp", "deletionTimestamp", "generation"] { meta[k] = currentMeta[k] }
        meta["name"] = .string(name)
        if let namespace { meta["namespace"] = .string(namespace) }
        obj["metadata"] = .object(meta)
        obj["apiVersion"] = .string(kind.apiVersion)
        obj["kind"] = .string(kind.kind)
        try normalize(kind, &obj, name: name)
        if let immutable = current["immutable"], immutable == .bool(true), obj["data"] != current["data"] {
            throw APIError.invalid(kind, name, field: "data", "Forbidden: field is immutable when `immutable` is set")
        }
        if obj == current.merging(resourceVersion: obj["metadata"]?["resourceVersion"]) { return .object(current) }
        // Removing the last finalizer of an object being deleted deletes it.
        if meta["deletionTimestamp"] != nil, (meta["finalizers"]?.arrayValue ?? []).isEmpty {
            return commit("DELETED", kind, key, obj, remove: true)
        }
        return commit("MODIFIED", kind, key, obj)
    }

    func patch(_ kind: ResourceKind, namespace: String?, name: String, contentType: String, body: [UInt8]) throws(APIError) -> JSONValue {
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        guard let current = objects[kind]?[key] else { throw APIError.notFound(kind, name) }
        let patched = try Patching.apply(contentType: contentType, patch: body, to: current, kind: kind)
        guard case .object(var obj) = patched else { throw APIError.badRequest("the patched object is not a JSON object") }
        // A resourceVersion the patch did not set must not act as a precondition.
        if var meta = obj["metadata"]?.objectValue, meta["resourceVersion"] == current["metadata"]?["resourceVersion"] {
            meta["resourceVersion"] = nil
            obj["metadata"] = .object(meta)
        }
        return try update(kind, namespace: namespace, name: name, body: .object(obj))
    }

    /// Deletes, or marks for deletion when finalizers remain.
    func delete(_ kind: ResourceKind, namespace: String?, name: String, preconditionUID: String?, preconditionRV: String?) throws(APIError) -> JSONValue {
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        guard var obj = objects[kind]?[key]?.objectValue else { throw APIError.notFound(kind, name) }
        var meta = obj["metadata"]?.objectValue ?? [:]
        if let uid = preconditionUID, uid != meta["uid"]?.stringValue {
            throw APIError(409, "Conflict", "Operation cannot be fulfilled on \(kind.plural)\(kind.groupSuffix) \"\(name)\": Precondition failed: UID in precondition: \(uid), UID in object meta: \(meta["uid"]?.stringValue ?? "")")
        }
        if let rv = preconditionRV, rv != meta["resourceVersion"]?.stringValue {
            throw APIError(409, "Conflict", "Operation cannot be fulfilled on \(kind.plural)\(kind.groupSuffix) \"\(name)\": Precondition failed: ResourceVersion in precondition: \(rv), ResourceVersion in object meta: \(meta["resourceVersion"]?.stringValue ?? "")")
        }
        if !(meta["finalizers"]?.arrayValue ?? []).isEmpty {
            if meta["deletionTimestamp"] != nil { return .object(obj) }
            meta["deletionTimestamp"] = .string(RFC3339.format(now()))
            obj["metadata"] = .object(meta)
            return commit("MODIFIED", kind, key, obj)
        }
        if kind == .namespace {
            for k in ResourceKind.all where k.namespaced {
                for (childKey, child) in objects[k] ?? [:] where childKey.namespace == name {
                    _ = commit("DELETED", k, childKey, child.objectValue ?? [:], remove: true)
                }
            }
        }
        return commit("DELETED", kind, key, obj, remove: true)
    }

    // MARK: internals

    private func commit(_ type: String, _ kind: ResourceKind, _ key: ObjectKey, _ obj: [String: JSONValue], remove: Bool = false) -> JSONValue {
        resourceVersion += 1
        var o = obj
        var meta = o["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = .string(String(resourceVersion))
        o["metadata"] = .object(meta)
        let value = JSONValue.object(o)
        if remove { objects[kind]?[key] = nil } else { objects[kind, default: [:]][key] = value }
        history.append(ChangeEvent(type: type, kind: kind, key: key, object: value, resourceVersion: resourceVersion))
        if history.count > historyLimit { history.removeFirst(history.count - historyLimit) }
        return value
    }

    private func checkTypeMeta(_ kind: ResourceKind, _ obj: [String: JSONValue]) throws(APIError) {
        if let v = obj["apiVersion"]?.stringValue, !v.isEmpty, v != kind.apiVersion {
            throw APIError.badRequest("the API version in the data (\(v)) does not match the expected API version (\(kind.apiVersion))")
        }
        if let k = obj["kind"]?.stringValue, !k.isEmpty, k != kind.kind {
            throw APIError.badRequest("the kind in the data (\(k)) does not match the expected kind (\(kind.kind))")
        }
    }

    private func resolveNamespace(_ kind: ResourceKind, path: String?, meta: [String: JSONValue]) throws(APIError) -> String? {
        guard kind.namespaced else { return nil }
        let bodyNS = meta["namespace"]?.stringValue
        if let bodyNS, !bodyNS.isEmpty, let path, bodyNS != path {
            throw APIError.badRequest("the namespace of the provided object does not match the namespace sent on the request")
        }
        guard let ns = path ?? bodyNS, !ns.isEmpty else { throw APIError.badRequest("the namespace of the object is required") }
        return ns
    }

    private func validateName(_ kind: ResourceKind, _ name: String) throws(APIError) {
        let ok = name.count <= 253 && name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." || (kind.group == "rbac.authorization.k8s.io" && $0 == ":") }
            && name.first.map { $0.isLetter || $0.isNumber } == true
        if !ok {
            throw APIError.invalid(kind, name, field: "metadata.name", "Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
        }
    }

    /// Kind-specific rules applied on every write.
    private func normalize(_ kind: ResourceKind, _ obj: inout [String: JSONValue], name: String) throws(APIError) {
        guard kind == .secret else { return }
        var data = obj["data"]?.objectValue ?? [:]
        for (k, v) in data {
            guard let s = v.stringValue, Data(base64Encoded: s) != nil else {
                // kube-apiserver fails while decoding the body, before validation.
                throw APIError.badRequest("Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0 (key \(k))")
            }
        }
        if let stringData = obj["stringData"]?.objectValue {
            for (k, v) in stringData { data[k] = .string(Data((v.stringValue ?? "").utf8).base64EncodedString()) }
            obj["stringData"] = nil
        }
        for k in data.keys where !k.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) || k.isEmpty {
            throw APIError.invalid(kind, name, field: "data[\(k)]", "Invalid value: \"\(k)\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
        }
        obj["data"] = data.isEmpty ? nil : .object(data)
        let type = obj["type"]?.stringValue ?? "Opaque"
        obj["type"] = .string(type)
        if type == "kubernetes.io/dockerconfigjson" {
            guard let raw = data[".dockerconfigjson"]?.stringValue, let bytes = Data(base64Encoded: raw) else {
                throw APIError.invalid(kind, name, field: "data[.dockerconfigjson]", "Required value")
            }
            guard (try? JSONValue.parse(Array(bytes)))?.objectValue != nil else {
                throw APIError.invalid(kind, name, field: "data[.dockerconfigjson]", "Invalid value: \"<secret contents redacted>\": invalid character looking for beginning of value")
            }
        }
        var size = 0
        for v in data.values { size += (v.stringValue?.count ?? 0) * 3 / 4 }
        if size > 1 << 20 {
            throw APIError.invalid(kind, name, field: "data", "Too long: must have at most 1048576 bytes")
        }
    }

    private static func randomSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<5).map { _ in alphabet.randomElement()! })
    }
}

private extension Dictionary where Key == String, Value == JSONValue {
    /// The current object with the request's resourceVersion, to detect no-op updates.
    func merging(resourceVersion rv: JSONValue?) -> [String: JSONValue] {
        var o = self
        var meta = o["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = rv
        o["metadata"] = .object(meta)
        return o
    }
}

extension ResourceKind {
    static let namespace = ResourceKind.all[0]
    static let secret = ResourceKind.all[1]
    static let serviceAccount = ResourceKind.all[2]
    static let pod = ResourceKind.all[3]
    static let roleBinding = ResourceKind.all[8]
    static let clusterRoleBinding = ResourceKind.all[10]
}
