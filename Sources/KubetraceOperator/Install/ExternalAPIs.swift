import Foundation
import KubeClient
import KubeTLS

/// How to reach the Kubetrace API and Vultr: base URL plus the TLS trust to use.
struct ExternalEndpoint: Sendable {
    var baseURL: String
    var tls: TLSSettings

    /// Validates an `API_URL`-style value: https, or http only to loopback with `allowInsecure` (SPEC §3).
    static func validated(_ raw: String, name: String, allowInsecure: Bool, caFile: String?) throws -> ExternalEndpoint {
        var url = raw.trimmingCharacters(in: .whitespaces)
        while url.hasSuffix("/") { url.removeLast() }
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, let host = parts.host, !host.isEmpty else {
            throw CLIError.configuration("\(name): \"\(raw)\" is not a URL")
        }
        // Credentials in a URL end up in logs and process listings; the URL itself is never echoed here.
        guard parts.user == nil, parts.password == nil else {
            throw CLIError.configuration("\(name): must not carry credentials (user:password@); the operator token goes in a file (OPERATOR_TOKEN_FILE)")
        }
        switch scheme {
        case "https": break
        case "http":
            // An address, parsed: a name such as 127.evil.example or localhost is not loopback.
            guard CredentialChecks.isLoopbackAddress(host) && allowInsecure else {
                throw CLIError.configuration("\(name): \"\(raw)\" must be https (plain http only to a loopback address with --allow-insecure-http)")
            }
        default:
            throw CLIError.configuration("\(name): \"\(raw)\" must be an https URL")
        }
        var tls = TLSSettings()
        if let caFile {
            guard let pem = try? String(contentsOfFile: caFile, encoding: .utf8) else {
                throw CLIError.configuration("--ca-file: cannot read \(caFile)")
            }
            // A file that is not a certificate would only fail at the first connection, as a retry.
            guard (try? X509.validity(pem: pem)) != nil else {
                throw CLIError.configuration("--ca-file: \(caFile) is not a PEM-encoded X.509 certificate")
            }
            tls.certificateAuthorityPEM = pem
        }
        return ExternalEndpoint(baseURL: url, tls: tls)
    }
}

/// Vultr Container Registry: mint Docker credentials (`OPTIONS …/docker-credentials`). Its
/// failures are `RefreshFailure`s: the refresh loop acts on their kind, and as they name the
/// flags `manifest` takes, a command that stops with one exits 2.
enum VultrRegistry {
    struct Credentials {
        var username: String
        var password: SecretString
    }

    static func dockerCredentials(_ endpoint: ExternalEndpoint, apiKey: SecretString, registryID: String, host: String, expirySeconds: Int) async throws(RefreshFailure) -> Credentials {
        func failure(_ kind: RefreshFailure.Kind, _ message: String) -> RefreshFailure { RefreshFailure(kind: kind, message: message, isConfiguration: true) }
        if let problem = CredentialChecks.headerValueProblem(apiKey.value) {
            throw failure(.unusableCredential, "vultr_api_key \(problem); not sent to the Vultr API")
        }
        let url = "\(endpoint.baseURL)/v2/registry/\(ResourceType.escape(registryID))/docker-credentials?expiry_seconds=\(expirySeconds)&read_write=false"
        let request = HTTPRequest(method: "OPTIONS", url: url, headers: [("Authorization", "Bearer \(apiKey.value)"), ("Accept", "application/json"),
                                                                         ("User-Agent", "kubetrace-operator/\(kubetraceVersion)")], timeout: .seconds(30))
        let response: HTTPResponse
        do {
            // A credential answer is a few hundred bytes: 1 MiB, not the transport's 64 MiB default.
            response = try await CurlTransport.shared.send(request, tls: endpoint.tls, maxBodyBytes: 1 << 20)
        } catch {
            throw failure(.retryable, "--vultr-api-url: \(endpoint.baseURL) cannot be reached (\(error))")
        }
        // Only the JSON error's own fields, sanitized and bounded: this text reaches logs and Events.
        let detail = APIErrorDetail.from(response.body) ?? ""
        switch response.status {
        case 200: break
        case 401, 403: throw failure(.rejected, "--vultr-api-key-file: the Vultr API rejected the key (\(response.status) \(detail))")
        case 404: throw failure(.retryable, "--registry-id: registry \"\(registryID)\" not found by the Vultr API (404 \(detail))")
        default: throw failure(.retryable, "--vultr-api-url: the Vultr API failed with \(response.status) \(detail); try again later")
        }
        guard let auths = (try? JSONValue.parse(response.body))?["auths"]?.objectValue else {
            throw failure(.badAnswer, "--vultr-api-url: the Vultr API answer has no auths")
        }
        guard let entry = auths[host]?["auth"]?.stringValue, let raw = Data(base64Encoded: entry).map({ String(decoding: $0, as: UTF8.self) }),
              let colon = raw.firstIndex(of: ":") else {
            throw failure(.badAnswer, "--registry: the Vultr API returned credentials for \(auths.keys.sorted().joined(separator: ", ")), not \(host)")
        }
        return Credentials(username: String(raw[..<colon]), password: SecretString(String(raw[raw.index(after: colon)...])))
    }
}
