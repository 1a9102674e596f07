/// The admission policy that closes the install's privilege path (issue #19).
///
/// RBAC cannot limit `create` by name, so the operator's `secrets create` would let a
/// compromised operator create any Secret, e.g. `kube-system/kubetrace-registry` of type
/// `kubernetes.io/service-account-token` for a privileged ServiceAccount, and then read
/// the token the token controller fills in. This ValidatingAdmissionPolicy
/// (admissionregistration.k8s.io/v1, GA since Kubernetes 1.30) admits the operator's
/// Secret writes only for the pull Secret's name with type `kubernetes.io/dockerconfigjson`
/// and, in its own namespace, its own Opaque Secrets. Other users are not matched.
enum SecretWritePolicy {
    static func name(_ n: ObjectNames) -> String { "\(n.operatorRole)-secret-writes" }

    /// The operator's user name as the API server authenticates its ServiceAccount token.
    static func operatorUser(_ n: ObjectNames) -> String { "system:serviceaccount:\(n.namespace):\(n.operatorServiceAccount)" }

    /// Every ServiceAccount of the operator's namespace, not only the operator's own: the
    /// operator can mint tokens for the read-only account and bind Roles there, so matching
    /// one user name would let it write Secrets as another account of the namespace.
    static func matchCondition(_ n: ObjectNames) -> String { "request.userInfo.username.startsWith('system:serviceaccount:\(n.namespace):')" }

    /// CEL; names are DNS labels/subdomains (no quotes to escape).
    static func validation(_ n: ObjectNames) -> String {
        "object.metadata.name == '\(n.registrySecret)' && object.type == 'kubernetes.io/dockerconfigjson'"
            + " || request.namespace == '\(n.namespace)' && object.metadata.name in ['\(n.operatorSecret)', '\(n.kubeconfigSecret)'] && object.type == 'Opaque'"
    }

    static func message(_ n: ObjectNames) -> String {
        "the operator may write only the pull Secret \(n.registrySecret) (kubernetes.io/dockerconfigjson) and, in \(n.namespace), its Opaque Secrets \(n.operatorSecret) and \(n.kubeconfigSecret)"
    }

    static func documents(_ n: ObjectNames) -> [YAML] {
        let labels: YAML = .map([("app.kubernetes.io/name", "kubetrace-operator"), ManifestRenderer.managedBy])
        let meta: YAML = .map([("name", .string(name(n))), ("labels", labels)])
        return [
            .map([
                ("apiVersion", "admissionregistration.k8s.io/v1"), ("kind", "ValidatingAdmissionPolicy"), ("metadata", meta),
                ("spec", .map([
                    ("failurePolicy", "Fail"),
                    ("matchConstraints", .map([("resourceRules", .list([.map([
                        ("apiGroups", .list([""])), ("apiVersions", .list(["v1"])),
                        ("operations", .list(["CREATE", "UPDATE"])), ("resources", .list(["secrets"])),
                    ])]))])),
                    ("matchConditions", .list([.map([("name", "operator-namespace-accounts"), ("expression", .string(matchCondition(n)))])])),
                    ("validations", .list([.map([
                        ("expression", .string(validation(n))), ("message", .string(message(n))), ("reason", "Forbidden"),
                    ])])),
                ])),
            ]),
            .map([
                ("apiVersion", "admissionregistration.k8s.io/v1"), ("kind", "ValidatingAdmissionPolicyBinding"), ("metadata", meta),
                ("spec", .map([("policyName", .string(name(n))), ("validationActions", .list(["Deny"]))])),
            ]),
        ]
    }
}
