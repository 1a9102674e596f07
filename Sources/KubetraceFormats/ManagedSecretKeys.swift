public import KubeRuntime

/// The Secret data keys whose values the operator reads: the pull Secret's document,
/// the read-only kubeconfig, and the operator Secret's token, Vultr key and registry id.
/// Every other key of a watched Secret is kept by name only.
public enum ManagedSecretKeys: SecretValueSelection {
    public static let keptKeys: Set<String> = [".dockerconfigjson", "kubeconfig", "operator_token", "vultr_api_key", "registry_id"]
}

/// A watched Secret as the operator sees it.
public typealias ManagedSecret = SecretProjection<ManagedSecretKeys>
