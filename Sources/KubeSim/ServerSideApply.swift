import Foundation
import KubeClient
import Yams

/// A field path as `fieldsV1` spells it: `f:spec`, `f:containers`, `k:{"name":"web"}`, `f:image`.
typealias FieldPath = [String]

/// Field ownership (`metadata.managedFields`), as k8s.io/apimachinery
/// `pkg/util/managedfields` keeps it, reduced to what clients observe: every write records the
/// leaves it set for its manager (an `Update` entry, or an `Apply` entry for server-side apply),
/// a write that changes a field takes it from the other managers, and an apply that changes a
/// field another manager owns is a conflict unless forced. Lists whose items all have a `name`
/// are keyed by it (the built-in types' `listMapKeys` for containers, volumes, ports, env…);
/// other lists are atomic. Simplified: no `.` entries for maps, no per-type schema.
enum ManagedFields {
    struct Entry {
        var manager: String
        var operation: String
        var apiVersion: String
        var time: String
        var subresource: String?
        var fields: Set<FieldPath>
    }

    /// Metadata the server owns, never tracked.
    static let untracked: Set<String> = ["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                                         "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName"]

    /// The leaves of an object that ownership is tracked for.
    static func leaves(_ obj: JSONValue, subresource: String? = nil) -> Set<FieldPath> {
        guard var o = obj.objectValue else { return [] }
        let kind = o["kind"]?.stringValue ?? ""
        o["apiVersion"] = nil
        o["kind"] = nil
        if var meta = o["metadata"]?.objectValue {
            for k in untracked { meta[k] = nil }
            o["metadata"] = meta.isEmpty ? nil : .object(meta)
        }
        if subresource == "status" { o = o["status"].map { ["status": $0] } ?? [:] }
        var out = Set<FieldPath>()
        collect(.object(o), [], [], kind: kind, &out)
        return out
    }

    /// A list's items are keyed by the type's list-map key (`ListKeys`), or by `name` when every
    /// item has one (custom resources); other lists are one atomic field.
    private static func collect(_ v: JSONValue, _ prefix: FieldPath, _ plain: [String], kind: String, _ out: inout Set<FieldPath>) {
        switch v {
        case .object(let o) where !o.isEmpty:
            for (k, child) in o { collect(child, prefix + ["f:" + k], plain + [k], kind: kind, &out) }
        case .array(let a) where !a.isEmpty:
            let key = ListKeys.key(kind: kind, path: plain) ?? (a.allSatisfy { $0["name"]?.stringValue != nil } ? "name" : nil)
            if let key, a.allSatisfy({ $0[key] != nil }) {
                for item in a { collect(item, prefix + [token(key, item[key]!)], plain, kind: kind, &out) }
            } else if !prefix.isEmpty {
                out.insert(prefix)
            }
        default:
            if !prefix.isEmpty { out.insert(prefix) }
        }
    }

    /// `k:{"name":"web"}`: a list item by its key.
    static func token(_ field: String, _ value: JSONValue) -> String {
        "k:" + String(decoding: JSONValue.object([field: value]).jsonBytes(), as: UTF8.self)
    }

    static func itemKey(_ token: String) -> (field: String, value: JSONValue)? {
        guard token.hasPrefix("k:"), let json = try? JSONValue.parse(Array(token.dropFirst(2).utf8)), let (f, v) = json.objectValue?.first else { return nil }
        return (f, v)
    }

    /// The value at a path, nil when absent.
    static func value(_ v: JSONValue, _ path: ArraySlice<String>) -> JSONValue? {
        guard let first = path.first else { return v }
        if first.hasPrefix("f:") { return v[String(first.dropFirst(2))].flatMap { value($0, path.dropFirst()) } }
        guard let key = itemKey(first), let item = v.arrayValue?.first(where: { $0[key.field] == key.value }) else { return nil }
        return value(item, path.dropFirst())
    }

    static func set(_ v: JSONValue, _ path: ArraySlice<String>, _ newValue: JSONValue) -> JSONValue {
        guard let first = path.first else { return newValue }
        if first.hasPrefix("f:") {
            var o = v.objectValue ?? [:]
            let k = String(first.dropFirst(2))
            o[k] = set(o[k] ?? .null, path.dropFirst(), newValue)
            return .object(o)
        }
        guard let key = itemKey(first) else { return v }
        var a = v.arrayValue ?? []
        if let i = a.firstIndex(where: { $0[key.field] == key.value }) {
            a[i] = set(a[i], path.dropFirst(), newValue)
        } else {
            a.append(set(.object([key.field: key.value]), path.dropFirst(), newValue))
        }
        return .array(a)
    }

    static func remove(_ v: JSONValue, _ path: ArraySlice<String>) -> JSONValue {
        guard let first = path.first else { return v }
        if first.hasPrefix("f:") {
            guard var o = v.objectValue else { return v }
            let k = String(first.dropFirst(2))
            if path.count == 1 { o[k] = nil } else if let child = o[k] {
                let pruned = remove(child, path.dropFirst())
                // A map or keyed item left empty by the removal goes too.
                if pruned.objectValue?.isEmpty == true || pruned.arrayValue?.isEmpty == true { o[k] = nil } else { o[k] = pruned }
            }
            return .object(o)
        }
        guard let key = itemKey(first), var a = v.arrayValue, let i = a.firstIndex(where: { $0[key.field] == key.value }) else { return v }
        if path.count == 1 { a.remove(at: i) } else {
            let pruned = remove(a[i], path.dropFirst())
            if pruned.objectValue.map({ $0.keys.allSatisfy { $0 == key.field } }) == true { a.remove(at: i) } else { a[i] = pruned }
        }
        return .array(a)
    }

    /// `.spec.containers[name="web"].image`, as structured-merge-diff prints a path.
    static func describe(_ path: FieldPath) -> String {
        path.map { t in
            guard !t.hasPrefix("f:") else { return "." + t.dropFirst(2) }
            guard let key = itemKey(t) else { return t }
            return "[\(key.field)=" + String(decoding: key.value.jsonBytes(), as: UTF8.self) + "]"
        }.joined()
    }

    // MARK: encoding

    static func read(_ obj: [String: JSONValue]) -> [Entry] {
        (obj["metadata"]?["managedFields"]?.arrayValue ?? []).compactMap { e in
            guard let manager = e["manager"]?.stringValue, let op = e["operation"]?.stringValue else { return nil }
            var fields = Set<FieldPath>()
            decodeFields(e["fieldsV1"] ?? .object([:]), [], &fields)
            return Entry(manager: manager, operation: op, apiVersion: e["apiVersion"]?.stringValue ?? "", time: e["time"]?.stringValue ?? "",
                         subresource: e["subresource"]?.stringValue, fields: fields)
        }
    }

    private static func decodeFields(_ v: JSONValue, _ prefix: FieldPath, _ out: inout Set<FieldPath>) {
        let children = (v.objectValue ?? [:]).filter { $0.key != "." }
        if children.isEmpty { if !prefix.isEmpty { out.insert(prefix) }; return }
        for (k, child) in children { decodeFields(child, prefix + [k], &out) }
    }

    /// The `fieldsV1` tree of a set of paths: every token a key, every leaf `{}`; built in one
    /// pass over the tokens.
    static func fieldsTree(_ paths: [ArraySlice<String>]) -> JSONValue {
        var groups: [String: [ArraySlice<String>]] = [:]
        for p in paths { if let first = p.first { groups[first, default: []].append(p.dropFirst()) } }
        return .object(groups.mapValues { rest in fieldsTree(rest.filter { !$0.isEmpty }) })
    }

    static func write(_ entries: [Entry], to obj: inout [String: JSONValue]) {
        let kept = entries.filter { !$0.fields.isEmpty }.sorted {
            ($0.operation, $0.time, $0.manager, $0.apiVersion) < ($1.operation, $1.time, $1.manager, $1.apiVersion)
        }
        var meta = obj["metadata"]?.objectValue ?? [:]
        meta["managedFields"] = kept.isEmpty ? nil : .array(kept.map { e in
            let tree = fieldsTree(e.fields.map { $0[...] })
            var o: [String: JSONValue] = ["manager": .string(e.manager), "operation": .string(e.operation), "apiVersion": .string(e.apiVersion),
                                          "time": .string(e.time), "fieldsType": .string("FieldsV1"), "fieldsV1": tree]
            if let s = e.subresource { o["subresource"] = .string(s) }
            return .object(o)
        })
        obj["metadata"] = .object(meta)
    }

    // MARK: writes

    /// A non-apply write by `manager` (empty: an apply already recorded its ownership).
    static func recordUpdate(_ obj: inout [String: JSONValue], old: [String: JSONValue]?, manager: String, apiVersion: String, subresource: String?, time: String) {
        // A request that sends no managedFields keeps the stored ones.
        var entries = (obj["metadata"]?["managedFields"]?.arrayValue ?? []).isEmpty ? read(old ?? [:]) : read(obj)
        if manager.isEmpty { write(entries, to: &obj); return }
        let newLeaves = leaves(.object(obj), subresource: subresource)
        let oldValue = JSONValue.object(old ?? [:])
        let changed = newLeaves.filter { value(oldValue, $0[...]) != value(.object(obj), $0[...]) }
        let gone = leaves(oldValue, subresource: subresource).subtracting(newLeaves)
        for i in entries.indices {
            entries[i].fields.subtract(gone)
            if entries[i].manager != manager { entries[i].fields.subtract(changed) }
        }
        if let i = entries.firstIndex(where: { $0.manager == manager && $0.operation == "Update" && $0.subresource == subresource }) {
            entries[i].fields.formUnion(changed)
            if !changed.isEmpty { entries[i].time = time }
        } else if !changed.isEmpty {
            entries.append(Entry(manager: manager, operation: "Update", apiVersion: apiVersion, time: time, subresource: subresource, fields: changed))
        }
        write(entries, to: &obj)
    }

    static func replaceWithApply(_ obj: inout [String: JSONValue], applied: JSONValue, manager: String, apiVersion: String, time: String) {
        var entries = read(obj).filter { !($0.manager == manager) }
        entries.append(Entry(manager: manager, operation: "Apply", apiVersion: apiVersion, time: time, subresource: nil, fields: leaves(applied)))
        write(entries, to: &obj)
    }
}

/// `PATCH` with `application/apply-patch+yaml`: k8s.io/apiserver
/// `pkg/endpoints/handlers/patch.go` `applyPatcher` and apimachinery
/// `pkg/util/managedfields/internal/structuredmerge.go` `Apply`.
enum ServerSideApply {
    /// The applied configuration: YAML (JSON is YAML), of the endpoint's kind and version,
    /// without managedFields.
    /// A YAML (or JSON) document as JSON.
    /// sigs.k8s.io/yaml turns YAML into JSON without YAML 1.1 timestamps (a time stays a
    /// string), and its errors name the line, never quote it (it may hold Secret data).
    static func decodeYAML(_ body: [UInt8]) throws(APIError) -> JSONValue {
        if let json = try? JSONValue.parse(body) { return json }
        let loaded: Any?
        do { loaded = try Yams.load(yaml: String(decoding: body, as: UTF8.self), Resolver.default.removing(.timestamp)) } catch {
            var at = ""
            if let e = error as? YamlError {
                switch e {
                case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                    at = "line \(mark.line), column \(mark.column): \(problem)"
                default:
                    at = "the document is not valid YAML"
                }
            }
            throw APIError.badRequest("error decoding YAML: \(at.isEmpty ? "the document is not valid YAML" : at)")
        }
        guard let loaded else { throw APIError.badRequest("error decoding YAML: empty document") }
        return jsonValue(loaded)
    }

