import KubeRuntime

/// The values these tests look at (the operator's own choice lives in KubetraceFormats).
enum TestSecretKeys: SecretValueSelection {
    static let keptKeys: Set<String> = [".dockerconfigjson", "kubeconfig", "operator_token", "vultr_api_key", "registry_id"]
}

typealias TestSecret = SecretProjection<TestSecretKeys>
