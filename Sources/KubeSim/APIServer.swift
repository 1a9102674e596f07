import Foundation
import HTTPTypes
import Hummingbird
import KubeClient
import Logging
import NIOCore

/// The request context: kube-apiserver accepts bodies up to 3 MiB.
struct SimRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
    var maxUploadSize: Int { 3 << 20 }
}

/// Who a request is from.
struct UserInfo: Sendable, Equatable {
    var name: String
    var groups: [String]
}

/// Serves the Kubernetes REST API from an `ObjectStore`: path routing,
/// authentication, discovery, and Status errors for everything that fails.
struct APIServer: HTTPResponder {
    typealias Context = SimRequestContext
    let store: ObjectStore
    let auth: Authenticator
    let tokens: ServiceAccountTokens
    let faults: FaultInjector
    let streamingList: Bool
    let kubetraceAPI: KubetraceAPIEmulator
    let vultr: VultrEmulator
    /// The devcluster's own URL and CA (base64 PEM), handed out by the Kubetrace API emulator.
    let serverInfo: @Sendable () async -> (url: String, caData: String?)
    let control: @Sendable (String, [String: String]) async throws -> Void
    /// `pods/log` and the registry's `/v2/`, served once the devcluster's node is up.
    let nodeRoutes: NodeRoutes

    func respond(to request: Request, context: Context) async throws -> Response {
        if !faults.isExempt(userAgent: request.headers[.userAgent]) {
            let latency = faults.latency()
            if latency > .zero { try? await Task.sleep(for: latency) }
            if !request.uri.path.hasPrefix("/kubetrace-devcluster/"), let failure = faults.takeFailure(method: request.method.rawValue, path: request.uri.path) {
                return Self.injected(failure)
            }
        }
        do {
            let warnings = AdmissionWarnings()
            var response = try await AdmissionWarnings.$current.withValue(warnings) { try await route(request, context: context) }
            for w in warnings.all { response.headers.append(HTTPField(name: HTTPField.Name("Warning")!, value: AdmissionWarnings.headerValue(w))) }
            return response
        } catch let e as APIError {
            return Self.statusResponse(e)
        } catch {
            if let e = error as? any HTTPResponseError, e.status == .contentTooLarge {
                return Self.statusResponse(APIError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728"))
            }
            return Self.statusResponse(APIError(500, "InternalError", "Internal error occurred: \(error)"))
        }
    }

    private func route(_ request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        let segments = path.split(separator: "/").map(String.init)
        // Unauthenticated endpoints, as on a real server (system:public-info-viewer).
        switch path {
        case "/healthz", "/livez", "/readyz": return Self.text("ok")
        case "/version":
            return Self.json(.object(["major": "1", "minor": "32", "gitVersion": "v1.32.0-kubetrace-devcluster",
                                      "platform": "linux/amd64", "goVersion": "n/a", "compiler": "swift"].mapValues { .string($0) }))
        default: break
        }
        if path.hasPrefix(KubetraceAPIEmulator.pathPrefix + "/") {
            let body = try await request.body.collect(upTo: context.maxUploadSize)
            let info = await serverInfo()
            let answer = await kubetraceAPI.handle(
                method: request.method.rawValue, path: path, authorization: request.headers[.authorization], body: Array(buffer: body),
                server: info.url, caData: info.caData,
                mint: { ns, name, lifetime in try await self.mintForEmulator(namespace: ns, name: name, lifetime: lifetime) })
            return try await Self.emulated(answer)
        }
        if path.hasPrefix(VultrEmulator.pathPrefix + "/") {
            var q: [String: String] = [:]
            for (k, v) in request.uri.queryParameters { q[String(k)] = String(v) }
            return try await Self.emulated(vultr.handle(method: request.method.rawValue, path: path, query: q, authorization: request.headers[.authorization]))
        }
        if path == "/v2" || path.hasPrefix("/v2/") {
            guard let registry = nodeRoutes.registry else { throw APIError.pathNotFound(path) }
            let body = try await request.body.collect(upTo: context.maxUploadSize)
            return try await registry(request, Array(buffer: body))
        }
        guard var user = await authenticate(request.headers[.authorization]) else { throw APIError.unauthorized }
        if let name = request.headers[HTTPField.Name("Impersonate-User")!] {
            // Only admins may impersonate here (a real cluster asks RBAC for `impersonate`).
            guard user.groups.contains("system:masters") else {
                throw APIError(403, "Forbidden", "users \"\(name)\" is forbidden: User \"\(user.name)\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope")
            }
            let groups = request.headers[values: HTTPField.Name("Impersonate-Group")!]
            user = UserInfo(name: name, groups: groups + ["system:authenticated"])
        }

        // Fault injection and control, for tests: admins only.
        if segments.first == "kubetrace-devcluster" {
            guard user.groups.contains("system:masters") else { throw APIError(403, "Forbidden", "forbidden: only admins may inject faults") }
            guard request.method == .post, segments.count == 3, segments[1] == "faults" else { throw APIError.pathNotFound(path) }
            var params: [String: String] = [:]
            for (k, v) in request.uri.queryParameters { params[String(k)] = String(v) }
            try await control(segments[2], params)
            return Self.json(.object(["kind": .string("Status"), "apiVersion": .string("v1"), "status": .string("Success")]))
        }

        let kinds = store.servedKinds
        if segments == ["api"] {
            return Self.json(.object(["kind": .string("APIVersions"), "versions": .array([.string("v1")]),
                                      "serverAddressByClientCIDRs": .array([.object(["clientCIDR": .string("0.0.0.0/0"), "serverAddress": .string("127.0.0.1")])])]))
        }
        if segments == ["apis"] { return Self.json(Discovery.groupList(kinds)) }
        if segments == ["openapi", "v3"] { return Self.json(Discovery.openAPIRoot(kinds)) }
        if segments == ["openapi", "v2"] {
            // kubectl's fallback schema source. Served empty (an empty protobuf Document): no
            // schemas, so kubectl validates nothing client-side and names an unknown kind as
            // `no matches for kind … ensure CRDs are installed first`, as against a real server.
            var headers = HTTPFields()
            headers[.contentType] = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer()))
        }
        if segments.first == "openapi", segments.count >= 3, segments[1] == "v3",
           let doc = Discovery.openAPIDocument(path: segments.dropFirst(2).joined(separator: "/"), kinds: kinds) {
            return Self.json(doc)
        }
        if segments == ["api", "v1"] { return Self.json(Discovery.resourceList(group: "", version: "v1", kinds: kinds)) }
        if segments.count == 2, segments[0] == "apis", let group = Discovery.group(segments[1], kinds: kinds) { return Self.json(group) }
        if segments.count == 3, segments[0] == "apis", kinds.contains(where: { $0.group == segments[1] && $0.version == segments[2] }) {
            return Self.json(Discovery.resourceList(group: segments[1], version: segments[2], kinds: kinds))
        }

