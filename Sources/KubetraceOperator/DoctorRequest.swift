import Foundation
import Glibc
import KubeClient

/// One line of the checklist.
struct DoctorCheck: Sendable {
    var name: String
    var ok: Bool
    var found: String
    var fix: String?

    var json: JSONValue {
        var o: [String: JSONValue] = ["check": .string(name), "ok": .bool(ok), "found": .string(found)]
        if let fix { o["fix"] = .string(fix) }
        return .object(o)
    }
}

/// `kubetrace-operator doctor`: the troubleshooting checklist, one line per check.
public struct DoctorRequest: Sendable, ClusterCommand {
    public init() {}
    public var cluster = ClusterSelection()
    public var apiUrl: String?
    public var allowInsecureHttp = false
    public var operatorTokenFile: String?
    public var registry: String?
    public var registryCaFile: String?
    public var caFile: String?
    public var output = "text"

    public func validate() throws {
        guard ["text", "json"].contains(output) else { throw CLIError.configuration("--output: must be text or json, not \"\(output)\"") }
    }

    public func run() async throws {
        let env = ProcessInfo.processInfo.environment
        var connection = try cluster.loadConnection()
        var names = ObjectNames()
        if let ns = cluster.namespace ?? env["POD_NAMESPACE"], !ns.isEmpty { names.namespace = ns }
        connection.namespace = names.namespace
        let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")
        let tokenFromFile = try (operatorTokenFile ?? env["OPERATOR_TOKEN_FILE"]).map { try readCredentialFile($0, flag: operatorTokenFile != nil ? "--operator-token-file" : "OPERATOR_TOKEN_FILE") }
        if let raw = apiUrl ?? env["API_URL"] {
            _ = try ExternalEndpoint.validated(raw, name: apiUrl != nil ? "--api-url" : "API_URL", allowInsecure: allowInsecureHttp, caFile: caFile)
        }
        var registryCA: String?
        if let registryCaFile {
            guard let pem = try? String(contentsOfFile: registryCaFile, encoding: .utf8) else { throw CLIError.configuration("--registry-ca-file: cannot read \(registryCaFile)") }
            guard pem.contains("-----BEGIN CERTIFICATE-----") else { throw CLIError.configuration("--registry-ca-file: \(registryCaFile) is not a PEM-encoded X.509 certificate") }
            registryCA = pem
        }
        var doctor = Doctor(client: client, names: names, apiURL: apiUrl ?? env["API_URL"], allowInsecureHTTP: allowInsecureHttp,
                            caFile: caFile, operatorToken: tokenFromFile, registry: registry)
        doctor.registryCAPEM = registryCA
        let checks = await doctor.run()
        if output == "json" {
            let doc: JSONValue = .object(["ok": .bool(checks.allSatisfy(\.ok)), "checks": .array(checks.map(\.json))])
            FileHandle.standardOutput.write(Data(doc.jsonBytes() + [UInt8(ascii: "\n")]))
        } else {
            var text = ""
            for c in checks {
                text += "\(c.ok ? "✓" : "✗") \(c.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(c.found)\n"
                if !c.ok, let fix = c.fix { text += "    fix: \(fix)\n" }
            }
            let failed = checks.filter { !$0.ok }.count
            text += failed == 0 ? "all \(checks.count) checks passed\n" : "\(failed) of \(checks.count) checks failed\n"
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if !checks.allSatisfy(\.ok) { throw CommandExit(ExitStatus.runtimeFailure) }
    }
}

/// The checks themselves; each one turns every failure into a ✗ line, never an abort.
struct Doctor {
    let client: KubeClient
    let names: ObjectNames
    var apiURL: String?
    let allowInsecureHTTP: Bool
    let caFile: String?
    var operatorToken: SecretString?
    var registry: String?
    /// Trusted CAs for the registry's TLS (`--registry-ca-file`); nil: the system store.
    var registryCAPEM: String?

    private var ns: String { names.namespace }

