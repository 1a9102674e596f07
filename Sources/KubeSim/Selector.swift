import KubeClient

/// Label and field selectors as kube-apiserver parses them.
struct Selector: Sendable {
    enum Requirement: Sendable {
        case equals(String, String)
        case notEquals(String, String)
        case `in`(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case notExists(String)
    }
    var labels: [Requirement] = []
    var fields: [Requirement] = []
    var isEmpty: Bool { labels.isEmpty && fields.isEmpty }

    /// The field labels each kind's registry strategy makes selectable (`GetAttrs` /
    /// `ToSelectableFields` in kubernetes/pkg/registry/<group>/<kind>/strategy.go, plus
    /// `metadata.name` and `metadata.namespace` everywhere); any other is
    /// `field label not supported` (pkg/apis/core/v1/conversion.go label conversions).
    static func fieldNames(_ kind: ResourceKind) -> Set<String> {
        var names: Set<String> = ["metadata.name", "metadata.namespace"]
        switch (kind.group, kind.plural) {
        case ("", "secrets"): names.insert("type")
        case ("", "pods"):
            names.formUnion(["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork",
                             "status.phase", "status.podIP", "status.nominatedNodeName"])
        case ("", "namespaces"): names.insert("status.phase")
        case ("apps", "replicasets"): names.insert("status.replicas")
        case ("", "events"):
            names.formUnion(["involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion",
                             "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"])
        case ("events.k8s.io", "events"):
            names.formUnion(["regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid", "regarding.apiVersion",
                             "regarding.resourceVersion", "regarding.fieldPath", "reason", "reportingController", "source", "type"])
        default: break
        }
        return names
    }

    init() {}

    /// `kind` decides which field labels exist; events.k8s.io labels are turned into the core
    /// ones, since both views select over the same stored core Events.
    init(labelSelector: String?, fieldSelector: String?, kind: ResourceKind) throws(APIError) {
        if let labelSelector, !labelSelector.isEmpty { labels = try Self.parse(labelSelector, fields: false, kind: kind) }
        if let fieldSelector, !fieldSelector.isEmpty {
            fields = try Self.parse(fieldSelector, fields: true, kind: kind)
            if kind.group == "events.k8s.io" {
                fields = fields.map { r in
                    switch r {
                    case .equals(let k, let v): return .equals(EventConversion.coreFieldLabel(k), v)
                    case .notEquals(let k, let v): return .notEquals(EventConversion.coreFieldLabel(k), v)
                    default: return r
                    }
                }
            }
        }
    }

    func matches(_ obj: JSONValue) -> Bool {
        let labelMap = obj["metadata"]?["labels"]?.objectValue ?? [:]
        for r in labels where !Self.eval(r, { labelMap[$0]?.stringValue }) { return false }
        for r in fields where !Self.eval(r, { Self.fieldValue(obj, $0) }) { return false }
        return true
    }

    private static func fieldValue(_ obj: JSONValue, _ path: String) -> String? {
        // An Event's `source` is its source component, else its reporting controller.
        if path == "source", obj["involvedObject"] != nil {
            let component = obj["source"]?["component"]?.stringValue ?? ""
            return component.isEmpty ? obj["reportingComponent"]?.stringValue ?? "" : component
        }
        var v: JSONValue? = obj
        for part in path.split(separator: ".") { v = v?[String(part)] }
        switch v {
        case .bool(let b)?: return b ? "true" : "false"
        case .int(let i)?: return String(i)
        default: return v?.stringValue ?? (path == "spec.hostNetwork" ? "false" : "")
        }
    }

    private static func eval(_ r: Requirement, _ value: (String) -> String?) -> Bool {
        switch r {
        case .equals(let k, let v): return value(k) == v
        case .notEquals(let k, let v): return value(k) != v
        case .in(let k, let vs): return value(k).map(vs.contains) ?? false
        case .notIn(let k, let vs): return value(k).map { !vs.contains($0) } ?? true
        case .exists(let k): return value(k) != nil
        case .notExists(let k): return value(k) == nil
        }
    }

    /// Splits on commas outside parentheses, then reads each requirement.
    static func parse(_ text: String, fields: Bool, kind: ResourceKind? = nil) throws(APIError) -> [Requirement] {
        var parts: [String] = []
        var depth = 0
        var current = ""
        for ch in text {
            if ch == "(" { depth += 1 } else if ch == ")" { depth -= 1 }
            if ch == "," && depth == 0 { parts.append(current); current = "" } else { current.append(ch) }
        }
        parts.append(current)
        var out: [Requirement] = []
        for raw in parts {
            let p = raw.trimmingCharacters(in: .whitespaces)
            if p.isEmpty { continue }
            let r = try parseOne(p, fields: fields, whole: text)
            if fields {
                let key: String
                switch r {
                case .equals(let k, _), .notEquals(let k, _): key = k
                default: throw APIError.badRequest("invalid field selector \"\(text)\": only =, == and != are supported")
                }
                if let kind, !fieldNames(kind).contains(key) {
                    throw APIError.badRequest("field label not supported: \(key)")
                }
            }
            out.append(r)
        }
        return out
    }

    private static func parseOne(_ p: String, fields: Bool, whole: String) throws(APIError) -> Requirement {
        func bad() -> APIError {
            APIError.badRequest("unable to parse requirement: \(fields ? "field" : "label") selector \"\(whole)\"")
        }
        if let r = p.range(of: "!=") { return .notEquals(trim(p[..<r.lowerBound]), trim(p[r.upperBound...])) }
        if let r = p.range(of: "==") { return .equals(trim(p[..<r.lowerBound]), trim(p[r.upperBound...])) }
        if let r = p.range(of: "=") { return .equals(trim(p[..<r.lowerBound]), trim(p[r.upperBound...])) }
        if let r = p.range(of: " notin ") ?? p.range(of: " in ") {
            let key = trim(p[..<r.lowerBound])
            let rest = trim(p[r.upperBound...])
            guard rest.hasPrefix("("), rest.hasSuffix(")") else { throw bad() }
            let values = Set(rest.dropFirst().dropLast().split(separator: ",").map { trim($0[...]) })
            return p[r].contains("notin") ? .notIn(key, values) : .in(key, values)
        }
        if p.hasPrefix("!") { return .notExists(trim(p.dropFirst())) }
        guard p.allSatisfy({ $0.isLetter || $0.isNumber || "-_./".contains($0) }) else { throw bad() }
        return .exists(p)
    }

    private static func trim(_ s: Substring) -> String { s.trimmingCharacters(in: .whitespaces) }
}

import Foundation
