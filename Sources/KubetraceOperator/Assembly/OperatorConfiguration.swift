public import Foundation
public import KubeClient
public import KubeRuntime

/// Everything `run` needs, read from the flags and the environment and checked, in one
/// place, before the first request: a typo is a configuration error (exit 2) that never
/// waits on the network. Flags win over the environment variables they mirror (SPEC §3).
public struct OperatorConfiguration: Sendable {
    /// The cluster, with the operator's own renewed token when the state directory holds one.
    public var connection: ClusterConnection
    public var names: ObjectNames
    /// Running in a Pod (`KUBERNETES_SERVICE_HOST` is set).
    public var inCluster: Bool
    var healthAddress: ListenAddress?
    var metricsAddress: ListenAddress?
    public var refresh: RefreshConfiguration
    public var repair: RepairConfiguration
    /// Lease timing; nil when leader election is off (this process always leads).
    public var leaderElection: LeaderElector.Timing?
    public var watchIdleTimeout: Duration
    /// Where Vultr re-minting goes when the operator Secret holds its key and registry id.
    var vultr: ExternalEndpoint
    /// Out of cluster with a state directory: the operator's own token file, renewed there.
    var ownToken: (file: String, claims: OwnToken.Claims)?
    /// What chose the token source (said at start).
    var tokenSourceReason: String
    /// `--operator-token-file` or `OPERATOR_TOKEN_FILE`, whichever named the file.
    var operatorTokenFileSetting: String