    static func decode(_ body: [UInt8], kind: ResourceKind) throws(APIError) -> [String: JSONValue] {
        let value = try decodeYAML(body)
        guard case .object(let o) = value else { throw APIError.badRequest("error decoding YAML: the document is not an object") }
        let version = o["apiVersion"]?.stringValue ?? ""
        if version != kind.apiVersion || (o["kind"]?.stringValue ?? "") != kind.kind {
            throw APIError.badRequest("Incorrect version specified in apply patch. Specified patch version: \(version), expected: \(kind.apiVersion)")
        }
        if o["metadata"]?["managedFields"] != nil {
            throw APIError.badRequest("metadata.managedFields must be nil")
        }
        return o
    }

    static func jsonValue(_ any: Any) -> JSONValue {
        switch any {
        case let d as [String: Any]: return .object(d.mapValues(jsonValue))
        case let a as [Any]: return .array(a.map(jsonValue))
        case let b as Bool: return .bool(b)
        case let i as Int: return .int(i)
        case let d as Double: return .double(d)
        case let s as String: return .string(s)
        case is NSNull: return .null
        default: return .string("\(any)")
        }
    }

    /// The applied configuration merged into `current`: conflicts refused unless `force`,
    /// fields this manager applied before and no longer applies removed (when nobody else owns
    /// them), and the manager's Apply entry replaced.
    static func apply(_ applied: [String: JSONValue], to current: JSONValue, kind: ResourceKind, manager: String, force: Bool, time: String) throws(APIError) -> JSONValue {
        guard var obj = current.objectValue else { return current }
        let appliedValue = JSONValue.object(applied)
        let paths = ManagedFields.leaves(appliedValue)
        var entries = ManagedFields.read(obj)
        var conflicts: [(entry: Int, path: FieldPath)] = []
        for p in paths.sorted(by: { $0.joined() < $1.joined() }) {
            guard let have = ManagedFields.value(current, p[...]), have != ManagedFields.value(appliedValue, p[...]) else { continue }
            for (i, e) in entries.enumerated() where e.manager != manager && e.fields.contains(p) { conflicts.append((i, p)) }
        }
        if !conflicts.isEmpty && !force { throw conflictError(conflicts.map { (entries[$0.entry], $0.path) }) }
        for (i, p) in conflicts { entries[i].fields.remove(p) }
        var merged = current
        for p in paths { merged = ManagedFields.set(merged, p[...], ManagedFields.value(appliedValue, p[...]) ?? .null) }
        let previous = entries.first { $0.manager == manager && $0.operation == "Apply" }?.fields ?? []
        for p in previous.subtracting(paths) where !entries.contains(where: { $0.manager != manager && $0.fields.contains(p) }) {
            merged = ManagedFields.remove(merged, p[...])
        }
        obj = merged.objectValue ?? obj
        // A no-op apply writes nothing: the manager's entry, time included, stays as it was
        // (the managed-fields updater only touches the time when the object changed).
        var before = current.objectValue ?? [:]
        var after = obj
        Strategy.setMeta(&before, "managedFields", nil)
        Strategy.setMeta(&after, "managedFields", nil)
        if before == after && previous == paths && conflicts.isEmpty {
            var unchanged = current.objectValue ?? [:]
            Strategy.setMeta(&unchanged, "resourceVersion", applied["metadata"]?["resourceVersion"])
            return .object(unchanged)
        }
        entries.removeAll { $0.manager == manager && $0.operation == "Apply" }
        entries.append(.init(manager: manager, operation: "Apply", apiVersion: kind.apiVersion, time: time, subresource: nil, fields: paths))
        ManagedFields.write(entries, to: &obj)
        // The applied resourceVersion, if any, is a precondition; otherwise none.
        Strategy.setMeta(&obj, "resourceVersion", applied["metadata"]?["resourceVersion"])
        return .object(obj)
    }

