import Foundation
import KubeClient

/// One `auths` entry of a dockerconfigjson: `auth` (base64 `user:password`) wins over the
/// separate fields, as the kubelet reads it (pkg/credentialprovider/config.go).
struct RegistryCredential: Sendable {
    var username: String
    var password: SecretString

    init?(_ entry: JSONValue) {
        if let auth = entry["auth"]?.stringValue, !auth.isEmpty {
            guard let raw = Data(base64Encoded: auth), let text = String(data: raw, encoding: .utf8), let colon = text.firstIndex(of: ":") else { return nil }
            username = String(text[..<colon])
            password = SecretString(String(text[text.index(after: colon)...]))
        } else {
            guard let u = entry["username"]?.stringValue, let p = entry["password"]?.stringValue else { return nil }
            username = u
            password = SecretString(p)
        }
    }

    var basicAuthorization: String { "Basic " + Data("\(username):\(password.value)".utf8).base64EncodedString() }
}

extension Doctor {
    /// The operator's image: registry host, repository path, tag (or digest).
    struct OperatorImage: Sendable {
        var host: String
        var repository: String
        var reference: String
        var display: String { "\(host)/\(repository)\(reference.hasPrefix("sha256:") ? "@" : ":")\(reference)" }
    }

    enum PullCheck: Sendable {
        case checked(DoctorCheck)
        /// The address does not speak the registry API (or could not be asked): why.
        case notChecked(String)
    }