    public init(flags: OperatorFlags, environment env: [String: String]) throws {
        inCluster = env["KUBERNETES_SERVICE_HOST"] != nil
        let healthFlag = flags.healthAddr != nil ? "--health-addr" : "HEALTH_ADDR"
        let metricsFlag = flags.metricsAddr != nil ? "--metrics-addr" : "METRICS_ADDR"
        healthAddress = try ListenAddress.parse(flags.healthAddr ?? env["HEALTH_ADDR"] ?? (inCluster ? ":8081" : ""), flag: healthFlag)
        metricsAddress = try ListenAddress.parse(flags.metricsAddr ?? env["METRICS_ADDR"] ?? (inCluster ? ":8080" : ""), flag: metricsFlag)
        try healthAddress?.checkAvailable(flag: healthFlag)
        if metricsAddress != healthAddress || metricsAddress?.port == 0 { try metricsAddress?.checkAvailable(flag: metricsFlag) }
        connection = try flags.cluster.loadConnection(environment: env)
        names = ObjectNames()
        if let ns = flags.cluster.namespace ?? env["POD_NAMESPACE"], !ns.isEmpty { names.namespace = ns }
        // Out of cluster with a state directory: the operator's own ServiceAccount token (from
        // `identity`) is kept in it and renewed there before it expires.
        if !inCluster, let state = OwnToken.stateDirectory(env), let (adopted, claims) = try OwnToken.adopt(connection, stateDirectory: state, names: names) {
            connection = adopted
            ownToken = (OwnToken.tokenFile(stateDirectory: state), claims)
        }

        func duration(_ value: String?, _ flag: String, _ envName: String) throws -> TimeInterval? {
            guard let v = value ?? env[envName] else { return nil }
            guard let d = DurationParser.parse(v) else { throw CLIError.configuration("\(value != nil ? flag : envName): \"\(v)\" is not a duration (e.g. 5m, 90s)") }
            return d.timeInterval
        }
        let rawAPI = flags.apiUrl ?? env["API_URL"]
        let source: TokenSource
        let sourceChoice = flags.tokenSource ?? env["TOKEN_SOURCE"] ?? (rawAPI == nil ? "tokenrequest" : "api")
        tokenSourceReason = flags.tokenSource != nil ? "--token-source \(sourceChoice)" : env["TOKEN_SOURCE"] != nil ? "TOKEN_SOURCE=\(sourceChoice)"
            : rawAPI == nil ? "API_URL is not set" : "API_URL is set"
        switch sourceChoice {
        case "api":
            guard let rawAPI else { throw CLIError.configuration("--api-url (or API_URL) is required with --token-source api") }
            let api = try ExternalEndpoint.validated(rawAPI, name: flags.apiUrl != nil ? "--api-url" : "API_URL", allowInsecure: flags.allowInsecureHttp, caFile: flags.caFile)
            guard let id = flags.clusterId ?? env["CLUSTER_ID"], !id.isEmpty else { throw CLIError.configuration("--cluster-id (or CLUSTER_ID) is required") }
            source = .kubetraceAPI(baseURL: api.baseURL, tls: api.tls, clusterID: id)
        case "tokenrequest":
            guard let lifetime = try duration(flags.tokenLifetime, "--token-lifetime", "TOKEN_LIFETIME"), lifetime >= 600 else {
                throw CLIError.configuration("--token-lifetime: must be at least 10m (the API server refuses shorter TokenRequests)")
            }
            source = .tokenRequest(audiences: flags.tokenAudience, lifetimeSeconds: Int(lifetime))
        case let other:
            throw CLIError.configuration("--token-source: \"\(other)\" is not api or tokenrequest")
        }
        operatorTokenFileSetting = flags.operatorTokenFile != nil ? "--operator-token-file" : "OPERATOR_TOKEN_FILE"
        refresh = RefreshConfiguration(source: source)
        refresh.names = names
        refresh.operatorTokenFile = flags.operatorTokenFile ?? env["OPERATOR_TOKEN_FILE"]
        // In cluster the file is the operator Secret mounted by the kubelet: rotations go to the Secret.
        refresh.operatorTokenFileOrigin = inCluster ? .secretVolume : .hostFile
        refresh.credentialsDirectory = env["CREDENTIALS_DIRECTORY"]
        refresh.registryHost = flags.registry
        if let m = try duration(flags.safetyMargin, "--safety-margin", "SAFETY_MARGIN") { refresh.policy.safetyMargin = m }
        if let r = try duration(flags.refreshInterval, "--refresh-interval", "REFRESH_INTERVAL") { refresh.policy.refreshInterval = r }
        guard let registryLifetime = try duration(flags.registryLifetime, "--registry-lifetime", "REGISTRY_LIFETIME"), registryLifetime >= 60 else {
            throw CLIError.configuration("--registry-lifetime: must be at least 1m")
        }
        refresh.registryLifetimeSeconds = Int(registryLifetime)
        if let file = refresh.operatorTokenFile {
            // Read now, so an unreadable, empty or multi-line token is a configuration error (exit 2)
            // before the first request, not a refresh failure after it.
            _ = try readCredentialFile(file, flag: operatorTokenFileSetting)
        }

        vultr = try ExternalEndpoint.validated(flags.vultrApiUrl, name: "--vultr-api-url", allowInsecure: flags.allowInsecureHttp, caFile: flags.caFile)
        guard TargetNamespaces.isDNSLabel(names.namespace) else {
            throw CLIError.configuration("\(flags.cluster.namespace != nil ? "--namespace" : "POD_NAMESPACE"): \"\(names.namespace)\" is not a namespace name (lower-case letters, digits and '-', at most 63)")
        }
        guard RegistryHost.isValid(flags.registry) else {
            throw CLIError.configuration("--registry: \"\(flags.registry)\" is not a registry host (host or host:port, no scheme or path)")
        }

        repair = RepairConfiguration()
        repair.names = names
        repair.registryHost = flags.registry
        repair.instance = refresh.instance
        if let raw = flags.targetNamespaces ?? env["TARGET_NAMESPACES"] {
            repair.targetNamespaces = try TargetNamespaces.parse(raw, flag: flags.targetNamespaces != nil ? "--target-namespaces" : "TARGET_NAMESPACES")
        }
        if let raw = flags.targetServiceAccounts ?? env["TARGET_SERVICE_ACCOUNTS"] {
            let flag = flags.targetServiceAccounts != nil ? "--target-service-accounts" : "TARGET_SERVICE_ACCOUNTS"
            let list = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for name in list where !TargetNamespaces.isDNSLabel(name) && !name.contains(".") {
                throw CLIError.configuration("\(flag): \"\(name)\" is not a ServiceAccount name")
            }
            guard !list.isEmpty else { throw CLIError.configuration("\(flag): name at least one ServiceAccount") }
            repair.targetServiceAccounts = list
        }
        repair.restartStuckPods = try boolean(flags.restartStuckPods, "--restart-stuck-pods", "RESTART_STUCK_PODS", env) ?? true
        let idle = try duration(flags.watchIdleTimeout, "--watch-idle-timeout", "WATCH_IDLE_TIMEOUT") ?? 90
        guard idle >= 1 else { throw CLIError.configuration("--watch-idle-timeout: must be at least 1s") }
        watchIdleTimeout = .milliseconds(Int64(idle * 1000))

        if try boolean(flags.leaderElect, "--leader-elect", "LEADER_ELECT", env) ?? true {
            var timing = LeaderElector.Timing()
            if let d = try duration(flags.leaseDuration, "--lease-duration", "LEASE_DURATION") { timing.leaseDuration = d }
            if let d = try duration(flags.renewDeadline, "--renew-deadline", "RENEW_DEADLINE") { timing.renewDeadline = d }
            if let d = try duration(flags.retryPeriod, "--retry-period", "RETRY_PERIOD") { timing.retryPeriod = d }
            guard timing.leaseDuration > timing.renewDeadline, timing.renewDeadline > timing.retryPeriod, timing.retryPeriod > 0 else {
                throw CLIError.configuration("--lease-duration, --renew-deadline, --retry-period: need lease duration > renew deadline > retry period > 0 (defaults 15s, 10s, 2s)")
            }
            leaderElection = timing
        }
    }
}
