public import Foundation
import KubeClient
import Synchronization

/// The Kubetrace API of SPEC §4 (`POST /v1/clusters/{id}/token:refresh`,
/// `GET /v1/ping`), served by the devcluster under `/kubetrace-api`, so the
/// demo and the tests exercise the whole refresh path. Tokens it issues are
/// real service-account JWTs of the devcluster, with short lifetimes when asked.
public final class KubetraceAPIEmulator: Sendable {
    public static let pathPrefix = "/kubetrace-api"

    /// How the next answers go wrong (each consumed once), for tests.
    public enum Failure: String, Sendable {
        case unauthorized, unavailable, rateLimited = "rate-limited", notJSON = "not-json", missingToken = "missing-token"
        case pastExpiry = "past-expiry", unparseableExpiry = "unparseable-expiry", timeout
    }

    public struct Settings: Sendable {
        /// Lifetime of the kubeconfig tokens it issues.
        public var tokenLifetime: TimeInterval = 3600
        /// Rotate the operator token on every refresh (returned as `operatorToken`).
        public var rotateOperatorToken = false
        /// How long the operator token a rotation replaced keeps working; then it is refused with
        /// 401 `invalid_token` like any unknown token (the API's rotation grace).
        public var rotationGrace: TimeInterval = 30
        /// The clock the rotation grace and issued registry credentials are measured with.
        public var now: @Sendable () -> Date = { Date() }
        public var operatorTokenLifetime: TimeInterval = 30 * 86_400
        /// Include registry credentials (`registry` block) with this lifetime.
        public var registryLifetime: TimeInterval? = nil
        public var registryServer = "blr.vultrcr.com"
        /// The read-only ServiceAccount the issued tokens belong to.
        public var serviceAccountNamespace = "kubetrace-system"
        public var serviceAccountName = "kubetrace-readonly-user"
        public init() {}
    }

    private struct State {
        var operatorTokens: Set<String>
        var settings = Settings()
        var failures: [Failure] = []
        /// Every refresh fails this way until then.
        var outage: (until: Date, failure: Failure)?
        var refreshes = 0
        var rotation = 0
        /// Tokens a rotation replaced, and when they stop working.
        var retiring: [String: Date] = [:]
        /// Registry credentials handed out in `registry` blocks: username → (password, host, expiry).
        var registryCredentials: [String: (password: String, host: String, expiresAt: Date)] = [:]

        /// An operator token is accepted while it is known and, when rotated away, within its grace.
        func accepts(_ token: String?, now: Date) -> Bool {
            guard let token, operatorTokens.contains(token) else { return false }
            if let until = retiring[token] { return now < until }
            return true
        }
    }
    private let state: Mutex<State>

    init(operatorToken: String) {
        state = Mutex(State(operatorTokens: [operatorToken]))
    }

    public func configure(_ body: (inout Settings) -> Void) { state.withLock { body(&$0.settings) } }
    public func acceptOperatorToken(_ token: String) {
        state.withLock {
            $0.operatorTokens.insert(token)
            $0.retiring[token] = nil
        }
    }
    public func revokeOperatorToken(_ token: String) {
        state.withLock {
            $0.operatorTokens.remove(token)
            $0.retiring[token] = nil
        }
    }
    /// Whether a request with this operator token would be authenticated now.
    public func acceptsOperatorToken(_ token: String) -> Bool { state.withLock { $0.accepts(token, now: $0.settings.now()) } }
    /// How many rotated-away operator tokens have passed their grace and are refused.
    public var revokedCount: Int {
        state.withLock { s in
            let now = s.settings.now()
            return s.retiring.values.filter { $0 <= now }.count
        }
    }
    /// Rotated-away operator tokens still inside their grace.
    public var retiringCount: Int {
        state.withLock { s in
            let now = s.settings.now()
            return s.retiring.values.filter { $0 > now }.count
        }
    }
    /// Whether these are registry credentials a `registry` block handed out for `host`, unexpired at `now`.
    public func acceptsDockerCredentials(host: String, username: String, password: String, now: Date) -> Bool {
        state.withLock { s in
            guard let c = s.registryCredentials[username], c.host == host, now < c.expiresAt else { return false }
            return constantTimeEquals(c.password, password)
        }
    }
    public func fail(_ failure: Failure, times: Int = 1) { state.withLock { $0.failures += Array(repeating: failure, count: times) } }
    public var refreshCount: Int { state.withLock { $0.refreshes } }
    /// Every refresh answers with `failure` for the next `seconds`.
    public func outage(_ failure: Failure, seconds: TimeInterval) {
        state.withLock { $0.outage = (Date().addingTimeInterval(seconds), failure) }
    }

