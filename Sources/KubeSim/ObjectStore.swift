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
    /// The object before a MODIFIED change (for selector transitions).
    var old: JSONValue?
    var resourceVersion: Int
    /// `object` encoded once, shared by every watcher.
    var objectJSON: [UInt8]
}

/// The devcluster's state: every object of every kind under one global,
/// strictly increasing resourceVersion, with the API server's write semantics
/// (uid, generateName, optimistic concurrency, finalizers, Secret rules).
actor ObjectStore {
    private var objects: [ResourceKind: [ObjectKey: JSONValue]] = [:]
    /// Each stored object's JSON, encoded once per change and reused by lists and watches.
    private var encoded: [ResourceKind: [ObjectKey: [UInt8]]] = [:]
    private(set) var resourceVersion = 1
    /// Recent changes (bounded), for watches resumed from a resourceVersion.
    private(set) var history: [ChangeEvent] = []
    /// Every change after this resourceVersion is still in `history`.
    private(set) var historyStart: Int
    let historyLimit: Int
    let hub = WatchHub()
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
        historyStart = resourceVersion
    }

    // MARK: reads

    func get(_ kind: ResourceKind, namespace: String?, name: String) throws(APIError) -> JSONValue {
        guard let obj = objects[kind]?[ObjectKey(namespace: namespace ?? "", name: name)] else { throw .notFound(kind, name) }
        return obj
    }

    struct ListResult {
        /// The items' JSON, encoded.
        var items: [[UInt8]]
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
            return ListResult(items: page.map { json(kind, $0.key, $0.value) }, resourceVersion: resourceVersion, continueToken: token,
                              remaining: selector.isEmpty ? all.count - limit : nil)
        }
        return ListResult(items: all.map { json(kind, $0.key, $0.value) }, resourceVersion: resourceVersion, continueToken: nil, remaining: nil)
    }

    // MARK: writes

    func create(_ kind: ResourceKind, namespace: String?, body: JSONValue, as user: UserInfo? = nil) throws(APIError) -> JSONValue {
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
        if let user { try checkEscalation(user, kind: kind, namespace: ns, object: .object(obj)) }
        return commit("ADDED", kind, key, obj)
    }

    /// PUT semantics: replace, guarded by `metadata.resourceVersion` when given.
    func update(_ kind: ResourceKind, namespace: String?, name: String, body: JSONValue, as user: UserInfo? = nil) throws(APIError) -> JSONValue {
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
        if kind == .secret, (obj["type"]?.stringValue ?? "Opaque") != (current["type"]?.stringValue ?? "Opaque") {
            throw APIError.invalid(kind, name, field: "type", "Invalid value: \"\(obj["type"]?.stringValue ?? "Opaque")\": field is immutable")
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
        if let user { try checkEscalation(user, kind: kind, namespace: namespace, object: .object(obj)) }
        // Removing the last finalizer of an object being deleted deletes it.
        if meta["deletionTimestamp"] != nil, (meta["finalizers"]?.arrayValue ?? []).isEmpty {
            return commit("DELETED", kind, key, obj, remove: true)
        }
        return commit("MODIFIED", kind, key, obj)
    }

    func patch(_ kind: ResourceKind, namespace: String?, name: String, contentType: String, body: [UInt8], as user: UserInfo? = nil) throws(APIError) -> JSONValue {
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        guard let current = objects[kind]?[key] else { throw APIError.notFound(kind, name) }
        let patched = try Patching.apply(contentType: contentType, patch: body, to: current, kind: kind)
        guard case .object(var obj) = patched else { throw APIError.badRequest("the patched object is not a JSON object") }
        // A resourceVersion the patch did not set must not act as a precondition.
        if var meta = obj["metadata"]?.objectValue, meta["resourceVersion"] == current["metadata"]?["resourceVersion"] {
            meta["resourceVersion"] = nil
            obj["metadata"] = .object(meta)
        }
        return try update(kind, namespace: namespace, name: name, body: .object(obj), as: user)
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

    // MARK: watch

    /// Opens a watch. `resourceVersion` nil or "0" starts with synthetic ADDED
    /// events for the current state; a specific one replays the changes after
    /// it, or answers with a 410 Expired ERROR event when history no longer
    /// reaches back that far. `sendInitialEvents` ends the synthetic events
    /// with the `k8s.io/initial-events-end` bookmark.
    func watch(_ kind: ResourceKind, namespace: String?, selector: Selector, resourceVersion rv: String?, bookmarks: Bool,
               sendInitialEvents: Bool, timeout: Duration?) throws(APIError) -> AsyncStream<WatchFrame> {
        var initial: [WatchFrame] = []
        if sendInitialEvents || rv == nil || rv == "" || rv == "0" {
            let current = (objects[kind] ?? [:]).filter { (namespace == nil || $0.key.namespace == namespace) && selector.matches($0.value) }
            for (key, obj) in current.sorted(by: { $0.key < $1.key }) { initial.append(.event("ADDED", objectJSON: json(kind, key, obj))) }
            if sendInitialEvents {
                initial.append(.bookmark(kind: kind, resourceVersion: resourceVersion, initialEventsEnd: true))
            }
        } else {
            guard let from = Int(rv!) else {
                throw APIError.badRequest("resourceVersion: Invalid value: \"\(rv!)\": must be a non-negative integer")
            }
            if from < historyStart {
                return hub.subscribe(kind: kind, namespace: namespace, selector: selector, bookmarks: false, timeout: nil,
                                     initial: [.expired(requested: from, oldest: historyStart + 1)], endAfterInitial: true)
            }
            if from > resourceVersion {
                throw APIError(504, "Timeout", "Too large resource version: \(from), current: \(resourceVersion)",
                               details: .init(causes: [.init(reason: "ResourceVersionTooLarge", message: "Too large resource version")], retryAfterSeconds: 1))
            }
            for change in history where change.resourceVersion > from && change.kind == kind
                && (namespace == nil || change.key.namespace == namespace) {
                if let type = WatchHub.translate(change, for: selector) {
                    initial.append(.event(type, objectJSON: change.objectJSON))
                }
            }
        }
        return hub.subscribe(kind: kind, namespace: namespace, selector: selector, bookmarks: bookmarks, timeout: timeout, initial: WatchFrame.coalesced(initial))
    }

    /// Sends a bookmark at the current resourceVersion to every watcher that wants them.
    func sendBookmarks() { hub.bookmark(resourceVersion: resourceVersion) }

    /// Fault injection: forget all history, so any resume gets 410 Expired.
    func compactHistory() {
        history.removeAll()
        historyStart = resourceVersion
    }

    // MARK: internals

    private func json(_ kind: ResourceKind, _ key: ObjectKey, _ value: JSONValue) -> [UInt8] {
        encoded[kind]?[key] ?? value.jsonBytes()
    }

    private func commit(_ type: String, _ kind: ResourceKind, _ key: ObjectKey, _ obj: [String: JSONValue], remove: Bool = false) -> JSONValue {
        resourceVersion += 1
        var o = obj
        var meta = o["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = .string(String(resourceVersion))
        o["metadata"] = .object(meta)
        let value = JSONValue.object(o)
        let old = objects[kind]?[key]
        let json = value.jsonBytes()
        if remove {
            objects[kind]?[key] = nil
            encoded[kind]?[key] = nil
        } else {
            objects[kind, default: [:]][key] = value
            encoded[kind, default: [:]][key] = json
        }
        let change = ChangeEvent(type: type, kind: kind, key: key, object: value, old: old, resourceVersion: resourceVersion, objectJSON: json)
        history.append(change)
        if history.count > historyLimit + historyLimit / 4 {
            // Trim in batches so appends stay amortized O(1).
            let drop = history.count - historyLimit
            historyStart = history[drop - 1].resourceVersion
            history.removeFirst(drop)
        }
        hub.publish(change)
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
}

// MARK: - RBAC over the stored Roles and bindings

extension ObjectStore {
    /// The rules granted to `user` in `namespace` (nil: cluster-wide rules only).
    func rules(for user: UserInfo, namespace: String?) -> [Rule] {
        if user.groups.contains("system:masters") { return [Rule(verbs: ["*"], apiGroups: ["*"], resources: ["*"])] }
        var out = builtinRules
        func subjectMatches(_ s: JSONValue) -> Bool {
            let name = s["name"]?.stringValue ?? ""
            switch s["kind"]?.stringValue {
            case "User": return name == user.name
            case "Group": return user.groups.contains(name)
            case "ServiceAccount": return user.name == "system:serviceaccount:\(s["namespace"]?.stringValue ?? ""):\(name)"
            default: return false
            }
        }
        func roleRules(_ ref: JSONValue?, bindingNamespace: String?) -> [Rule] {
            guard let kindName = ref?["kind"]?.stringValue, let name = ref?["name"]?.stringValue else { return [] }
            let role: JSONValue?
            if kindName == "ClusterRole" {
                role = objects[.clusterRole]?[ObjectKey(namespace: "", name: name)]
            } else if let ns = bindingNamespace {
                role = objects[.role]?[ObjectKey(namespace: ns, name: name)]
            } else { role = nil }
            return role?["rules"]?.arrayValue?.map(Rule.init) ?? []
        }
        for (_, b) in objects[.clusterRoleBinding] ?? [:] where (b["subjects"]?.arrayValue ?? []).contains(where: subjectMatches) {
            out += roleRules(b["roleRef"], bindingNamespace: nil)
        }
        if let namespace {
            for (key, b) in objects[.roleBinding] ?? [:] where key.namespace == namespace && (b["subjects"]?.arrayValue ?? []).contains(where: subjectMatches) {
                out += roleRules(b["roleRef"], bindingNamespace: namespace)
            }
        }
        return out
    }

    /// What every authenticated user may do (system:basic-user, system:discovery).
    private var builtinRules: [Rule] {
        [Rule(verbs: ["create"], apiGroups: ["authorization.k8s.io"], resources: ["selfsubjectaccessreviews", "selfsubjectrulesreviews"])]
    }

    func authorize(_ user: UserInfo, _ a: RequestAttributes) -> Bool {
        rules(for: user, namespace: a.namespace).contains { $0.allows(a) }
    }

    /// kube-apiserver's escalation prevention for Role/ClusterRole and (Cluster)RoleBinding writes.
    func checkEscalation(_ user: UserInfo, kind: ResourceKind, namespace: String?, object: JSONValue) throws(APIError) {
        let name = object["metadata"]?["name"]?.stringValue ?? ""
        let owner = rules(for: user, namespace: namespace)
        switch kind {
        case .role, .clusterRole:
            let verb = RequestAttributes(verb: "escalate", group: kind.group, resource: kind.plural, namespace: namespace, name: name)
            if owner.contains(where: { $0.allows(verb) }) { return }
            let requested = object["rules"]?.arrayValue?.map(Rule.init) ?? []
            let missing = RBAC.uncovered(requested, by: owner)
            if !missing.isEmpty { throw RBAC.escalation(user, kind: kind, name: name, missing: missing) }
        case .roleBinding, .clusterRoleBinding:
            guard let refKind = object["roleRef"]?["kind"]?.stringValue, let refName = object["roleRef"]?["name"]?.stringValue else { return }
            let refResource = refKind == "ClusterRole" ? "clusterroles" : "roles"
            let bind = RequestAttributes(verb: "bind", group: "rbac.authorization.k8s.io", resource: refResource, namespace: namespace, name: refName)
            if owner.contains(where: { $0.allows(bind) }) { return }
            let refRole: JSONValue? = refKind == "ClusterRole"
                ? objects[.clusterRole]?[ObjectKey(namespace: "", name: refName)]
                : objects[.role]?[ObjectKey(namespace: namespace ?? "", name: refName)]
            let requested = refRole?["rules"]?.arrayValue?.map(Rule.init) ?? []
            let missing = RBAC.uncovered(requested, by: owner)
            if !missing.isEmpty { throw RBAC.escalation(user, kind: kind, name: name, missing: missing) }
        default:
            return
        }
    }

    /// The ServiceAccount a token names, if it still exists with that uid.
    func serviceAccountExists(namespace: String, name: String, uid: String) -> Bool {
        objects[.serviceAccount]?[ObjectKey(namespace: namespace, name: name)]?["metadata"]?["uid"]?.stringValue == uid
    }
}
