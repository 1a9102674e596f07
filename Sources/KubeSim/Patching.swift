import Foundation
import KubeClient

/// The merge keys of the built-in types' lists: `patchMergeKey` for strategic merge patches
/// and the first `listMapKey` for server-side apply (k8s.io/api `core/v1/types.go`:
/// containers, volumes and pull secrets by `name`, container ports by `containerPort`,
/// Service ports by `port`, env by `name`, volume mounts by `mountPath`, conditions by
/// `type`, owner references by `uid`). Pod templates (`spec.template.spec`) have the Pod's.
enum ListKeys {
    static func key(kind: String, path: [String]) -> String? {
        guard let last = path.last else { return nil }
        let parent = Array(path.dropLast())
        if last == "ownerReferences" && parent.last == "metadata" { return "uid" }
        func isPodSpec(_ p: [String]) -> Bool { (kind == "Pod" && p == ["spec"]) || (p.count >= 2 && Array(p.suffix(2)) == ["template", "spec"]) }
        if isPodSpec(parent) {
            switch last {
            case "containers", "initContainers", "ephemeralContainers", "volumes", "imagePullSecrets", "resourceClaims", "schedulingGates": return "name"
            case "hostAliases": return "ip"
            default: break
            }
        }
        if let container = parent.last, ["containers", "initContainers", "ephemeralContainers"].contains(container), isPodSpec(Array(parent.dropLast())) {
            switch last {
            case "ports": return "containerPort"
            case "env", "resizePolicy": return "name"
            case "volumeMounts": return "mountPath"
            case "volumeDevices": return "devicePath"
            default: break
            }
        }
        if kind == "Service" && path == ["spec", "ports"] { return "port" }
        if kind == "ServiceAccount" && path == ["secrets"] { return "name" }
        if last == "conditions" && parent == ["status"] && ["Pod", "Node", "Deployment", "ReplicaSet", "Namespace"].contains(kind) { return "type" }
        return nil
    }
}

/// The three PATCH flavours, applied to a stored object.
enum Patching {
    static let applyYAML = "application/apply-patch+yaml"

    /// The media type of a Content-Type header, without parameters.
    static func mediaType(_ contentType: String) -> String {
        contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }

