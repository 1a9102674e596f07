public import Foundation
public import KubeClient

/// The product version, sent as `User-Agent: kubetrace-operator/<version>`.
public let kubetraceVersion = "0.1.0"

/// Exit codes (SPEC §8): 0 success, 1 runtime failure, 2 bad usage or configuration.
public enum ExitStatus {
    public static let runtimeFailure: Int32 = 1
    public static let usage: Int32 = 2
}

/// A failure with the exit code it maps to and a message naming what is at fault.
public struct CLIError: Error, CustomStringConvertible {
    public var exitCode: Int32
    public var message: String
    public var description: String { message }
    public static func configuration(_ message: String) -> CLIError { CLIError(exitCode: ExitStatus.usage, message: message) }
    public static func runtime(_ message: String) -> CLIError { CLIError(exitCode: ExitStatus.runtimeFailure, message: message) }
}

/// A command that already said what it had to (doctor's ✗ lines, restore's conflicts)
/// and only needs the process to exit with `status`.
public struct CommandExit: Error, Sendable {
    public var status: Int32
    public init(_ status: Int32) { self.status = status }
}

/// Which cluster a command talks to: `--kubeconfig`, `--context`, `--namespace`. Flags win
/// over the environment variables they mirror (SPEC §3).
public struct ClusterSelection: Sendable {
    public var kubeconfig: String?
    public var context: String?
    public var namespace: String?

    public init(kubeconfig: String? = nil, context: String? = nil, namespace: String? = nil) {
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace
    }

    public func validate() throws {
        if let kubeconfig, kubeconfig.isEmpty { throw CLIError.configuration("--kubeconfig: must not be empty") }
        if let context, context.isEmpty { throw CLIError.configuration("--context: must not be empty") }
    }

    /// Loads and validates the cluster configuration: `--kubeconfig`, else
    /// `$KUBECONFIG`, else in-cluster when its environment is present, else `~/.kube/config`.
    public func loadConnection(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ClusterConnection {
        var connection: ClusterConnection
        let envKubeconfig = environment["KUBECONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        // systemd `LoadCredential=kubeconfig:…` puts it in $CREDENTIALS_DIRECTORY.
        let credential = environment["CREDENTIALS_DIRECTORY"].map { "\($0)/kubeconfig" }.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        if kubeconfig == nil, envKubeconfig == nil, let credential {
            let config = try KubeConfig.load(explicitPath: credential, environment: environment)
            connection = try ClusterConnection.from(kubeconfig: config, context: context)
        } else if kubeconfig == nil, envKubeconfig == nil, environment["KUBERNETES_SERVICE_HOST"] != nil {
            connection = try ClusterConnection.inCluster(environment: environment)
        } else {
            let config = try KubeConfig.load(explicitPath: kubeconfig, environment: environment)
            connection = try ClusterConnection.from(kubeconfig: config, context: context)
        }
        if let ns = namespace ?? environment["POD_NAMESPACE"], !ns.isEmpty { connection.namespace = ns }
        return connection
    }

    /// A client for the selected cluster, with the product's User-Agent.
    public func connect() throws -> KubeClient {
        KubeClient(connection: try loadConnection(), userAgent: "kubetrace-operator/\(kubetraceVersion)")
    }
}

/// A command's inputs that name a cluster.
protocol ClusterCommand {
    var cluster: ClusterSelection { get }
}

extension ClusterCommand {
    func connect() throws -> KubeClient { try cluster.connect() }
}
