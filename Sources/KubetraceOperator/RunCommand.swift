import ArgumentParser
import Foundation
import KubeRuntime
import Metrics
import KubeClient
import Logging
import ServiceLifecycle

/// `kubetrace-operator run`: the daemon.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the operator (the daemon).")

    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Kubetrace API base URL, https (env API_URL).") var apiUrl: String?
    @Option(help: "This cluster's id (env CLUSTER_ID).") var clusterId: String?
    @Flag(help: "Allow a plain http API_URL on a loopback address.") var allowInsecureHttp = false
    @Option(help: ArgumentHelp("Operator token file (env OPERATOR_TOKEN_FILE).", valueName: "file")) var operatorTokenFile: String?
    @Option(help: ArgumentHelp("The CA (PEM) the Kubetrace and Vultr APIs must be signed by, instead of the system store.", valueName: "file")) var caFile: String?
    @Option(help: "Where the read-only token comes from: api (the Kubetrace API) or tokenrequest (Kubernetes TokenRequest) (env TOKEN_SOURCE; default api when API_URL is set).") var tokenSource: String?
    @Option(help: "TokenRequest audience (repeatable; default the API server's).") var tokenAudience: [String] = []
    @Option(help: "TokenRequest lifetime, at least 10m.") var tokenLifetime = "1h"
    @Option(help: "Refresh credentials of unknown issue time this long before expiry (env SAFETY_MARGIN).") var safetyMargin: String?
    @Option(help: "Refresh credentials with no known expiry this often (env REFRESH_INTERVAL).") var refreshInterval: String?
    @Option(help: "Registry host of the pull Secret.") var registry = "blr.vultrcr.com"
    @Option(help: "Vultr API base URL (used when the operator Secret holds vultr_api_key and registry_id).") var vultrApiUrl = "https://api.vultr.com"
    @Option(help: "Lifetime asked of Vultr for pull credentials.") var registryLifetime = "24h"
    @Option(help: "Opt-in namespaces beyond the operator's own: a,b,c or selector=LABEL_SELECTOR (env TARGET_NAMESPACES).") var targetNamespaces: String?
    @Option(help: "ServiceAccounts kept referencing the pull Secret in target namespaces, comma-separated (env TARGET_SERVICE_ACCOUNTS; default default).") var targetServiceAccounts: String?
    @Option(help: "Delete a controller-owned Pod that still backs off after the repair, once: true or false (env RESTART_STUCK_PODS; default true).") var restartStuckPods: String?
    @Option(help: "Leader election on the Lease: true or false (env LEADER_ELECT; default true).") var leaderElect: String?
    @Option(help: "Leader election: lease duration (env LEASE_DURATION; default 15s).") var leaseDuration: String?
    @Option(help: "Leader election: renew deadline (env RENEW_DEADLINE; default 10s).") var renewDeadline: String?
    @Option(help: "Leader election: retry period (env RETRY_PERIOD; default 2s).") var retryPeriod: String?
    @Option(help: "Resume a watch that delivered no byte for this long (env WATCH_IDLE_TIMEOUT; default 90s).") var watchIdleTimeout: String?
    @Option(help: "Log format: auto, json, text or journald (env LOG_FORMAT; default auto).") var logFormat: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical (env LOG_LEVEL; default info).") var logLevel: String?
    @Option(help: "Listener for /healthz and /readyz: host:port, :port, or off (env HEALTH_ADDR; default :8081 in-cluster, off otherwise).") var healthAddr: String?
    @Option(help: "Listener for /metrics: host:port, :port, or off (env METRICS_ADDR; default :8080 in-cluster, off otherwise).") var metricsAddr: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        // Before any metric is created: swift-metrics binds handlers at creation.
        let metrics = OperatorMetrics()
        metrics.bootstrap()
        let inCluster = env["KUBERNETES_SERVICE_HOST"] != nil
        let healthAddress = try ListenAddress.parse(healthAddr ?? env["HEALTH_ADDR"] ?? (inCluster ? ":8081" : ""), flag: healthAddr != nil ? "--health-addr" : "HEALTH_ADDR")
        let metricsAddress = try ListenAddress.parse(metricsAddr ?? env["METRICS_ADDR"] ?? (inCluster ? ":8080" : ""), flag: metricsAddr != nil ? "--metrics-addr" : "METRICS_ADDR")
        try healthAddress?.checkAvailable(flag: healthAddr != nil ? "--health-addr" : "HEALTH_ADDR")
        if metricsAddress != healthAddress || metricsAddress?.port == 0 { try metricsAddress?.checkAvailable(flag: metricsAddr != nil ? "--metrics-addr" : "METRICS_ADDR") }
        var connection = try cluster.loadConnection()
        // Out of cluster with a state directory: the operator's own ServiceAccount token (from
        // `identity`) is kept in it and renewed there before it expires.
        var names = ObjectNames()
        if let ns = cluster.namespace ?? env["POD_NAMESPACE"], !ns.isEmpty { names.namespace = ns }
        var ownToken: (file: String, claims: OwnToken.Claims)?
        if !inCluster, let state = OwnToken.stateDirectory(env), let (adopted, claims) = try OwnToken.adopt(connection, stateDirectory: state, names: names) {
            connection = adopted
            ownToken = (OwnToken.tokenFile(stateDirectory: state), claims)
        }
        let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")

        func duration(_ value: String?, _ flag: String, _ envName: String) throws -> TimeInterval? {
            guard let v = value ?? env[envName] else { return nil }
            guard let d = DurationParser.parse(v) else { throw CLIError.configuration("\(value != nil ? flag : envName): \"\(v)\" is not a duration (e.g. 5m, 90s)") }
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        let rawAPI = apiUrl ?? env["API_URL"]
        let source: TokenSource
        let sourceChoice = tokenSource ?? env["TOKEN_SOURCE"] ?? (rawAPI == nil ? "tokenrequest" : "api")
        // Said at start (below): which source, and what chose it.
        let sourceReason = tokenSource != nil ? "--token-source \(sourceChoice)" : env["TOKEN_SOURCE"] != nil ? "TOKEN_SOURCE=\(sourceChoice)"
            : rawAPI == nil ? "API_URL is not set" : "API_URL is set"
        switch sourceChoice {
        case "api":
            guard let rawAPI else { throw CLIError.configuration("--api-url (or API_URL) is required with --token-source api") }
            let api = try ExternalEndpoint.validated(rawAPI, name: apiUrl != nil ? "--api-url" : "API_URL", allowInsecure: allowInsecureHttp, caFile: caFile)
            guard let id = clusterId ?? env["CLUSTER_ID"], !id.isEmpty else { throw CLIError.configuration("--cluster-id (or CLUSTER_ID) is required") }
            source = .kubetraceAPI(baseURL: api.baseURL, tls: api.tls, clusterID: id)
        case "tokenrequest":
            guard let lifetime = try duration(tokenLifetime, "--token-lifetime", "TOKEN_LIFETIME"), lifetime >= 600 else {
                throw CLIError.configuration("--token-lifetime: must be at least 10m (the API server refuses shorter TokenRequests)")
            }
            source = .tokenRequest(audiences: tokenAudience, lifetimeSeconds: Int(lifetime))
        case let other:
            throw CLIError.configuration("--token-source: \"\(other)\" is not api or tokenrequest")
        }
        var config = RefreshConfiguration(source: source)
        config.names = names
        config.operatorTokenFile = operatorTokenFile ?? env["OPERATOR_TOKEN_FILE"]
        // In cluster the file is the operator Secret mounted by the kubelet: rotations go to the Secret.
        config.operatorTokenFileOrigin = inCluster ? .secretVolume : .hostFile
        config.credentialsDirectory = env["CREDENTIALS_DIRECTORY"]
        config.registryHost = registry
        if let m = try duration(safetyMargin, "--safety-margin", "SAFETY_MARGIN") { config.policy.safetyMargin = m }
        if let r = try duration(refreshInterval, "--refresh-interval", "REFRESH_INTERVAL") { config.policy.refreshInterval = r }
        guard let registryLifetime = try duration(registryLifetime, "--registry-lifetime", "REGISTRY_LIFETIME"), registryLifetime >= 60 else {
            throw CLIError.configuration("--registry-lifetime: must be at least 1m")
        }
        config.registryLifetimeSeconds = Int(registryLifetime)
        if let file = config.operatorTokenFile {
            // Read now, so an unreadable, empty or multi-line token is a configuration error (exit 2)
            // before the first request, not a refresh failure after it.
            _ = try readCredentialFile(file, flag: operatorTokenFile != nil ? "--operator-token-file" : "OPERATOR_TOKEN_FILE")
        }

        let vultr = try ExternalEndpoint.validated(vultrApiUrl, name: "--vultr-api-url", allowInsecure: allowInsecureHttp, caFile: caFile)
        guard TargetNamespaces.isDNSLabel(names.namespace) else {
            throw CLIError.configuration("\(cluster.namespace != nil ? "--namespace" : "POD_NAMESPACE"): \"\(names.namespace)\" is not a namespace name (lower-case letters, digits and '-', at most 63)")
        }
        guard RegistryHost.isValid(registry) else {
            throw CLIError.configuration("--registry: \"\(registry)\" is not a registry host (host or host:port, no scheme or path)")
        }

        var logger = Logger(label: "kubetrace.operator")
        if case .kubetraceAPI(_, _, let id) = source { logger[metadataKey: "cluster_id"] = "\(id)" }
        let status = OperatorStatus()
        config.status = status
        var repairConfig = RepairConfiguration()
        repairConfig.names = names
        repairConfig.registryHost = registry
        repairConfig.instance = config.instance
        let targetFlag = targetNamespaces != nil ? "--target-namespaces" : "TARGET_NAMESPACES"
        if let raw = targetNamespaces ?? env["TARGET_NAMESPACES"] {
            repairConfig.targetNamespaces = try TargetNamespaces.parse(raw, flag: targetFlag)
        }
        if let raw = targetServiceAccounts ?? env["TARGET_SERVICE_ACCOUNTS"] {
            let flag = targetServiceAccounts != nil ? "--target-service-accounts" : "TARGET_SERVICE_ACCOUNTS"
            let list = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for name in list where !TargetNamespaces.isDNSLabel(name) && !name.contains(".") {
                throw CLIError.configuration("\(flag): \"\(name)\" is not a ServiceAccount name")
            }
            guard !list.isEmpty else { throw CLIError.configuration("\(flag): name at least one ServiceAccount") }
            repairConfig.targetServiceAccounts = list
        }
        repairConfig.restartStuckPods = try boolean(restartStuckPods, "--restart-stuck-pods", "RESTART_STUCK_PODS", env) ?? true
        let idle = try duration(watchIdleTimeout, "--watch-idle-timeout", "WATCH_IDLE_TIMEOUT") ?? 90
        guard idle >= 1 else { throw CLIError.configuration("--watch-idle-timeout: must be at least 1s") }

        var elector: LeaderElector?
        var watchHealth: WatchHealthBox?
        if try boolean(leaderElect, "--leader-elect", "LEADER_ELECT", env) ?? true {
            var timing = LeaderElector.Timing()
            if let d = try duration(leaseDuration, "--lease-duration", "LEASE_DURATION") { timing.leaseDuration = d }
            if let d = try duration(renewDeadline, "--renew-deadline", "RENEW_DEADLINE") { timing.renewDeadline = d }
            if let d = try duration(retryPeriod, "--retry-period", "RETRY_PERIOD") { timing.retryPeriod = d }
            guard timing.leaseDuration > timing.renewDeadline, timing.renewDeadline > timing.retryPeriod, timing.retryPeriod > 0 else {
                throw CLIError.configuration("--lease-duration, --renew-deadline, --retry-period: need lease duration > renew deadline > retry period > 0 (defaults 15s, 10s, 2s)")
            }
            let identity = "\(config.instance)_\(UUID().uuidString.lowercased().prefix(8))"
            let health = WatchHealthBox()
            let leaderGauge = Gauge(label: "kubetrace_leader", dimensions: [])
            elector = LeaderElector(client: client, namespace: names.namespace, name: names.lease, identity: identity, timing: timing, logger: logger,
                                    leaseLabels: ["app.kubernetes.io/managed-by": "kubetrace-operator"],
                                    annotations: { health.annotations() },
                                    onChange: { leaderGauge.record($0 ? 1 : 0) })
            watchHealth = health
        } else {
            // Without election this process always leads.
            Gauge(label: "kubetrace_leader", dimensions: []).record(1)
        }

        // Every flag is checked above, before the first request: a typo never waits on the network.
        do {
            let version = try await client.serverVersion()
            logger.info("connected to the API server", metadata: ["server": "\(connection.server)", "version": "\(version)", "source": "\(connection.source)", "k8s.namespace": "\(names.namespace)"])
        } catch let e as KubeClientError where e.code == .configuration {
            // The kubeconfig's credentials cannot be had (an exec plugin failed or printed garbage).
            throw CLIError.configuration("\(connection.source): \(e.message)")
        } catch {
            throw CLIError.runtime("cannot reach the API server of \(connection.source): \(error)")
        }
        // Said once connected, so a configuration error (a flag, the kubeconfig's credentials) stays the only line.
        logger.info("token sources", metadata: Self.tokenSourceFacts(source: source, reason: sourceReason, config: config, inCluster: inCluster,
                                                                      fileFlag: operatorTokenFile != nil ? "--operator-token-file" : "OPERATOR_TOKEN_FILE"))
        // Vultr re-minting is on when the operator Secret holds its key and registry id. A failed
        // read is not "no Secret": it is retried, and the start fails if it keeps failing.
        var operatorSecret: Secret?
        for attempt in 1...4 {
            do {
                operatorSecret = try await client.get(Secret.self, namespace: names.namespace, name: names.operatorSecret)
                break
            } catch let e as KubeClientError where e.httpStatus == 404 || e.httpStatus == 403 {
                if e.httpStatus == 403 { logger.warning("cannot read the operator Secret; Vultr re-minting stays off", metadata: ["error": "\(e)"]) }
                break
            } catch {
                guard attempt < 4 else { throw CLIError.runtime("cannot read Secret \(names.namespace)/\(names.operatorSecret): \(error)") }
                try await Task.sleep(for: .seconds(attempt))
            }
        }
        if let secret = operatorSecret, secret.data?["vultr_api_key"] != nil, secret.data?["registry_id"] != nil {
            config.vultr = (vultr.baseURL, vultr.tls)
        }

        let refresh = RefreshService(client: client, configuration: config, logger: logger)
        var mint: (@Sendable () async throws -> Void)?
        if config.vultr != nil { mint = { _ = try await refresh.refreshRegistry() } }
        let idleTimeout = Duration.milliseconds(Int64(idle * 1000))
        let repair = RepairService(client: client, configuration: repairConfig, logger: logger, watchIdleTimeout: idleTimeout, fetchFresh: mint)
        watchHealth?.attach { repair.watchStats }
        let health = LoopHealth()
        let service = OperatorService(refresh: refresh, repair: repair, elector: elector, health: health, logger: logger)
        let notifier = SystemdNotifier(logger: logger)
        let systemd = SystemdService(notifier: notifier, repair: repair, elector: elector, status: status, health: health, reload: { [logger] in
            // SIGHUP: credential files are read again; the watches and their state stay.
            await client.credentials.invalidate()
            refresh.reload()
            logger.info("reloaded credential files", metadata: ["event": "reloaded"])
        }, logger: logger)
        let probes = HTTPEndpoints.Probes(
            healthy: { health.isHealthy() ? (true, "ok") : (false, "event loop not responding") },
            ready: { [elector] in
                guard repair.sync.allSynced else { return (false, "initial sync not complete") }
                guard let elector else { return (true, "ok") }
                if elector.isLeader { return (true, "ok: leader") }
                return elector.isHealthy ? (true, "ok: standby, leader is \(elector.holder ?? "unknown")") : (false, "cannot reach the Lease")
            },
            metrics: { metrics.render(watchers: repair.watchStats) })
        let http = HTTPEndpoints.services(health: healthAddress, metrics: metricsAddress, probes: probes, logger: logger)
        var services: [any Service] = [service, systemd] + http
        if let (file, claims) = ownToken {
            logger.info("renewing the operator's own token in the state directory", metadata: [
                "event": "own_token_adopted", "serviceaccount": "\(claims.namespace)/\(claims.serviceAccount)", "file": "\(file)",
                "expires_at": "\(RFC3339.format(claims.expiresAt))"])
            services.append(OwnTokenRenewal(client: client, tokenFile: file, logger: logger))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { notifier.flush() }
        try await group.run()
    }
}