    /// apimachinery `internal/conflict.go` `NewConflictError`: 409 with one cause per conflict.
    static func conflictError(_ conflicts: [(ManagedFields.Entry, FieldPath)]) -> APIError {
        func who(_ e: ManagedFields.Entry) -> String {
            var s = "\"\(e.manager)\""
            if e.operation == "Update" { s += " using \(e.apiVersion)" }
            if let sub = e.subresource { s += " with subresource \"\(sub)\"" }
            return s
        }
        let causes = conflicts.map { Status.Cause(reason: "FieldManagerConflict", message: "conflict with \(who($0.0))", field: ManagedFields.describe($0.1)) }
        let message: String
        if conflicts.count == 1 {
            message = "Apply failed with 1 conflict: conflict with \(who(conflicts[0].0)): \(ManagedFields.describe(conflicts[0].1))"
        } else {
            var lines: [String] = []
            let byManager = Dictionary(grouping: conflicts, by: { who($0.0) })
            for m in byManager.keys.sorted() {
                lines.append("conflicts with \(m):")
                lines += byManager[m]!.map { "- " + ManagedFields.describe($0.1) }
            }
            message = "Apply failed with \(conflicts.count) conflicts: " + lines.joined(separator: "\n")
        }
        return APIError(409, "Conflict", message, details: .init(causes: causes))
    }
}
