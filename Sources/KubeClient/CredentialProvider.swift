public import Foundation
public import KubeTLS

/// Supplies the bearer token (or exec-issued client certificate) for each
/// request and knows when to renew it: token files are re-read every minute
/// (as client-go does, so a rotated projected token is picked up) and exec
/// plugins re-run at their `expirationTimestamp`; after a 401 the cached
/// credential is dropped so the retry uses a fresh one.
public actor CredentialProvider {
    public struct Current: Sendable {
        public var bearer: SecretString?
        public var basic: (username: String, password: SecretString)?
        public var clientCertificatePEM: String?
        public var clientKey: PrivateKeyPEM?
        /// When this credential stops being valid, if known.
        public var expiresAt: Date?
    }

    private let credentials: ClusterConnection.Credentials
    private let tokenFileRefresh: TimeInterval
    private let now: @Sendable () -> Date
    private var cached: (value: Current, validUntil: Date?)?
    /// A running exec plugin, shared by concurrent callers (single flight).
    private var inFlight: Task<Current, any Error>?

    public init(_ credentials: ClusterConnection.Credentials, tokenFileRefresh: TimeInterval = 60, now: @escaping @Sendable () -> Date = Date.init) {
        self.credentials = credentials
        self.tokenFileRefresh = tokenFileRefresh
        self.now = now
    }

    /// The credential to use now.
    public func current() async throws -> Current {
        if let cached, cached.validUntil.map({ now() < $0 }) ?? true { return cached.value }
        switch credentials {
        case .none:
            return remember(Current(), until: nil)
        case .token(let t):
            return remember(Current(bearer: t), until: nil)
        case .basic(let u, let p):
            return remember(Current(basic: (u, p)), until: nil)
        case .tokenFile(let file):
            let token = try Self.readToken(file)
            return remember(Current(bearer: token, expiresAt: JWT.expiry(of: token.value)), until: now().addingTimeInterval(tokenFileRefresh))
        case .exec(let config, let info):
            if let inFlight { return try await inFlight.value }
            // Unstructured on purpose: concurrent requests await the same plugin
            // run; it is awaited right here and cleared when done.
            let task = Task { try await ExecPlugin.run(config, cluster: info) }
            inFlight = task
            defer { inFlight = nil }
            let value = try await task.value
            if let bearer = value.bearer {
                try CredentialChecks.checkHeaderValue(bearer.value, field: "exec plugin \((config.command as NSString).lastPathComponent): status.token")
            }
            // Renew a little before the stated expiry so no request carries a stale token.
            return remember(value, until: value.expiresAt.map { $0.addingTimeInterval(-10) })
        }
    }

    /// Drops the cached credential (after a 401) so the next call fetches a fresh one.
    public func invalidate() {
        cached = nil
    }

    /// Whether a retry after a 401 can bring a different credential.
    public nonisolated var canRefresh: Bool {
        switch credentials {
        case .tokenFile, .exec: return true
        default: return false
        }
    }

    private func remember(_ value: Current, until: Date?) -> Current {
        cached = (value, until)
        return value
    }

    static func readToken(_ file: String) throws(KubeClientError) -> SecretString {
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            throw KubeClientError(.configuration, "token file \(file): cannot be read (\(KubeConfig.reason(error)))")
        }
        let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw KubeClientError(.configuration, "token file \(file): is empty") }
        try CredentialChecks.checkHeaderValue(token, field: "token file \(file)")
        return SecretString(token)
    }
}

/// Reads the `exp` claim of a JWT (no signature check: only for scheduling).
public enum JWT {
    /// The claims object (the base64url payload), or nil when `token` is not a JWT.
    public static func claims(of token: String) -> JSONValue? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64) else { return nil }
        return try? JSONDecoder().decode(JSONValue.self, from: data)
    }

    public static func expiry(of token: String) -> Date? {
        switch claims(of: token)?["exp"] {
        case .int(let e)?: return Date(timeIntervalSince1970: TimeInterval(e))
        case .double(let e)?: return Date(timeIntervalSince1970: e)
        default: return nil
        }
    }
}