        guard let target = ResourcePath.parse(segments, kinds: kinds) else { throw APIError.pathNotFound(path) }
        let query = request.uri.queryParameters
        let method = request.method
        let isWatch = query["watch"].map { $0 == "1" || $0 == "true" } ?? false
        let verb: String
        switch (method, target.name) {
        case (.get, _) where isWatch: verb = "watch"
        case (.get, nil): verb = "list"
        case (.get, _): verb = "get"
        case (.post, _): verb = "create"
        case (.put, _): verb = "update"
        case (.patch, _): verb = "patch"
        case (.delete, nil): verb = "deletecollection"
        case (.delete, _): verb = "delete"
        default: throw APIError.methodNotAllowed(method.rawValue)
        }
        // As kube-apiserver's RequestInfo: a list or watch selecting one name by
        // `fieldSelector=metadata.name=X` is authorized as a request for X (resourceNames apply).
        var name = target.name
        if name == nil, verb == "list" || verb == "watch", let fields = query["fieldSelector"].map(String.init) {
            let clauses = fields.split(separator: ",")
            if let only = clauses.first(where: { $0.hasPrefix("metadata.name=") || $0.hasPrefix("metadata.name==") }) {
                name = String(only.split(separator: "=", omittingEmptySubsequences: true).last ?? "")
            }
        }
        let attributes = RequestAttributes(verb: verb, group: target.kind.group, resource: target.kind.plural,
                                           subresource: target.subresource, namespace: target.namespace, name: name)
        guard await store.authorize(user, attributes) else { throw RBAC.forbidden(user, attributes) }

