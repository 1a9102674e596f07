import Foundation
public import KubeClient

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
