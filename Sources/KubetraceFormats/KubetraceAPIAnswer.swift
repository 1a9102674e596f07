public import Foundation
public import KubeClient

/// A `200` answer of `POST {API_URL}/v1/clusters/{CLUSTER_ID}/token:refresh` (SPEC §4), decoded.
public struct KubetraceAPIAnswer: Sendable {
    public var token: SecretString
    public var expiresAt: Date
    /// The local time the answer was decoded.
    public var issuedAt: Date
    public var server: String?
    public var certificateAuthorityData: String?
    public var operatorToken: SecretString?
    public var operatorTokenExpiresAt: Date?
    public var registry: Registry?

    public struct Registry: Sendable {
        public var server: String
        public var username: String
        public var password: SecretString
        public var expiresAt: Date?
    }

    /// Why an answer is not usable. The message never quotes the body: it carries credentials.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Decodes an answer body. `dateHeader` is the API's `Date` header: the token's lifetime is
    /// counted on the API's clock from then, and scheduled on the local clock from `now`, so a
    /// skewed host clock neither shortens nor lengthens it.
    public static func decode(body: [UInt8], dateHeader: String?, sentAt: Date, now: Date = Date()) throws(Problem) -> KubetraceAPIAnswer {
        guard let doc = try? JSONValue.parse(body), doc.objectValue != nil else {
            throw Problem(description: "the API answer is not JSON; keeping the current credentials")
        }
        guard let token = doc["token"]?.stringValue, !token.isEmpty else {
            throw Problem(description: "the API answer has no token; keeping the current credentials")
        }
        // It goes into a kubeconfig and from there into an Authorization header.
        if let problem = CredentialChecks.headerValueProblem(token) {
            throw Problem(description: "the API answer's token \(problem); keeping the current credentials")
        }
        guard let rawExpiry = doc["expiresAt"]?.stringValue, let expiresAt = RFC3339.parse(rawExpiry) else {
            throw Problem(description: "the API answer's expiresAt is missing or not an RFC 3339 time; keeping the current credentials")
        }
        let serverDate = dateHeader.flatMap(httpDate)
        let serverNow = serverDate ?? sentAt
        guard expiresAt > serverNow else {
            throw Problem(description: "the API answer's expiresAt \(rawExpiry.prefix(40)) is in the past; keeping the current credentials")
        }
        // With the API's Date, its clock and ours may differ by any amount (a jump on either
        // side): only the lifetime it states is trusted, counted from when we asked (never later
        // than the token can have been issued). Without a Date, the clocks are assumed to agree.
        let lifetime = expiresAt.timeIntervalSince(serverNow)
        let localExpiry = serverDate == nil ? min(expiresAt, now.addingTimeInterval(lifetime)) : sentAt.addingTimeInterval(lifetime)
        var answer = KubetraceAPIAnswer(token: SecretString(token), expiresAt: localExpiry, issuedAt: now)
        answer.server = doc["server"]?.stringValue
        answer.certificateAuthorityData = doc["certificateAuthorityData"]?.stringValue
        if let op = doc["operatorToken"]?.stringValue, !op.isEmpty {
            if let problem = CredentialChecks.headerValueProblem(op) {
                throw Problem(description: "the API answer's operatorToken \(problem); keeping the current credentials")
            }
            answer.operatorToken = SecretString(op)
            answer.operatorTokenExpiresAt = doc["operatorTokenExpiresAt"]?.stringValue.flatMap(RFC3339.parse)
        }
        if let r = doc["registry"], let server = r["server"]?.stringValue, let user = r["username"]?.stringValue, let pass = r["password"]?.stringValue {
            answer.registry = .init(server: server, username: user, password: SecretString(pass), expiresAt: r["expiresAt"]?.stringValue.flatMap(RFC3339.parse))
        }
        return answer
    }

    /// An RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    public static func httpDate(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }
}
