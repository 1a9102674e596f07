import Foundation
import KubeClient

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

    /// Lists merged by key, per the built-in types' `patchMergeKey` tags.
    /// `ServiceAccount.imagePullSecrets` has none, so it is replaced whole, as on a real server.
    static let mergeKeys: [String: String] = [
        "ServiceAccount:secrets": "name",
        "Pod:spec.imagePullSecrets": "name",
        "Pod:spec.containers": "name",
        "Pod:spec.initContainers": "name",
        "Pod:spec.volumes": "name",
        "Pod:metadata.ownerReferences": "uid",
        "*:metadata.ownerReferences": "uid",
    ]

    static func strategicMerge(_ target: JSONValue, _ patch: JSONValue, path: [String], kind: ResourceKind) -> JSONValue {
        guard case .object(let p) = patch else { return patch }
        var t = target.objectValue ?? [:]
        for (k, v) in p {
            let childPath = path + [k]
            let dotted = childPath.joined(separator: ".")
            if v == .null { t[k] = nil; continue }
            if case .array(let items) = v, let mergeKey = mergeKeys["\(kind.kind):\(dotted)"] ?? mergeKeys["*:\(dotted)"],
               case .array(var existing)? = t[k] {
                for item in items {
                    let id = item[mergeKey]
                    if item["$patch"]?.stringValue == "delete" {
                        existing.removeAll { $0[mergeKey] == id }
                    } else if let i = existing.firstIndex(where: { $0[mergeKey] == id && id != nil }) {
                        existing[i] = strategicMerge(existing[i], item, path: childPath, kind: kind)
                    } else {
                        existing.append(item)
                    }
                }
                t[k] = .array(existing)
            } else if case .object = v {
                t[k] = strategicMerge(t[k] ?? .null, v, path: childPath, kind: kind)
            } else {
                t[k] = v
            }
        }
        return .object(t)
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
