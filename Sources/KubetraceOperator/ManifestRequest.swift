import Foundation
import KubeClient

/// `kubetrace-operator manifest`: the cluster-specific install manifest.
public struct ManifestRequest: Sendable {
    public init() {}
    public var kubeconfig: String?
    public var context: String?
    public var namespace: String?
    public var clusterId: String?
    public var apiUrl: String?
    public var allowInsecureHttp = false
    public var operatorTokenFile: String?
    public var registry = "blr.vultrcr.com"
    public var vultrApiKeyFile: String?
    public var registryId: String?
    public var registryUsername: String?
    public var registryPasswordFile: String?
    public var vultrApiUrl = "https://api.vultr.com"
    public var registryExpirySeconds = 2_592_000
    public var caFile: String?
    public var image = "blr.vultrcr.com/kubetrace/kubetrace-operator:\(kubetraceVersion)"
    public var output = "kubetrace-operator.yaml"
    public var targetNamespaces: String?
    public var targetServiceAccounts: String?
    public var networkPolicy: String?
    public var ingressNamespaceSelector = "kubernetes.io/metadata.name=monitoring"
    public var apiServerCidr: String?
    public var egressCidr = "0.0.0.0/0,::/0"
    public var sizeFromCluster = false

    /// Checked after the kubeconfig, so a kubeconfig error is always the first reported.
    func checkRegistryFlags() throws {
        guard RegistryHost.isValid(registry) else {
            throw CLIError.configuration("--registry: \"\(registry)\" is not a registry host (host or host:port, no scheme or path)")
        }
        let viaVultr = vultrApiKeyFile != nil || registryId != nil
        let given = registryUsername != nil || registryPasswordFile != nil
        if viaVultr && given { throw CLIError.configuration("use either --vultr-api-key-file with --registry-id, or --registry-username with --registry-password-file") }
        if viaVultr && (vultrApiKeyFile == nil || registryId == nil) { throw CLIError.configuration("--vultr-api-key-file and --registry-id go together") }
        if given && (registryUsername == nil || registryPasswordFile == nil) { throw CLIError.configuration("--registry-username and --registry-password-file go together") }
        if !viaVultr && !given { throw CLIError.configuration("registry credentials are required: --vultr-api-key-file and --registry-id, or --registry-username and --registry-password-file") }
        if !(60...2_592_000).contains(registryExpirySeconds) { throw CLIError.configuration("--registry-expiry-seconds: must be between 60 and 2592000") }
        try Self.checkImage(image)
    }

