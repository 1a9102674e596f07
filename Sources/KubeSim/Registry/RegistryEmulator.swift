import Foundation
import HTTPTypes
import Hummingbird
import KubeClient
import NIOCore
import Synchronization

/// The Docker Registry HTTP API v2 with token authentication, served on the devcluster's own
/// listener under `/v2/` (NodeRoutes.registry), for the images the node can run.
///
/// Sourced from distribution/distribution: the registry's access controller
/// (`registry/auth/token/accesscontroller.go`: `WWW-Authenticate: Bearer realm=…,service=…,
/// scope=…[,error=invalid_token|insufficient_scope]`, 401 with errcode `UNAUTHORIZED`), the
/// errcode bodies (`registry/api/errcode`: `{"errors":[{"code","message","detail"}]}`,
/// `MANIFEST_UNKNOWN` "manifest unknown" with `{"Tag":…}`), and the "Token Authentication
/// Specification" plus `contrib/token-server` for the token endpoint (`GET /v2/token?service=
/// &scope=` with Basic auth → `{"token","access_token","expires_in","issued_at"}`; the OAuth
/// `POST` form that containerd tries first; bad credentials → 401 `UNAUTHORIZED`). An anonymous
/// token request gets a token with only the access anonymous users have, as Docker Hub's does,
/// so a private repository answers `insufficient_scope` — the path containerd words as "pull
/// access denied, repository does not exist or may require authorization".
///
/// One listener stands for several registries: a request names its registry host with
/// containerd's mirror parameter `ns=<host>` (remotes/docker/resolver.go `addNamespace`), or
/// the token's `service`; without either it is `blr.vultrcr.com`. Hosts the Vultr emulator
/// serves are private (pull needs credentials the Vultr API or the Kubetrace API handed out,
/// unexpired, for that registry's namespace); every other host is public.
final class RegistryEmulator: Sendable {
    static let defaultHost = "blr.vultrcr.com"
    /// Lifetime of the bearer tokens (distribution's token-server default is 5 min too).
    static let tokenLifetime: TimeInterval = 300
    static let manifestMediaType = "application/vnd.oci.image.manifest.v1+json"

    private struct Token {
        var service: String
        /// `repository:NAME:pull` entries granted.
        var access: Set<String>
        var expiresAt: Date
    }

    /// One image's manifest and the blobs it names.
    private struct Content {
        var manifest: [UInt8]
        var digest: String
        var blobs: [String: [UInt8]]
    }

    let vultr: VultrEmulator
    let kubetraceAPI: KubetraceAPIEmulator?
    private let serverURL: @Sendable () async -> String
    private let now: @Sendable () -> Date
    /// "host/path" → reference (tag or digest) → content.
    private let repositories: [String: [String: Content]]
    private let tokens = Mutex<[String: Token]>([:])
    private let counters = Mutex<(tokens: Int, refusedTokens: Int, manifests: Int)>((0, 0, 0))

    /// - Parameters:
    ///   - images: the node's images (`NodeOptions.images`), served as one-layer OCI images.
    ///   - serverURL: the devcluster's base URL, for the token realm.
    ///   - kubetraceAPI: also accept the pull credentials its `registry` blocks hand out.
    ///   - now: the clock credentials' and tokens' expiry is checked against.
    init(vultr: VultrEmulator, kubetraceAPI: KubetraceAPIEmulator? = nil, images: [String: NodeImage],
         serverURL: @escaping @Sendable () async -> String, now: @escaping @Sendable () -> Date = { Date() }) {
        self.vultr = vultr
        self.kubetraceAPI = kubetraceAPI
        self.serverURL = serverURL
        self.now = now
        var repos: [String: [String: Content]] = [:]
        for (raw, image) in images.sorted(by: { $0.key < $1.key }) {
            guard let ref = try? ImageReference.parse(raw) else { continue }
            let content = Self.content(for: image, reference: ref)
            let key = "\(ref.domain)/\(ref.path)"
            repos[key, default: [:]][content.digest] = content
            if let tag = ref.tag { repos[key, default: [:]][tag] = content }
            if let digest = ref.digest { repos[key, default: [:]][digest] = content }
        }
        repositories = repos
    }

