import Foundation

/// A parsed (and possibly merged) kubeconfig. Named entries remember where they
/// came from, so a later error can name the file and field at fault. Relative
/// paths are already resolved against their file's directory.
public struct KubeConfig: Sendable {
    /// Where an entry was defined: `file` and a field path such as `users[0].user`.
    public struct Origin: Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var path: String
        public var description: String { "kubeconfig \(file): \(path)" }
        func field(_ name: String) -> Origin { Origin(file: file, path: "\(path).\(name)") }
    }

    public struct Cluster: Sendable {
        public var server: String?
        public var certificateAuthority: String?
        public var certificateAuthorityData: [UInt8]?
        public var insecureSkipTLSVerify: Bool = false
        public var tlsServerName: String?
        public var proxyURL: String?
        public var origin: Origin
    }

    public struct ExecConfig: Sendable {
        public var apiVersion: String
        public var command: String
        public var args: [String]
        /// Plugin environment; values may be secret, so they are kept redacted.
        public var env: [(name: String, value: SecretString)]
        public var provideClusterInfo: Bool
        public var interactiveMode: String?
        public var installHint: String?
    }

    public struct AuthInfo: Sendable {
        public var token: SecretString?
        public var tokenFile: String?
        public var clientCertificate: String?
        public var clientCertificateData: [UInt8]?
        public var clientKey: String?
        public var clientKeyData: SecretBytes?
        public var username: String?
        public var password: SecretString?
        public var exec: ExecConfig?
        public var origin: Origin
    }

    public struct Context: Sendable {
        public var cluster: String
        public var user: String
        public var namespace: String?
        public var origin: Origin
    }

    public var clusters: [String: Cluster] = [:]
    public var users: [String: AuthInfo] = [:]
    public var contexts: [String: Context] = [:]
    public var currentContext: String?
    /// The files this configuration was read from, in precedence order.
    public var files: [String] = []

    public init() {}

    /// Merges per client-go's rules: the first file to set a value or a named entry wins.
    public static func merged(_ configs: [KubeConfig]) -> KubeConfig {
        var out = KubeConfig()
        for c in configs {
            out.files += c.files
            if out.currentContext == nil, let cc = c.currentContext, !cc.isEmpty { out.currentContext = cc }
            out.clusters.merge(c.clusters) { first, _ in first }
            out.users.merge(c.users) { first, _ in first }
            out.contexts.merge(c.contexts) { first, _ in first }
        }
        return out
    }
}