    /// `repo[:tag]` or `repo@sha256:<64 hex>` (pinned; recommended): a digest must be whole.
    static func checkImage(_ image: String) throws {
        guard !image.isEmpty, !image.contains(where: \.isWhitespace) else { throw CLIError.configuration("--image: \"\(image)\" is not an image reference") }
        let parts = image.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        guard !parts[0].isEmpty, !parts[0].hasSuffix(":"), !parts[0].hasPrefix("/") else { throw CLIError.configuration("--image: \"\(image)\" has no repository") }
        if parts.count == 2 {
            let digest = parts[1]
            let hex = digest.dropFirst("sha256:".count)
            guard digest.hasPrefix("sha256:"), hex.count == 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw CLIError.configuration("--image: the digest \"\(digest)\" must be sha256: followed by 64 lower-case hex digits")
            }
        }
    }

    public func run() async throws {
        let env = ProcessInfo.processInfo.environment
        // The kubeconfig first: a configuration error is reported before anything else.
        let config = try KubeConfig.load(explicitPath: kubeconfig, environment: env)
        let connection = try ClusterConnection.from(kubeconfig: config, context: context)
        guard RegistryHost.isValid(registry) else {
            throw CLIError.configuration("--registry: \"\(registry)\" is not a registry host (host or host:port, no scheme or path)")
        }
        // Every missing input in one message, so one run tells the whole story.
        let clusterID = (clusterId ?? env["CLUSTER_ID"]).flatMap { $0.isEmpty ? nil : $0 }
        let rawAPI = (apiUrl ?? env["API_URL"]).flatMap { $0.isEmpty ? nil : $0 }
        let tokenFile = operatorTokenFile ?? env["OPERATOR_TOKEN_FILE"]
        var missing: [String] = []
        if clusterID == nil { missing.append("--cluster-id (or CLUSTER_ID)") }
        if rawAPI == nil { missing.append("--api-url (or API_URL)") }
        if tokenFile == nil { missing.append("--operator-token-file (or OPERATOR_TOKEN_FILE)") }
        if vultrApiKeyFile == nil, registryId == nil, registryUsername == nil, registryPasswordFile == nil {
            missing.append("registry credentials (--vultr-api-key-file with --registry-id, or --registry-username with --registry-password-file)")
        }
        if !missing.isEmpty {
            throw CLIError.configuration("missing \(missing.count == 1 ? "a required input" : "\(missing.count) required inputs"): \(missing.joined(separator: "; "))")
        }
        guard let clusterID, let rawAPI, let tokenFile else { return }
        try checkRegistryFlags()
        let api = try ExternalEndpoint.validated(rawAPI, name: apiUrl != nil ? "--api-url" : "API_URL", allowInsecure: allowInsecureHttp, caFile: caFile)
        let operatorToken = try readCredentialFile(tokenFile, flag: operatorTokenFile != nil ? "--operator-token-file" : "OPERATOR_TOKEN_FILE")

        var username: String
        var password: SecretString
        var vultrKey: SecretString?
        if let keyFile = vultrApiKeyFile, let id = registryId {
            let key = try readCredentialFile(keyFile, flag: "--vultr-api-key-file")
            let vultr = try ExternalEndpoint.validated(vultrApiUrl, name: "--vultr-api-url", allowInsecure: allowInsecureHttp, caFile: caFile)
            let creds = try await VultrRegistry.dockerCredentials(vultr, apiKey: key, registryID: id, host: registry, expirySeconds: registryExpirySeconds)
            (username, password, vultrKey) = (creds.username, creds.password, key)
        } else {
            username = registryUsername ?? ""
            password = try readCredentialFile(registryPasswordFile ?? "", flag: "--registry-password-file")
        }

        var inputs = ManifestInputs(clusterID: clusterID, apiURL: api.baseURL, operatorToken: operatorToken, image: image,
                                    server: connection.server, certificateAuthorityPEM: connection.tls.certificateAuthorityPEM,
                                    registry: registry, registryUsername: username, registryPassword: password,
                                    vultrAPIKey: vultrKey, registryID: vultrKey != nil ? registryId : nil)
        if let ns = namespace ?? env["POD_NAMESPACE"], !ns.isEmpty { inputs.names.namespace = ns }
        if caFile != nil { inputs.apiCertificateAuthorityPEM = api.tls.certificateAuthorityPEM }
        if vultrKey != nil, vultrApiUrl != "https://api.vultr.com" { inputs.vultrAPIURL = vultrApiUrl }
        if let raw = targetNamespaces ?? env["TARGET_NAMESPACES"] {
            inputs.targetNamespaces = try TargetNamespaces.parse(raw, flag: targetNamespaces != nil ? "--target-namespaces" : "TARGET_NAMESPACES")
        }
        if let raw = targetServiceAccounts ?? env["TARGET_SERVICE_ACCOUNTS"] {
            inputs.targetServiceAccounts = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var endpoints: APIServerEndpoints?
        if try boolean(networkPolicy, "--network-policy", nil, [:]) ?? true, apiServerCidr == nil {
            endpoints = await APIServerEndpoints.read(KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)"))
        }
        inputs.networkPolicy = try networkPolicyInputs(connection, endpoints: endpoints)
        // The Kubetrace API, the registry and the Vultr API on ports other than 443.
        let servicePorts = [URLComponents(string: api.baseURL)?.port, Doctor.hostPort(registry, defaultPort: 443).1,
                            vultrKey != nil ? URLComponents(string: vultrApiUrl)?.port : nil].compactMap { $0 }
        for port in servicePorts where inputs.networkPolicy?.egressPorts.contains(port) == false { inputs.networkPolicy?.egressPorts.append(port) }
        // Said once the manifest is written, so an error stays the only line.
        var notes = ""
        if let p = inputs.networkPolicy, apiServerCidr == nil {
            let source = endpoints.map { _ in "the API server's endpoints (default/kubernetes) and the kubeconfig server" }
                ?? "the kubeconfig server (the endpoints default/kubernetes could not be read; check them with kubectl get endpoints kubernetes -n default)"
            notes += "kubetrace-operator: NetworkPolicy: API server egress to \(p.apiServerCIDRs.map(\.description).joined(separator: ", ")) from \(source); --api-server-cidr overrides\n"
        }
        if sizeFromCluster {
            let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")
            let count: ClusterSizer.Count
            do {
                count = try await ClusterSizer(client: client).count(namespace: inputs.names.namespace, targets: inputs.targetNamespaces, pullSecret: inputs.names.registrySecret)
            } catch let e as KubeClientError where e.code == .api {
                // A cluster the sizing cannot list (403 names the resource) is a configuration problem.
                throw CLIError.configuration("--size-from-cluster: \(Doctor.describe(e))")
            }
            inputs.memory = MemorySizing.forObjects(count.total)
            notes += ("kubetrace-operator: --size-from-cluster: \(count.total) objects to watch (\(count.pods) Pods, \(count.serviceAccounts) ServiceAccounts, "
                + "\(count.secrets) pull Secrets\(count.namespaces > 0 ? ", \(count.namespaces) Namespaces" : "")): memory request \(inputs.memory.requestMiB)Mi, limit \(inputs.memory.limitMiB)Mi\n")
        }
        let yaml = ManifestRenderer.render(inputs)
        let warning = "kubetrace-operator: this manifest contains credentials for cluster \(clusterID): never commit or share it\n"
        if output == "-" {
            FileHandle.standardOutput.write(Data(yaml.utf8))
            FileHandle.standardError.write(Data((notes + warning).utf8))
        } else {
            try writePrivately(yaml, to: output)
            FileHandle.standardError.write(Data((notes + "kubetrace-operator: wrote \(output) (mode 0600); apply it with: kubectl apply --server-side -f \(output)\n" + warning).utf8))
        }
    }
}