    /// Tokens issued, token requests refused (bad credentials), manifests served: for tests.
    var tokensIssued: Int { counters.withLock { $0.tokens } }
    var tokenRequestsRefused: Int { counters.withLock { $0.refusedTokens } }
    var manifestsServed: Int { counters.withLock { $0.manifests } }

    /// The digest the manifest of `reference` is served under, if the registry has it.
    func manifestDigest(of reference: String) -> String? {
        guard let ref = try? ImageReference.parse(reference) else { return nil }
        return repositories["\(ref.domain)/\(ref.path)"]?[ref.reference]?.digest
    }

    func handle(_ request: Request, body: [UInt8]) async throws -> Response {
        let path = request.uri.path
        let query = Self.queryItems(request.uri.query ?? "")
        let method = request.method
        let base = await serverURL()
        let host = query.first { $0.0 == "ns" }?.1 ?? Self.defaultHost
        if path == "/v2/token" {
            if method == .get { return token(query: query, authorization: request.headers[.authorization], realm: "\(base)/v2/token") }
            if method == .post { return oauthToken(form: Self.queryItems(String(decoding: body, as: UTF8.self))) }
            return Self.errorResponse(405, "UNSUPPORTED", "The operation is unsupported.", detail: .null)
        }
        if path == "/v2" || path == "/v2/" {
            guard method == .get || method == .head else { return Self.errorResponse(405, "UNSUPPORTED", "The operation is unsupported.", detail: .null) }
            switch check(request.headers[.authorization], host: host, repository: nil) {
            case .allowed: return Self.response(200, contentType: "application/json", body: Array("{}".utf8), head: method == .head)
            case .refused(let error): return challenge(base: base, host: host, repository: nil, error: error)
            }
        }
        let rest = path.dropFirst("/v2/".count)
        for (kind, separator) in [("manifests", "/manifests/"), ("blobs", "/blobs/")] {
            guard let split = rest.range(of: separator, options: .backwards) else { continue }
            let name = String(rest[..<split.lowerBound]), reference = String(rest[split.upperBound...])
            guard !name.isEmpty, !reference.isEmpty else { break }
            guard method == .get || method == .head else {
                return Self.errorResponse(405, "UNSUPPORTED", "The operation is unsupported.", detail: .null)
            }
            if case .refused(let error) = check(request.headers[.authorization], host: host, repository: name) {
                return challenge(base: base, host: host, repository: name, error: error)
            }
            let repo = repositories["\(host)/\(name)"]
            if kind == "manifests" {
                guard let content = repo?[reference] else {
                    let detail: JSONValue = reference.hasPrefix("sha256:")
                        ? .object(["Name": .string(name), "Revision": .string(reference)]) : .object(["Tag": .string(reference)])
                    return Self.errorResponse(404, "MANIFEST_UNKNOWN", "manifest unknown", detail: detail)
                }
                counters.withLock { $0.manifests += 1 }
                var r = Self.response(200, contentType: Self.manifestMediaType, body: content.manifest, head: method == .head)
                r.headers[HTTPField.Name("Docker-Content-Digest")!] = content.digest
                r.headers[.eTag] = "\"\(content.digest)\""
                return r
            }
            guard let blob = repo?.values.lazy.compactMap({ $0.blobs[reference] }).first else {
                return Self.errorResponse(404, "BLOB_UNKNOWN", "blob unknown to registry", detail: .string(reference))
            }
            var r = Self.response(200, contentType: "application/octet-stream", body: blob, head: method == .head)
            r.headers[HTTPField.Name("Docker-Content-Digest")!] = reference
            return r
        }
        // distribution answers an unknown route with Go's plain 404.
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .notFound, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "404 page not found\n")))
    }

    // MARK: Token endpoint

    private func token(query: [(String, String)], authorization: String?, realm: String) -> Response {
        let service = query.first { $0.0 == "service" }?.1 ?? Self.defaultHost
        let scopes = query.filter { $0.0 == "scope" }.flatMap { $0.1.split(separator: " ").map(String.init) }
        var account: (String, String)?
        if let authorization {
            guard let creds = Self.basicCredentials(authorization) else { return basicChallenge(realm: realm, service: service, reason: "invalid authorization credential") }
            account = creds
        }
        guard let granted = grant(service: service, scopes: scopes, account: account) else {
            // contrib/token-server: the htpasswd access controller's challenge, as an errcode body.
            return basicChallenge(realm: realm, service: service, reason: "authentication failure")
        }
        return issue(service: service, granted: granted, oauth: false)
    }

    /// containerd's first try with credentials: the OAuth2 password grant as a form POST
    /// (remotes/docker/auth/fetch.go `FetchTokenWithOAuth`).
    private func oauthToken(form: [(String, String)]) -> Response {
        func value(_ k: String) -> String? { form.first { $0.0 == k }?.1 }
        guard let grantType = value("grant_type") else { return Self.errorResponse(400, "INVALID_REQUEST", "invalid request", detail: .string("missing grant_type value")) }
        guard let service = value("service") else { return Self.errorResponse(400, "INVALID_REQUEST", "invalid request", detail: .string("missing service value")) }
        let scopes = (value("scope") ?? "").split(separator: " ").map(String.init)
        switch grantType {
        case "password":
            guard let user = value("username"), let password = value("password"), !user.isEmpty, !password.isEmpty else {
                return Self.errorResponse(400, "UNSUPPORTED", "The operation is unsupported.", detail: .string("missing username or password value"))
            }
            guard let granted = grant(service: service, scopes: scopes, account: (user, password)) else {
                return Self.errorResponse(401, "UNAUTHORIZED", "authentication required", detail: .string("invalid credentials"))
            }
            return issue(service: service, granted: granted, oauth: true)
        case "refresh_token":
            // No refresh tokens are handed out, so none is valid.
            return Self.errorResponse(401, "UNAUTHORIZED", "authentication required", detail: .string("invalid refresh token"))
        default:
            return Self.errorResponse(400, "UNSUPPORTED", "The operation is unsupported.", detail: .string("unknown grant_type value"))
        }
    }

    /// The access granted for `scopes`, or nil when the credentials are not valid for `service`.
    private func grant(service: String, scopes: [String], account: (user: String, password: String)?) -> Set<String>? {
        let privateRegistry = vultr.registry(host: service)
        var registryName: String?
        if let account {
            let at = now()
            if vultr.acceptsDockerCredentials(host: service, username: account.user, password: account.password, now: at) {
                registryName = vultr.dockerCredentialsRegistry(username: account.user)?.name
            } else if kubetraceAPI?.acceptsDockerCredentials(host: service, username: account.user, password: account.password, now: at) == true {
                registryName = privateRegistry?.name ?? ""
            } else {
                counters.withLock { $0.refusedTokens += 1 }
                return nil
            }
        }
        var granted: Set<String> = []
        for scope in scopes {
            // resourcetype:resourcename:action[,action] (the resource name may hold a port's colon: split from both ends).
            guard let first = scope.firstIndex(of: ":"), let last = scope.lastIndex(of: ":"), first < last, scope[..<first] == "repository" else { continue }
            let name = String(scope[scope.index(after: first)..<last])
            let actions = scope[scope.index(after: last)...].split(separator: ",")
            guard actions.contains("pull") else { continue }
            let allowed: Bool
            if privateRegistry == nil {
                allowed = true
            } else if let registryName {
                allowed = registryName.isEmpty || name.hasPrefix(registryName + "/")
            } else {
                allowed = false
            }
            // Pull only: the credentials are read-only (`read_write=false`), and nothing here is pushed.
            if allowed { granted.insert("repository:\(name):pull") }
        }
        return granted
    }

    private func issue(service: String, granted: Set<String>, oauth: Bool) -> Response {
        let token = "kt_reg_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let issuedAt = now()
        tokens.withLock { t in
            t = t.filter { $0.value.expiresAt > issuedAt }
            t[token] = Token(service: service, access: granted, expiresAt: issuedAt.addingTimeInterval(Self.tokenLifetime))
        }
        counters.withLock { $0.tokens += 1 }
        var out: [String: JSONValue] = ["access_token": .string(token), "expires_in": .int(Int(Self.tokenLifetime)), "issued_at": .string(RFC3339.format(issuedAt))]
        if oauth { out["scope"] = .string(granted.sorted().joined(separator: " ")) } else { out["token"] = .string(token) }
        return Self.response(200, contentType: "application/json", body: JSONValue.object(out).jsonBytes(), head: false)
    }

    private func basicChallenge(realm: String, service: String, reason: String) -> Response {
        var r = Self.errorResponse(401, "UNAUTHORIZED", "authentication required",
                                   detail: .string("basic authentication challenge for realm \"\(service)\": \(reason)"))
        r.headers[.wwwAuthenticate] = "Basic realm=\"\(service)\""
        return r
    }

    // MARK: Resource authorization

    private enum Check { case allowed, refused(String?) }

    /// The access controller: a bearer token for this registry that grants pull on `repository`
    /// (any valid token for the `/v2/` base).
    private func check(_ authorization: String?, host: String, repository: String?) -> Check {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return .refused(nil) }
        let presented = String(authorization.dropFirst(7))
        let at = now()
        guard let token = tokens.withLock({ $0[presented] }), token.expiresAt > at, token.service == host else { return .refused("invalid_token") }
        if let repository, !token.access.contains("repository:\(repository):pull") { return .refused("insufficient_scope") }
        return .allowed
    }

    private func challenge(base: String, host: String, repository: String?, error: String?) -> Response {
        var value = "Bearer realm=\"\(base)/v2/token\",service=\"\(host)\""
        var detail: JSONValue = .null
        if let repository {
            value += ",scope=\"repository:\(repository):pull\""
            detail = .array([.object(["Type": .string("repository"), "Class": .string(""), "Name": .string(repository), "Action": .string("pull")])])
        }
        if let error { value += ",error=\"\(error)\"" }
        var r = Self.errorResponse(401, "UNAUTHORIZED", "authentication required", detail: detail)
        r.headers[.wwwAuthenticate] = value
        return r
    }

    // MARK: Helpers

    private static func content(for image: NodeImage, reference: ImageReference) -> Content {
        // One layer standing for the program (not a real tarball: the node runs the executable itself).
        let layer = Array("kubetrace-devcluster image \(reference.canonical): \(image.executable)\n".utf8)
        let layerDigest = SHA256.digest(layer)
        var config: [String: JSONValue] = ["Entrypoint": .array([.string(image.executable)])]
        if let user = image.user { config["User"] = .string("\(user.uid):\(user.gid)") }
        let configBlob = JSONValue.object([
            "architecture": .string("amd64"), "os": .string("linux"), "config": .object(config),
            "rootfs": .object(["type": .string("layers"), "diff_ids": .array([.string(layerDigest)])]),
        ]).jsonBytes()
        let manifest = JSONValue.object([
            "schemaVersion": .int(2), "mediaType": .string(manifestMediaType),
            "config": .object(["mediaType": .string("application/vnd.oci.image.config.v1+json"), "digest": .string(SHA256.digest(configBlob)), "size": .int(configBlob.count)]),
            "layers": .array([.object(["mediaType": .string("application/vnd.oci.image.layer.v1.tar"), "digest": .string(layerDigest), "size": .int(layer.count)])]),
        ]).jsonBytes()
        return Content(manifest: manifest, digest: SHA256.digest(manifest), blobs: [SHA256.digest(configBlob): configBlob, layerDigest: layer])
    }

    static func errorResponse(_ status: Int, _ code: String, _ message: String, detail: JSONValue) -> Response {
        let body = JSONValue.object(["errors": .array([.object(["code": .string(code), "message": .string(message), "detail": detail])])]).jsonBytes() + [0x0A]
        return response(status, contentType: "application/json; charset=utf-8", body: body, head: false)
    }

    private static func response(_ status: Int, contentType: String, body: [UInt8], head: Bool) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[HTTPField.Name("Docker-Distribution-API-Version")!] = "registry/2.0"
        headers[.contentLength] = String(body.count)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: head ? [] : body)))
    }

    /// `user:password` of a `Basic` header, nil when malformed.
    static func basicCredentials(_ header: String) -> (String, String)? {
        guard header.hasPrefix("Basic "), let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    /// `a=b&c=d` (a query string or a form body), percent- and `+`-decoded, in order, repeats kept.
    static func queryItems(_ query: String) -> [(String, String)] {
        query.split(separator: "&").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            return (decode(kv[0]), kv.count > 1 ? decode(kv[1]) : "")
        }
    }
}
