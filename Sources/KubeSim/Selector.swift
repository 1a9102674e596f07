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

    static let fieldNames: Set<String> = ["metadata.name", "metadata.namespace", "type", "spec.serviceAccountName", "status.phase", "spec.nodeName"]

    init() {}

    init(labelSelector: String?, fieldSelector: String?) throws(APIError) {
        if let labelSelector, !labelSelector.isEmpty { labels = try Self.parse(labelSelector, fields: false) }
        if let fieldSelector, !fieldSelector.isEmpty { fields = try Self.parse(fieldSelector, fields: true) }
    }

    func matches(_ obj: JSONValue) -> Bool {
        let labelMap = obj["metadata"]?["labels"]?.objectValue ?? [:]
        for r in labels where !Self.eval(r, { labelMap[$0]?.stringValue }) { return false }
        for r in fields where !Self.eval(r, { Self.fieldValue(obj, $0) }) { return false }
        return true
    }

    private static func fieldValue(_ obj: JSONValue, _ path: String) -> String? {
        var v: JSONValue? = obj
        for part in path.split(separator: ".") { v = v?[String(part)] }
        return v?.stringValue ?? ""
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
    static func parse(_ text: String, fields: Bool) throws(APIError) -> [Requirement] {
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
                if !fieldNames.contains(key) {
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