        if target.kind.virtual {
            guard method == .post, target.name == nil else { throw APIError.methodNotAllowed(method.rawValue) }
            return try await selfSubjectAccessReview(user, body: try await Self.body(request, context: context))
        }
        var write = try Self.writeOptions(request, verb: verb)
        write.user = user
        if let sub = target.subresource {
            switch (sub, method) {
            case ("token", .post) where target.kind == .serviceAccount:
                return try await tokenRequest(target, body: try await Self.body(request, context: context))
            case ("status", _) where target.kind.statusSubresource && method != .delete && method != .post:
                write.subresource = "status"
            case ("scale", _) where target.kind == .deployment || target.kind == .replicaSet:
                return try await scale(target, request: request, context: context, options: write)
            case ("binding", .post) where target.kind == .pod:
                guard let namespace = target.namespace, let name = target.name else { throw APIError.pathNotFound(path) }
                let binding = try await Self.body(request, context: context)
                // BindingREST.Create: the body names the Pod of the URL.
                if let bodyName = binding["metadata"]?["name"]?.stringValue, bodyName != name {
                    throw APIError.badRequest("name in URL does not match name in Binding object")
                }
                guard let node = binding["target"]?["name"]?.stringValue else {
                    throw APIError(422, "Invalid", "Binding.core \"\(name)\" is invalid: target.name: Required value")
                }
                try await store.bind(namespace: namespace, name: name, uid: binding["metadata"]?["uid"]?.stringValue, node: node, options: write)
                // BindingREST.Create answers a bare success Status.
                return Self.json(.object(["kind": .string("Status"), "apiVersion": .string("v1"), "metadata": .object([:]), "status": .string("Success"), "code": .int(201)]), status: 201)
            case ("log", .get) where target.kind == .pod:
                guard let namespace = target.namespace, let name = target.name else { throw APIError.pathNotFound(path) }
                // As kube-apiserver: the Pod must exist before the node is asked.
                _ = try await store.get(.pod, namespace: namespace, name: name)
                guard let podLogs = nodeRoutes.podLogs else {
                    throw APIError.badRequest("pod \"\(name)\" is not running on a node: start the devcluster with --node")
                }
                var q: [String: String] = [:]
                for (k, v) in query { q[String(k)] = String(v) }
                return try await podLogs(namespace, name, q)
            default:
                throw APIError.pathNotFound(path)
            }
        }
        switch (method, target.name) {
        case (.get, _) where isWatch:
            return try await watch(target, query: query)
        case (.get, nil):
            let options = try listOptions(query)
            let selector = try Selector(labelSelector: options.labelSelector, fieldSelector: options.fieldSelector, kind: target.kind)
            let result = try await store.list(target.kind, namespace: target.namespace, selector: selector, options: options)
            if Tables.wantsTable(request.headers[.accept]),
               let table = Tables.list(target.kind, result, includeObject: query["includeObject"].map(String.init), now: Date()) {
                return Tables.response(table)
            }
            return Self.listResponse(target.kind, result)
        case (.get, let name?):
            let object = try await store.getJSON(target.kind, namespace: target.namespace, name: name)
            if Tables.wantsTable(request.headers[.accept]),
               let table = Tables.object(target.kind, object, includeObject: query["includeObject"].map(String.init), now: Date()) {
                return Tables.response(table)
            }
            return Self.rawJSON(object)
        case (.post, nil):
            let body = try await Self.body(request, context: context, expecting: target.kind)
            return Self.json(try await store.create(target.kind, namespace: target.namespace, body: body, options: write), status: 201)
        case (.put, let name?):
            let body = try await Self.body(request, context: context, expecting: target.kind)
            return Self.json(try await store.update(target.kind, namespace: target.namespace, name: name, body: body, options: write))
        case (.patch, let name?):
            let bytes = try await request.body.collect(upTo: context.maxUploadSize)
            let contentType = request.headers[.contentType] ?? ""
            try Self.checkPatchOptions(contentType: contentType, query: query)
            let result = try await store.patch(target.kind, namespace: target.namespace, name: name, contentType: contentType,
                                               body: Array(buffer: bytes), options: write)
            return Self.json(result.object, status: result.created ? 201 : 200)
        case (.delete, let name?):
            let bytes = try await request.body.collect(upTo: context.maxUploadSize)
            var uid: String?
            var rv: String?
            // DeleteOptions from the query (kubectl --grace-period, --cascade) or the body.
            var grace = query["gracePeriodSeconds"].flatMap { Int(String($0)) }
            var propagation = query["propagationPolicy"].map(String.init)
            if bytes.readableBytes > 0, let opts = try? JSONValue.parse(Array(buffer: bytes)) {
                uid = opts["preconditions"]?["uid"]?.stringValue
                rv = opts["preconditions"]?["resourceVersion"]?.stringValue
                if opts["dryRun"]?.arrayValue?.contains(.string("All")) == true { write.dryRun = true }
                if let g = opts["gracePeriodSeconds"]?.intValue { grace = g }
                if let p = opts["propagationPolicy"]?.stringValue { propagation = p }
                // The deprecated orphanDependents (generic registry `DeletionFinalizersForGarbageCollection`).
                if propagation == nil, let orphan = opts["orphanDependents"], case .bool(let b) = orphan { propagation = b ? "Orphan" : "Background" }
            }
            switch try await store.delete(target.kind, namespace: target.namespace, name: name, preconditionUID: uid, preconditionRV: rv, dryRun: write.dryRun, user: write.user,
                                          gracePeriodSeconds: grace, propagationPolicy: propagation) {
            case .object(let o): return Self.json(o)
            case .success(let s): return Self.rawJSON(StatusEncoding.encode(s))
            }
        case (.delete, nil):
            let options = try listOptions(query)
            let selector = try Selector(labelSelector: options.labelSelector, fieldSelector: options.fieldSelector, kind: target.kind)
            let result = try await store.deleteCollection(target.kind, namespace: target.namespace, selector: selector, options: options, dryRun: write.dryRun, user: write.user)
            return Self.listResponse(target.kind, result)
        default:
            throw APIError.methodNotAllowed(method.rawValue)
        }
    }

    /// `…List` with the items spliced in (already encoded: 20,000 objects are not re-encoded).
    static func listResponse(_ kind: ResourceKind, _ result: ObjectStore.ListResult) -> Response {
        var meta: [String: JSONValue] = ["resourceVersion": .string(String(result.resourceVersion))]
        if let c = result.continueToken { meta["continue"] = .string(c) }
        if let r = result.remaining { meta["remainingItemCount"] = .int(r) }
        var body = Array(#"{"kind":"\#(kind.listKind)","apiVersion":"\#(kind.apiVersion)","metadata":"#.utf8)
        body += JSONValue.object(meta).jsonBytes()
        body += Array(#","items":["#.utf8)
        for (i, item) in result.items.enumerated() {
            if i > 0 { body.append(UInt8(ascii: ",")) }
            body += item
        }
        body += Array("]}".utf8)
        return rawJSON(body)
    }

    /// List and watch options, validated (`ValidateListOptions`) before anything is read.
    func listOptions(_ query: Parameters) throws(APIError) -> ListOptions {
        let options = try ListOptions(query)
        let errors = options.validate(watchListEnabled: streamingList)
        if !errors.isEmpty { throw ListOptions.invalid(errors) }
        return options
    }

    /// `dryRun` (only `All`: apimachinery `ValidateDryRun`, wrapped per verb as
    /// `CreateOptions`/`UpdateOptions`/`PatchOptions`/`DeleteOptions.meta.k8s.io`), and the
    /// field manager: `fieldManager`, else the User-Agent's product
    /// (`handlers/create.go` `managerOrUserAgent`).
    static func writeOptions(_ request: Request, verb: String) throws(APIError) -> WriteOptions {
        var o = WriteOptions()
        let query = request.uri.queryParameters
        let dryRun = query.getAll("dryRun").map { String($0) }
        if !dryRun.isEmpty {
            if dryRun.contains(where: { $0 != "All" }) {
                let kind = ["create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"][verb] ?? "DeleteOptions"
                throw APIError.invalidOptions(kind, field: "dryRun", type: "FieldValueNotSupported",
                                              body: "Unsupported value: []string{" + dryRun.map { "\"\($0)\"" }.joined(separator: ", ") + "}: supported values: \"All\"")
            }
            o.dryRun = true
        }
        let agent = request.headers[.userAgent].map { String($0.split(separator: "/").first ?? "") } ?? ""
        o.manager = query["fieldManager"].map(String.init) ?? String(agent.prefix(128))
        o.force = query["force"] == "true"
        return o
    }

    /// `ValidatePatchOptions`: apply needs a field manager; `force` only goes with apply.
    static func checkPatchOptions(contentType: String, query: Parameters) throws(APIError) {
        if Patching.mediaType(contentType) == Patching.applyYAML {
            if (query["fieldManager"] ?? "").isEmpty {
                throw APIError.invalidOptions("PatchOptions", field: "fieldManager", type: "FieldValueRequired", body: "Required value: is required for apply patch")
            }
        } else if query["force"] != nil {
            throw APIError.invalidOptions("PatchOptions", field: "force", type: "FieldValueForbidden", body: "Forbidden: may not be specified for non-apply patch")
        }
    }

    /// `deployments/scale` and `replicasets/scale`: an `autoscaling/v1` Scale over
    /// `spec.replicas` (pkg/registry/apps/deployment/storage/storage.go `ScaleREST`).
    private func scale(_ target: ResourcePath, request: Request, context: Context, options: WriteOptions) async throws -> Response {
        let name = target.name ?? ""
        let current = try await store.get(target.kind, namespace: target.namespace, name: name)
        switch request.method {
        case .get:
            return Self.json(Strategy.scale(of: current, kind: target.kind))
        case .put, .patch:
            var scale: JSONValue
            if request.method == .put {
                scale = try await Self.body(request, context: context)
            } else {
                let bytes = try await request.body.collect(upTo: context.maxUploadSize)
                scale = try Patching.apply(contentType: request.headers[.contentType] ?? "", patch: Array(buffer: bytes),
                                           to: Strategy.scale(of: current, kind: target.kind), kind: target.kind)
            }
            guard case .int(let replicas)? = scale["spec"]?["replicas"] ?? .int(0) else {
                throw APIError.invalid(target.kind, name, field: "spec.replicas", "Invalid value: must be an integer")
            }
            if replicas < 0 { throw APIError.invalid(target.kind, name, field: "spec.replicas", "Invalid value: \(replicas): must be greater than or equal to 0") }
            var updated = current
            updated["spec"]?["replicas"] = .int(replicas)
            var meta = updated["metadata"]?.objectValue ?? [:]
            meta["resourceVersion"] = scale["metadata"]?["resourceVersion"].flatMap { $0 == .string("") ? nil : $0 }
            updated["metadata"] = .object(meta)
            var scaleOptions = options
            scaleOptions.admissionSubresource = "scale"
            let result = try await store.update(target.kind, namespace: target.namespace, name: name, body: updated, options: scaleOptions)
            return Self.json(Strategy.scale(of: result, kind: target.kind))
        default:
            throw APIError.methodNotAllowed(request.method.rawValue)
        }
    }

    static func emulated(_ a: KubetraceAPIEmulator.Answer) async throws -> Response {
        if let delay = a.delay { try await Task.sleep(for: delay) }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let r = a.retryAfter { headers[.retryAfter] = String(r) }
        return Response(status: .init(code: a.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: a.body)))
    }

    /// Tokens for the Kubetrace API emulator: real service-account JWTs, any lifetime.
    private func mintForEmulator(namespace: String, name: String, lifetime: TimeInterval) async throws -> (String, Date) {
        let uid = (try? await store.get(.serviceAccount, namespace: namespace, name: name))?["metadata"]?["uid"]?.stringValue ?? ""
        return try tokens.mint(namespace: namespace, name: name, uid: uid, audiences: [ServiceAccountTokens.issuer], lifetime: lifetime, now: Date())
    }

    private func authenticate(_ header: String?) async -> UserInfo? {
        if let user = auth.authenticate(header) { return user }
        guard let header, header.hasPrefix("Bearer "),
              let claims = tokens.verify(String(header.dropFirst(7)), now: Date()) else { return nil }
        // A token outlives neither its ServiceAccount nor that account's uid.
        guard await store.serviceAccountExists(namespace: claims.namespace, name: claims.name, uid: claims.uid) else { return nil }
        return UserInfo(name: "system:serviceaccount:\(claims.namespace):\(claims.name)",
                        groups: ["system:serviceaccounts", "system:serviceaccounts:\(claims.namespace)", "system:authenticated"])
    }

    /// `POST serviceaccounts/NAME/token`: a signed, expiring token for that account.
    private func tokenRequest(_ target: ResourcePath, body: JSONValue) async throws -> Response {
        let sa = try await store.get(target.kind, namespace: target.namespace, name: target.name ?? "")
        let spec = body["spec"]
        let seconds: Int
        switch spec?["expirationSeconds"] {
        case .int(let s)?: seconds = s
        case nil, .null?: seconds = 3600
        default: throw APIError.badRequest("spec.expirationSeconds must be an integer")
        }
        if seconds < 600 {
            throw APIError.invalid(.tokenRequest, target.name ?? "", field: "spec.expirationSeconds", "Invalid value: \(seconds): may not specify a duration less than 10 minutes")
        }
        if seconds > 1 << 32 {
            throw APIError.invalid(.tokenRequest, target.name ?? "", field: "spec.expirationSeconds", "Invalid value: \(seconds): may not specify a duration larger than 2^32 seconds")
        }
        let audiences = spec?["audiences"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let (token, expiry) = try tokens.mint(namespace: target.namespace ?? "", name: target.name ?? "",
                                              uid: sa["metadata"]?["uid"]?.stringValue ?? "",
                                              audiences: audiences.isEmpty ? [ServiceAccountTokens.issuer] : audiences,
                                              lifetime: TimeInterval(seconds), now: Date())
        var out = body.objectValue ?? [:]
        out["apiVersion"] = .string("authentication.k8s.io/v1")
        out["kind"] = .string("TokenRequest")
        out["metadata"] = .object(["name": .string(target.name ?? ""), "namespace": .string(target.namespace ?? ""),
                                   "creationTimestamp": .null])
        var outSpec = spec?.objectValue ?? [:]
        outSpec["audiences"] = .array((audiences.isEmpty ? [ServiceAccountTokens.issuer] : audiences).map { .string($0) })
        outSpec["expirationSeconds"] = .int(seconds)
        out["spec"] = .object(outSpec)
        out["status"] = .object(["token": .string(token), "expirationTimestamp": .string(RFC3339.format(expiry))])
        return Self.json(.object(out), status: 201)
    }

    /// `SelfSubjectAccessReview`: evaluates the caller's own permission.
    private func selfSubjectAccessReview(_ user: UserInfo, body: JSONValue) async throws -> Response {
        guard let attrs = body["spec"]?["resourceAttributes"] else {
            if body["spec"]?["nonResourceAttributes"] != nil {
                return Self.json(Self.review(body, allowed: true, reason: "non-resource URLs are readable by authenticated users"), status: 201)
            }
            throw APIError.invalid(.selfSubjectAccessReview, "", field: "spec.resourceAttributes", "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified")
        }
        func s(_ k: String) -> String? { attrs[k]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } }
        let a = RequestAttributes(verb: s("verb") ?? "", group: s("group") ?? "", resource: s("resource") ?? "",
                                  subresource: s("subresource"), namespace: s("namespace"), name: s("name"))
        let allowed = await store.authorize(user, a)
        return Self.json(Self.review(body, allowed: allowed, reason: allowed ? "RBAC: allowed" : nil), status: 201)
    }

    static func review(_ body: JSONValue, allowed: Bool, reason: String?) -> JSONValue {
        var out = body.objectValue ?? [:]
        out["apiVersion"] = .string("authorization.k8s.io/v1")
        out["kind"] = .string("SelfSubjectAccessReview")
        out["metadata"] = .object(["creationTimestamp": .null])
        var status: [String: JSONValue] = ["allowed": .bool(allowed)]
        if let reason { status["reason"] = .string(reason) }
        out["status"] = .object(status)
        return .object(out)
    }

    private func watch(_ target: ResourcePath, query: Parameters) async throws -> Response {
        var options = try listOptions(query)
        if let name = target.name {
            // The deprecated single-object watch path is a name field selector.
            let byName = "metadata.name=\(name)"
            options.fieldSelector = options.fieldSelector.map { "\($0),\(byName)" } ?? byName
        }
        let selector = try Selector(labelSelector: options.labelSelector, fieldSelector: options.fieldSelector, kind: target.kind)
        let timeout: Duration
        if let secs = options.timeoutSeconds, secs > 0 {
            timeout = .seconds(secs)
        } else {
            // As kube-apiserver: a random value in [min-request-timeout, 2×min-request-timeout).
            timeout = .seconds(Int.random(in: 1800..<3600))
        }
        let stream = try await store.watch(target.kind, namespace: target.namespace, selector: selector, options: options, timeout: timeout)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            for await frame in stream {
                try await writer.write(ByteBuffer(bytes: frame.line))
            }
            try await writer.finish(nil)
        })
    }

    static func injected(_ failure: FaultInjector.FailureRule) -> Response {
        var headers = HTTPFields()
        if let r = failure.retryAfterSeconds { headers[.retryAfter] = String(r) }
        if failure.plainText {
            headers[.contentType] = "text/plain; charset=utf-8"
            return Response(status: .init(code: failure.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: "Too many requests, please try again later.\n")))
        }
        var e = APIError(failure.status, failure.status == 429 ? "TooManyRequests" : "InternalError",
                         failure.message ?? (failure.status == 429 ? "the server has received too many requests and has asked us to try again later"
                                                                  : "an error on the server (\"injected fault\") has prevented the request from succeeding"),
                         details: failure.retryAfterSeconds.map { .init(retryAfterSeconds: $0) })
        e.retryAfterSeconds = failure.retryAfterSeconds
        return statusResponse(e)
    }

    // MARK: responses

    /// A create or update body of the endpoint's kind: JSON, YAML or protobuf.
    static func body(_ request: Request, context: Context, expecting kind: ResourceKind) async throws -> JSONValue {
        let type = (request.headers[.contentType] ?? "application/json").lowercased()
        if type.hasPrefix("application/yaml") {
            let bytes = try await request.body.collect(upTo: context.maxUploadSize)
            let applied = try ServerSideApply.decodeYAML(Array(buffer: bytes))
            return applied
        }
        return try await body(request, context: context)
    }

    static func body(_ request: Request, context: Context) async throws -> JSONValue {
        let type = (request.headers[.contentType] ?? "application/json").lowercased()
        let bytes = try await request.body.collect(upTo: context.maxUploadSize)
        if type.hasPrefix("application/vnd.kubernetes.protobuf") {
            return try KubeProtobuf.decode(Array(buffer: bytes))
        }
        if !type.hasPrefix("application/json"), !type.hasPrefix("*/*") {
            throw APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
        }
        do { return try JSONValue.parse(Array(buffer: bytes)) } catch {
            throw APIError.badRequest("the body of the request could not be decoded: invalid JSON")
        }
    }

    /// kube-apiserver writes JSON with Go's `json.Encoder.Encode`, which ends the document with a
    /// newline (apimachinery `pkg/runtime/serializer/json/json.go`); clients comparing bodies see it.
    static func json(_ value: JSONValue, status: Int = 200) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let bytes = value.jsonBytes() + [0x0A]
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func rawJSON(_ bytes: [UInt8], status: Int = 200) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes + [0x0A])))
    }

    static func text(_ s: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    static func statusResponse(_ e: APIError) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let r = e.retryAfterSeconds { headers[.retryAfter] = String(r) }
        let bytes = StatusEncoding.encode(e.status, continueToken: e.listContinue) + [0x0A]
        return Response(status: .init(code: e.httpCode), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// A parsed resource URL.
struct ResourcePath {
    var kind: ResourceKind
    var namespace: String?
    var name: String?
    var subresource: String?

    static func parse(_ s: [String], kinds: [ResourceKind]) -> ResourcePath? {
        let group: String
        let version: String
        var rest: ArraySlice<String>
        if s.first == "api", s.count >= 3 {
            group = ""; version = s[1]; rest = s[2...]
        } else if s.first == "apis", s.count >= 4 {
            group = s[1]; version = s[2]; rest = s[3...]
        } else { return nil }
        var namespace: String?
        // `namespaces/NS/PLURAL…` addresses a namespaced collection; `namespaces/NAME` the namespace itself.
        if rest.first == "namespaces", rest.count >= 3, kinds.find(group: group, version: version, plural: rest[rest.startIndex + 2]).map({ $0.namespaced }) == true {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let plural = rest.first, let kind = kinds.find(group: group, version: version, plural: plural) else { return nil }
        rest = rest.dropFirst()
        if kind.namespaced == false && namespace != nil { return nil }
        let name = rest.first
        let sub = rest.dropFirst().first
        if rest.count > 2 { return nil }
        return ResourcePath(kind: kind, namespace: namespace, name: name, subresource: sub)
    }
}

/// `/apis` and `APIResourceList` documents, enough for kubectl's discovery (the legacy,
/// unaggregated form: kubectl falls back to it when the aggregated one is not offered).
enum Discovery {
    private static func groupVersion(_ k: ResourceKind) -> String { k.group.isEmpty ? "api/\(k.version)" : "apis/\(k.group)/\(k.version)" }

    /// `/openapi/v3`: one document per group-version.
    static func openAPIRoot(_ kinds: [ResourceKind]) -> JSONValue {
        var paths: [String: JSONValue] = [:]
        for gv in groupVersionPaths(kinds) {
            paths[gv] = .object(["serverRelativeURL": .string("/openapi/v3/\(gv)?hash=kubetrace-devcluster")])
        }
        return .object(["paths": .object(paths)])
    }

    /// A group-version document: no schemas, but every PATCH operation with its
    /// group-version-kind and the `fieldValidation` parameter, which is what
    /// kubectl reads to choose server-side field validation.
    static func openAPIDocument(path gv: String, kinds: [ResourceKind]) -> JSONValue? {
        guard groupVersionPaths(kinds).contains(gv) else { return nil }
        var paths: [String: JSONValue] = [:]
        for k in kinds where groupVersion(k) == gv {
            let base = "/\(gv)" + (k.namespaced ? "/namespaces/{namespace}" : "") + "/\(k.plural)/{name}"
            let gvk: JSONValue = .object(["group": .string(k.group), "version": .string(k.version), "kind": .string(k.kind)])
            let params: JSONValue = .array(["dryRun", "fieldManager", "fieldValidation", "force"].map {
                .object(["name": .string($0), "in": .string("query"), "schema": .object(["type": .string("string")])])
            })
            let op: JSONValue = .object(["x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": .string("patch"),
                                         "parameters": params, "responses": .object([:])])
            paths[base] = .object(["patch": op])
        }
        return .object(["openapi": .string("3.0.0"), "info": .object(["title": .string("Kubernetes"), "version": .string("v1.32.0")]),
                        "paths": .object(paths), "components": .object(["schemas": .object([:])])])
    }

    private static func groupVersionPaths(_ kinds: [ResourceKind]) -> [String] {
        var out: [String] = []
        for k in kinds where !out.contains(groupVersion(k)) { out.append(groupVersion(k)) }
        return out
    }

    private static func groupJSON(_ g: (name: String, versions: [String])) -> JSONValue {
        let versions = g.versions.map { v -> JSONValue in .object(["groupVersion": .string("\(g.name)/\(v)"), "version": .string(v)]) }
        return .object(["name": .string(g.name), "versions": .array(versions), "preferredVersion": versions[0]])
    }

    static func groupList(_ kinds: [ResourceKind]) -> JSONValue {
        .object(["kind": .string("APIGroupList"), "apiVersion": .string("v1"), "groups": .array(kinds.groups.map(groupJSON))])
    }

    /// `/apis/GROUP`: one `APIGroup`.
    static func group(_ name: String, kinds: [ResourceKind]) -> JSONValue? {
        guard let g = kinds.groups.first(where: { $0.name == name }), case .object(var o) = groupJSON(g) else { return nil }
        o["kind"] = .string("APIGroup")
        o["apiVersion"] = .string("v1")
        return .object(o)
    }

    static func resourceList(group: String, version: String, kinds: [ResourceKind]) -> JSONValue {
        let served = kinds.filter { $0.group == group && $0.version == version }
        return .object([
            "kind": .string("APIResourceList"), "apiVersion": .string("v1"),
            "groupVersion": .string(group.isEmpty ? version : "\(group)/\(version)"),
            "resources": .array(served.flatMap { k -> [JSONValue] in
                var r: [String: JSONValue] = [
                    "name": .string(k.plural), "singularName": .string(k.singular), "namespaced": .bool(k.namespaced),
                    "kind": .string(k.kind), "verbs": .array(k.verbs.map { .string($0) }),
                ]
                if !k.shortNames.isEmpty { r["shortNames"] = .array(k.shortNames.map { .string($0) }) }
                var subs = ResourceKind.subresources.filter { $0.parent == k.plural && $0.parentGroup == k.group }.map { sub -> JSONValue in
                    var o: [String: JSONValue] = ["name": .string("\(k.plural)/\(sub.name)"), "singularName": .string(""),
                                                  "namespaced": .bool(k.namespaced), "kind": .string(sub.kind),
                                                  "verbs": .array(sub.verbs.map { .string($0) })]
                    if !sub.group.isEmpty { o["group"] = .string(sub.group); o["version"] = .string(sub.version) }
                    return .object(o)
                }
                if k.custom && k.statusSubresource {
                    subs.append(.object(["name": .string("\(k.plural)/status"), "singularName": .string(""), "namespaced": .bool(k.namespaced),
                                         "kind": .string(k.kind), "verbs": .array(["get", "patch", "update"].map { .string($0) })]))
                }
                return [.object(r)] + subs
            }),
        ])
    }
}