/// `true`/`false` (and 1/0, yes/no, on/off) from a flag, else from the environment.
func boolean(_ value: String?, _ flag: String, _ envName: String?, _ env: [String: String]) throws -> Bool? {
    guard let v = value ?? envName.flatMap({ env[$0] }) else { return nil }
    switch v.lowercased() {
    case "true", "1", "yes", "on": return true
    case "false", "0", "no", "off": return false
    default: throw CLIError.configuration("\(value != nil ? flag : envName ?? flag): \"\(v)\" is not true or false")
    }
}

extension RunCommand {
    /// The start-up line that says where the read-only token comes from, why, and where the
    /// operator token is read from and a rotated one written to.
    static func tokenSourceFacts(source: TokenSource, reason: String, config: RefreshConfiguration, inCluster: Bool, fileFlag: String) -> Logger.Metadata {
        var facts: Logger.Metadata = ["token_source_reason": "\(reason)"]
        switch source {
        case .kubetraceAPI(let baseURL, _, _):
            facts["token_source"] = "kubetrace-api"
            facts["api_url"] = "\(baseURL)"
            let secret = "\(config.names.namespace)/\(config.names.operatorSecret)"
            if let file = config.operatorTokenFile {
                facts["operator_token"] = "file \(file) (\(fileFlag))"
                facts["operator_token_rotations"] = inCluster ? "Secret \(secret), which the kubelet projects into the file" : "the file"
            } else {
                facts["operator_token"] = config.credentialsDirectory.map { "Secret \(secret), else \($0)/operator_token" } ?? "Secret \(secret)"
                facts["operator_token_rotations"] = "Secret \(secret)"
            }
        case .tokenRequest(let audiences, let lifetime):
            facts["token_source"] = "tokenrequest"
            facts["k8s.serviceaccount"] = "\(config.names.namespace)/\(config.names.readOnlyServiceAccount)"
            facts["token_lifetime_s"] = "\(lifetime)"
            if !audiences.isEmpty { facts["token_audiences"] = "\(audiences.joined(separator: ","))" }
        }
        return facts
    }
}