    func run() async -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        do {
            let version = try await client.serverVersion()
            checks.append(DoctorCheck(name: "api-server", ok: true, found: "reachable at \(client.connection.server), \(version)"))
        } catch {
            checks.append(DoctorCheck(name: "api-server", ok: false, found: "\(error)", fix: "check the kubeconfig's server and credentials (\(client.connection.source))"))
            return checks
        }
        let deployment = try? JSONValue.parse(try await client.request("GET", path: "/apis/apps/v1/namespaces/\(ns)/deployments/\(names.deployment)").body)
        checks.append(await check("namespace") {
            _ = try await client.get(Namespace.self, name: ns)
            return "\(ns) exists"
        } fix: { "apply the manifest: kubetrace-operator manifest … && kubectl apply --server-side -f kubetrace-operator.yaml" })
        checks.append(await operatorPods(deployment))
        let image = Self.operatorImage(deployment)
        let pull = await pullSecret(imageHost: image.host)
        checks.append(pull.check)
        checks.append(await pullSecretReferences(deployment))
        var reachable = await registryReachable(pull.host)
        if reachable.ok {
            // Pull access is its own line only when the address speaks the registry API: without
            // it (a proxy, a port that is something else, TLS not trusted) say what stopped the check.
            switch await registryPull(address: pull.host, credentialsHost: pull.credentialsHost, credential: pull.credential, image: image) {
            case .checked(let line):
                checks.append(reachable)
                checks.append(line)
            case .notChecked(let why):
                reachable.found += " (pull access not checked: \(why))"
                checks.append(reachable)
            }
        } else {
            checks.append(reachable)
        }
        checks.append(await networkPolicies(deployment, registryHost: pull.host))
        checks.append(await check("service-accounts") {
            _ = try await client.get(ServiceAccount.self, namespace: ns, name: names.readOnlyServiceAccount)
            _ = try await client.get(ServiceAccount.self, namespace: ns, name: names.operatorServiceAccount)
            return "\(names.readOnlyServiceAccount) and \(names.operatorServiceAccount) exist"
        } fix: { "kubectl apply --server-side -f kubetrace-operator.yaml (the operator recreates \(names.readOnlyServiceAccount) itself once running)" })
        checks.append(await rbacObjects())
        checks.append(await rbacPermissions())
        checks.append(await secretWritePolicy())
        checks.append(await kubetraceAPI(deployment))
        checks.append(await credentialExpiry())
        return checks
    }

