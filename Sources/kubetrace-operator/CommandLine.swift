import ArgumentParser
import Foundation
import KubeClient
import KubeRuntime
import KubetraceOperator

/// Runs the command line and exits with SPEC's exit codes: argument-parser's
/// usage errors (64 by default) become 2, configuration errors 2, runtime failures 1.
enum KubetraceCLI {
    /// The arguments after the program name. Swift finds argv through `environ`, which a
    /// preloaded library that calls setenv first (libfaketime does) moves away: then
    /// `CommandLine.arguments` is empty (swiftlang/swift#76080) and `run` would print help and
    /// exit 0. The kernel's copy in /proc/self/cmdline is read instead.
    static func processArguments() -> [String] {
        if !CommandLine.arguments.isEmpty { return Array(CommandLine.arguments.dropFirst()) }
        guard let data = FileManager.default.contents(atPath: "/proc/self/cmdline") else { return [] }
        var parts = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if parts.last == "" { parts.removeLast() }
        return Array(parts.dropFirst())
    }

    static func main(_ arguments: [String] = processArguments()) async -> Never {
        // Before any cache is built (see `Reflector.useOneMallocArena`).
        ProcessMemory.useOneMallocArena()
        // Logging is set up once, before parsing: the format comes from the arguments or LOG_FORMAT.
        let environment = ProcessInfo.processInfo.environment
        do {
            let format = try LogFormat.requested(arguments: arguments, environment: environment)
            let level = try LogFormat.requestedLevel(arguments: arguments, environment: environment)
            LogFormat.bootstrap(LogFormat.resolve(format, environment: environment), level: level)
        } catch let e as CLIError {
            fail(e.message, e.exitCode)
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
        } catch let e as CommandExit {
            // The command already said what it had to (doctor's ✗ lines).
            exit(e.status)
        } catch let e as CLIError {
            fail(e.message, e.exitCode)
        } catch let e as KubeClientError {
            fail(e.message, e.code == .configuration ? ExitStatus.usage : ExitStatus.runtimeFailure)
        } catch let e as RefreshFailure {
            fail(e.message, e.isConfiguration ? ExitStatus.usage : ExitStatus.runtimeFailure)
        } catch {
            let code = KubetraceOperatorCommand.exitCode(for: error)
            if code == .success { KubetraceOperatorCommand.exit(withError: error) }
            fail(KubetraceOperatorCommand.fullMessage(for: error), code == .validationFailure ? ExitStatus.usage : ExitStatus.runtimeFailure)
        }
    }

    private static func fail(_ message: String, _ status: Int32) -> Never {
        FileHandle.standardError.write(Data("kubetrace-operator: error: \(message)\n".utf8))
        exit(status)
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

    var selection: ClusterSelection { ClusterSelection(kubeconfig: kubeconfig, context: context, namespace: namespace) }

    func validate() throws {
        do { try selection.validate() } catch let e as CLIError { throw ValidationError(e.message) }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")
    func run() throws {
        print("kubetrace-operator \(kubetraceVersion)")
    }
}
