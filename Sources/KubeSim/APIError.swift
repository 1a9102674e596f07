import KubeClient

/// An error the simulated API server answers with: an HTTP status and a
/// `Status` body worded as kube-apiserver words it.
struct APIError: Error, Sendable {
    var status: Status
    var httpCode: Int { status.code ?? 500 }
    var retryAfterSeconds: Int?
    /// `metadata.continue` of the Status: a fresh token with an expired list's 410
    /// (etcd3 `handleCompactedErrorForPaging`).
    var listContinue: String?

    init(_ code: Int, _ reason: String, _ message: String, details: Status.Details? = nil) {
        status = Status(message: message, reason: reason, details: details, code: code)
    }

    static func notFound(_ kind: ResourceKind, _ name: String) -> APIError {
        APIError(404, "NotFound", "\(kind.plural)\(kind.groupSuffix) \"\(name)\" not found",
                 details: .init(name: name, group: kind.group.isEmpty ? nil : kind.group, kind: kind.plural))
    }

    static func alreadyExists(_ kind: ResourceKind, _ name: String) -> APIError {
        APIError(409, "AlreadyExists", "\(kind.plural)\(kind.groupSuffix) \"\(name)\" already exists",
                 details: .init(name: name, group: kind.group.isEmpty ? nil : kind.group, kind: kind.plural))
    }

    static func conflict(_ kind: ResourceKind, _ name: String) -> APIError {
        APIError(409, "Conflict", "Operation cannot be fulfilled on \(kind.plural)\(kind.groupSuffix) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
                 details: .init(name: name, group: kind.group.isEmpty ? nil : kind.group, kind: kind.plural))
    }

    static func invalid(_ kind: ResourceKind, _ name: String, field: String, _ problem: String) -> APIError {
        APIError(422, "Invalid", "\(kind.kind) \"\(name)\" is invalid: \(field): \(problem)",
                 details: .init(name: name, group: kind.group.isEmpty ? nil : kind.group, kind: kind.kind,
                                causes: [.init(reason: "FieldValueInvalid", message: problem, field: field)]))
    }

    static func badRequest(_ message: String) -> APIError { APIError(400, "BadRequest", message) }

    /// Any failure while applying a JSON patch, a failed `test` included: k8s.io/apiserver
    /// `pkg/endpoints/handlers/patch.go` `applyJSPatch` answers
    /// `errors.NewGenericServerResponse(422, "", schema.GroupResource{}, "", err.Error(), 0, false)`,
    /// which keeps none of the patch library's text and leaves `details` empty.
    static let patchFailed = APIError(422, "Invalid", "the server rejected our request due to an error in our request", details: .init())

    /// k8s.io/apiserver `pkg/storage/errors.go` `NewTooLargeResourceVersionError`: a 504
    /// Timeout with the cause `ResourceVersionTooLarge` (and `Retry-After` when retryAfter > 0).
    static func tooLargeResourceVersion(_ wanted: Int, current: Int, retryAfter: Int) -> APIError {
        var e = APIError(504, "Timeout", "Timeout: Too large resource version: \(wanted), current: \(current)",
                         details: .init(causes: [.init(reason: "ResourceVersionTooLarge", message: "Too large resource version")],
                                        retryAfterSeconds: retryAfter > 0 ? retryAfter : nil))
        e.retryAfterSeconds = retryAfter > 0 ? retryAfter : nil
        return e
    }

    /// `errors.NewInvalid` for request options (`CreateOptions.meta.k8s.io` and the like).
    static func invalidOptions(_ kind: String, field: String, type: String, body: String) -> APIError {
        APIError(422, "Invalid", "\(kind).meta.k8s.io \"\" is invalid: \(field): \(body)",
                 details: .init(group: "meta.k8s.io", kind: kind, causes: [.init(reason: type, message: body, field: field)]))
    }

    static func methodNotAllowed(_ method: String) -> APIError {
        APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    static let unauthorized = APIError(401, "Unauthorized", "Unauthorized")

    /// genericapiserver's not-found handler: `NewGenericServerResponse(404, …)`, whose details
    /// are present and empty.
    static func pathNotFound(_ path: String) -> APIError {
        APIError(404, "NotFound", "the server could not find the requested resource", details: .init())
    }
}

extension ResourceKind {
    /// `secrets` is bare; grouped resources read `roles.rbac.authorization.k8s.io`.
    var groupSuffix: String { group.isEmpty ? "" : ".\(group)" }
}
