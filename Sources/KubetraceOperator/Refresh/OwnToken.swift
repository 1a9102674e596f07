import Foundation
import KubeClient
import Logging
import ServiceLifecycle

/// The management host's own identity (issue #19): a ServiceAccount token that the
/// operator renews itself through TokenRequest, so a systemd install never needs an
/// admin kubeconfig. `kubetrace-operator identity` writes the first kubeconfig; `run`
/// adopts its token into the state directory (`$STATE_DIRECTORY/token`, mode 0600)
/// and renews it at 80 % of its lifetime, as kubelet renews projected tokens
/// (pkg/kubelet/token/token_manager.go, `requiresRefresh`).
enum OwnToken {
    /// The claims of a ServiceAccount token that matter here.
    struct Claims: Equatable, Sendable {
        var namespace: String
        var serviceAccount: String
        var issuedAt: Date
        var expiresAt: Date

        var lifetime: TimeInterval { expiresAt.timeIntervalSince(issuedAt) }
        /// When to renew: 80 % into the lifetime (kubelet's rule for projected tokens).
        var renewAt: Date { issuedAt.addingTimeInterval(lifetime * 0.8) }
    }

    /// The ServiceAccount claims of a bound token (`kubernetes.io` claim, `iat`, `exp`); nil
    /// for anything else (a static token, an OIDC token).
    static func claims(of token: String) -> Claims? {
        guard let json = JWT.claims(of: token),
              let ns = json["kubernetes.io"]?["namespace"]?.stringValue,
              let name = json["kubernetes.io"]?["serviceaccount"]?["name"]?.stringValue,
              let iat = json["iat"]?.intValue, let exp = json["exp"]?.intValue, exp > iat else { return nil }
        return Claims(namespace: ns, serviceAccount: name, issuedAt: Date(timeIntervalSince1970: TimeInterval(iat)),
                      expiresAt: Date(timeIntervalSince1970: TimeInterval(exp)))
    }

    /// The token file in the state directory.
    static func tokenFile(stateDirectory: String) -> String { "\(stateDirectory)/token" }