    /// From the Deployment's first container, else the image `manifest` installs by default.
    static func operatorImage(_ deployment: JSONValue?) -> OperatorImage {
        let raw = deployment?["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first?["image"]?.stringValue
            ?? "blr.vultrcr.com/kubetrace/kubetrace-operator:\(kubetraceVersion)"
        var rest = Substring(raw)
        var reference = "latest"
        if let at = rest.firstIndex(of: "@") {
            reference = String(rest[rest.index(after: at)...])
            rest = rest[..<at]
        } else if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            reference = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        var parts = rest.split(separator: "/").map(String.init)
        var host = "docker.io"
        if parts.count > 1, parts[0].contains(".") || parts[0].contains(":") || parts[0] == "localhost" { host = parts.removeFirst() }
        if host == "docker.io", parts.count == 1 { parts.insert("library", at: 0) }
        return OperatorImage(host: host, repository: parts.joined(separator: "/"), reference: reference)
    }

    /// Can the pull Secret's credentials pull the operator's image? The flow a kubelet's runtime
    /// runs (distribution's "Token Authentication Specification"; containerd remotes/docker):
    /// `GET /v2/` for the challenge, a token from its realm for `repository:NAME:pull` with Basic
    /// auth, then the manifest with that token. When `address` is not the credentials' host
    /// (a mirror, or a test registry standing in for it) the requests carry containerd's
    /// mirror parameter `ns=<host>`. Nothing secret is ever part of the result.
    func registryPull(address: String, credentialsHost: String, credential: RegistryCredential?, image: OperatorImage) async -> PullCheck {
        let base = "https://\(address)"
        let nsQuery = address == credentialsHost ? "" : "?" + encodeQuery([("ns", credentialsHost)])
        let tls = TLSSettings(certificateAuthorityPEM: registryCAPEM)
        let userAgent = ("User-Agent", "kubetrace-operator/\(kubetraceVersion)")
        func get(_ url: String, _ headers: [(name: String, value: String)] = []) async throws -> HTTPResponse {
            try await CurlTransport.shared.send(HTTPRequest(url: url, headers: headers + [userAgent], timeout: .seconds(10)), tls: tls, maxBodyBytes: 1 << 20)
        }
        let name = "registry-pull"
        let what = "\(image.repository):\(image.reference.hasPrefix("sha256:") ? String(image.reference.prefix(19)) : image.reference)"
        let ping: HTTPResponse
        do { ping = try await get("\(base)/v2/\(nsQuery)") } catch { return .notChecked("\(base)/v2/: \(error)") }
        let challenge = AuthChallenge(header: ping.head.header("WWW-Authenticate") ?? "")
        let isRegistry = ping.head.header("Docker-Distribution-API-Version") != nil || (ping.status == 401 && !challenge.scheme.isEmpty)
        guard isRegistry, ping.status == 200 || ping.status == 401 else {
            return .notChecked("\(base)/v2/ answered \(ping.status) without the Docker Registry v2 API")
        }
        let credentialsFix = "the pull Secret \(names.registrySecret) holds wrong or expired credentials for \(credentialsHost): the running operator refreshes them (kubectl -n \(names.namespace) logs deploy/\(names.deployment)); or regenerate the manifest with fresh ones"
        var authorization: String?
        if ping.status == 401 {
            guard let credential else {
                return .checked(DoctorCheck(name: name, ok: false, found: "\(address) needs credentials and the pull Secret has none for \(credentialsHost)", fix: "regenerate the manifest with the registry credentials"))
            }
            if challenge.scheme == "basic" {
                authorization = credential.basicAuthorization
            } else if let realm = challenge.parameters["realm"] {
                let query = encodeQuery([("scope", "repository:\(image.repository):pull")] + (challenge.parameters["service"].map { [("service", $0)] } ?? []))
                let tokenURL = "\(realm)\(realm.contains("?") ? "&" : "?")\(query)"
                let response: HTTPResponse
                do { response = try await get(tokenURL, [("Authorization", credential.basicAuthorization)]) } catch {
                    return .checked(DoctorCheck(name: name, ok: false, found: "token endpoint \(realm) unreachable: \(error)", fix: "allow egress to \(realm)"))
                }
                if response.status == 401 || response.status == 403 {
                    return .checked(DoctorCheck(name: name, ok: false, found: "\(credentialsHost) refused the pull Secret's credentials (user \(credential.username)): token request answered \(response.status)", fix: credentialsFix))
                }
                let body = try? JSONValue.parse(response.body)
                guard response.status == 200, let token = body?["token"]?.stringValue ?? body?["access_token"]?.stringValue, !token.isEmpty else {
                    return .checked(DoctorCheck(name: name, ok: false, found: "token endpoint \(realm) answered \(response.status) without a token", fix: "check the registry's status"))
                }
                authorization = "Bearer \(token)"
            } else {
                return .notChecked("unsupported challenge \"\(challenge.scheme)\" from \(base)/v2/")
            }
        }
        var headers: [(name: String, value: String)] = [("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")]
        if let authorization { headers.append(("Authorization", authorization)) }
        let manifestURL = "\(base)/v2/\(image.repository)/manifests/\(image.reference)\(nsQuery)"
        let manifest: HTTPResponse
        do { manifest = try await get(manifestURL, headers) } catch {
            return .checked(DoctorCheck(name: name, ok: false, found: "\(manifestURL): \(error)", fix: "check the registry's status"))
        }
        let via = address == credentialsHost ? "" : " (at \(address))"
        switch manifest.status {
        case 200:
            let digest = manifest.head.header("Docker-Content-Digest").map { ", \($0.prefix(19))…" } ?? ""
            return .checked(DoctorCheck(name: name, ok: true, found: "the pull Secret's credentials for \(credentialsHost) can pull \(what)\(via)\(digest)"))
        case 401, 403:
            let error = AuthChallenge(header: manifest.head.header("WWW-Authenticate") ?? "").parameters["error"].map { " (\($0))" } ?? ""
            return .checked(DoctorCheck(name: name, ok: false, found: "pull access to \(image.repository) denied\(error): the credentials for \(credentialsHost) do not cover it\(via)",
                                        fix: "use credentials for the registry that holds \(image.display) (Vultr: the registry named \(image.repository.split(separator: "/").first ?? ""))"))
        case 404:
            return .checked(DoctorCheck(name: name, ok: false, found: "\(what) not found in \(credentialsHost)\(via) (MANIFEST_UNKNOWN); the credentials are accepted",
                                        fix: "check the Deployment's image (kubetrace-operator manifest --image …)"))
        default:
            return .checked(DoctorCheck(name: name, ok: false, found: "GET \(manifestURL) answered \(manifest.status)", fix: "check the registry's status"))
        }
    }
}