    static func apply(contentType: String, patch: [UInt8], to object: JSONValue, kind: ResourceKind) throws(APIError) -> JSONValue {
        let type = mediaType(contentType)
        let doc: JSONValue
        do { doc = try JSONValue.parse(patch) } catch {
            throw APIError.badRequest("error decoding patch: invalid character in JSON")
        }
        switch type {
        case "application/merge-patch+json":
            return merge(object, doc)
        case "application/strategic-merge-patch+json":
            return strategicMerge(object, doc, path: [], kind: kind)
        case "application/json-patch+json":
            guard case .array(let ops) = doc else { throw APIError.badRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch") }
            var result = object
            for op in ops { result = try applyOperation(op, to: result) }
            return result
        default:
            throw APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml")
        }
    }

    /// RFC 7386.
    static func merge(_ target: JSONValue, _ patch: JSONValue) -> JSONValue {
        guard case .object(let p) = patch else { return patch }
        var t = target.objectValue ?? [:]
        for (k, v) in p {
            if v == .null { t[k] = nil } else { t[k] = merge(t[k] ?? .null, v) }
        }
        return .object(t)
    }

    /// Strategic merge (k8s.io/apimachinery `pkg/util/strategicpatch/patch.go`): maps merge,
    /// lists with a `patchMergeKey` merge item by item (`ListKeys`), other lists are replaced,
    /// `finalizers` merge as a set, and the directives `$patch` (replace, delete),
    /// `$retainKeys`, `$deleteFromPrimitiveList/…` and `$setElementOrder/…` (order only,
    /// not kept) are honoured and never stored. `ServiceAccount.imagePullSecrets` has no merge
    /// key, so it is replaced whole, as on a real server.
    static func strategicMerge(_ target: JSONValue, _ patch: JSONValue, path: [String], kind: ResourceKind) -> JSONValue {
        guard case .object(var p) = patch else { return patch }
        switch p.removeValue(forKey: "$patch")?.stringValue {
        case "replace"?: return stripDirectives(.object(p))
        case "delete"?: return .null
        default: break
        }
        var t = target.objectValue ?? [:]
        let retain = p.removeValue(forKey: "$retainKeys")?.arrayValue?.compactMap(\.stringValue)
        var orders: [String: [JSONValue]] = [:]
        for (k, v) in p {
            if k.hasPrefix("$setElementOrder/") {
                orders[String(k.dropFirst("$setElementOrder/".count))] = v.arrayValue ?? []
                continue
            }
            if k.hasPrefix("$deleteFromPrimitiveList/") {
                let field = String(k.dropFirst("$deleteFromPrimitiveList/".count))
                let gone = v.arrayValue ?? []
                if let list = t[field]?.arrayValue { t[field] = .array(list.filter { !gone.contains($0) }) }
                continue
            }
            let childPath = path + [k]
            if v == .null { t[k] = nil; continue }
            if case .array(let items) = v {
                if let mergeKey = ListKeys.key(kind: kind.kind, path: childPath) {
                    if items.contains(where: { $0["$patch"]?.stringValue == "replace" }) {
                        t[k] = .array(items.filter { $0["$patch"] == nil }.map(stripDirectives))
                        continue
                    }
                    var existing = t[k]?.arrayValue ?? []
                    for item in items {
                        let id = item[mergeKey]
                        if item["$patch"]?.stringValue == "delete" {
                            existing.removeAll { $0[mergeKey] == id }
                        } else if let i = existing.firstIndex(where: { $0[mergeKey] == id && id != nil }) {
                            existing[i] = strategicMerge(existing[i], item, path: childPath, kind: kind)
                        } else {
                            existing.append(stripDirectives(item))
                        }
                    }
                    t[k] = .array(existing)
                } else if childPath == ["metadata", "finalizers"] {
                    // `patchStrategy:"merge"` on a list of strings: a set union.
                    var existing = t[k]?.arrayValue ?? []
                    for item in items where !existing.contains(item) { existing.append(item) }
                    t[k] = .array(existing)
                } else {
                    t[k] = .array(items.map(stripDirectives))
                }
            } else if case .object = v {
                let merged = strategicMerge(t[k] ?? .null, v, path: childPath, kind: kind)
                t[k] = merged == .null ? nil : merged
            } else {
                t[k] = v
            }
        }
        // `$setElementOrder/<list>`: the patched list's items in the order the client has them
        // (an env var inserted near the top stays there); items the client does not list follow.
        for (field, order) in orders {
            guard let key = ListKeys.key(kind: kind.kind, path: path + [field]), let list = t[field]?.arrayValue else { continue }
            let wanted = order.compactMap { $0[key] }
            let listed = wanted.compactMap { id in list.first { $0[key] == id } }
            t[field] = .array(listed + list.filter { item in !wanted.contains { $0 == item[key] } })
        }
        if let retain { t = t.filter { retain.contains($0.key) } }
        return .object(t)
    }

    /// A patch value stored as data: its directives removed.
    static func stripDirectives(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let o):
            var out: [String: JSONValue] = [:]
            for (k, child) in o where !k.hasPrefix("$") { out[k] = stripDirectives(child) }
            return .object(out)
        case .array(let a): return .array(a.map(stripDirectives))
        default: return v
        }
    }

    // MARK: RFC 6902

    private static func applyOperation(_ op: JSONValue, to doc: JSONValue) throws(APIError) -> JSONValue {
        guard let name = op["op"]?.stringValue, let path = op["path"]?.stringValue else {
            throw APIError.patchFailed
        }
        let tokens = try pointer(path)
        switch name {
        case "add":
            guard let value = op["value"] else { throw APIError.patchFailed }
            return try set(doc, tokens[...], value, insert: true)
        case "replace":
            guard let value = op["value"] else { throw APIError.patchFailed }
            _ = try get(doc, tokens[...], path)
            return try set(doc, tokens[...], value, insert: false)
        case "remove":
            _ = try get(doc, tokens[...], path)
            return try remove(doc, tokens[...])
        case "test":
            let actual = try get(doc, tokens[...], path)
            if actual != (op["value"] ?? .null) {
                throw APIError.patchFailed
            }
            return doc
        case "copy", "move":
            guard let from = op["from"]?.stringValue else { throw APIError.patchFailed }
            let fromTokens = try pointer(from)
            let value = try get(doc, fromTokens[...], from)
            let base = name == "move" ? try remove(doc, fromTokens[...]) : doc
            return try set(base, tokens[...], value, insert: true)
        default:
            throw APIError.patchFailed
        }
    }

    private static func pointer(_ path: String) throws(APIError) -> [String] {
        if path.isEmpty { return [] }
        guard path.hasPrefix("/") else { throw APIError.patchFailed }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    private static func get(_ doc: JSONValue, _ tokens: ArraySlice<String>, _ path: String) throws(APIError) -> JSONValue {
        guard let first = tokens.first else { return doc }
        switch doc {
        case .object(let o):
            guard let v = o[first] else { throw APIError.patchFailed }
            return try get(v, tokens.dropFirst(), path)
        case .array(let a):
            guard let i = Int(first), a.indices.contains(i) else { throw APIError.patchFailed }
            return try get(a[i], tokens.dropFirst(), path)
        default:
            throw APIError.patchFailed
        }
    }

    private static func set(_ doc: JSONValue, _ tokens: ArraySlice<String>, _ value: JSONValue, insert: Bool) throws(APIError) -> JSONValue {
        guard let first = tokens.first else { return value }
        let rest = tokens.dropFirst()
        switch doc {
        case .object(var o):
            if rest.isEmpty { o[first] = value } else {
                guard let child = o[first] else { throw APIError.patchFailed }
                o[first] = try set(child, rest, value, insert: insert)
            }
            return .object(o)
        case .array(var a):
            if rest.isEmpty {
                if first == "-" { a.append(value); return .array(a) }
                guard let i = Int(first), i >= 0, i <= a.count, insert || i < a.count else { throw APIError.patchFailed }
                if insert { a.insert(value, at: i) } else { a[i] = value }
                return .array(a)
            }
            guard let i = Int(first), a.indices.contains(i) else { throw APIError.patchFailed }
            a[i] = try set(a[i], rest, value, insert: insert)
            return .array(a)
        default:
            throw APIError.patchFailed
        }
    }

    private static func remove(_ doc: JSONValue, _ tokens: ArraySlice<String>) throws(APIError) -> JSONValue {
        guard let first = tokens.first else { return .null }
        let rest = tokens.dropFirst()
        switch doc {
        case .object(var o):
            if rest.isEmpty { o[first] = nil } else if let child = o[first] { o[first] = try remove(child, rest) }
            return .object(o)
        case .array(var a):
            guard let i = Int(first), a.indices.contains(i) else { throw APIError.patchFailed }
            if rest.isEmpty { a.remove(at: i) } else { a[i] = try remove(a[i], rest) }
            return .array(a)
        default:
            return doc
        }
    }
}
