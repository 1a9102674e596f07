import Foundation
public import KubeClient

/// Everything `manifest` needs, gathered and checked by the command.
public struct ManifestInputs: Sendable {
    public var names = ObjectNames()
    public var clusterID: String
    public var apiURL: String
    public var operatorToken: SecretString
    public var image: String
    /// Cluster facts from the kubeconfig.
    public var server: String
    public var certificateAuthorityPEM: String?
    /// The registry host and pull credentials.
    public var registry: String
    public var registryUsername: String
    public var registryPassword: SecretString
    /// Stored so the operator can re-mint registry credentials itself.
    public var vultrAPIKey: SecretString?
    public var registryID: String?
    public var healthPort = 8081
    public var metricsPort = 8080
    /// Opt-in namespaces beyond the operator's own, and the accounts kept there.
    public var targetNamespaces: TargetNamespaces?
    public var targetServiceAccounts: [String] = []
    /// The NetworkPolicy for the operator's Pods; nil leaves it out.
    public var networkPolicy: NetworkPolicyInputs? = NetworkPolicyInputs()
    /// Container memory request and limit (`--size-from-cluster` measures them).
    public var memory = MemorySizing.defaults
    /// `manifest --ca-file`: the CA (PEM) the Kubetrace and Vultr APIs are signed by. The
    /// Deployment's `run` is given it too (ConfigMap `kubetrace-api-ca`), or in cluster it would
    /// trust only the system store and refuse the APIs the manifest was made against.
    public var apiCertificateAuthorityPEM: String?
    /// `manifest --vultr-api-url` when not Vultr's own: passed on to `run`.
    public var vultrAPIURL: String?
}

/// Renders the install manifest: one multi-document YAML, in apply order.
public enum ManifestRenderer {
    static let managedBy: (String, YAML) = ("app.kubernetes.io/managed-by", "kubetrace-operator")

    public static func render(_ m: ManifestInputs) -> String {
        let n = m.names
        func meta(_ name: String) -> YAML { metadata(name, n) }
        func b64(_ s: String) -> YAML { .string(Data(s.utf8).base64EncodedString()) }
        let auth = Data("\(m.registryUsername):\(m.registryPassword.value)".utf8).base64EncodedString()
        let dockerConfig = JSONValue.object(["auths": .object([m.registry: .object([
            "username": .string(m.registryUsername), "password": .string(m.registryPassword.value), "auth": .string(auth)])])])
        var kubeconfigCluster: [(String, YAML)] = [("server", .string(m.server))]
        if let ca = m.certificateAuthorityPEM {
            kubeconfigCluster.append(("certificate-authority-data", .string(Data(ca.utf8).base64EncodedString())))
        }
        // The read-only user's kubeconfig: cluster facts now, its token on the operator's first refresh.
        let readOnlyKubeconfig = YAML.map([
            ("apiVersion", "v1"), ("kind", "Config"), ("current-context", "kubetrace"),
            ("clusters", .list([.map([("name", "kubetrace"), ("cluster", .map(kubeconfigCluster))])])),
            ("contexts", .list([.map([("name", "kubetrace"), ("context", .map([("cluster", "kubetrace"), ("user", .string(n.readOnlyServiceAccount)), ("namespace", .string(n.namespace))]))])])),
            ("users", .list([.map([("name", .string(n.readOnlyServiceAccount)), ("user", .map([]))])])),
        ]).render()

        var operatorData: [(String, YAML)] = [("operator_token", b64(m.operatorToken.value))]
        if let key = m.vultrAPIKey { operatorData.append(("vultr_api_key", b64(key.value))) }
        if let id = m.registryID { operatorData.append(("registry_id", b64(id))) }

        let secrets: [YAML] = [
            .map([("apiVersion", "v1"), ("kind", "Secret"), ("metadata", meta(n.operatorSecret)), ("type", "Opaque"), ("data", .map(operatorData))]),
            .map([("apiVersion", "v1"), ("kind", "Secret"), ("metadata", meta(n.registrySecret)), ("type", "kubernetes.io/dockerconfigjson"),
                  ("data", .map([(".dockerconfigjson", .string(Data(dockerConfig.jsonBytes()).base64EncodedString()))]))]),
            .map([("apiVersion", "v1"), ("kind", "Secret"), ("metadata", meta(n.kubeconfigSecret)), ("type", "Opaque"),
                  ("data", .map([("kubeconfig", b64(readOnlyKubeconfig))]))]),
        ]
        let base = baseDocuments(m)
        return ([base[0]] + secrets + base.dropFirst()).map { "---\n" + $0.render() }.joined()
    }

