import Foundation
import KubeClient

/// SPEC §4: `POST {API_URL}/v1/clusters/{CLUSTER_ID}/token:refresh`.
struct KubetraceAPIClient: Sendable {
    let endpoint: ExternalEndpoint
    let clusterID: String
    let kubeconfigSecret: (namespace: String, name: String)

    struct Answer: Sendable {
        var token: SecretString
        var expiresAt: Date
        /// The API's clock at answer time (its `Date` header), so a skewed host clock does not shift the schedule.
        var issuedAt: Date
        var server: String?
        var certificateAuthorityData: String?
        var operatorToken: SecretString?
        var operatorTokenExpiresAt: Date?
        var registry: Registry?

        struct Registry: Sendable {
            var server: String
            var username: String
            var password: SecretString
            var expiresAt: Date?
        }
    }

    func refresh(operatorToken: SecretString, currentExpiry: Date?) async throws(RefreshFailure) -> Answer {
        var body: [String: JSONValue] = [
            "clusterId": .string(clusterID), "operatorVersion": .string(kubetraceVersion),
            "kubeconfigSecret": .object(["namespace": .string(kubeconfigSecret.namespace), "name": .string(kubeconfigSecret.name)]),
        ]
        if let currentExpiry { body["currentTokenExpiresAt"] = .string(RFC3339.format(currentExpiry)) }
        let url = "\(endpoint.baseURL)/v1/clusters/\(ResourceType.escape(clusterID))/token:refresh"
        let request = HTTPRequest(method: "POST", url: url, headers: [
            ("Authorization", "Bearer \(operatorToken.value)"), ("Content-Type", "application/json"), ("Accept", "application/json"),
            ("User-Agent", "kubetrace-operator/\(kubetraceVersion)")], body: JSONValue.object(body).jsonBytes(), timeout: .seconds(30))
        let sentAt = Date()
        let response: HTTPResponse
        do { response = try await CurlTransport.shared.send(request, tls: endpoint.tls, maxBodyBytes: 1 << 20) } catch {
            throw RefreshFailure(kind: .retryable, message: "API_URL \(endpoint.baseURL) unreachable: \(error)")
        }
        let retryAfter = response.head.header("Retry-After").flatMap(TimeInterval.init)
        switch response.status {
        case 200: break
        case 401, 403:
            let code = (try? JSONValue.parse(response.body))?["error"]?.stringValue ?? "\(response.status)"
            throw RefreshFailure(kind: .unauthorized, message: "operator_token rejected by API_URL \(endpoint.baseURL) (\(response.status) \(code)); regenerate it from the Kubetrace dashboard")
        case 429, 500...599:
            throw RefreshFailure(kind: .retryable, message: "API_URL answered \(response.status)", retryAfter: retryAfter)
        default:
            throw RefreshFailure(kind: .retryable, message: "API_URL answered \(response.status)")
        }
        // Never echo the body: it carries credentials.
        guard let doc = try? JSONValue.parse(response.body), doc.objectValue != nil else {
            throw RefreshFailure(kind: .badAnswer, message: "the API answer is not JSON; keeping the current credentials")
        }
        guard let token = doc["token"]?.stringValue, !token.isEmpty else {
            throw RefreshFailure(kind: .badAnswer, message: "the API answer has no token; keeping the current credentials")
        }
        guard let rawExpiry = doc["expiresAt"]?.stringValue, let expiresAt = RFC3339.parse(rawExpiry) else {
            throw RefreshFailure(kind: .badAnswer, message: "the API answer's expiresAt is missing or not an RFC 3339 time; keeping the current credentials")
        }
        let serverNow = response.head.header("Date").flatMap(Self.httpDate) ?? sentAt
        guard expiresAt > serverNow else {
            throw RefreshFailure(kind: .badAnswer, message: "the API answer's expiresAt \(rawExpiry) is in the past; keeping the current credentials")
        }
        // Schedule on the host's clock: the lifetime as the API counts it, starting now.
        let lifetime = expiresAt.timeIntervalSince(serverNow)
        let localExpiry = min(expiresAt, Date().addingTimeInterval(lifetime))
        var answer = Answer(token: SecretString(token), expiresAt: localExpiry, issuedAt: Date())
        answer.server = doc["server"]?.stringValue
        answer.certificateAuthorityData = doc["certificateAuthorityData"]?.stringValue
        if let op = doc["operatorToken"]?.stringValue, !op.isEmpty {
            answer.operatorToken = SecretString(op)
            answer.operatorTokenExpiresAt = doc["operatorTokenExpiresAt"]?.stringValue.flatMap(RFC3339.parse)
        }
        if let r = doc["registry"], let server = r["server"]?.stringValue, let user = r["username"]?.stringValue, let pass = r["password"]?.stringValue {
            answer.registry = .init(server: server, username: user, password: SecretString(pass), expiresAt: r["expiresAt"]?.stringValue.flatMap(RFC3339.parse))
        }
        return answer
    }

    static func httpDate(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }
}