    private func check(_ name: String, _ body: () async throws -> String, fix: () -> String) async -> DoctorCheck {
        do { return DoctorCheck(name: name, ok: true, found: try await body()) } catch {
            return DoctorCheck(name: name, ok: false, found: Self.describe(error), fix: fix())
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? KubeClientError, let message = e.status?.message { return message }
        return "\(error)"
    }

    private func operatorPods(_ deployment: JSONValue?) async -> DoctorCheck {
        guard deployment != nil else {
            return DoctorCheck(name: "operator-pods", ok: false, found: "Deployment \(ns)/\(names.deployment) not found", fix: "kubectl apply --server-side -f kubetrace-operator.yaml")
        }
        do {
            let pods = try await client.list(Pod.self, namespace: ns, options: ListOptions(labelSelector: "app.kubernetes.io/name=kubetrace-operator")).items
            for pod in pods {
                for status in (pod.status?.initContainerStatuses ?? []) + (pod.status?.containerStatuses ?? []) {
                    if let w = status.state?.waiting, let reason = w.reason, ["ErrImagePull", "ImagePullBackOff"].contains(reason) {
                        return DoctorCheck(name: "operator-pods", ok: false, found: "Pod \(pod.name) is in \(reason): \(w.message ?? "")",
                                           fix: "check the pull Secret \(names.registrySecret) below, that the Deployment references it, and that the registry is reachable on port 443")
                    }
                }
            }
            let running = pods.filter { $0.status?.phase == "Running" }
            guard !running.isEmpty else {
                return DoctorCheck(name: "operator-pods", ok: false, found: "no running operator Pod (\(pods.count) Pod(s))", fix: "kubectl -n \(ns) describe deployment \(names.deployment)")
            }
            return DoctorCheck(name: "operator-pods", ok: true, found: "\(running.count) Pod(s) running")
        } catch {
            return DoctorCheck(name: "operator-pods", ok: false, found: Self.describe(error), fix: "kubectl -n \(ns) get pods")
        }
    }

    /// The pull Secret, and which of its entries the registry checks use: the one for `--registry`,
    /// else the one for the operator image's registry (as the kubelet looks credentials up by image;
    /// `--registry` may then be a mirror or a test registry standing in for it), else the first.
    private func pullSecret(imageHost: String) async -> (check: DoctorCheck, host: String, credentialsHost: String, credential: RegistryCredential?) {
        let fallbackHost = registry ?? "blr.vultrcr.com"
        let fix = "regenerate the manifest (kubetrace-operator manifest …) and apply it; the running operator repairs this Secret itself"
        do {
            let secret = try await client.get(Secret.self, namespace: ns, name: names.registrySecret)
            guard secret.type == "kubernetes.io/dockerconfigjson" else {
                return (DoctorCheck(name: "pull-secret", ok: false, found: "\(names.registrySecret) has type \(secret.type ?? "Opaque"), not kubernetes.io/dockerconfigjson", fix: fix), fallbackHost, fallbackHost, nil)
            }
            guard let raw = secret.data?[".dockerconfigjson"], let doc = try? JSONValue.parse(raw.bytes), let auths = doc["auths"]?.objectValue, !auths.isEmpty else {
                return (DoctorCheck(name: "pull-secret", ok: false, found: "\(names.registrySecret) has no valid .dockerconfigjson auths", fix: fix), fallbackHost, fallbackHost, nil)
            }
            let candidates = registry.map { [$0, imageHost] } ?? [imageHost, auths.keys.sorted()[0]]
            guard let credentialsHost = candidates.first(where: { auths[$0] != nil }) else {
                let host = registry ?? imageHost
                return (DoctorCheck(name: "pull-secret", ok: false, found: "\(names.registrySecret) has credentials for \(auths.keys.sorted().joined(separator: ", ")), not \(host)", fix: fix), host, host, nil)
            }
            let found = credentialsHost == (registry ?? credentialsHost) ? "\(names.registrySecret) is valid for \(credentialsHost)"
                : "\(names.registrySecret) is valid for \(credentialsHost) (the operator image's registry; checked at \(registry ?? credentialsHost))"
            return (DoctorCheck(name: "pull-secret", ok: true, found: found), registry ?? credentialsHost, credentialsHost, auths[credentialsHost].flatMap(RegistryCredential.init))
        } catch {
            return (DoctorCheck(name: "pull-secret", ok: false, found: Self.describe(error), fix: fix), fallbackHost, fallbackHost, nil)
        }
    }

    private func pullSecretReferences(_ deployment: JSONValue?) async -> DoctorCheck {
        var missing: [String] = []
        for sa in [names.readOnlyServiceAccount, names.operatorServiceAccount] {
            let refs = (try? await client.get(ServiceAccount.self, namespace: ns, name: sa))?.imagePullSecrets ?? []
            if !refs.contains(LocalObjectReference(name: names.registrySecret)) { missing.append("ServiceAccount \(sa)") }
        }
        let podRefs = deployment?["spec"]?["template"]?["spec"]?["imagePullSecrets"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        if !podRefs.contains(names.registrySecret) { missing.append("Deployment \(names.deployment)") }
        if missing.isEmpty { return DoctorCheck(name: "pull-secret-references", ok: true, found: "referenced by both ServiceAccounts and the Deployment") }
        return DoctorCheck(name: "pull-secret-references", ok: false, found: "not referenced by \(missing.joined(separator: ", "))",
                           fix: "kubectl -n \(ns) patch serviceaccount NAME --type=json -p '[{\"op\":\"add\",\"path\":\"/imagePullSecrets/-\",\"value\":{\"name\":\"\(names.registrySecret)\"}}]' (the running operator does this itself)")
    }

    private func registryReachable(_ host: String) async -> DoctorCheck {
        let (name, port) = Self.hostPort(host, defaultPort: 443)
        // The connect blocks up to 3 s: run it on a dispatch thread, not the cooperative pool.
        let result: String? = await withCheckedContinuation { cont in
            DispatchQueue.global().async { cont.resume(returning: Self.tcpConnect(host: name, port: port, timeoutMs: 3000)) }
        }
        if let error = result {
            return DoctorCheck(name: "registry-reachable", ok: false, found: "\(name):\(port) \(error)", fix: "allow egress to \(name) on port \(port) (firewall, NetworkPolicy, proxy)")
        }
        return DoctorCheck(name: "registry-reachable", ok: true, found: "\(name):\(port) accepts connections")
    }

    /// A NetworkPolicy selecting the operator's Pods must let through what it needs:
    /// DNS, the API server, 443 to the Kubetrace API and the registry, and scrapes of
    /// the metrics port. Addresses are resolved from here (in-cluster ones may differ).
    private func networkPolicies(_ deployment: JSONValue?, registryHost: String) async -> DoctorCheck {
        let name = "network-policy"
        let list: JSONValue
        do {
            list = try JSONValue.parse(try await client.request("GET", path: "/apis/networking.k8s.io/v1/namespaces/\(ns)/networkpolicies").body)
        } catch let e as KubeClientError where e.status?.code == 404 {
            return DoctorCheck(name: name, ok: true, found: "the cluster serves no NetworkPolicy API")
        } catch {
            return DoctorCheck(name: name, ok: false, found: Self.describe(error), fix: "grant list on networkpolicies in \(ns) to run this check")
        }
        let policies = (list["items"]?.arrayValue ?? []).map(NetworkPolicyView.init)
        let template = deployment?["spec"]?["template"]
        var labels = ["app.kubernetes.io/name": "kubetrace-operator"]
        if let l = template?["metadata"]?["labels"]?.objectValue { labels = l.compactMapValues(\.stringValue) }
        let selecting = policies.filter { $0.selects(labels) }
        if selecting.isEmpty { return DoctorCheck(name: name, ok: true, found: "no NetworkPolicy selects the operator's Pods (traffic not restricted)") }

        func endpoint(_ url: String?, defaultPort: Int) -> (host: String, port: Int)? {
            guard let url, let c = URLComponents(string: url), let host = c.host else { return nil }
            return (host, c.port ?? defaultPort)
        }
        func need(_ what: String, _ hostPort: (host: String, port: Int)?) -> NetworkPolicyCheck.Need? {
            guard let hp = hostPort else { return nil }
            let host = hp.host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            let address = CIDR.addressBytes(host) != nil ? host : resolveAddresses(host).first
            return NetworkPolicyCheck.Need(what: "\(what) \(address ?? host):\(hp.port)", port: hp.port, address: address ?? "unresolved")
        }
        let container = template?["spec"]?["containers"]?.arrayValue?.first
        let apiURL = apiURL ?? container?["env"]?.arrayValue?.first { $0["name"]?.stringValue == "API_URL" }?["value"]?.stringValue
        var egress = [NetworkPolicyCheck.Need(what: "DNS udp/53", port: 53, proto: "UDP", address: nil)]
        // As the Pods reach it: the endpoints behind default/kubernetes when readable, else the kubeconfig's server.
        let apiServer = await APIServerEndpoints.read(client).map { (host: $0.addresses[0], port: $0.ports.first ?? 443) }
            ?? endpoint(client.connection.server, defaultPort: 443)
        egress += [need("API server", apiServer),
                   need("Kubetrace API", endpoint(apiURL, defaultPort: 443)),
                   need("registry", Self.hostPort(registryHost, defaultPort: 443))].compactMap { $0 }
        let metricsPort = container?["ports"]?.arrayValue?.first { $0["name"]?.stringValue == "metrics" }.flatMap { $0["containerPort"] }.flatMap(NetworkPolicyView.scalar).flatMap { Int($0) } ?? 8080
        let ingress = [NetworkPolicyCheck.Need(what: "metrics scrapes on \(metricsPort)", port: metricsPort, address: nil, portName: "metrics")]
        let blocked = (NetworkPolicyCheck.missing(policies, podLabels: labels, egress: egress) ?? [])
            + (NetworkPolicyCheck.missing(policies, podLabels: labels, ingress: ingress) ?? [])
        let names = selecting.map(\.name).sorted().joined(separator: ", ")
        if blocked.isEmpty {
            return DoctorCheck(name: name, ok: true, found: "\(names) allow\(selecting.count == 1 ? "s" : "") DNS, the API server, 443 out and metrics scrapes")
        }
        return DoctorCheck(name: name, ok: false, found: "\(names) block\(selecting.count == 1 ? "s" : ""): \(blocked.map(\.what).joined(separator: "; "))",
                           fix: "allow these in the policy; `kubetrace-operator manifest` generates one that does (--api-server-cidr, --egress-cidr)")
    }

    /// The ValidatingAdmissionPolicy that limits the operator's Secret writes, and its binding:
    /// present, bound with Deny, and matching the operator as installed here.
    private func secretWritePolicy() async -> DoctorCheck {
        let name = SecretWritePolicy.name(names)
        let check = "admission-policy"
        let fix = "kubectl apply --server-side -f kubetrace-operator.yaml (needs Kubernetes 1.30+, where ValidatingAdmissionPolicy is GA)"
        do {
            let base = "/apis/admissionregistration.k8s.io/v1"
            let policy = try JSONValue.parse(try await client.request("GET", path: "\(base)/validatingadmissionpolicies/\(name)").body)
            let conditions = policy["spec"]?["matchConditions"]?.arrayValue?.compactMap { $0["expression"]?.stringValue } ?? []
            let validations = policy["spec"]?["validations"]?.arrayValue?.compactMap { $0["expression"]?.stringValue } ?? []
            let failurePolicy = policy["spec"]?["failurePolicy"]?.stringValue ?? "Fail"
            guard conditions == [SecretWritePolicy.matchCondition(names)], validations == [SecretWritePolicy.validation(names)], failurePolicy == "Fail" else {
                return DoctorCheck(name: check, ok: false, found: "ValidatingAdmissionPolicy \(name) differs from the one the manifest installs", fix: fix)
            }
            let bindings = try JSONValue.parse(try await client.request("GET", path: "\(base)/validatingadmissionpolicybindings").body)["items"]?.arrayValue ?? []
            let denying = bindings.filter {
                $0["spec"]?["policyName"]?.stringValue == name && ($0["spec"]?["validationActions"]?.arrayValue ?? []).contains(.string("Deny"))
            }
            guard let binding = denying.first?["metadata"]?["name"]?.stringValue else {
                return DoctorCheck(name: check, ok: false, found: "ValidatingAdmissionPolicy \(name) is not bound with validationActions [Deny]: the operator's Secret writes are not limited", fix: fix)
            }
            return DoctorCheck(name: check, ok: true, found: "\(name) limits the operator's Secret writes (binding \(binding), Deny)")
        } catch let e as KubeClientError where e.httpStatus == 404 {
            return DoctorCheck(name: check, ok: false, found: "ValidatingAdmissionPolicy \(name) not found: the operator's secrets create is not limited to its pull Secret", fix: fix)
        } catch {
            return DoctorCheck(name: check, ok: false, found: Self.describe(error), fix: fix)
        }
    }

    private func rbacObjects() async -> DoctorCheck {
        do {
            let readOnly = try await client.get(Role.self, namespace: ns, name: names.readOnlyRole)
            guard Set(readOnly.rules ?? []) == Set(DesiredRBAC.readOnlyRules) else {
                return DoctorCheck(name: "rbac-objects", ok: false, found: "Role \(names.readOnlyRole) differs from the desired rules", fix: "kubectl apply --server-side -f kubetrace-operator.yaml (the running operator restores it)")
            }
            let binding = try await client.get(RoleBinding.self, namespace: ns, name: names.readOnlyBinding)
            let subject = Subject(kind: "ServiceAccount", name: names.readOnlyServiceAccount, namespace: ns)
            guard binding.roleRef == RoleRef(kind: "Role", name: names.readOnlyRole), binding.subjects?.contains(subject) == true else {
                return DoctorCheck(name: "rbac-objects", ok: false, found: "RoleBinding \(names.readOnlyBinding) does not bind \(names.readOnlyServiceAccount) to \(names.readOnlyRole)", fix: "kubectl apply --server-side -f kubetrace-operator.yaml")
            }
            _ = try await client.get(RoleBinding.self, namespace: ns, name: names.operatorBinding)
            return DoctorCheck(name: "rbac-objects", ok: true, found: "Roles and RoleBindings present and correct")
        } catch {
            return DoctorCheck(name: "rbac-objects", ok: false, found: Self.describe(error), fix: "kubectl apply --server-side -f kubetrace-operator.yaml")
        }
    }

    /// Access reviews as the operator's ServiceAccount (impersonated), one per permission it needs.
    private func rbacPermissions() async -> DoctorCheck {
        let user = "system:serviceaccount:\(ns):\(names.operatorServiceAccount)"
        let asOperator = client.impersonating(user: user, groups: ["system:serviceaccounts", "system:serviceaccounts:\(ns)"])
        var denied: [String] = []
        for p in DesiredRBAC.requiredPermissions(names) {
            do {
                if try await !asOperator.selfSubjectAccessReview(p).allowed {
                    denied.append("\(p.verb) \(p.group.map { $0.isEmpty ? "" : "\($0)/" } ?? "")\(p.resource)\(p.subresource.map { "/\($0)" } ?? "")\(p.name.map { " \($0)" } ?? "")")
                }
            } catch {
                return DoctorCheck(name: "rbac-permissions", ok: false, found: "access review failed: \(Self.describe(error))", fix: "run doctor as a user that may impersonate \(user), or in-cluster as the operator")
            }
        }
        if denied.isEmpty { return DoctorCheck(name: "rbac-permissions", ok: true, found: "\(user) has every permission the operator needs") }
        return DoctorCheck(name: "rbac-permissions", ok: false, found: "\(user) may not: \(denied.joined(separator: ", "))",
                           fix: "grant them in Role \(names.operatorRole) (kubectl apply --server-side -f kubetrace-operator.yaml restores the generated Role)")
    }

    private func kubetraceAPI(_ deployment: JSONValue?) async -> DoctorCheck {
        let fromDeployment = deployment?["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first?["env"]?.arrayValue?
            .first { $0["name"]?.stringValue == "API_URL" }?["value"]?.stringValue
        guard let raw = apiURL ?? fromDeployment else {
            return DoctorCheck(name: "kubetrace-api", ok: false, found: "API_URL unknown (no --api-url and no operator Deployment)", fix: "pass --api-url")
        }
        let endpoint: ExternalEndpoint
        do { endpoint = try ExternalEndpoint.validated(raw, name: "API_URL", allowInsecure: allowInsecureHTTP, caFile: caFile) } catch {
            return DoctorCheck(name: "kubetrace-api", ok: false, found: "\(error)", fix: "set API_URL to the https URL from the Kubetrace dashboard")
        }
        var token = operatorToken
        if token == nil, let s = try? await client.get(Secret.self, namespace: ns, name: names.operatorSecret), let t = s.data?["operator_token"] {
            token = SecretString(t.string.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let ping = HTTPRequest(url: "\(endpoint.baseURL)/v1/ping", headers: [("User-Agent", "kubetrace-operator/\(kubetraceVersion)")], timeout: .seconds(10))
        do {
            let r = try await CurlTransport.shared.send(ping, tls: endpoint.tls)
            guard r.status == 200 else {
                return DoctorCheck(name: "kubetrace-api", ok: false, found: "GET \(endpoint.baseURL)/v1/ping answered \(r.status)", fix: "check API_URL and the Kubetrace API status")
            }
        } catch {
            return DoctorCheck(name: "kubetrace-api", ok: false, found: "\(endpoint.baseURL) unreachable: \(error)", fix: "allow egress to the API_URL host on port 443 and check API_URL")
        }
        guard let token else {
            return DoctorCheck(name: "kubetrace-api", ok: false, found: "reachable, but no operator_token found (Secret \(names.operatorSecret))", fix: "apply the manifest, or pass --operator-token-file")
        }
        var authed = ping
        authed.headers.append(("Authorization", "Bearer \(token.value)"))
        do {
            let r = try await CurlTransport.shared.send(authed, tls: endpoint.tls)
            if r.status == 401 || r.status == 403 {
                return DoctorCheck(name: "kubetrace-api", ok: false, found: "operator_token rejected by \(endpoint.baseURL) (\(r.status))",
                                   fix: "regenerate the operator token from the Kubetrace dashboard and update Secret \(names.operatorSecret)")
            }
            return DoctorCheck(name: "kubetrace-api", ok: r.status == 200, found: "reachable, operator_token accepted", fix: r.status == 200 ? nil : "check the Kubetrace API status")
        } catch {
            return DoctorCheck(name: "kubetrace-api", ok: false, found: "\(error)", fix: "check API_URL")
        }
    }

    private func credentialExpiry() async -> DoctorCheck {
        do {
            let secret = try await client.get(Secret.self, namespace: ns, name: names.kubeconfigSecret)
            guard let raw = secret.data?["kubeconfig"] else {
                return DoctorCheck(name: "credentials", ok: false, found: "Secret \(names.kubeconfigSecret) has no kubeconfig key", fix: "wait for the operator's refresh, or re-apply the manifest")
            }
            let config = try KubeConfig.parse(yaml: raw.string, file: "Secret \(ns)/\(names.kubeconfigSecret)", directory: "/")
            let token = config.users.values.compactMap(\.token).first
            var expiry = secret.metadata.annotations?["kubetrace.net/token-expires-at"].flatMap(RFC3339.parse)
            if expiry == nil, let token { expiry = JWT.expiry(of: token.value) }
            guard token != nil else {
                return DoctorCheck(name: "credentials", ok: false, found: "the read-only kubeconfig has no token yet", fix: "the operator writes it on its first refresh: check its logs (kubectl -n \(ns) logs deploy/\(names.deployment))")
            }
            guard let expiry else { return DoctorCheck(name: "credentials", ok: true, found: "read-only token present (expiry unknown)") }
            let left = expiry.timeIntervalSinceNow
            if left <= 0 {
                return DoctorCheck(name: "credentials", ok: false, found: "the read-only token expired \(Self.human(-left)) ago", fix: "check the operator's logs for refresh failures (operator_token, API_URL)")
            }
            return DoctorCheck(name: "credentials", ok: true, found: "read-only token expires in \(Self.human(left))")
        } catch {
            return DoctorCheck(name: "credentials", ok: false, found: Self.describe(error), fix: "re-apply the manifest; the operator then refreshes the token")
        }
    }

    static func human(_ seconds: TimeInterval) -> String {
        let s = Int(seconds)
        if s >= 7200 { return "\(s / 3600)h" }
        if s >= 120 { return "\(s / 60)m" }
        return "\(s)s"
    }

    static func hostPort(_ host: String, defaultPort: Int) -> (String, Int) {
        if let colon = host.lastIndex(of: ":"), let port = Int(host[host.index(after: colon)...]) { return (String(host[..<colon]), port) }
        return (host, defaultPort)
    }

    /// A TCP connect with a timeout; nil on success, else the reason.
    static func tcpConnect(host: String, port: Int, timeoutMs: Int32) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let first = res else { return "does not resolve" }
        defer { freeaddrinfo(res) }
        var lastError = "refused"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                var rc = connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen)
                if rc != 0 && errno == EINPROGRESS {
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    rc = poll(&p, 1, timeoutMs) == 1 ? 0 : -1
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    if rc == 0 { getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len); if err != 0 { rc = -1; lastError = String(cString: strerror(err)) } }
                    else { lastError = "timed out" }
                } else if rc != 0 { lastError = String(cString: strerror(errno)) }
                close(fd)
                if rc == 0 { return nil }
            }
            ai = a.pointee.ai_next
        }
        return lastError
    }
}
