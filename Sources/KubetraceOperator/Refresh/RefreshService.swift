import Foundation
public import KubeClient
import KubetraceFormats
public import KubeRuntime
public import Logging

/// The refreshers of SPEC §5 for one cluster, run until cancelled.
public struct RefreshService: Sendable {
    let client: KubeClient
    /// The repair side's watch of the operator namespace's Secrets, when there is one.
    let secretFeed: SecretFeed?
    let config: RefreshConfiguration
    let logger: Logger
    /// Read for every schedule, expiry and `refreshed-at` stamp: a test can run it in virtual time.
    let clock: RuntimeClock
    /// The loops' jitter.
    let random: RandomSource
    let writer: SecretWriter
    let events: EventRecorder
    /// This service made its recorder, so it runs it (alone, as in tests); otherwise its owner does.
    let ownsEvents: Bool
    /// What this process last wrote into each managed key, so its own writes (whose
    /// watch events can arrive before the write call returns) never count as outside changes.
    let ownWrites = OwnWrites()
    /// The operator Secret's `operator_token` as the watch last saw it (nil: not seen, or none).
    let cachedOperatorToken = CachedValue<SecretString>()
    /// The running loops, so a reload (SIGHUP) can make them re-read their credentials.
    let loops = RunningLoops()
    /// Out of cluster: a rotated token that could not be written to `operatorTokenFile`, and
    /// what the file held then (it is used while the file still holds that).
    let rotationOverFile = CachedValue<PendingRotation>()
    /// A rotated token not yet written to the operator Secret (the write failed): used before
    /// anything the watch says, and written again before the next refresh.
    let unsavedRotation = CachedValue<UnsavedRotation>()

    public init(client: KubeClient, configuration: RefreshConfiguration, logger: Logger,
                clock: RuntimeClock = .system, random: RandomSource = .system) {
        self.init(client: client, configuration: configuration, logger: logger, clock: clock, random: random, secretFeed: nil, events: nil)
    }

    /// With `secretFeed`, the operator namespace's Secrets come from that watch (the repair side's);
    /// with `events`, Events go to that recorder, which its owner runs (the daemon's one recorder).
    init(client: KubeClient, configuration: RefreshConfiguration, logger: Logger,
         clock: RuntimeClock = .system, random: RandomSource = .system, secretFeed: SecretFeed?, events: EventRecorder?) {
        self.secretFeed = secretFeed
        self.ownsEvents = events == nil
        self.client = client
        self.config = configuration
        self.logger = logger
        self.clock = clock
        self.random = random
        writer = SecretWriter(client: client)
        self.events = events ?? EventRecorder(client: client, reporter: .kubetraceOperator(instance: configuration.instance), logger: logger)
    }

    var ns: String { config.names.namespace }

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
            if ownsEvents { group.addTask { await self.events.run() } }
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

    private func event(_ secretName: String, _ reason: String, _ note: String, _ warning: Bool) async {
        events.record(EventRecorder.Note(regarding: ObjectReference(apiVersion: "v1", kind: "Secret", namespace: ns, name: secretName),
                                         reason: reason, action: "Refresh", note: note, warning: warning))
    }
}
