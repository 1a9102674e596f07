import ArgumentParser
import Foundation
import KubetraceOperator

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

    var flags: OperatorFlags {
        var r = OperatorFlags()
        r.cluster = cluster.selection
        r.apiUrl = apiUrl
        r.clusterId = clusterId
        r.allowInsecureHttp = allowInsecureHttp
        r.operatorTokenFile = operatorTokenFile
        r.caFile = caFile
        r.tokenSource = tokenSource
        r.tokenAudience = tokenAudience
        r.tokenLifetime = tokenLifetime
        r.safetyMargin = safetyMargin
        r.refreshInterval = refreshInterval
        r.registry = registry
        r.vultrApiUrl = vultrApiUrl
        r.registryLifetime = registryLifetime
        r.targetNamespaces = targetNamespaces
        r.targetServiceAccounts = targetServiceAccounts
        r.restartStuckPods = restartStuckPods
        r.leaderElect = leaderElect
        r.leaseDuration = leaseDuration
        r.renewDeadline = renewDeadline
        r.retryPeriod = retryPeriod
        r.watchIdleTimeout = watchIdleTimeout
        r.logFormat = logFormat
        r.logLevel = logLevel
        r.healthAddr = healthAddr
        r.metricsAddr = metricsAddr
        return r
    }

    func run() async throws {
        let configuration = try OperatorConfiguration(flags: flags, environment: ProcessInfo.processInfo.environment)
        try await Operator(configuration: configuration).run()
    }
}
