public import KubeClient

/// The names of SPEC §2 (defaults; every one configurable through the plan).
public struct ObjectNames: Sendable {
    public var namespace = "kubetrace-system"
    public var operatorSecret = "kubetrace-operator"
    public var registrySecret = "kubetrace-registry"
    public var kubeconfigSecret = "kubetrace-kubeconfig"
    public var readOnlyServiceAccount = "kubetrace-readonly-user"
    public var readOnlyRole = "kubetrace-readonly"
    public var readOnlyBinding = "kubetrace-readonly-user"
    public var deployment = "kubetrace-operator"
    public var lease = "kubetrace-operator-leader"
    /// The operator's own identity (SPEC names its Role's rules, not the account).
    public var operatorServiceAccount = "kubetrace-operator"
    public var operatorRole = "kubetrace-operator"
    public var operatorBinding = "kubetrace-operator"
    /// The CA the Kubetrace and Vultr APIs are signed by, when `manifest --ca-file` names one.
    public var apiCAConfigMap = "kubetrace-api-ca"
    public init() {}
}

/// The single definition of the RBAC the product grants: `manifest` writes
/// it, `doctor` checks it, and the repair handlers restore it.
public enum DesiredRBAC {
    /// `kubetrace-readonly`: what the read-only user may do.
    public static let readOnlyRules: [PolicyRule] = [
        PolicyRule(apiGroups: [""], resources: ["pods", "pods/log", "services", "endpoints", "configmaps", "events"], verbs: ["get", "list", "watch"]),
    ]

    /// The operator's own Role in its namespace (SPEC §2).
    public static func operatorRules(_ names: ObjectNames) -> [PolicyRule] {
        [
            PolicyRule(apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]),
            PolicyRule(apiGroups: [""], resources: ["serviceaccounts"], verbs: ["get", "list", "watch", "create", "update", "patch"]),
            PolicyRule(apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create"], resourceNames: [names.readOnlyServiceAccount]),
            PolicyRule(apiGroups: ["rbac.authorization.k8s.io"], resources: ["roles", "rolebindings"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]),
            // What the read-only Role grants, so the operator can restore that Role and its binding
            // under RBAC's escalation check: no `escalate` or `bind`, which would let it grant anything.
            PolicyRule(apiGroups: [""], resources: ["pods/log", "services", "endpoints", "configmaps", "events"], verbs: ["get", "list", "watch"]),
            PolicyRule(apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "delete"]),
            PolicyRule(apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"]),
            PolicyRule(apiGroups: [""], resources: ["events"], verbs: ["create", "patch"]),
            PolicyRule(apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"]),
        ]
    }

    /// What the operator needs in each target namespace (a Role there for a list, a
    /// ClusterRole for a label selector): the pull Secret copy, ServiceAccount
    /// references, stuck Pods, Events. Secrets are limited by name where the API
    /// allows it (`create` cannot be; list/watch by name use a field selector).
    public static func targetRules(_ names: ObjectNames, selector: Bool) -> [PolicyRule] {
        var rules = [
            PolicyRule(apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch", "update", "patch", "delete"], resourceNames: [names.registrySecret]),
            PolicyRule(apiGroups: [""], resources: ["secrets"], verbs: ["create"]),
            PolicyRule(apiGroups: [""], resources: ["serviceaccounts"], verbs: ["get", "list", "watch", "patch"]),
            PolicyRule(apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "delete"]),
            PolicyRule(apiGroups: [""], resources: ["events"], verbs: ["create", "patch"]),
            PolicyRule(apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"]),
        ]
        if selector { rules.append(PolicyRule(apiGroups: [""], resources: ["namespaces"], verbs: ["get", "list", "watch"])) }
        return rules
    }

    /// Every (verb, group, resource, subresource, name) the operator needs, for access reviews.
    public static func requiredPermissions(_ names: ObjectNames) -> [SelfSubjectAccessReview.ResourceAttributes] {
        var out: [SelfSubjectAccessReview.ResourceAttributes] = []
        for rule in operatorRules(names) {
            for group in rule.apiGroups ?? [""] {
                for resource in rule.resources ?? [] {
                    let parts = resource.split(separator: "/", maxSplits: 1).map(String.init)
                    for verb in rule.verbs {
                        out.append(.init(namespace: names.namespace, verb: verb, group: group, resource: parts[0],
                                         subresource: parts.count > 1 ? parts[1] : nil, name: rule.resourceNames?.first))
                    }
                }
            }
        }
        return out
    }
}
