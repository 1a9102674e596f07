public import KubeRuntime

/// The Secret data keys whose values the operator reads: the pull Secret's document,
/// the read-only kubeconfig, and the operator Secret's token, Vultr key and registry id.
/// Every other key of a watched Secret is kept by name only. Given to every reflector and
/// decoder the operator makes (`ReflectorOptions.keptSecretValues`).
public enum ManagedSecretKeys {
    public static let keptKeys: Set<String> = [".dockerconfigjson", "kubeconfig", "operator_token", "vultr_api_key", "registry_id"]
}

/// A watched Secret as the operator sees it (with `ManagedSecretKeys` kept).
public typealias ManagedSecret = SecretProjection

extension ReflectorOptions {
    /// The operator's options: its Secret values kept.
    public static func managed(namespace: String?) -> ReflectorOptions {
        var o = ReflectorOptions(namespace: namespace)
        o.keptSecretValues = ManagedSecretKeys.keptKeys
        return o
    }
}
