import Foundation
public import Logging

/// A typed Kubernetes API client over libcurl.
///
/// Every call authenticates with the connection's credentials; a 401 drops
/// cached credentials and the call is retried once when fresh ones can exist
/// (token files, exec plugins). Failures are `KubeClientError`s carrying the
/// server's `Status`.
public struct KubeClient: Sendable {
    public let connection: ClusterConnection
    public let credentials: CredentialProvider
    let transport: CurlTransport
    let userAgent: String
    let logger: Logger
    /// How much of a non-2xx watch answer is read for its Status before the transfer is dropped.
    static let errorBodyLimit = 64 << 10
    /// `Impersonate-User`/`Impersonate-Group` headers, when acting as someone else.
    private var impersonation: [(name: String, value: String)] = []

    /// A client that acts as `user` (requires the `impersonate` permission), e.g. to
    /// ask access reviews on behalf of the operator's ServiceAccount.
    public func impersonating(user: String, groups: [String] = []) -> KubeClient {
        var copy = self
        copy.impersonation = [("Impersonate-User", user)] + groups.map { ("Impersonate-Group", $0) }
        return copy
    }

    /// `userAgent` is the caller's (`name/version`, as kubectl sends `kubectl/v1.31…`); the
    /// logger is the caller's too, and without one nothing is logged.
    public init(connection: ClusterConnection, userAgent: String = "swift-kubeclient",
                logger: Logger = Logger(label: "kubeclient", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.connection = connection
        self.credentials = CredentialProvider(connection.credentials)
        self.transport = .shared
        self.userAgent = userAgent
        self.logger = logger
    }

    /// How a PATCH body is to be read.
    public enum Patch: Sendable {
        /// RFC 7386 merge patch: lists are replaced whole, `null` deletes.
        case merge(JSONValue)
        /// RFC 6902 operations (use a `test` of `/metadata/resourceVersion` as a precondition).
        case json([JSONPatchOperation])
        /// Kubernetes strategic merge patch (built-in kinds only).
        case strategicMerge(JSONValue)
        /// Server-side apply.
        case apply(JSONValue, fieldManager: String, force: Bool)

        var contentType: String {
            switch self {
            case .merge: "application/merge-patch+json"
            case .json: "application/json-patch+json"
            case .strategicMerge: "application/strategic-merge-patch+json"
            case .apply: "application/apply-patch+yaml"
            }
        }

        var body: [UInt8] {
            switch self {
            case .merge(let v), .strategicMerge(let v), .apply(let v, _, _): return v.jsonBytes()
            case .json(let ops):
                let encoder = JSONEncoder()
                // Sorted keys read as RFC 6902 writes them: op, path, value.
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                return Array((try? encoder.encode(ops)) ?? Data("[]".utf8))
            }
        }
    }

    // MARK: typed verbs

    public func get<T: KubeResource>(_ type: T.Type, namespace: String? = nil, name: String) async throws -> T {
        try decode(T.self, try await request("GET", path: T.resource.path(namespace: namespaced(T.self, namespace), name: name)))
    }

    /// One page of a list.
    public func list<T: KubeResource>(_ type: T.Type, namespace: String? = nil, options: ListOptions = ListOptions()) async throws -> ObjectList<T> {
        let path = T.resource.path(namespace: namespace)
        return try decode(ObjectList<T>.self, try await request("GET", path: path, query: options.queryItems()))
    }

    /// Every item, following `continue` tokens; returns the items and the list's resourceVersion.
    public func listAll<T: KubeResource>(_ type: T.Type, namespace: String? = nil, options: ListOptions = ListOptions(), pageSize: Int = 500) async throws -> (items: [T], resourceVersion: String) {
        var opts = options
        opts.limit = pageSize
        var items: [T] = []
        while true {
            let page = try await list(T.self, namespace: namespace, options: opts)
            items += page.items
            guard let next = page.metadata.continue, !next.isEmpty else {
                return (items, page.metadata.resourceVersion ?? "")
            }
            opts.continue = next
        }
    }

    public func create<T: KubeResource>(_ object: T, namespace: String? = nil) async throws -> T {
        let ns = namespaced(T.self, namespace ?? object.metadata.namespace)
        return try decode(T.self, try await request("POST", path: T.resource.path(namespace: ns), body: try encode(object)))
    }

    /// PUT: replaces the object. With `metadata.resourceVersion` set, a
    /// concurrent change fails with 409 Conflict instead of being overwritten.
    public func update<T: KubeResource>(_ object: T) async throws -> T {
        let ns = namespaced(T.self, object.metadata.namespace)
        let path = T.resource.path(namespace: ns, name: object.name)
        return try decode(T.self, try await request("PUT", path: path, body: try encode(object)))
    }

    public func patch<T: KubeResource>(_ type: T.Type, namespace: String? = nil, name: String, _ patch: Patch) async throws -> T {
        var query: [(String, String)] = []
        if case .apply(_, let manager, let force) = patch {
            query.append(("fieldManager", manager))
            if force { query.append(("force", "true")) }
        }
        let path = T.resource.path(namespace: namespaced(T.self, namespace), name: name)
        return try decode(T.self, try await request("PATCH", path: path, query: query, body: patch.body, contentType: patch.contentType))
    }

    /// Deletes an object; preconditions make the delete fail with 409 if the object changed or was replaced.
    public func delete<T: KubeResource>(_ type: T.Type, namespace: String? = nil, name: String, preconditionUID: String? = nil, preconditionResourceVersion: String? = nil) async throws {
        var body: [UInt8]?
        if preconditionUID != nil || preconditionResourceVersion != nil {
            var pre: [String: JSONValue] = [:]
            if let preconditionUID { pre["uid"] = .string(preconditionUID) }
            if let preconditionResourceVersion { pre["resourceVersion"] = .string(preconditionResourceVersion) }
            body = JSONValue.object(["apiVersion": .string("v1"), "kind": .string("DeleteOptions"), "preconditions": .object(pre)]).jsonBytes()
        }
        _ = try await request("DELETE", path: T.resource.path(namespace: namespaced(T.self, namespace), name: name), body: body)
    }

    /// Mints a token for a ServiceAccount (`serviceaccounts/NAME/token`).
    public func requestToken(namespace: String, serviceAccount: String, _ tokenRequest: TokenRequest) async throws -> TokenRequest {
        let path = ServiceAccount.resource.path(namespace: namespace, name: serviceAccount, subresource: "token")
        return try decode(TokenRequest.self, try await request("POST", path: path, body: try encode(tokenRequest)))
    }

    /// Asks the API server whether the current identity may do something.
    public func selfSubjectAccessReview(_ attributes: SelfSubjectAccessReview.ResourceAttributes) async throws -> SelfSubjectAccessReview.Status {
        let review = try decode(SelfSubjectAccessReview.self, try await request(
            "POST", path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body: try encode(SelfSubjectAccessReview(attributes))))
        guard let status = review.status else { throw KubeClientError(.decoding, "SelfSubjectAccessReview answer has no status") }
        return status
    }

    /// The server's `/version` (gitVersion).
    public func serverVersion() async throws -> String {
        let r = try await request("GET", path: "/version")
        guard let v = try? JSONValue.parse(r.body), let git = v["gitVersion"]?.stringValue else {
            throw KubeClientError(.decoding, "GET /version: answer has no gitVersion")
        }
        return git
    }

    // MARK: raw access

    /// Sends an authenticated request and returns the 2xx answer; non-2xx
    /// answers throw a `KubeClientError` with the decoded `Status`.
    public func request(_ method: String, path: String, query: [(String, String)] = [], body: [UInt8]? = nil, contentType: String = "application/json") async throws -> HTTPResponse {
        try await withAuthRetry { auth in
            let req = makeRequest(method, path: path, query: query, body: body, contentType: contentType, auth: auth, timeout: .seconds(60))
            let response = try await transport.send(req, tls: tls(auth))
            guard (200..<300).contains(response.status) else {
                throw KubeClientError.api(method: method, path: path, head: response.head, body: response.body)
            }
            return response
        }
    }

    /// Sends an authenticated request and returns whatever the server answered, any status:
    /// for tools and tests that look at error bodies as they are (client-go's `Do().Raw()`).
    public func exchange(_ method: String, path: String, query: [(String, String)] = [], body: [UInt8]? = nil,
                         contentType: String = "application/json", timeout: Duration = .seconds(60)) async throws -> HTTPResponse {
        let auth = try await credentials.current()
        let req = makeRequest(method, path: path, query: query, body: body, contentType: contentType, auth: auth, timeout: timeout)
        return try await transport.send(req, tls: tls(auth))
    }

    /// Opens a streaming GET (a watch): returns once a 2xx head arrives; the
    /// body streams with backpressure. Non-2xx answers throw with the Status.
    public func stream(path: String, query: [(String, String)]) async throws -> (HTTPResponseHead, HTTPBody) {
        try await withAuthRetry { auth in
            let req = makeRequest("GET", path: path, query: query, body: nil, contentType: "application/json", auth: auth, timeout: nil)
            let (head, body) = try await transport.stream(req, tls: tls(auth))
            guard (200..<300).contains(head.status) else {
                // Enough of the body for its Status; an error answer that never ends must not hold the caller.
                var bytes: [UInt8] = []
                for try await chunk in body {
                    bytes += chunk.prefix(Self.errorBodyLimit - bytes.count)
                    if bytes.count >= Self.errorBodyLimit { break }
                }
                body.cancel()
                throw KubeClientError.api(method: "GET", path: path, head: head, body: bytes)
            }
            return (head, body)
        }
    }

    // MARK: plumbing

    private func withAuthRetry<R>(_ body: (CredentialProvider.Current) async throws -> R) async throws -> R {
        let auth = try await credentials.current()
        do {
            return try await body(auth)
        } catch let e as KubeClientError where e.isUnauthorized && credentials.canRefresh {
            logger.debug("401 from the API server; retrying once with fresh credentials", metadata: ["source": "\(connection.source)"])
            await credentials.invalidate()
            return try await body(try await credentials.current())
        }
    }

    private func tls(_ auth: CredentialProvider.Current) -> TLSSettings {
        var tls = connection.tls
        if let cert = auth.clientCertificatePEM, let key = auth.clientKey {
            tls.clientCertificatePEM = cert
            tls.clientKey = key
        }
        return tls
    }

    private func makeRequest(_ method: String, path: String, query: [(String, String)], body: [UInt8]?, contentType: String, auth: CredentialProvider.Current, timeout: Duration?) -> HTTPRequest {
        var url = connection.server + path
        if !query.isEmpty { url += "?" + encodeQuery(query) }
        var headers: [(name: String, value: String)] = [("Accept", "application/json"), ("User-Agent", userAgent)] + impersonation
        if body != nil { headers.append(("Content-Type", contentType)) }
        if let token = auth.bearer {
            headers.append(("Authorization", "Bearer \(token.value)"))
        } else if let basic = auth.basic {
            let raw = Data("\(basic.username):\(basic.password.value)".utf8).base64EncodedString()
            headers.append(("Authorization", "Basic \(raw)"))
        }
        return HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: timeout)
    }

    private func namespaced<T: KubeResource>(_ type: T.Type, _ namespace: String?) -> String? {
        T.resource.namespaced ? (namespace ?? connection.namespace) : nil
    }

    private func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        do { return Array(try encoder.encode(value)) } catch {
            throw KubeClientError(.decoding, "cannot encode \(T.self): \(error)")
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: HTTPResponse) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(response.body)) } catch {
            throw KubeClientError(.decoding, "cannot decode \(T.self) from the API answer: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ ctx: DecodingError.Context) -> String { ctx.codingPath.map(\.stringValue).joined(separator: ".") }
        switch e {
        case .keyNotFound(let k, let ctx): return "\(path(ctx)).\(k.stringValue): missing"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
            return "\(path(ctx)): \(ctx.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