    struct Answer {
        var status: Int
        var body: [UInt8]
        var retryAfter: Int? = nil
        var delay: Duration? = nil
    }

    /// Handles a request under `/kubetrace-api`; `mint` issues a token for (namespace, name, lifetime).
    func handle(method: String, path: String, authorization: String?, body: [UInt8], server: String, caData: String?,
                mint: (String, String, TimeInterval) async throws -> (String, Date)) async -> Answer {
        let sub = String(path.dropFirst(Self.pathPrefix.count))
        if method == "GET", sub == "/v1/ping" {
            // Unauthenticated pings check connectivity; with a bearer token the token is checked too.
            if let authorization, authorization.hasPrefix("Bearer ") {
                let ok = state.withLock { $0.accepts(String(authorization.dropFirst(7)), now: $0.settings.now()) }
                if !ok { return Self.error(401, "invalid_token", "operator token is not valid") }
            }
            return Answer(status: 200, body: Array(#"{"ok":true}"#.utf8))
        }
        let parts = sub.split(separator: "/")
        guard method == "POST", parts.count == 4, parts[0] == "v1", parts[1] == "clusters", parts[3] == "token:refresh" else {
            return Self.error(404, "not_found", "no such endpoint: \(method) \(sub)")
        }
        let clusterID = String(parts[2])
        let token = authorization.flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        let (failure, authorized, settings) = state.withLock { s -> (Failure?, Bool, Settings) in
            let now = s.settings.now()
            if let o = s.outage, o.until > Date() { return (o.failure, s.accepts(token, now: now), s.settings) }
            let f = s.failures.isEmpty ? nil : s.failures.removeFirst()
            return (f, s.accepts(token, now: now), s.settings)
        }
        switch failure {
        case .unauthorized?: return Self.error(401, "invalid_token", "operator token is not valid")
        case .unavailable?: return Self.error(503, "unavailable", "the Kubetrace API is temporarily unavailable")
        case .rateLimited?: var a = Self.error(429, "rate_limited", "slow down"); a.retryAfter = 2; return a
        case .notJSON?: return Answer(status: 200, body: Array("<html>maintenance</html>".utf8))
        case .timeout?: return Answer(status: 504, body: Array("gateway timeout".utf8), delay: .seconds(5))
        default: break
        }
        guard authorized else { return Self.error(401, "invalid_token", "operator token is not valid") }
        guard let req = try? JSONValue.parse(body), req["clusterId"]?.stringValue == clusterID else {
            return Self.error(400, "bad_request", "body must be JSON with clusterId \(clusterID)")
        }
        do {
            let (jwt, expiry) = try await mint(settings.serviceAccountNamespace, settings.serviceAccountName, settings.tokenLifetime)
            var out: [String: JSONValue] = ["token": .string(jwt), "expiresAt": .string(RFC3339.format(expiry)), "server": .string(server)]
            if let caData { out["certificateAuthorityData"] = .string(caData) }
            switch failure {
            case .missingToken?: out["token"] = nil
            case .pastExpiry?: out["expiresAt"] = .string(RFC3339.format(Date().addingTimeInterval(-60)))
            case .unparseableExpiry?: out["expiresAt"] = .string("soon")
            default: break
            }
            if settings.rotateOperatorToken {
                let next = state.withLock { s -> String in
                    s.rotation += 1
                    let t = "kt_op_rotated_\(s.rotation)_\(UUID().uuidString.prefix(8))"
                    s.operatorTokens.insert(t)
                    // The token this refresh was made with is replaced: it keeps working for the
                    // grace period (a retried refresh, a second replica), then is refused.
                    if let token, s.retiring[token] == nil { s.retiring[token] = s.settings.now().addingTimeInterval(s.settings.rotationGrace) }
                    return t
                }
                out["operatorToken"] = .string(next)
                out["operatorTokenExpiresAt"] = .string(RFC3339.format(Date().addingTimeInterval(settings.operatorTokenLifetime)))
            }
            if let lifetime = settings.registryLifetime {
                let password = "pw-\(UUID().uuidString)"
                let (username, expiresAt) = state.withLock { s -> (String, Date) in
                    let user = "kt-pull-\(s.refreshes)-\(UUID().uuidString.prefix(6).lowercased())"
                    let expiry = s.settings.now().addingTimeInterval(lifetime)
                    s.registryCredentials[user] = (password, settings.registryServer, expiry)
                    return (user, expiry)
                }
                out["registry"] = .object(["server": .string(settings.registryServer), "username": .string(username),
                                           "password": .string(password),
                                           "expiresAt": .string(RFC3339.format(expiresAt))])
            }
            state.withLock { $0.refreshes += 1 }
            return Answer(status: 200, body: JSONValue.object(out).jsonBytes())
        } catch {
            return Self.error(500, "internal", "cannot issue a token: \(error)")
        }
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Answer {
        Answer(status: status, body: JSONValue.object(["error": .string(code), "message": .string(message)]).jsonBytes())
    }
}

/// The Vultr Container Registry credentials endpoint (`OPTIONS
/// /v2/registry/{id}/docker-credentials`), served under `/vultr`.
public final class VultrEmulator: Sendable {
    public static let pathPrefix = "/vultr"

    public struct Registry: Sendable {
        public var host: String
        public var name: String
        public init(host: String, name: String) {
            self.host = host
            self.name = name
        }
    }

    private struct State {
        var apiKeys: Set<String>
        var registries: [String: Registry]
        var failures: [Int] = []
        var issued = 0
        var lastExpirySeconds: Int?
        /// Docker credentials handed out: username → (password, registry, expiry; nil never expires).
        var dockerCredentials: [String: (password: String, registry: Registry, expiresAt: Date?)] = [:]
    }
    private let state: Mutex<State>
    /// When credentials are issued, for their expiry.
    private let now: @Sendable () -> Date

    init(apiKey: String, registryID: String, registry: Registry, now: @escaping @Sendable () -> Date = { Date() }) {
        self.now = now
        state = Mutex(State(apiKeys: [apiKey], registries: [registryID: registry]))
    }

    public func addRegistry(id: String, _ r: Registry) { state.withLock { $0.registries[id] = r } }
    public func acceptAPIKey(_ key: String) { _ = state.withLock { $0.apiKeys.insert(key) } }
    /// The next answer fails with this HTTP status (500, 503, …).
    public func failNext(status: Int) { state.withLock { $0.failures.append(status) } }
    public var issuedCount: Int { state.withLock { $0.issued } }
    /// The `expiry_seconds` of the last request, to check callers always send one.
    public var lastExpirySeconds: Int? { state.withLock { $0.lastExpirySeconds } }

    /// The registry served at `host`, if Vultr hosts one there (its repositories are private).
    public func registry(host: String) -> Registry? { state.withLock { $0.registries.values.first { $0.host == host } } }

    /// Whether these are Docker credentials this emulator issued for `host`, unexpired at `now`.
    /// `expiry_seconds` 0 or absent never expires (the API spec and vultr-cli; k8s-notes.md §9).
    public func acceptsDockerCredentials(host: String, username: String, password: String, now: Date) -> Bool {
        state.withLock { s in
            guard let c = s.dockerCredentials[username], c.registry.host == host else { return false }
            if let expiry = c.expiresAt, now >= expiry { return false }
            return constantTimeEquals(c.password, password)
        }
    }

    /// The registry (host and name) the credentials with this username were issued for.
    func dockerCredentialsRegistry(username: String) -> Registry? { state.withLock { $0.dockerCredentials[username]?.registry } }

    func handle(method: String, path: String, query: [String: String], authorization: String?) -> KubetraceAPIEmulator.Answer {
        func err(_ status: Int, _ message: String) -> KubetraceAPIEmulator.Answer {
            .init(status: status, body: JSONValue.object(["error": .string(message), "status": .int(status)]).jsonBytes())
        }
        let parts = path.dropFirst(Self.pathPrefix.count).split(separator: "/")
        guard parts.count == 4, parts[0] == "v2", parts[1] == "registry", parts[3] == "docker-credentials" else {
            return err(404, "Invalid route")
        }
        guard method == "OPTIONS" else { return err(405, "Method not allowed") }
        let key = authorization.flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        return state.withLock { s in
            if !s.failures.isEmpty { return err(s.failures.removeFirst(), "Internal server error") }
            guard let key, s.apiKeys.contains(key) else { return err(401, "Invalid API token.") }
            guard let registry = s.registries[String(parts[2])] else { return err(404, "Container registry not found.") }
            let expiry = query["expiry_seconds"].flatMap(Int.init)
            s.lastExpirySeconds = expiry
            s.issued += 1
            let user = "kt-\(registry.name)-\(s.issued)"
            let pass = UUID().uuidString
            s.dockerCredentials[user] = (pass, registry, expiry.flatMap { $0 > 0 ? self.now().addingTimeInterval(TimeInterval($0)) : nil })
            let auth = Data("\(user):\(pass)".utf8).base64EncodedString()
            return .init(status: 200, body: JSONValue.object(["auths": .object([registry.host: .object(["auth": .string(auth)])])]).jsonBytes())
        }
    }
}

/// Compares secrets without an early exit, so timing does not tell how much of a guess was right.
func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    guard x.count == y.count else { return false }
    var diff: UInt8 = 0
    for i in x.indices { diff |= x[i] ^ y[i] }
    return diff == 0
}
