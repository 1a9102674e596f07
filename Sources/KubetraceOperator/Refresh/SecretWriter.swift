import Foundation
import KubeClient
import KubeTLS

/// Conflict-safe, whole-object Secret writes: read, change, PUT with the
/// read's resourceVersion, and on 409 read again and retry. A Secret is
/// replaced in one request, so it is never seen half-written; it is created
/// only when it does not exist.
struct SecretWriter: Sendable {
    let client: KubeClient

    @discardableResult
    func update(namespace: String, name: String, create: @Sendable () -> Secret, change: @Sendable (inout Secret) -> Void) async throws -> Secret {
        for attempt in 1...5 {
            do {
                var secret: Secret
                do {
                    secret = try await client.get(Secret.self, namespace: namespace, name: name)
                } catch let e as KubeClientError where e.isNotFound {
                    var fresh = create()
                    change(&fresh)
                    return try await client.create(fresh, namespace: namespace)
                }
                let before = secret
                change(&secret)
                if secret == before { return secret }
                return try await client.update(secret)
            } catch let e as KubeClientError where (e.isConflict || e.isAlreadyExists) && attempt < 5 {
                continue
            }
        }
        throw KubeClientError(.api, "Secret \(namespace)/\(name): still conflicting after 5 attempts")
    }
}

/// The read-only user's kubeconfig, complete and valid on every write.
enum ReadOnlyKubeconfig {
    static let expiryAnnotation = "kubetrace.net/token-expires-at"

    static func render(server: String, certificateAuthorityData: String?, namespace: String, user: String, token: SecretString) -> String {
        var cluster: [(String, YAML)] = [("server", .string(server))]
        if let ca = certificateAuthorityData { cluster.append(("certificate-authority-data", .string(ca))) }
        return YAML.map([
            ("apiVersion", "v1"), ("kind", "Config"), ("current-context", "kubetrace"),
            ("clusters", .list([.map([("name", "kubetrace"), ("cluster", .map(cluster))])])),
            ("contexts", .list([.map([("name", "kubetrace"), ("context", .map([("cluster", "kubetrace"), ("user", .string(user)), ("namespace", .string(namespace))]))])])),
            ("users", .list([.map([("name", .string(user)), ("user", .map([("token", .string(token.value))]))])])),
        ]).render()
    }

    /// Server and CA of a stored kubeconfig, to keep them when an answer has none.
    static func clusterFacts(_ kubeconfig: String) -> (server: String?, caData: String?) {
        guard let config = try? KubeConfig.parse(yaml: kubeconfig, file: "kubeconfig Secret", directory: "/"),
              let cluster = config.clusters.values.first else { return (nil, nil) }
        return (cluster.server, cluster.certificateAuthorityData.map { Data($0).base64EncodedString() })
    }

    /// The credential and its expiry in a stored kubeconfig Secret: a token (JWT `exp`,
    /// the annotation) or a client certificate (X.509 `notAfter`, read with libssl).
    static func tokenFacts(_ secret: Secret) -> RefreshResult? {
        guard let raw = secret.data?["kubeconfig"],
              let config = try? KubeConfig.parse(yaml: raw.string, file: "kubeconfig Secret", directory: "/"),
              let user = config.users.values.first(where: { $0.token != nil || $0.clientCertificateData != nil }) else { return nil }
        let notAfter = user.clientCertificateData.flatMap { try? X509.validity(pem: String(decoding: $0, as: UTF8.self)).upperBound }
        let expiry = ExpiryDiscovery.expiry(jwt: user.token?.value, annotation: secret.metadata.annotations?[expiryAnnotation], certificateNotAfter: notAfter)
        return RefreshResult(issuedAt: nil, expiresAt: expiry)
    }
}