    /// systemd's `$STATE_DIRECTORY` (the first, when several are listed).
    static func stateDirectory(_ env: [String: String]) -> String? {
        env["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) }
    }

    /// When `connection` carries a ServiceAccount token and a state directory is given,
    /// switches it to the state directory's token file: the later-expiring of the
    /// kubeconfig's token and the one renewed before (a freshly installed kubeconfig
    /// wins over an older renewal; a renewal wins over the installed kubeconfig).
    /// Returns nil when there is nothing to renew.
    static func adopt(_ connection: ClusterConnection, stateDirectory: String, names: ObjectNames, now: Date = Date()) throws -> (ClusterConnection, Claims)? {
        let given: SecretString
        switch connection.credentials {
        case .token(let t): given = t
        case .tokenFile(let file): given = try readTokenFile(file, named: "the kubeconfig's tokenFile")
        default: return nil
        }
        // Only the operator's own account: an admin ServiceAccount's token is never kept alive.
        guard let givenClaims = claims(of: given.value), givenClaims.namespace == names.namespace,
              givenClaims.serviceAccount == names.operatorServiceAccount else { return nil }
        let file = tokenFile(stateDirectory: stateDirectory)
        var chosen = (token: given, claims: givenClaims)
        if let data = FileManager.default.contents(atPath: file) {
            let renewed = SecretString(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            if let c = claims(of: renewed.value), c.namespace == givenClaims.namespace, c.serviceAccount == givenClaims.serviceAccount,
               c.expiresAt > givenClaims.expiresAt, CredentialChecks.headerValueProblem(renewed.value) == nil {
                chosen = (renewed, c)
            }
        }
        guard chosen.claims.expiresAt > now else {
            throw RefreshFailure(kind: .unusableCredential, message: "\(connection.source): the token of \(names.namespace)/\(names.operatorServiceAccount) expired at \(RFC3339.format(chosen.claims.expiresAt)) (the host was off longer than its lifetime); run kubetrace-operator identity again and install its kubeconfig",
                                 isConfiguration: true)
        }
        do { try PrivateFile.write(chosen.token.value + "\n", to: file) } catch {
            throw RefreshFailure(kind: .localStorage, message: "STATE_DIRECTORY: \(error)", isConfiguration: true)
        }
        var adopted = connection
        adopted.credentials = .tokenFile(file)
        return (adopted, chosen.claims)
    }

    /// The token in a file the user named: trimmed, never empty, one header line. Errors name
    /// the setting and the file, never the content.
    static func readTokenFile(_ path: String, named setting: String) throws(RefreshFailure) -> SecretString {
        func failure(_ message: String) -> RefreshFailure { RefreshFailure(kind: .unusableCredential, message: message, isConfiguration: true) }
        guard let data = FileManager.default.contents(atPath: path) else { throw failure("\(setting): cannot read \(path)") }
        let value = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else { throw failure("\(setting): \(path) is empty") }
        if let problem = CredentialChecks.headerValueProblem(value) { throw failure("\(setting): \(path) \(problem)") }
        return SecretString(value)
    }
}

/// Renews the operator's own ServiceAccount token before it expires and writes it,
/// whole, to the state directory; the client re-reads the token file (`tokenFile`
/// credentials) and is told to drop its cached copy at once.
struct OwnTokenRenewal: Service {
    let client: KubeClient
    let tokenFile: String
    let logger: Logger
    /// Injected so tests can stand at a later moment of the token's life.
    var now: @Sendable () -> Date = Date.init

    /// Until the graceful shutdown: it only waits and renews, so it stops at once then (a
    /// service that ignored it would hold the ServiceGroup's shutdown, and SIGTERM, forever).
    func run() async throws {
        try await cancelWhenGracefulShutdown { [self] in try await renewUntilCancelled() }
    }

    private func renewUntilCancelled() async throws {
        var failures = 0
        while !Task.isCancelled {
            guard let current = currentClaims() else {
                // Without it no request can authenticate for long: stop, so systemd restarts the
                // service and the start re-adopts the installed kubeconfig's token (or says why not).
                throw RefreshFailure(kind: .unusableCredential, message: "the operator's own token in \(tokenFile) is missing or unreadable")
            }
            let wait = failures == 0 ? current.renewAt.timeIntervalSince(now()) : min(300, 5 * pow(2, Double(failures - 1)))
            if wait > 0 {
                do { try await Task.sleep(for: .milliseconds(Int64(wait * 1000))) } catch { return }
            }
            do {
                let renewed = try await renewOnce(current)
                failures = 0
                logger.info("renewed the operator's own token", metadata: [
                    "event": "own_token_renewed", "serviceaccount": "\(renewed.namespace)/\(renewed.serviceAccount)",
                    "expires_at": "\(RFC3339.format(renewed.expiresAt))"])
            } catch {
                failures += 1
                logger.warning("cannot renew the operator's own token; retrying", metadata: [
                    "event": "own_token_renewal_failed", "expires_at": "\(RFC3339.format(current.expiresAt))", "error": "\(error)"])
            }
        }
    }

    func currentClaims() -> OwnToken.Claims? {
        guard let data = FileManager.default.contents(atPath: tokenFile) else { return nil }
        return OwnToken.claims(of: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// One TokenRequest for the same ServiceAccount and lifetime, written atomically (0600).
    func renewOnce(_ current: OwnToken.Claims) async throws -> OwnToken.Claims {
        let seconds = max(600, Int(current.lifetime.rounded()))
        let answer = try await client.requestToken(namespace: current.namespace, serviceAccount: current.serviceAccount,
                                                   TokenRequest(audiences: [], expirationSeconds: seconds))
        guard let token = answer.status?.token, let claims = OwnToken.claims(of: token.value),
              CredentialChecks.headerValueProblem(token.value) == nil else {
            throw RefreshFailure(kind: .badAnswer, message: "the TokenRequest answer for \(current.namespace)/\(current.serviceAccount) holds no usable token")
        }
        try PrivateFile.write(token.value + "\n", to: tokenFile)
        await client.credentials.invalidate()
        return claims
    }
}
