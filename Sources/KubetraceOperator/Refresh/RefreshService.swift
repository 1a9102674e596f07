public import Foundation
public import KubeClient
import KubetraceFormats
public import KubeRuntime
public import Logging
import AsyncAlgorithms
import Synchronization

/// Where the read-only user's token comes from.
public enum TokenSource: Sendable {
    /// SPEC §4: the Kubetrace API's token:refresh.
    case kubetraceAPI(baseURL: String, tls: TLSSettings, clusterID: String)
    /// Self-hosted: Kubernetes TokenRequest for the read-only ServiceAccount.
    case tokenRequest(audiences: [String], lifetimeSeconds: Int)
}

public struct RefreshConfiguration: Sendable {
    public var names = ObjectNames()
    public var source: TokenSource
    public var policy = RefreshPolicy()
    /// `OPERATOR_TOKEN_FILE`, else Secret `kubetrace-operator`, else `$CREDENTIALS_DIRECTORY/operator_token`.
    public var operatorTokenFile: String?
    /// Where `operatorTokenFile` comes from, and so where a token the Kubetrace API rotates is kept.
    public var operatorTokenFileOrigin = OperatorTokenFileOrigin.hostFile
    public var credentialsDirectory: String?
    /// Vultr registry credentials minted at run time (with `vultr_api_key` and `registry_id` in the operator Secret).
    public var vultr: (baseURL: String, tls: TLSSettings)?
    public var registryHost = "blr.vultrcr.com"
    public var registryLifetimeSeconds = 86_400
    public var instance = ProcessInfo.processInfo.hostName
    /// Where the loops report their state for `STATUS=`.
    public var status: OperatorStatus?

    public init(source: TokenSource) { self.source = source }
}

/// Where `OPERATOR_TOKEN_FILE` comes from. A token the Kubetrace API rotates must be kept where
/// the operator reads it from, or the next start (and, once the old token is revoked, every
/// refresh) uses a token the API no longer accepts.
public enum OperatorTokenFileOrigin: Sendable, Equatable {
    /// In cluster: the file is Secret `kubetrace-operator` as the kubelet last projected it, up
    /// to its sync period (a minute or more) behind. The Secret itself is read first (the watch
    /// keeps it), so a replica that becomes leader right after a rotation never sends the
    /// token the file still holds; the file is the fallback when the Secret cannot be read. A
    /// rotated token is written to the Secret.
    case secretVolume
    /// Out of cluster: a file on the host. A rotated token replaces it (written whole, then
    /// renamed); if it cannot be written, the token is kept in memory and a warning says why.
    case hostFile
}

/// The refreshers of SPEC §5 for one cluster, run until cancelled.
public struct RefreshService: Sendable {
    let client: KubeClient
    let config: RefreshConfiguration
    let logger: Logger
    /// Read for every schedule, expiry and `refreshed-at` stamp: a test can run it in virtual time.
    let clock: RuntimeClock
    /// The loops' jitter.
    let random: RandomSource
    private let writer: SecretWriter
    private let events: EventRecorder
    /// What this process last wrote into each managed key, so its own writes (whose
    /// watch events can arrive before the write call returns) never count as outside changes.
    private let ownWrites = OwnWrites()
    /// The operator Secret's `operator_token` as the watch last saw it (nil: not seen, or none).
    private let cachedOperatorToken = CachedValue<SecretString>()
    /// The running loops, so a reload (SIGHUP) can make them re-read their credentials.
    private let loops = RunningLoops()
    /// Out of cluster: a rotated token that could not be written to `operatorTokenFile`, and
    /// what the file held then (it is used while the file still holds that).
    private let rotationOverFile = CachedValue<PendingRotation>()
    /// A rotated token not yet written to the operator Secret (the write failed): used before
    /// anything the watch says, and written again before the next refresh.
    private let unsavedRotation = CachedValue<UnsavedRotation>()

    struct PendingRotation: Sendable {
        /// What the file held when the API rotated the token.
        var replaced: String
        var rotated: SecretString
    }

    struct UnsavedRotation: Sendable {
        var token: SecretString
        var expiresAt: Date?
    }

