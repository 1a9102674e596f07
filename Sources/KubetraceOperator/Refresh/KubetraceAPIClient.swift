import Foundation
import KubeClient
import KubetraceFormats

/// SPEC §4: `POST {API_URL}/v1/clusters/{CLUSTER_ID}/token:refresh`.
struct KubetraceAPIClient: Sendable {
    let endpoint: ExternalEndpoint
    let clusterID: String
    let kubeconfigSecret: (namespace: String, name: String)

    typealias Answer = KubetraceAPIAnswer

    func refresh(operatorToken: SecretString, currentExpiry: Date?) async throws(RefreshFailure) -> Answer {
        // From a file, a Secret or a rotation: wherever it came from, it must be one header line.
        if let problem = CredentialChecks.headerValueProblem(operatorToken.value) {
            throw RefreshFailure(kind: .unusableCredential, message: "operator_token \(problem); not sent to API_URL")
        }
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
        // Only the JSON error's own fields, sanitized and bounded: this text reaches logs and Events.
        let detail = APIErrorDetail.from(response.body).map { " \($0)" } ?? ""
        switch response.status {
        case 200: break
        case 401, 403:
            throw RefreshFailure(kind: .rejected, message: "operator_token rejected by API_URL \(endpoint.baseURL) (\(response.status)\(detail)); regenerate it from the Kubetrace dashboard")
        case 429, 500...599:
            throw RefreshFailure(kind: .retryable, message: "API_URL answered \(response.status)\(detail)", retryAfter: retryAfter)
        default:
            throw RefreshFailure(kind: .retryable, message: "API_URL answered \(response.status)\(detail)")
        }
        // Never echo the body: it carries credentials.
        do {
            return try KubetraceAPIAnswer.decode(body: response.body, dateHeader: response.head.header("Date"), sentAt: sentAt)
        } catch {
            throw RefreshFailure(kind: .badAnswer, message: error.description)
        }
    }
}
