import Foundation
import KubeClient

/// `kubetrace-operator identity`: the management host's own identity for a systemd
/// install. Run once with an admin kubeconfig, after the manifest is applied: it mints
/// a token for the operator's ServiceAccount (bound by the manifest's RBAC and its
/// admission policy, nothing more) and writes a kubeconfig for it, mode 0600. The
/// running operator renews that token itself before it expires, in its state directory;
/// the Role `kubetrace-operator-identity` (created here) lets it mint its own tokens.
public struct IdentityRequest: Sendable, ClusterCommand {
    public init() {}
    public var cluster = ClusterSelection()
    public var tokenLifetime = "24h"
    public var output = "kubetrace-operator.kubeconfig"

    public func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let connection = try cluster.loadConnection(environment: env)
        var names = ObjectNames()
        if let ns = cluster.namespace ?? env["POD_NAMESPACE"], !ns.isEmpty { names.namespace = ns }
        guard let lifetime = DurationParser.parse(tokenLifetime), lifetime >= .seconds(600) else {
            throw CLIError.configuration("--token-lifetime: \"\(tokenLifetime)\" must be a duration of at least 10m")
        }
        let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")
        let account = names.operatorServiceAccount
        do {
            _ = try await client.get(ServiceAccount.self, namespace: names.namespace, name: account)
        } catch let e as KubeClientError where e.httpStatus == 404 {
            throw CLIError.configuration("--namespace: ServiceAccount \(names.namespace)/\(account) not found: apply the manifest first (kubectl apply --server-side -f kubetrace-operator.yaml)")
        } catch let e as KubeClientError where e.code == .configuration {
            throw CLIError.configuration("\(connection.source): \(e.message)")
        } catch {
            throw CLIError.runtime("cannot reach the API server of \(connection.source): \(error)")
        }
        // Renewing its own token is a right only this install gets: the manifest's Role does not
        // hold it, so an in-cluster operator cannot mint tokens for itself that outlive its Pod.
        do {
            try await Self.grantSelfRenewal(client, names)
        } catch let e as KubeClientError where e.httpStatus == 403 {
            throw CLIError.configuration("\(connection.source): may not create Role \(names.namespace)/\(Self.roleName(names)) (\(Doctor.describe(e))); run this with an admin kubeconfig")
        }
        let answer: TokenRequest
        do {
            answer = try await client.requestToken(namespace: names.namespace, serviceAccount: account,
                                                   TokenRequest(audiences: [], expirationSeconds: Int(lifetime.components.seconds)))
        } catch let e as KubeClientError where e.httpStatus == 403 {
            throw CLIError.configuration("\(connection.source): may not create tokens for \(names.namespace)/\(account) (\(Doctor.describe(e))); run this with an admin kubeconfig")
        }
        guard let token = answer.status?.token, !token.value.isEmpty, let claims = OwnToken.claims(of: token.value) else {
            throw CLIError.runtime("the API server's TokenRequest answer for \(names.namespace)/\(account) holds no ServiceAccount token")
        }
        let yaml = Self.kubeconfig(connection: connection, namespace: names.namespace, user: account, token: token)
        let user = "system:serviceaccount:\(names.namespace):\(account)"
        let note = "kubetrace-operator: a kubeconfig for \(user), token valid until \(RFC3339.format(claims.expiresAt)); "
            + "the operator renews it in its state directory ($STATE_DIRECTORY) at 80 % of its lifetime\n"
        if output == "-" {
            FileHandle.standardOutput.write(Data(yaml.utf8))
            FileHandle.standardError.write(Data(note.utf8))
        } else {
            try writePrivately(yaml, to: output)
            FileHandle.standardError.write(Data((note + "kubetrace-operator: wrote \(output) (mode 0600); install it with: install -m 0600 \(output) /etc/kubetrace/kubeconfig\n").utf8))
        }
    }

    static func roleName(_ n: ObjectNames) -> String { "\(n.operatorRole)-identity" }

    /// Role and RoleBinding `<operator role>-identity`: `serviceaccounts/token create` on the
    /// operator's own ServiceAccount, bound to it. Created, or brought back to this if changed.
    static func grantSelfRenewal(_ client: KubeClient, _ n: ObjectNames) async throws {
        let name = roleName(n)
        let labels = ["app.kubernetes.io/name": "kubetrace-operator", "app.kubernetes.io/managed-by": "kubetrace-operator"]
        let rules = [PolicyRule(apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create"], resourceNames: [n.operatorServiceAccount])]
        let role = Role(metadata: ObjectMeta(name: name, namespace: n.namespace, labels: labels), rules: rules)
        do { _ = try await client.create(role) } catch let e as KubeClientError where e.httpStatus == 409 {
            var current = try await client.get(Role.self, namespace: n.namespace, name: name)
            current.rules = rules
            _ = try await client.update(current)
        }
        let subjects = [Subject(kind: "ServiceAccount", name: n.operatorServiceAccount, namespace: n.namespace)]
        let binding = RoleBinding(metadata: ObjectMeta(name: name, namespace: n.namespace, labels: labels), subjects: subjects, roleRef: RoleRef(kind: "Role", name: name))
        do { _ = try await client.create(binding) } catch let e as KubeClientError where e.httpStatus == 409 {
            let current = try await client.get(RoleBinding.self, namespace: n.namespace, name: name)
            if current.subjects != subjects || current.roleRef != binding.roleRef {
                // roleRef cannot change: replace the binding.
                try await client.delete(RoleBinding.self, namespace: n.namespace, name: name)
                _ = try await client.create(binding)
            }
        }
    }

    /// A single-context kubeconfig: the cluster as the admin kubeconfig names it, the token inline.
    static func kubeconfig(connection: ClusterConnection, namespace: String, user: String, token: SecretString) -> String {
        var cluster: [(String, YAML)] = [("server", .string(connection.server))]
        if let ca = connection.tls.certificateAuthorityPEM {
            cluster.append(("certificate-authority-data", .string(Data(ca.utf8).base64EncodedString())))
        }
        if let name = connection.tls.serverName { cluster.append(("tls-server-name", .string(name))) }
        if connection.tls.insecureSkipVerify { cluster.append(("insecure-skip-tls-verify", true)) }
        return YAML.map([
            ("apiVersion", "v1"), ("kind", "Config"), ("current-context", "kubetrace-operator"),
            ("clusters", .list([.map([("name", "kubetrace"), ("cluster", .map(cluster))])])),
            ("contexts", .list([.map([("name", "kubetrace-operator"), ("context", .map([
                ("cluster", "kubetrace"), ("user", .string(user)), ("namespace", .string(namespace))]))])])),
            ("users", .list([.map([("name", .string(user)), ("user", .map([("token", .string(token.value))]))])])),
        ]).render()
    }
}
