import KubeRuntime

/// The values these tests look at (the operator's own choice lives in KubetraceFormats).
enum TestSecretKeys {
    static let keptKeys: Set<String> = [".dockerconfigjson", "kubeconfig", "operator_token", "vultr_api_key", "registry_id"]
}

typealias TestSecret = SecretProjection

extension ReflectorOptions {
    /// Options whose Secret projections keep `TestSecretKeys`' values.
    static func testing(namespace: String?) -> ReflectorOptions {
        var o = ReflectorOptions(namespace: namespace)
        o.keptSecretValues = TestSecretKeys.keptKeys
        return o
    }
}
