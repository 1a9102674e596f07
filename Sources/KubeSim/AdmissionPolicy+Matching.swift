import KubeClient

/// Whether a policy's `matchConstraints` or a binding's `matchResources` select a request
/// (k8s.io/apiserver `pkg/admission/plugin/policy/matching/matching.go` `Matcher.Matches`).
enum AdmissionMatching {
    struct Failure: Error, Sendable { var message: String }

    /// Namespace selector, object selector, `excludeResourceRules`, then `resourceRules`
    /// (none: every resource); a selector error counts only for a request the rules select.
    /// Only exact rule matches: `matchPolicy: Equivalent` finds no other resource here.
    static func matches(_ a: AdmissionAttributes, _ criteria: JSONValue, namespace: JSONValue?) -> Result<Bool, Failure> {
        let ns = namespaceSelectorMatches(a, criteria["namespaceSelector"], namespace: namespace)
        if case .success(false) = ns { return .success(false) }
        let obj = objectSelectorMatches(a, criteria["objectSelector"])
        if case .success(false) = obj { return .success(false) }
        if rulesMatch(a, criteria["excludeResourceRules"]?.arrayValue ?? []) { return .success(false) }
        let rules = criteria["resourceRules"]?.arrayValue ?? []
        if !rules.isEmpty, !rulesMatch(a, rules) { return .success(false) }
        if case .failure(let e) = ns { return .failure(e) }
        if case .failure(let e) = obj { return .failure(e) }
        return .success(true)
    }

    /// `webhook/predicates/namespace/matcher.go` `MatchNamespaceSelector`: cluster-scoped
    /// resources other than namespaces always match; a Namespace being created or updated is
    /// matched by its own new labels, anything else by its namespace's stored labels.
    static func namespaceSelectorMatches(_ a: AdmissionAttributes, _ selector: JSONValue?, namespace: JSONValue?) -> Result<Bool, Failure> {
        let isNamespace = a.resource == .namespace
        if a.namespace.isEmpty && !isNamespace { return .success(true) }
        let labels: JSONValue?
        if isNamespace && a.subresource.isEmpty && (a.operation == "CREATE" || a.operation == "UPDATE") {
            labels = a.object?["metadata"]?["labels"]
        } else {
            labels = namespace?["metadata"]?["labels"]
        }
        return selectorMatches(selector, labels: labels)
    }

    /// `webhook/predicates/object/matcher.go` `MatchObjectSelector`: the new or the old object's labels.
    static func objectSelectorMatches(_ a: AdmissionAttributes, _ selector: JSONValue?) -> Result<Bool, Failure> {
        if isEmpty(selector) { return .success(true) }
        var matched = false
        for obj in [a.object, a.oldObject] {
            guard let obj, obj != .null else { continue }
            switch selectorMatches(selector, labels: obj["metadata"]?["labels"]) {
            case .failure(let e): return .failure(e)
            case .success(let m): matched = matched || m
            }
        }
        return .success(matched)
    }

    /// `matching.go` `matchesResourceRules` with `webhook/predicates/rules/rules.go` `Matcher.Matches`
    /// (scope, operations, apiGroups, apiVersions, `resource/subresource` with `*`) and `resourceNames`.
    static func rulesMatch(_ a: AdmissionAttributes, _ rules: [JSONValue]) -> Bool {
        rules.contains { rule in
            func strings(_ key: String) -> [String] { rule[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
            func exactOrWildcard(_ key: String, _ value: String) -> Bool { strings(key).contains { $0 == "*" || $0 == value } }
            let isNamespace = a.resource == .namespace
            let scopeOK: Bool
            switch rule["scope"]?.stringValue ?? "*" {
            case "*": scopeOK = true
            case "Namespaced": scopeOK = !isNamespace && !a.namespace.isEmpty
            case "Cluster": scopeOK = isNamespace || a.namespace.isEmpty
            default: scopeOK = false
            }
            let resourceOK = strings("resources").contains { entry in
                let parts = entry.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                let res = parts[0], sub = parts.count > 1 ? parts[1] : ""
                return (res == "*" || res == a.resource.plural) && (sub == "*" || sub == a.subresource)
            }
            guard scopeOK, exactOrWildcard("operations", a.operation), exactOrWildcard("apiGroups", a.resource.group),
                  exactOrWildcard("apiVersions", a.resource.version), resourceOK else { return false }
            let names = strings("resourceNames")
            return names.isEmpty || names.contains(a.name)
        }
    }

    private static func isEmpty(_ selector: JSONValue?) -> Bool {
        guard let selector, selector != .null else { return true }
        return (selector["matchLabels"]?.objectValue ?? [:]).isEmpty && (selector["matchExpressions"]?.arrayValue ?? []).isEmpty
    }

    /// apimachinery `metav1.LabelSelectorAsSelector` and `labels.Requirement.Matches`:
    /// `matchLabels` are equalities; `In`, `NotIn` (also true without the label), `Exists`,
    /// `DoesNotExist`. An empty selector selects everything.
    static func selectorMatches(_ selector: JSONValue?, labels: JSONValue?) -> Result<Bool, Failure> {
        if isEmpty(selector) { return .success(true) }
        let have = labels?.objectValue?.compactMapValues(\.stringValue) ?? [:]
        for (k, v) in selector?["matchLabels"]?.objectValue ?? [:] where have[k] != v.stringValue {
            return .success(false)
        }
        for e in selector?["matchExpressions"]?.arrayValue ?? [] {
            let key = e["key"]?.stringValue ?? ""
            let values = e["values"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let op = e["operator"]?.stringValue ?? ""
            let ok: Bool
            switch op {
            case "In", "NotIn":
                if values.isEmpty { return .failure(Failure(message: "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty")) }
                let present = have[key].map(values.contains) ?? false
                ok = op == "In" ? present : !present
            case "Exists": ok = have[key] != nil
            case "DoesNotExist": ok = have[key] == nil
            default: return .failure(Failure(message: "\(ValidatingAdmissionPolicies.quote(op)) is not a valid label selector operator"))
            }
            if !ok { return .success(false) }
        }
        return .success(true)
    }
}
