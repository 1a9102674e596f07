import Foundation
import KubeClient
import KubetraceFormats
import Logging

/// The operator token (SPEC §4): where a refresh reads it from, and where a token the
/// Kubetrace API rotates is kept so that the next refresh and the next start use it.
extension RefreshService {
    struct PendingRotation: Sendable {
        /// What the file held when the API rotated the token.
        var replaced: String
        var rotated: SecretString
    }

    struct UnsavedRotation: Sendable {
        var token: SecretString
        var expiresAt: Date?
    }

    func operatorToken() async throws -> SecretString {
        // A rotation the Secret does not hold yet wins over everything: the old token is revoked.
        if let unsaved = unsavedRotation.get() { return unsaved.token }
        if let file = config.operatorTokenFile {
            switch config.operatorTokenFileOrigin {
            case .secretVolume:
                if let fromSecret = try? await operatorTokenFromSecret() { return fromSecret }
                return try Self.readToken(file)
            case .hostFile:
                let onDisk = try Self.readToken(file)
                if let pending = rotationOverFile.get() {
                    // The file could not be written: it still holds the token the API replaced.
                    if onDisk.value == pending.replaced { return pending.rotated }
                    // Someone put another token there: from now on the file decides.
                    rotationOverFile.set(nil)
                }
                return onDisk
            }
        }
        // Kept current by the Secret watch: the refresh path does not depend on one more request
        // succeeding near expiry (the soak saw a token lapse when that GET kept failing).
        if let cached = cachedOperatorToken.get() { return cached }
        do {
            let secret = try await client.get(Secret.self, namespace: ns, name: config.names.operatorSecret)
            if let token = secret.data?["operator_token"], !token.isEmpty {
                return SecretString(token.string.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        } catch let e as KubeClientError where e.httpStatus == 404 {
            // No operator Secret: try the credentials directory.
        } catch let e as KubeClientError {
            // A failed read (429, 5xx, a connection refused) is not a missing token: retry soon,
            // as for any transient failure, instead of backing off as for a rejected token.
            throw RefreshFailure(kind: .retryable, message: "cannot read Secret \(ns)/\(config.names.operatorSecret): \(e)", retryAfter: e.retryAfter.map { Double($0.components.seconds) })
        }
        if let dir = config.credentialsDirectory { return try Self.readToken("\(dir)/operator_token") }
        throw RefreshFailure(kind: .unusableCredential, message: "no operator_token: set OPERATOR_TOKEN_FILE, or Secret \(ns)/\(config.names.operatorSecret) key operator_token, or $CREDENTIALS_DIRECTORY/operator_token")
    }

    /// The operator Secret's token, from the watch or a GET; nil when there is none or it cannot be read.
    private func operatorTokenFromSecret() async throws -> SecretString? {
        if let cached = cachedOperatorToken.get() { return cached }
        let secret = try await client.get(Secret.self, namespace: ns, name: config.names.operatorSecret)
        guard let token = secret.data?["operator_token"], !token.isEmpty else { return nil }
        return SecretString(token.string.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func readToken(_ file: String) throws -> SecretString {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw RefreshFailure(kind: .unusableCredential, message: "operator token file \(file) cannot be read")
        }
        let t = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { throw RefreshFailure(kind: .unusableCredential, message: "operator token file \(file) is empty") }
        if let problem = CredentialChecks.headerValueProblem(t) {
            throw RefreshFailure(kind: .unusableCredential, message: "operator token file \(file) \(problem)")
        }
        return SecretString(t)
    }

    /// Keeps a token the API rotated where the operator reads it from. Never throws: the
    /// kubeconfig is already written, and failing the refresh would only make the API rotate
    /// again. A token that cannot be stored is kept in memory and stored at the next refresh.
    func rotateOperatorToken(_ token: SecretString, expiresAt: Date?) async {
        if let file = config.operatorTokenFile, config.operatorTokenFileOrigin == .hostFile {
            let replaced = (try? Self.readToken(file))?.value ?? ""
            do {
                try PrivateFile.write(token.value + "\n", to: file, mode: 0o600)
                rotationOverFile.set(nil)
                logger.info("operator token rotated; written to its file", metadata: ["event": "operator_token_rotated", "file": "\(file)"])
            } catch {
                rotationOverFile.set(PendingRotation(replaced: replaced, rotated: token))
                logger.warning("operator token rotated, but its file cannot be written: the new token is kept in memory only, until this process exits", metadata: [
                    "event": "operator_token_rotated", "file": "\(file)", "error": "\(error)"])
            }
            return
        }
        // The Secret (which in cluster the token file is mounted from).
        cachedOperatorToken.set(token)
        unsavedRotation.set(UnsavedRotation(token: token, expiresAt: expiresAt))
        await saveRotation()
    }

    /// Writes a rotated token not yet in the operator Secret; on failure it stays in memory.
    func saveRotation() async {
        guard let unsaved = unsavedRotation.get() else { return }
        let secret = "\(ns)/\(config.names.operatorSecret)"
        do {
            try await writeOperatorSecret(unsaved.token, expiresAt: unsaved.expiresAt)
            unsavedRotation.set(nil)
            var facts: Logger.Metadata = ["event": "operator_token_rotated", "k8s.secret": "\(secret)"]
            if let file = config.operatorTokenFile { facts["file"] = "\(file)" }
            logger.info(config.operatorTokenFile == nil ? "operator token rotated" : "operator token rotated; written to the Secret the token file is mounted from", metadata: facts)
        } catch {
            logger.warning("operator token rotated, but the operator Secret cannot be written: the new token is kept in memory and written again at the next refresh", metadata: [
                "event": "operator_token_rotation_unsaved", "k8s.secret": "\(secret)", "error": "\(error)"])
        }
    }

    private func writeOperatorSecret(_ token: SecretString, expiresAt: Date?) async throws {
        let names = config.names
        let now = clock.date
        try await writer.update(namespace: ns, name: names.operatorSecret, create: {
            Secret(metadata: ObjectMeta(name: names.operatorSecret, namespace: self.ns, labels: ["app.kubernetes.io/managed-by": "kubetrace-operator"]), type: "Opaque")
        }) { secret in
            var data = secret.data ?? [:]
            data["operator_token"] = SecretBytes(token.value)
            secret.data = data
            var a = secret.metadata.annotations ?? [:]
            if let expiresAt { a["kubetrace.net/operator-token-expires-at"] = RFC3339.format(expiresAt) }
            a[Self.refreshedAtAnnotation] = RFC3339.format(now)
            secret.metadata.annotations = a
        }
    }
}
