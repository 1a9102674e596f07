import ArgumentParser
import KubetraceOperator

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Stream the typed events the operator sees, as JSON lines.")

    @OptionGroup var cluster: ClusterOptions
    @Option(help: ArgumentHelp("Kinds to watch, comma-separated: secrets, serviceaccounts, pods.", valueName: "kinds"))
    var kind = "secrets,serviceaccounts,pods"
    @Flag(name: .customLong("all-namespaces"), help: "Watch every namespace (the default unless --namespace is given).")
    var allNamespaces = false
    @Option(help: ArgumentHelp("A watch that delivers no byte for this long is resumed (env WATCH_IDLE_TIMEOUT), e.g. 90s.", valueName: "duration"))
    var watchIdleTimeout: String?
    @Option(help: "Exit 0 once this many added/modified/deleted events were delivered.")
    var maxEvents: Int?
    @Option(help: ArgumentHelp("json: one line per event; summary: no per-event lines, one JSON line at exit with counts by type, the sum of the resourceVersions, the seconds from the first request to the last event and, with --max-events, the resident memory in MB when the last event arrived; the peak resident memory in MB.", valueName: "json|summary"))
    var output = "json"

    var request: EventsRequest {
        var r = EventsRequest()
        r.cluster = cluster.selection
        r.kind = kind
        r.allNamespaces = allNamespaces
        r.watchIdleTimeout = watchIdleTimeout
        r.maxEvents = maxEvents
        r.output = output
        return r
    }

    func validate() throws {
        do { try request.validate() } catch let e as CLIError { throw ValidationError(e.message) }
    }

    func run() async throws { try await request.run() }
}
