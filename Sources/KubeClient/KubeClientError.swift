import Foundation

/// Every failure of the Kubernetes client: an opaque code plus a message that
/// says what went wrong and, where we know it, what to do. API failures carry
/// the decoded `Status`.
public struct KubeClientError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is; stable, short, and safe as a metric label.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }
        /// The kubeconfig, in-cluster files or credentials are unusable.
        public static let configuration = Code(raw: "configuration")
        /// The request never got an HTTP answer (DNS, connect, TLS, timeout).
        public static let transport = Code(raw: "transport")
        /// The API server answered with an error status.
        public static let api = Code(raw: "api")
        /// The answer could not be decoded.
        public static let decoding = Code(raw: "decoding")
        /// The request was cancelled.
        public static let cancelled = Code(raw: "cancelled")
    }

    public var code: Code
    public var message: String
    /// HTTP status of an API failure.
    public var httpStatus: Int?
    /// The server's `Status`, when it sent one.
    public var status: Status?
    /// From `Retry-After` or `details.retryAfterSeconds`.
    public var retryAfter: Duration?
    /// libcurl's `CURLcode` of a transport failure.
    public var curlCode: Int?

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    static let cancelled = KubeClientError(.cancelled, "request cancelled")

    public var description: String { message }

    /// The Status reason (`NotFound`, `Conflict`, …) or "" when none.
    public var reason: String { status?.reason ?? "" }

    public var isNotFound: Bool { httpStatus == 404 }
    public var isAlreadyExists: Bool { httpStatus == 409 && reason == "AlreadyExists" }
    /// A stale `resourceVersion` (optimistic concurrency): re-read and retry.
    public var isConflict: Bool { httpStatus == 409 && reason != "AlreadyExists" }
    /// `410 Expired`/`Gone`: the resourceVersion is too old; relist.
    public var isExpired: Bool { httpStatus == 410 || reason == "Expired" || reason == "Gone" }
    public var isUnauthorized: Bool { httpStatus == 401 }
    public var isForbidden: Bool { httpStatus == 403 }
    public var isTooManyRequests: Bool { httpStatus == 429 }
    public var isInvalid: Bool { httpStatus == 422 }
    /// Worth retrying as is (after a backoff): throttling, server errors, transport failures.
    public var isRetryable: Bool {
        code == .transport || httpStatus == 429 || (httpStatus.map { $0 >= 500 } ?? false)
    }
}
