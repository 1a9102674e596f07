import ArgumentParser
import KubetraceOperator

struct ManifestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "manifest", abstract: "Generate the cluster-specific install manifest.")

    @Option(help: ArgumentHelp("Kubeconfig of the cluster to install into.", valueName: "file")) var kubeconfig: String?
    @Option(help: ArgumentHelp("Kubeconfig context.", valueName: "name")) var context: String?
    @Option(help: ArgumentHelp("Operator namespace (env POD_NAMESPACE).", valueName: "name")) var namespace: String?
    @Option(help: "This cluster's id (env CLUSTER_ID).") var clusterId: String?
    @Option(help: "Kubetrace API base URL, https (env API_URL).") var apiUrl: String?
    @Flag(help: "Allow a plain http API_URL on a loopback address.") var allowInsecureHttp = false
    @Option(help: ArgumentHelp("File holding the operator token (env OPERATOR_TOKEN_FILE).", valueName: "file")) var operatorTokenFile: String?
    @Option(help: "Registry host the pull Secret is for.") var registry = "blr.vultrcr.com"
    @Option(help: ArgumentHelp("File holding a Vultr API key: fetch pull credentials from the Vultr API.", valueName: "file")) var vultrApiKeyFile: String?
    @Option(help: "Vultr registry id (with --vultr-api-key-file).") var registryId: String?
    @Option(help: "Registry username (instead of the Vultr API).") var registryUsername: String?
    @Option(help: ArgumentHelp("File holding the registry password.", valueName: "file")) var registryPasswordFile: String?
    @Option(help: "Vultr API base URL.") var vultrApiUrl = "https://api.vultr.com"
    @Option(help: "Lifetime asked of Vultr for the pull credentials, in seconds (the operator re-mints them before they lapse).") var registryExpirySeconds = 2_592_000
    @Option(help: ArgumentHelp("The CA (PEM) the Kubetrace and Vultr APIs must be signed by, instead of the system store.", valueName: "file")) var caFile: String?
    @Option(help: "Operator image (pin it by digest: image@sha256:…).") var image = "blr.vultrcr.com/kubetrace/kubetrace-operator:\(kubetraceVersion)"
    @Option(help: ArgumentHelp("Where to write the manifest (mode 0600), or - for stdout.", valueName: "file|-")) var output = "kubetrace-operator.yaml"
    @Option(help: "Opt-in namespaces beyond the operator's own: a,b,c or selector=LABEL_SELECTOR (env TARGET_NAMESPACES); adds their RBAC.") var targetNamespaces: String?
    @Option(help: "ServiceAccounts kept referencing the pull Secret in target namespaces, comma-separated (env TARGET_SERVICE_ACCOUNTS).") var targetServiceAccounts: String?
    @Option(help: "Include the NetworkPolicy: true or false (default true).") var networkPolicy: String?
    @Option(help: ArgumentHelp("Namespaces allowed to reach the health and metrics ports, as key=value labels.", valueName: "labels"))
    var ingressNamespaceSelector = "kubernetes.io/metadata.name=monitoring"
    @Option(help: ArgumentHelp("The API server's endpoint addresses for the NetworkPolicy, comma-separated (default: the kubeconfig server's address).", valueName: "cidrs"))
    var apiServerCidr: String?
    @Option(help: ArgumentHelp("Destinations allowed on port 443 (Kubetrace API, registry, Vultr API), comma-separated; NetworkPolicy cannot name hosts.", valueName: "cidrs"))
    var egressCidr = "0.0.0.0/0,::/0"
    @Flag(help: "Count the objects the operator will watch (paged lists through the kubeconfig) and size memory requests and limits from them.")
    var sizeFromCluster = false

    var request: ManifestRequest {
        var r = ManifestRequest()
        r.kubeconfig = kubeconfig
        r.context = context
        r.namespace = namespace
        r.clusterId = clusterId
        r.apiUrl = apiUrl
        r.allowInsecureHttp = allowInsecureHttp
        r.operatorTokenFile = operatorTokenFile
        r.registry = registry
        r.vultrApiKeyFile = vultrApiKeyFile
        r.registryId = registryId
        r.registryUsername = registryUsername
        r.registryPasswordFile = registryPasswordFile
        r.vultrApiUrl = vultrApiUrl
        r.registryExpirySeconds = registryExpirySeconds
        r.caFile = caFile
        r.image = image
        r.output = output
        r.targetNamespaces = targetNamespaces
        r.targetServiceAccounts = targetServiceAccounts
        r.networkPolicy = networkPolicy
        r.ingressNamespaceSelector = ingressNamespaceSelector
        r.apiServerCidr = apiServerCidr
        r.egressCidr = egressCidr
        r.sizeFromCluster = sizeFromCluster
        return r
    }

    func run() async throws { try await request.run() }
}
