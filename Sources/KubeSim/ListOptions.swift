import Hummingbird
import KubeClient

/// The list and watch query parameters, validated as kube-apiserver validates them before
/// anything is read: k8s.io/apimachinery `pkg/apis/meta/internalversion/validation/validation.go`
/// `ValidateListOptions` / `validateWatchOptions`, wrapped by k8s.io/apiserver
/// `pkg/endpoints/handlers/get.go` `ListResource` in
/// `errors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "", errs)`.
struct ListOptions: Sendable {
    var watch = false
    var resourceVersion: String?
    var resourceVersionMatch: String?
    var sendInitialEvents: Bool?
    var allowWatchBookmarks = false
    var limit: Int?
    var continueToken: String?
    var timeoutSeconds: Int?
    var labelSelector: String?
    var fieldSelector: String?

    init() {}

    init(_ query: Parameters) throws(APIError) {
        func flag(_ v: Substring?) -> Bool? { v.map { $0 == "true" || $0 == "1" } }
        watch = flag(query["watch"]) ?? false
        resourceVersion = query["resourceVersion"].map(String.init)
        resourceVersionMatch = query["resourceVersionMatch"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        sendInitialEvents = flag(query["sendInitialEvents"])
        allowWatchBookmarks = flag(query["allowWatchBookmarks"]) ?? false
        if let l = query["limit"] {
            guard let n = Int(l) else { throw APIError.badRequest("limit: Invalid value: \"\(l)\": must be an integer") }
            limit = n > 0 ? n : nil
        }
        continueToken = query["continue"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        timeoutSeconds = query["timeoutSeconds"].flatMap { Int($0) }
        labelSelector = query["labelSelector"].map(String.init)
        fieldSelector = query["fieldSelector"].map(String.init)
    }

    /// One field error, as `field.Error` renders it: `ErrorBody()` is the cause's message,
    /// `field: ErrorBody()` its part of the Status message.
    struct FieldError {
        var type: String
        var field: String
        var body: String
    }

    static func forbidden(_ field: String, _ detail: String) -> FieldError {
        FieldError(type: "FieldValueForbidden", field: field, body: "Forbidden: \(detail)")
    }

    static func notSupported(_ field: String, _ value: String, _ supported: [String]) -> FieldError {
        FieldError(type: "FieldValueNotSupported", field: field,
                   body: "Unsupported value: \"\(value)\": supported values: " + supported.map { "\"\($0)\"" }.joined(separator: ", "))
    }

    /// `ValidateListOptions`: the errors in the order the function appends them.
    func validate(watchListEnabled: Bool) -> [FieldError] {
        var errs: [FieldError] = []
        let match = resourceVersionMatch ?? ""
        if watch {
            if sendInitialEvents != nil {
                if match != "NotOlderThan" {
                    errs.append(Self.forbidden("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
                }
                if !watchListEnabled {
                    errs.append(Self.forbidden("sendInitialEvents", "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"))
                }
            }
            if !match.isEmpty {
                if sendInitialEvents == nil {
                    errs.append(Self.forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
                }
                if match != "NotOlderThan" {
                    errs.append(Self.notSupported("resourceVersionMatch", match, ["NotOlderThan"]))
                }
                if continueToken != nil {
                    errs.append(Self.forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
                }
            }
            return errs
        }
        if !match.isEmpty {
            if (resourceVersion ?? "").isEmpty {
                errs.append(Self.forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided"))
            }
            if continueToken != nil {
                errs.append(Self.forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
            }
            if match != "Exact" && match != "NotOlderThan" {
                errs.append(Self.notSupported("resourceVersionMatch", match, ["Exact", "NotOlderThan", ""]))
            }
            if match == "Exact" && resourceVersion == "0" {
                errs.append(Self.forbidden("resourceVersionMatch", "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""))
            }
        }
        if sendInitialEvents != nil {
            errs.append(Self.forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
        }
        return errs
    }

    /// `errors.NewInvalid`: one cause per error; the message aggregates them (`[a, b]` when
    /// there are several, as `utilerrors.NewAggregate` prints).
    static func invalid(_ errs: [FieldError]) -> APIError {
        let parts = errs.map { "\($0.field): \($0.body)" }
        let joined = parts.count == 1 ? parts[0] : "[" + parts.joined(separator: ", ") + "]"
        return APIError(422, "Invalid", "ListOptions.meta.k8s.io \"\" is invalid: \(joined)",
                        details: .init(group: "meta.k8s.io", kind: "ListOptions",
                                       causes: errs.map { Status.Cause(reason: $0.type, message: $0.body, field: $0.field) }))
    }
}
