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

    func respond(to request: Request, context: Context) async throws -> Response {
        do {
            return try await route(request, context: context)
        } catch let e as APIError {
            return Self.statusResponse(e)
        } catch {
            if "\(error)".contains("too large") || "\(error)".contains("413") {
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
        guard auth.authenticate(request.headers[.authorization]) != nil else { throw APIError.unauthorized }

        if segments == ["api"] {
            return Self.json(.object(["kind": .string("APIVersions"), "versions": .array([.string("v1")]),
                                      "serverAddressByClientCIDRs": .array([.object(["clientCIDR": .string("0.0.0.0/0"), "serverAddress": .string("127.0.0.1")])])]))
        }
        if segments == ["apis"] { return Self.json(Discovery.groupList()) }
        if segments == ["api", "v1"] { return Self.json(Discovery.resourceList(group: "", version: "v1")) }
        if segments.count == 3, segments[0] == "apis" { return Self.json(Discovery.resourceList(group: segments[1], version: segments[2])) }

        guard let target = ResourcePath.parse(segments) else { throw APIError.pathNotFound(path) }
        let query = request.uri.queryParameters
        let method = request.method
        switch (method, target.name) {
        case (.get, nil):
            if query["watch"].map({ $0 == "1" || $0 == "true" }) ?? false {
                throw APIError(501, "NotImplemented", "watch is not served by this devcluster build yet")
            }
            let selector = try Selector(labelSelector: query["labelSelector"].map(String.init), fieldSelector: query["fieldSelector"].map(String.init))
            let limit = query["limit"].flatMap { Int($0) }
            let result = try await store.list(target.kind, namespace: target.namespace, selector: selector, limit: limit,
                                              continueToken: query["continue"].map(String.init))
            var meta: [String: JSONValue] = ["resourceVersion": .string(String(result.resourceVersion))]
            if let c = result.continueToken { meta["continue"] = .string(c) }
            if let r = result.remaining { meta["remainingItemCount"] = .int(r) }
            return Self.json(.object(["kind": .string(target.kind.listKind), "apiVersion": .string(target.kind.apiVersion),
                                      "metadata": .object(meta), "items": .array(result.items)]))
        case (.get, let name?):
            guard target.subresource == nil else { throw APIError.pathNotFound(path) }
            return Self.json(try await store.get(target.kind, namespace: target.namespace, name: name))
        case (.post, nil):
            let body = try await Self.body(request, context: context)
            return Self.json(try await store.create(target.kind, namespace: target.namespace, body: body), status: 201)
        case (.put, let name?):
            let body = try await Self.body(request, context: context)
            return Self.json(try await store.update(target.kind, namespace: target.namespace, name: name, body: body))
        case (.patch, let name?):
            let bytes = try await request.body.collect(upTo: context.maxUploadSize)
            let contentType = request.headers[.contentType] ?? ""
            return Self.json(try await store.patch(target.kind, namespace: target.namespace, name: name,
                                                   contentType: contentType, body: Array(buffer: bytes)))
        case (.delete, let name?):
            let bytes = try await request.body.collect(upTo: context.maxUploadSize)
            var uid: String?
            var rv: String?
            if bytes.readableBytes > 0, let opts = try? JSONValue.parse(Array(buffer: bytes)) {
                uid = opts["preconditions"]?["uid"]?.stringValue
                rv = opts["preconditions"]?["resourceVersion"]?.stringValue
            }
            return Self.json(try await store.delete(target.kind, namespace: target.namespace, name: name,
                                                    preconditionUID: uid, preconditionRV: rv))
        default:
            throw APIError.methodNotAllowed(method.rawValue)
        }
    }

    // MARK: responses

    static func body(_ request: Request, context: Context) async throws -> JSONValue {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json"), !type.lowercased().hasPrefix("*/*") {
            throw APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml")
        }
        let bytes = try await request.body.collect(upTo: context.maxUploadSize)
        do { return try JSONValue.parse(Array(buffer: bytes)) } catch {
            throw APIError.badRequest("the body of the request could not be decoded: invalid JSON")
        }
    }

    static func json(_ value: JSONValue, status: Int = 200) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let bytes = value.jsonBytes()
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
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
        let encoder = JSONEncoder()
        let bytes = (try? encoder.encode(e.status)) ?? Data()
        return Response(status: .init(code: e.httpCode), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// A parsed resource URL.
struct ResourcePath {
    var kind: ResourceKind
    var namespace: String?
    var name: String?
    var subresource: String?

    static func parse(_ s: [String]) -> ResourcePath? {
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
        if rest.first == "namespaces", rest.count >= 3, ResourceKind.find(group: group, version: version, plural: rest[rest.startIndex + 2]).map({ $0.namespaced }) == true {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let plural = rest.first, let kind = ResourceKind.find(group: group, version: version, plural: plural) else { return nil }
        rest = rest.dropFirst()
        if kind.namespaced == false && namespace != nil { return nil }
        let name = rest.first
        let sub = rest.dropFirst().first
        if rest.count > 2 { return nil }
        return ResourcePath(kind: kind, namespace: namespace, name: name, subresource: sub)
    }
}

/// `/apis` and `APIResourceList` documents, enough for kubectl's discovery.
enum Discovery {
    static func groupList() -> JSONValue {
        .object([
            "kind": .string("APIGroupList"), "apiVersion": .string("v1"),
            "groups": .array(ResourceKind.groups.map { g in
                let v: JSONValue = .object(["groupVersion": .string("\(g)/v1"), "version": .string("v1")])
                return .object(["name": .string(g), "versions": .array([v]), "preferredVersion": v])
            }),
        ])
    }

    static func resourceList(group: String, version: String) -> JSONValue {
        let kinds = ResourceKind.all.filter { $0.group == group && $0.version == version }
        return .object([
            "kind": .string("APIResourceList"), "apiVersion": .string("v1"),
            "groupVersion": .string(group.isEmpty ? version : "\(group)/\(version)"),
            "resources": .array(kinds.map { k in
                var r: [String: JSONValue] = [
                    "name": .string(k.plural), "singularName": .string(k.singular), "namespaced": .bool(k.namespaced),
                    "kind": .string(k.kind), "verbs": .array(k.verbs.map { .string($0) }),
                ]
                if !k.shortNames.isEmpty { r["shortNames"] = .array(k.shortNames.map { .string($0) }) }
                return .object(r)
            }),
        ])
    }
}
