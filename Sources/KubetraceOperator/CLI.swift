public import ArgumentParser
import Foundation
import KubeClient
import KubeRuntime
import Logging

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

/// Runs the command line and exits with SPEC's exit codes: argument-parser's
/// usage errors (64 by default) become 2, configuration errors 2, runtime failures 1.
public enum KubetraceCLI {
    /// The arguments after the program name. Swift finds argv through `environ`, which a
    /// preloaded library that calls setenv first (libfaketime does) moves away: then
    /// `CommandLine.arguments` is empty (swiftlang/swift#76080) and `run` would print help and
    /// exit 0. The kernel's copy in /proc/self/cmdline is read instead.
    public static func processArguments() -> [String] {
        if !CommandLine.arguments.isEmpty { return Array(CommandLine.arguments.dropFirst()) }
        guard let data = FileManager.default.contents(atPath: "/proc/self/cmdline") else { return [] }
        var parts = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if parts.last == "" { parts.removeLast() }
        return Array(parts.dropFirst())
    }

    public static func main(_ arguments: [String] = processArguments()) async -> Never {
        // Before any cache is built (see `Reflector.useOneMallocArena`).
        ProcessMemory.useOneMallocArena()
        // Logging is set up once, before parsing: the format comes from the arguments or LOG_FORMAT.
        let environment = ProcessInfo.processInfo.environment
        do {
            let format = try LogFormat.requested(arguments: arguments, environment: environment)
            let level = try LogFormat.requestedLevel(arguments: arguments, environment: environment)
            LogFormat.bootstrap(LogFormat.resolve(format, environment: environment), level: level)
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("kubetrace-operator: error: \(e.message)\n".utf8))
            exit(e.exitCode)
        } catch {
            exit(ExitStatus.usage)
        }
        let command: any ParsableCommand
        do {
            command = try KubetraceOperatorCommand.parseAsRoot(arguments)
        } catch {
            let code = KubetraceOperatorCommand.exitCode(for: error)
            let message = KubetraceOperatorCommand.fullMessage(for: error)
            if code == .success {
                // --help, --version: argument-parser prints them itself.
                KubetraceOperatorCommand.exit(withError: error)
            }
            FileHandle.standardError.write(Data("\(message)\n".utf8))
            exit(ExitStatus.usage)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var sync = command
                try sync.run()
            }
            exit(0)
        } catch let e as ExitCode {
            // The command already said what it had to (doctor's ✗ lines).
            exit(e.rawValue)
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("kubetrace-operator: error: \(e.message)\n".utf8))
            exit(e.exitCode)
        } catch let e as KubeClientError {
            FileHandle.standardError.write(Data("kubetrace-operator: error: \(e.message)\n".utf8))
            exit(e.code == .configuration ? ExitStatus.usage : ExitStatus.runtimeFailure)
        } catch let e as RefreshFailure {
            FileHandle.standardError.write(Data("kubetrace-operator: error: \(e.message)\n".utf8))
            exit(e.isConfiguration ? ExitStatus.usage : ExitStatus.runtimeFailure)
        } catch {
            let code = KubetraceOperatorCommand.exitCode(for: error)
            if code == .success { KubetraceOperatorCommand.exit(withError: error) }
            FileHandle.standardError.write(Data("kubetrace-operator: error: \(KubetraceOperatorCommand.fullMessage(for: error))\n".utf8))
            exit(code == .validationFailure ? ExitStatus.usage : ExitStatus.runtimeFailure)
        }
    }
}

struct KubetraceOperatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubetrace-operator",
        abstract: "Keeps a cluster's Kubetrace credentials alive and its image-pull and RBAC plumbing intact.",
        version: kubetraceVersion,
        subcommands: [RunCommand.self, ManifestCommand.self, DoctorCommand.self, EventsCommand.self, StatusCommand.self,
                      BackupCommand.self, RestoreCommand.self, IdentityCommand.self, VersionCommand.self])
}

/// Options every command that talks to a cluster shares. Flags win over the
/// environment variables they mirror (SPEC §3).
struct ClusterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Kubeconfig file (env KUBECONFIG, a :-separated list, is merged when the flag is absent).", valueName: "file"))
    var kubeconfig: String?

    @Option(name: .long, help: ArgumentHelp("Kubeconfig context (default: current-context).", valueName: "name"))
    var context: String?

    @Option(name: .long, help: ArgumentHelp("Operator namespace (env POD_NAMESPACE).", valueName: "name"))
    var namespace: String?

    func validate() throws {
        if let kubeconfig, kubeconfig.isEmpty { throw ValidationError("--kubeconfig: must not be empty") }
        if let context, context.isEmpty { throw ValidationError("--context: must not be empty") }
    }

    /// Loads and validates the cluster configuration: `--kubeconfig`, else
    /// `$KUBECONFIG`, else in-cluster when its environment is present, else `~/.kube/config`.
    func loadConnection(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ClusterConnection {
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
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")
    func run() throws {
        print("kubetrace-operator \(kubetraceVersion)")
    }
}

/// A command whose cluster configuration is checked first, so a configuration
/// error is reported (exit 2) before anything else happens.
protocol ClusterCommand: AsyncParsableCommand {
    var cluster: ClusterOptions { get }
}

extension ClusterCommand {
    func connect() throws -> KubeClient {
        KubeClient(connection: try cluster.loadConnection(), userAgent: "kubetrace-operator/\(kubetraceVersion)")
    }
}


