import Foundation

/// The API server's `Status` object (`kind: Status`), sent with every error.
public struct Status: Codable, Sendable, Equatable {
    public struct Cause: Codable, Sendable, Equatable {
        public var reason: String?
        public var message: String?
        public var field: String?
        public init(reason: String? = nil, message: String? = nil, field: String? = nil) {
            self.reason = reason
            self.message = message
            self.field = field
        }
    }
    public struct Details: Codable, Sendable, Equatable {
        public var name: String?
        public var group: String?
        public var kind: String?
        public var uid: String?
        public var causes: [Cause]?
        public var retryAfterSeconds: Int?
        public init(name: String? = nil, group: String? = nil, kind: String? = nil, uid: String? = nil, causes: [Cause]? = nil, retryAfterSeconds: Int? = nil) {
            self.name = name
            self.group = group
            self.kind = kind
            self.uid = uid
            self.causes = causes
            self.retryAfterSeconds = retryAfterSeconds
        }
    }
    public var kind: String?
    public var apiVersion: String?
    public var status: String?
    public var message: String?
    public var reason: String?
    public var details: Details?
    public var code: Int?

    public init(status: String? = "Failure", message: String?, reason: String?, details: Details? = nil, code: Int?) {
        self.kind = "Status"
        self.apiVersion = "v1"
        self.status = status
        self.message = message
        self.reason = reason
        self.details = details
        self.code = code
    }
}

extension KubeClientError {
    /// Builds the error for a non-2xx answer. The body is decoded as a `Status`
    /// when it is one; the API server's in-flight limiter answers 429 in plain
    /// text, so the status code, not the body, decides what this is.
    static func api(method: String, path: String, head: HTTPResponseHead, body: [UInt8]) -> KubeClientError {
        let status = try? JSONDecoder().decode(Status.self, from: Data(body))
        let validStatus = (status?.kind == "Status" || status?.reason != nil || status?.message != nil) ? status : nil
        var serverMessage = validStatus?.message ?? plainTextSnippet(body)
        if serverMessage.isEmpty { serverMessage = "HTTP \(head.status)" }
        var e = KubeClientError(.api, "")
        e.httpStatus = head.status
        e.status = validStatus
        if let seconds = head.header("Retry-After").flatMap(Int.init) ?? validStatus?.details?.retryAfterSeconds {
            e.retryAfter = .seconds(seconds)
        }
        let reason = validStatus?.reason.map { " \($0)" } ?? ""
        e.message = "\(method) \(path): \(head.status)\(reason): \(serverMessage)" + advice(for: head.status, reason: validStatus?.reason)
        return e
    }

    private static func plainTextSnippet(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(512), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.replacingOccurrences(of: "\n", with: " ")
    }

    private static func advice(for status: Int, reason: String?) -> String {
        switch status {
        case 401: return " (the credentials were rejected: check the kubeconfig user's token or certificate, or that it has not expired)"
        case 403: return " (RBAC denied it: grant that verb on that resource to this identity in its Role, or check with `kubectl auth can-i`)"
        case 409 where reason == "AlreadyExists": return ""
        case 409: return " (the object changed since it was read: re-read it and retry)"
        case 410: return " (the resourceVersion is too old: relist)"
        case 429: return " (the API server is throttling: retry after the given delay)"
        default: return ""
        }
    }
}