    public init(client: KubeClient, configuration: RefreshConfiguration, logger: Logger,
                clock: RuntimeClock = .system, random: RandomSource = .system) {
        self.client = client
        self.config = configuration
        self.logger = logger
        self.clock = clock
        self.random = random
        writer = SecretWriter(client: client)
        events = EventRecorder(client: client, reporter: .kubetraceOperator(instance: configuration.instance), logger: logger)
    }

    private var ns: String { config.names.namespace }

    public func run() async throws {
        let kubeconfigLoop = CredentialLoop(
            name: "kubeconfig-token", policy: config.policy, logger: logger, clock: clock, random: random,
            current: { await self.currentKubeconfigToken() },
            refresh: { try await self.refreshKubeconfigToken() },
            onEvent: { reason, note, warning in await self.event(self.config.names.kubeconfigSecret, reason, note, warning) },
            report: { [status = config.status] ok, next in status?.report("kubeconfig-token", ok: ok, next: next) })
        let registryLoop: CredentialLoop? = config.vultr == nil ? nil : CredentialLoop(
            name: "registry-credentials", policy: config.policy, logger: logger, clock: clock, random: random,
            current: { await self.currentRegistryExpiry() },
            refresh: { try await self.refreshRegistry() },
            onEvent: { reason, note, warning in await self.event(self.config.names.registrySecret, reason, note, warning) },
            report: { [status = config.status] ok, next in status?.report("registry-credentials", ok: ok, next: next) })
        loops.set([kubeconfigLoop] + (registryLoop.map { [$0] } ?? []))
        defer { loops.set([]) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.events.run() }
            group.addTask { await kubeconfigLoop.run() }
            if let registryLoop { group.addTask { await registryLoop.run() } }
            group.addTask { try await self.watchForOutsideChanges(kubeconfig: kubeconfigLoop, registry: registryLoop) }
            try await group.next()
            group.cancelAll()
        }
    }

    /// SIGHUP: every loop re-reads its credential now and reschedules.
    public func reload() { loops.current.forEach { $0.externalChange() } }

    // MARK: the kubeconfig Secret's token

    func currentKubeconfigToken() async -> RefreshResult? {
        guard let secret = try? await client.get(Secret.self, namespace: ns, name: config.names.kubeconfigSecret) else { return nil }
        return ReadOnlyKubeconfig.tokenFacts(secret)
    }

    func refreshKubeconfigToken() async throws -> RefreshResult {
        let existing = try? await client.get(Secret.self, namespace: ns, name: config.names.kubeconfigSecret)
        let facts = existing?.data?["kubeconfig"].map { ReadOnlyKubeconfig.clusterFacts($0.string) } ?? (server: nil, caData: nil)
        let currentExpiry = existing.flatMap(ReadOnlyKubeconfig.tokenFacts)?.expiresAt
        switch config.source {
        case .kubetraceAPI(let baseURL, let tls, let clusterID):
            let api = KubetraceAPIClient(endpoint: ExternalEndpoint(baseURL: baseURL, tls: tls), clusterID: clusterID,
                                         kubeconfigSecret: (ns, config.names.kubeconfigSecret))
            // A rotation whose Secret write failed last time is stored first.
            await saveRotation()
            let operatorToken = try await self.operatorToken()
            let answer = try await api.refresh(operatorToken: operatorToken, currentExpiry: currentExpiry)
            // The kubeconfig first: it is what the refresh is for.
            try await writeKubeconfig(token: answer.token, expiresAt: answer.expiresAt,
                                      server: answer.server ?? facts.server ?? client.connection.server,
                                      caData: answer.certificateAuthorityData ?? facts.caData)
            if let rotated = answer.operatorToken { await rotateOperatorToken(rotated, expiresAt: answer.operatorTokenExpiresAt) }
            var due = answer.expiresAt
            if let r = answer.registry {
                try await writePullSecret(host: r.server, username: r.username, password: r.password, expiresAt: r.expiresAt)
                // One call renews both: schedule it before whichever lapses first.
                if let e = r.expiresAt { due = min(due, e) }
            }
            if let e = answer.operatorTokenExpiresAt { due = min(due, e) }
            return RefreshResult(issuedAt: answer.issuedAt, expiresAt: due)
        case .tokenRequest(let audiences, let lifetime):
            let minted = try await client.requestToken(namespace: ns, serviceAccount: config.names.readOnlyServiceAccount,
                                                       TokenRequest(audiences: audiences, expirationSeconds: max(lifetime, 600)))
            guard let status = minted.status, !status.token.value.isEmpty, let expiry = RFC3339.parse(status.expirationTimestamp) else {
                throw RefreshFailure(kind: .badAnswer, message: "TokenRequest answer has no token or expirationTimestamp")
            }
            try await writeKubeconfig(token: status.token, expiresAt: expiry, server: facts.server ?? client.connection.server,
                                      caData: facts.caData ?? client.connection.tls.certificateAuthorityPEM.map { Data($0.utf8).base64EncodedString() })
            return RefreshResult(issuedAt: clock.date, expiresAt: expiry)
        }
    }

    private func writeKubeconfig(token: SecretString, expiresAt: Date, server: String, caData: String?) async throws {
        let names = config.names
        let document = ReadOnlyKubeconfig.render(server: server, certificateAuthorityData: caData, namespace: ns, user: names.readOnlyServiceAccount, token: token)
        ownWrites.expect(names.kubeconfigSecret, SecretBytes(document))
        let now = clock.date
        try await writer.update(namespace: ns, name: names.kubeconfigSecret, create: {
            Secret(metadata: ObjectMeta(name: names.kubeconfigSecret, namespace: self.ns, labels: ["app.kubernetes.io/managed-by": "kubetrace-operator"]), type: "Opaque")
        }) { secret in
            var data = secret.data ?? [:]
            data["kubeconfig"] = SecretBytes(document)
            secret.data = data
            var annotations = secret.metadata.annotations ?? [:]
            annotations[ReadOnlyKubeconfig.expiryAnnotation] = RFC3339.format(expiresAt)
            annotations[Self.refreshedAtAnnotation] = RFC3339.format(now)
            secret.metadata.annotations = annotations
        }
    }

    /// When the operator last wrote a credential into its Secret (for `status`).
    static let refreshedAtAnnotation = "kubetrace.net/refreshed-at"

    // MARK: the operator token

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
    private func rotateOperatorToken(_ token: SecretString, expiresAt: Date?) async {
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
    private func saveRotation() async {
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

    // MARK: registry credentials

    func currentRegistryExpiry() async -> RefreshResult? {
        guard let s = try? await client.get(Secret.self, namespace: ns, name: config.names.registrySecret) else { return nil }
        return RefreshResult(issuedAt: nil, expiresAt: s.metadata.annotations?["kubetrace.net/registry-expires-at"].flatMap(RFC3339.parse))
    }

    func refreshRegistry() async throws -> RefreshResult {
        guard let vultr = config.vultr else { return RefreshResult() }
        let secret = try await client.get(Secret.self, namespace: ns, name: config.names.operatorSecret)
        guard let key = secret.data?["vultr_api_key"], let id = secret.data?["registry_id"] else {
            throw RefreshFailure(kind: .badAnswer, message: "Secret \(ns)/\(config.names.operatorSecret) has no vultr_api_key and registry_id")
        }
        // Its failures are RefreshFailures already: a refused key is `.rejected`, whatever the message says.
        let creds = try await VultrRegistry.dockerCredentials(ExternalEndpoint(baseURL: vultr.baseURL, tls: vultr.tls),
                                                              apiKey: SecretString(key.string.trimmingCharacters(in: .whitespacesAndNewlines)),
                                                              registryID: id.string.trimmingCharacters(in: .whitespacesAndNewlines),
                                                              host: config.registryHost, expirySeconds: config.registryLifetimeSeconds)
        let issuedAt = clock.date
        let expiresAt = issuedAt.addingTimeInterval(TimeInterval(config.registryLifetimeSeconds))
        try await writePullSecret(host: config.registryHost, username: creds.username, password: creds.password, expiresAt: expiresAt)
        return RefreshResult(issuedAt: issuedAt, expiresAt: expiresAt)
    }

    private func writePullSecret(host: String, username: String, password: SecretString, expiresAt: Date?) async throws {
        let names = config.names
        let auth = Data("\(username):\(password.value)".utf8).base64EncodedString()
        let doc = JSONValue.object(["auths": .object([host: .object(["username": .string(username), "password": .string(password.value), "auth": .string(auth)])])])
        ownWrites.expect(names.registrySecret, SecretBytes(doc.jsonBytes()))
        let now = clock.date
        try await writer.update(namespace: ns, name: names.registrySecret, create: {
            Secret(metadata: ObjectMeta(name: names.registrySecret, namespace: self.ns, labels: ["app.kubernetes.io/managed-by": "kubetrace-operator"]), type: "kubernetes.io/dockerconfigjson")
        }) { secret in
            secret.type = "kubernetes.io/dockerconfigjson"
            secret.data = [".dockerconfigjson": SecretBytes(doc.jsonBytes())]
            var a = secret.metadata.annotations ?? [:]
            if let expiresAt { a["kubetrace.net/registry-expires-at"] = RFC3339.format(expiresAt) } else { a["kubetrace.net/registry-expires-at"] = nil }
            a[Self.refreshedAtAnnotation] = RFC3339.format(now)
            secret.metadata.annotations = a
        }
    }

    // MARK: outside changes

    /// A change to the kubeconfig or pull Secret that this process did not write reschedules its loop.
    private func watchForOutsideChanges(kubeconfig: CredentialLoop, registry: CredentialLoop?) async throws {
        var options = ReflectorOptions(namespace: ns)
        options.labelSelector = nil
        let reflector = Reflector<ManagedSecret>(client: client, options: options, logger: logger)
        let channel = AsyncChannel<[WatchEvent<ManagedSecret>]>()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await reflector.run(into: channel) }
            var synced = false
            for await batch in channel {
                for event in batch {
                    // The operator token, from the watch: a refresh then needs no GET of its own.
                    switch event {
                    case .added(let s) where s.meta.name == config.names.operatorSecret, .modified(let s) where s.meta.name == config.names.operatorSecret:
                        let t = s.values["operator_token"].map { $0.string.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
                        cachedOperatorToken.set(t.isEmpty ? nil : SecretString(t))
                    case .deleted(let s) where s.meta.name == config.names.operatorSecret:
                        cachedOperatorToken.set(nil)
                    default: break
                    }
                    guard case .modified(let s) = event, synced else {
                        if case .synced = event { synced = true }
                        continue
                    }
                    if s.meta.name == config.names.kubeconfigSecret, !ownWrites.isOwn(s.meta.name, s.values["kubeconfig"]) { kubeconfig.externalChange() }
                    if s.meta.name == config.names.registrySecret, !ownWrites.isOwn(s.meta.name, s.values[".dockerconfigjson"]) { registry?.externalChange() }
                }
            }
        }
    }

    private func event(_ secretName: String, _ reason: String, _ note: String, _ warning: Bool) async {
        events.record(EventRecorder.Note(regarding: ObjectReference(apiVersion: "v1", kind: "Secret", namespace: ns, name: secretName),
                                         reason: reason, action: "Refresh", note: note, warning: warning))
    }
}

/// One value shared between the watch that keeps it and the loops that read it.
final class CachedValue<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    func get() -> Value? { value.withLock { $0 } }
    func set(_ v: Value?) { value.withLock { $0 = v } }
}

final class OwnWrites: Sendable {
    private let content = Mutex<[String: SecretBytes]>([:])
    /// Called before writing `value` to the managed key of Secret `name`.
    func expect(_ name: String, _ value: SecretBytes) { content.withLock { $0[name] = value } }
    func isOwn(_ name: String, _ value: SecretBytes?) -> Bool { content.withLock { $0[name] } == value && value != nil }
}

final class RunningLoops: Sendable {
    private let loops = Mutex<[CredentialLoop]>([])
    func set(_ value: [CredentialLoop]) { loops.withLock { $0 = value } }
    var current: [CredentialLoop] { loops.withLock { $0 } }
}
