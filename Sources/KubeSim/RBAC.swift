import Foundation
import KubeClient

/// What a request asks to do, in RBAC's terms.
struct RequestAttributes: Sendable {
    var verb: String
    var group: String
    var resource: String
    var subresource: String?
    var namespace: String?
    var name: String?

    var combinedResource: String { subresource.map { "\(resource)/\($0)" } ?? resource }
}

/// One PolicyRule, read from a stored Role or ClusterRole.
struct Rule: Sendable, Equatable {
    var verbs: [String]
    var apiGroups: [String]
    var resources: [String]
    var resourceNames: [String]

    init(verbs: [String], apiGroups: [String], resources: [String], resourceNames: [String] = []) {
        self.verbs = verbs
        self.apiGroups = apiGroups
        self.resources = resources
        self.resourceNames = resourceNames
    }

    init(_ json: JSONValue) {
        func strings(_ k: String) -> [String] { json[k]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        self.init(verbs: strings("verbs"), apiGroups: strings("apiGroups"), resources: strings("resources"), resourceNames: strings("resourceNames"))
    }

    /// RBAC's matching, as kube-apiserver's rule evaluation does it.
    func allows(_ a: RequestAttributes) -> Bool {
        guard verbs.contains("*") || verbs.contains(a.verb) else { return false }
        guard apiGroups.contains("*") || apiGroups.contains(a.group) else { return false }
        let resourceOK = resources.contains { r in
            r == "*" || r == a.combinedResource || (a.subresource.map { r == "*/\($0)" } ?? false)
        }
        guard resourceOK else { return false }
        if resourceNames.isEmpty { return true }
        return a.name.map(resourceNames.contains) ?? false
    }

    /// Human form used in escalation errors.
    var summary: String {
        func list(_ xs: [String]) -> String { "[" + xs.map { "\"\($0)\"" }.joined(separator: " ") + "]" }
        var s = "{APIGroups:\(list(apiGroups)), Resources:\(list(resources))"
        if !resourceNames.isEmpty { s += ", ResourceNames:\(list(resourceNames))" }
        return s + ", Verbs:\(list(verbs))}"
    }
}

enum RBAC {
    /// Whether `owner` rules cover every permission in `requested` (escalation check).
    static func uncovered(_ requested: [Rule], by owner: [Rule]) -> [Rule] {
        var missing: [Rule] = []
        for rule in requested {
            var ok = true
            outer: for g in rule.apiGroups {
                for r in rule.resources {
                    for v in rule.verbs {
                        let names: [String?] = rule.resourceNames.isEmpty ? [nil] : rule.resourceNames
                        for n in names {
                            let covered = owner.contains { o in
                                (o.verbs.contains("*") || o.verbs.contains(v))
                                    && (o.apiGroups.contains("*") || o.apiGroups.contains(g))
                                    && (o.resources.contains("*") || o.resources.contains(r))
                                    && (o.resourceNames.isEmpty || (n.map(o.resourceNames.contains) ?? false))
                            }
                            if !covered { ok = false; break outer }
                        }
                    }
                }
            }
            if !ok { missing.append(rule) }
        }
        return missing
    }

    /// `secrets "x" is forbidden: User "u" cannot get resource "secrets" in API group "" in the namespace "ns"`.
    static func forbidden(_ user: UserInfo, _ a: RequestAttributes) -> APIError {
        let target = a.name.map { "\(a.resource)\(a.group.isEmpty ? "" : ".\(a.group)") \"\($0)\"" } ?? "\(a.resource)\(a.group.isEmpty ? "" : ".\(a.group)")"
        let scope = a.namespace.map { "in the namespace \"\($0)\"" } ?? "at the cluster scope"
        let message = "\(target) is forbidden: User \"\(user.name)\" cannot \(a.verb) resource \"\(a.combinedResource)\" in API group \"\(a.group)\" \(scope)"
        return APIError(403, "Forbidden", message, details: .init(name: a.name, group: a.group.isEmpty ? nil : a.group, kind: a.resource))
    }

    static func escalation(_ user: UserInfo, kind: ResourceKind, name: String, missing: [Rule]) -> APIError {
        let groups = user.groups.map { "\"\($0)\"" }.joined(separator: " ")
        let message = "\(kind.plural).\(kind.group) \"\(name)\" is forbidden: user \"\(user.name)\" (groups=[\(groups)]) is attempting to grant RBAC permissions not currently held:\n"
            + missing.map(\.summary).joined(separator: "\n")
        return APIError(403, "Forbidden", message, details: .init(name: name, group: kind.group, kind: kind.plural))
    }
}
