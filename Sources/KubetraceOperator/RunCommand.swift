import ArgumentParser
import Foundation
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
    @Option(help: ArgumentHelp("Extra CA (PEM) to trust for the Kubetrace and Vultr APIs.", valueName: "file")) var caFile: String?
    @Option(help: "Where the read-only token comes from: api (the Kubetrace API) or tokenrequest (Kubernetes TokenRequest) (env TOKEN_SOURCE; default api when API_URL is set).") var tokenSource: String?
    @Option(help: "TokenRequest audience (repeatable; default the API server's).") var tokenAudience: [String] = []
    @Option(help: "TokenRequest lifetime, at least 10m.") var tokenLifetime = "1h"
    @Option(help: "Refresh credentials of unknown issue time this long before expiry (env SAFETY_MARGIN).") var safetyMargin: String?
    @Option(help: "Refresh credentials with no known expiry this often (env REFRESH_INTERVAL).") var refreshInterval: String?
    @Option(help: "Registry host of the pull Secret.") var registry = "blr.vultrcr.com"
    @Option(help: "Vultr API base URL (used when the operator Secret holds vultr_api_key and registry_id).") var vultrApiUrl = "https://api.vultr.com"
    @Option(help: "Lifetime asked of Vultr for pull credentials.") var registryLifetime = "24h"

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let connection = try cluster.loadConnection()
        var names = ObjectNames()
        if let ns = cluster.namespace ?? env["POD_NAMESPACE"], !ns.isEmpty { names.namespace = ns }
        let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")

        func duration(_ value: String?, _ flag: String, _ envName: String) throws -> TimeInterval? {
            guard let v = value ?? env[envName] else { return nil }
            guard let d = DurationParser.parse(v) else { throw CLIError.configuration("\(value != nil ? flag : envName): \"\(v)\" is not a duration (e.g. 5m, 90s)") }
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        let rawAPI = apiUrl ?? env["API_URL"]
        let source: TokenSource
        switch tokenSource ?? env["TOKEN_SOURCE"] ?? (rawAPI == nil ? "tokenrequest" : "api") {
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
        config.credentialsDirectory = env["CREDENTIALS_DIRECTORY"]
        config.registryHost = registry
        if let m = try duration(safetyMargin, "--safety-margin", "SAFETY_MARGIN") { config.policy.safetyMargin = m }
        if let r = try duration(refreshInterval, "--refresh-interval", "REFRESH_INTERVAL") { config.policy.refreshInterval = r }
        guard let registryLifetime = try duration(registryLifetime, "--registry-lifetime", "REGISTRY_LIFETIME"), registryLifetime >= 60 else {
            throw CLIError.configuration("--registry-lifetime: must be at least 1m")
        }
        config.registryLifetimeSeconds = Int(registryLifetime)
        if let file = config.operatorTokenFile, FileManager.default.contents(atPath: file) == nil {
            throw CLIError.configuration("\(operatorTokenFile != nil ? "--operator-token-file" : "OPERATOR_TOKEN_FILE"): cannot read \(file)")
        }

        let logger = Logger(label: "kubetrace.operator")
        do {
            let version = try await client.serverVersion()
            logger.info("connected to the API server", metadata: ["server": "\(connection.server)", "version": "\(version)", "source": "\(connection.source)", "k8s.namespace": "\(names.namespace)"])
        } catch {
            throw CLIError.runtime("cannot reach the API server of \(connection.source): \(error)")
        }
        if let secret = try? await client.get(Secret.self, namespace: names.namespace, name: names.operatorSecret),
           secret.data?["vultr_api_key"] != nil, secret.data?["registry_id"] != nil {
            let vultr = try ExternalEndpoint.validated(vultrApiUrl, name: "--vultr-api-url", allowInsecure: allowInsecureHttp, caFile: caFile)
            config.vultr = (vultr.baseURL, vultr.tls)
        }
        let service = RefreshService(client: client, configuration: config, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [OperatorService(refresh: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// The daemon's work as one Service: it ends on graceful shutdown.
struct OperatorService: Service {
    let refresh: RefreshService
    func run() async throws {
        try await cancelWhenGracefulShutdown { try await refresh.run() }
    }
}
