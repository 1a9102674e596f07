import ArgumentParser
import KubetraceOperator

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show credentials, the leader, watch health and the last repairs, read from the cluster.",
        discussion: "With --watch the view follows watches on the Secrets, the Lease and the Events (no polling); Ctrl-C ends it.")

    @OptionGroup var cluster: ClusterOptions
    @Flag(help: "Keep the view up to date from watches.") var watch = false
    @Option(help: ArgumentHelp("text (one screen) or json (one document; with --watch, one line per change).", valueName: "text|json")) var output = "text"

    var request: StatusRequest {
        var r = StatusRequest()
        r.cluster = cluster.selection
        r.watch = watch
        r.output = output
        return r
    }

    func validate() throws {
        do { try request.validate() } catch let e as CLIError { throw ValidationError(e.message) }
    }

    func run() async throws { try await request.run() }
}