extension ManifestRequest {
    /// The NetworkPolicy's inputs from the flags; the API server's address from the kubeconfig unless given.
    func networkPolicyInputs(_ connection: ClusterConnection, endpoints: APIServerEndpoints? = nil) throws -> NetworkPolicyInputs? {
        guard try boolean(networkPolicy, "--network-policy", nil, [:]) ?? true else { return nil }
        var p = NetworkPolicyInputs()
        p.ingressNamespaceLabels = try NetworkPolicyInputs.labels(ingressNamespaceSelector, flag: "--ingress-namespace-selector")
        p.egressCIDRs = try CIDR.list(egressCidr, flag: "--egress-cidr")
        let server = URLComponents(string: connection.server)
        if let port = server?.port, !p.apiServerPorts.contains(port) { p.apiServerPorts.append(port) }
        if let raw = apiServerCidr {
            p.apiServerCIDRs = try CIDR.list(raw, flag: "--api-server-cidr")
        } else {
            let host = (server?.host ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            var addresses = endpoints?.addresses.compactMap { CIDR($0) } ?? []
            for port in endpoints?.ports ?? [] where !p.apiServerPorts.contains(port) { p.apiServerPorts.append(port) }
            for a in CIDR(host).map({ [$0] }) ?? resolveAddresses(host).compactMap({ CIDR($0) }) where !addresses.contains(a) { addresses.append(a) }
            guard !addresses.isEmpty else {
                throw CLIError.configuration("--api-server-cidr: cannot resolve the API server host \"\(host)\" from the kubeconfig; give its endpoint addresses (kubectl get endpoints kubernetes -n default), or --network-policy false")
            }
            p.apiServerCIDRs = addresses
        }
        return p
    }
}

/// Writes owner-only, whole or not at all (temporary file, then rename).
func writePrivately(_ text: String, to path: String) throws {
    try writePrivately(Data(text.utf8), to: path)
}

func writePrivately(_ bytes: Data, to path: String) throws {
    do {
        try PrivateFile.write(bytes, to: path)
    } catch {
        throw CLIError.configuration("--output: \(error)")
    }
}