    /// The documents without credentials: Namespace, ServiceAccounts, RBAC, Deployment.
    /// `deploy/` holds them as rendered for placeholder values.
    static func baseDocuments(_ m: ManifestInputs) -> [YAML] {
        let n = m.names
        func meta(_ name: String, namespaced: Bool = true) -> YAML { metadata(name, n, namespaced: namespaced) }
        func rules(_ rs: [PolicyRule]) -> YAML {
            .list(rs.map { r in
                var pairs: [(String, YAML)] = [("apiGroups", .list((r.apiGroups ?? []).map { .string($0) })),
                                               ("resources", .list((r.resources ?? []).map { .string($0) }))]
                if let names = r.resourceNames { pairs.append(("resourceNames", .list(names.map { .string($0) }))) }
                pairs.append(("verbs", .list(r.verbs.map { .string($0) })))
                return .map(pairs)
            })
        }
        return [
            .map([("apiVersion", "v1"), ("kind", "Namespace"), ("metadata", meta(n.namespace, namespaced: false))]),
            .map([("apiVersion", "v1"), ("kind", "ServiceAccount"), ("metadata", meta(n.readOnlyServiceAccount)),
                  ("automountServiceAccountToken", false), ("imagePullSecrets", .list([.map([("name", .string(n.registrySecret))])]))]),
            .map([("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "Role"), ("metadata", meta(n.readOnlyRole)), ("rules", rules(DesiredRBAC.readOnlyRules))]),
            .map([("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "RoleBinding"), ("metadata", meta(n.readOnlyBinding)),
                  ("subjects", .list([.map([("kind", "ServiceAccount"), ("name", .string(n.readOnlyServiceAccount)), ("namespace", .string(n.namespace))])])),
                  ("roleRef", .map([("apiGroup", "rbac.authorization.k8s.io"), ("kind", "Role"), ("name", .string(n.readOnlyRole))]))]),
            .map([("apiVersion", "v1"), ("kind", "ServiceAccount"), ("metadata", meta(n.operatorServiceAccount)),
                  ("imagePullSecrets", .list([.map([("name", .string(n.registrySecret))])]))]),
            .map([("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "Role"), ("metadata", meta(n.operatorRole)), ("rules", rules(DesiredRBAC.operatorRules(n)))]),
            .map([("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "RoleBinding"), ("metadata", meta(n.operatorBinding)),
                  ("subjects", .list([.map([("kind", "ServiceAccount"), ("name", .string(n.operatorServiceAccount)), ("namespace", .string(n.namespace))])])),
                  ("roleRef", .map([("apiGroup", "rbac.authorization.k8s.io"), ("kind", "Role"), ("name", .string(n.operatorRole))]))]),
        ] + targetDocuments(m, rules: rules) + SecretWritePolicy.documents(n) + (m.networkPolicy.map { [networkPolicy(m, $0)] } ?? [])
            + (m.apiCertificateAuthorityPEM.map { ca in [.map([("apiVersion", "v1"), ("kind", "ConfigMap"), ("metadata", meta(n.apiCAConfigMap)),
                                                              ("data", .map([("ca.crt", .string(ca))]))])] } ?? [])
            + [deployment(m)]
    }

    /// RBAC in the target namespaces: a Role and RoleBinding in each listed one, or a
    /// ClusterRole and ClusterRoleBinding for a label selector. Nothing when there are none.
    static func targetDocuments(_ m: ManifestInputs, rules: ([PolicyRule]) -> YAML) -> [YAML] {
        let n = m.names
        let subject: YAML = .list([.map([("kind", "ServiceAccount"), ("name", .string(n.operatorServiceAccount)), ("namespace", .string(n.namespace))])])
        func meta(_ name: String, namespace: String?) -> YAML {
            var pairs: [(String, YAML)] = [("name", .string(name))]
            if let namespace { pairs.append(("namespace", .string(namespace))) }
            pairs.append(("labels", .map([("app.kubernetes.io/name", "kubetrace-operator"), managedBy])))
            return .map(pairs)
        }
        switch m.targetNamespaces {
        case nil:
            return []
        case .list(let namespaces)?:
            return namespaces.filter { $0 != n.namespace }.flatMap { ns -> [YAML] in [
                .map([("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "Role"), ("metadata", meta(n.operatorRole, namespace: ns)),
                      ("rules", rules(DesiredRBAC.targetRules(n, selector: false)))]),
                .map([("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "RoleBinding"), ("metadata", meta(n.operatorBinding, namespace: ns)),
                      ("subjects", subject), ("roleRef", .map([("apiGroup", "rbac.authorization.k8s.io"), ("kind", "Role"), ("name", .string(n.operatorRole))]))]),
            ] }
        case .selector?:
            let name = "\(n.operatorRole)-targets"
            return [
                .map([("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "ClusterRole"), ("metadata", meta(name, namespace: nil)),
                      ("rules", rules(DesiredRBAC.targetRules(n, selector: true)))]),
                .map([("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "ClusterRoleBinding"), ("metadata", meta(name, namespace: nil)),
                      ("subjects", subject), ("roleRef", .map([("apiGroup", "rbac.authorization.k8s.io"), ("kind", "ClusterRole"), ("name", .string(name))]))]),
            ]
        }
    }

    /// `deploy/` as generated: the base documents for placeholder values.
    public static func renderBase(_ m: ManifestInputs) -> String {
        baseDocuments(m).map { "---\n" + $0.render() }.joined()
    }

    /// `metadata` of a generated object: name, namespace, and the product's labels.
    static func metadata(_ name: String, _ n: ObjectNames, namespaced: Bool = true) -> YAML {
        var pairs: [(String, YAML)] = [("name", .string(name))]
        if namespaced { pairs.append(("namespace", .string(n.namespace))) }
        pairs.append(("labels", .map([("app.kubernetes.io/name", "kubetrace-operator"), managedBy])))
        return .map(pairs)
    }

    static let apiCAMountPath = "/var/run/secrets/kubetrace-api-ca"

    static func deployment(_ m: ManifestInputs) -> YAML {
        let n = m.names
        let selector: YAML = .map([("app.kubernetes.io/name", "kubetrace-operator")])
        func probe(_ path: String, _ initial: Int) -> YAML {
            .map([("httpGet", .map([("path", .string(path)), ("port", "health")])), ("initialDelaySeconds", .int(initial)), ("periodSeconds", 10), ("timeoutSeconds", 2), ("failureThreshold", 3)])
        }
        let container: YAML = .map([
            ("name", "operator"),
            ("image", .string(m.image)),
            // Always: every start re-checks the registry credentials (as kubelets now do for cached images).
            ("imagePullPolicy", "Always"),
            ("args", .list(["run"] + (m.apiCertificateAuthorityPEM == nil ? [] : ["--ca-file", .string(apiCAMountPath + "/ca.crt")])
                           + (m.vultrAPIURL.map { ["--vultr-api-url", .string($0)] } ?? []))),
            ("env", .list([
                .map([("name", "API_URL"), ("value", .string(m.apiURL))]),
                .map([("name", "CLUSTER_ID"), ("value", .string(m.clusterID))]),
                .map([("name", "POD_NAMESPACE"), ("valueFrom", .map([("fieldRef", .map([("fieldPath", "metadata.namespace")]))]))]),
                .map([("name", "OPERATOR_TOKEN_FILE"), ("value", "/var/run/secrets/kubetrace/operator_token")]),
                .map([("name", "HEALTH_ADDR"), ("value", .string("0.0.0.0:\(m.healthPort)"))]),
                .map([("name", "METRICS_ADDR"), ("value", .string("0.0.0.0:\(m.metricsPort)"))]),
                .map([("name", "LOG_FORMAT"), ("value", "json")]),
            ] + targetEnv(m))),
            ("ports", .list([
                .map([("name", "health"), ("containerPort", .int(m.healthPort)), ("protocol", "TCP")]),
                .map([("name", "metrics"), ("containerPort", .int(m.metricsPort)), ("protocol", "TCP")]),
            ])),
            ("livenessProbe", probe("/healthz", 10)),
            ("readinessProbe", probe("/readyz", 5)),
            ("resources", .map([("requests", .map([("cpu", "50m"), ("memory", .string("\(m.memory.requestMiB)Mi"))])),
                                ("limits", .map([("cpu", "500m"), ("memory", .string("\(m.memory.limitMiB)Mi"))]))])),
            ("securityContext", .map([
                ("allowPrivilegeEscalation", false), ("readOnlyRootFilesystem", true), ("runAsNonRoot", true), ("runAsUser", 65532), ("runAsGroup", 65532),
                ("capabilities", .map([("drop", .list(["ALL"]))])), ("seccompProfile", .map([("type", "RuntimeDefault")])),
            ])),
            ("volumeMounts", .list([.map([("name", "operator-token"), ("mountPath", "/var/run/secrets/kubetrace"), ("readOnly", true)])]
                                   + (m.apiCertificateAuthorityPEM == nil ? [] : [.map([("name", "api-ca"), ("mountPath", .string(apiCAMountPath)), ("readOnly", true)])]))),
        ])
        return .map([
            ("apiVersion", "apps/v1"), ("kind", "Deployment"),
            ("metadata", metadata(n.deployment, n)),
            ("spec", .map([
                ("replicas", 2),
                ("revisionHistoryLimit", 3),
                ("selector", .map([("matchLabels", selector)])),
                // A new Pod is ready before an old one goes; the Lease hands over on shutdown.
                ("strategy", .map([("type", "RollingUpdate"), ("rollingUpdate", .map([("maxUnavailable", 0), ("maxSurge", 1)]))])),
                ("template", .map([
                    ("metadata", .map([("labels", .map([("app.kubernetes.io/name", "kubetrace-operator"), managedBy]))])),
                    ("spec", .map([
                        ("serviceAccountName", .string(n.operatorServiceAccount)),
                        ("automountServiceAccountToken", true),
                        ("imagePullSecrets", .list([.map([("name", .string(n.registrySecret))])])),
                        // fsGroup: kubelet writes Secret volume files owned by root unless the Pod sets one;
                        // with it they are group 65532 and group-readable (0400 → 0440, pkg/volume/volume_linux.go
                        // SetVolumeOwnership), so uid 65532 can read its token. Without it the Pod crash-loops.
                        ("securityContext", .map([("runAsNonRoot", true), ("fsGroup", 65532), ("seccompProfile", .map([("type", "RuntimeDefault")]))])),
                        ("terminationGracePeriodSeconds", 30),
                        ("containers", .list([container])),
                        ("volumes", .list([.map([("name", "operator-token"), ("secret", .map([
                            ("secretName", .string(n.operatorSecret)), ("defaultMode", 0o400),
                            ("items", .list([.map([("key", "operator_token"), ("path", "operator_token")])])),
                        ]))])] + (m.apiCertificateAuthorityPEM == nil ? [] : [.map([("name", "api-ca"), ("configMap", .map([
                            ("name", .string(n.apiCAConfigMap)), ("defaultMode", 0o444)]))])]))),
                    ])),
                ])),
            ])),
        ])
    }
}

extension ManifestRenderer {
    /// The Deployment's TARGET_* variables, when target namespaces are configured.
    static func targetEnv(_ m: ManifestInputs) -> [YAML] {
        var env: [YAML] = []
        switch m.targetNamespaces {
        case .list(let l)?: env.append(.map([("name", "TARGET_NAMESPACES"), ("value", .string(l.joined(separator: ",")))]))
        case .selector(let sel)?: env.append(.map([("name", "TARGET_NAMESPACES"), ("value", .string("selector=\(sel)"))]))
        case nil: break
        }
        if m.targetNamespaces != nil, !m.targetServiceAccounts.isEmpty {
            env.append(.map([("name", "TARGET_SERVICE_ACCOUNTS"), ("value", .string(m.targetServiceAccounts.joined(separator: ",")))]))
        }
        return env
    }
}
