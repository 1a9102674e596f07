import ArgumentParser
import KubetraceOperator

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "doctor", abstract: "Run the troubleshooting checklist (exit 0 when every check passes, 1 otherwise).")

    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Kubetrace API base URL (env API_URL; default: the operator Deployment's).") var apiUrl: String?
    @Flag(help: "Allow a plain http API_URL on a loopback address.") var allowInsecureHttp = false
    @Option(help: ArgumentHelp("Operator token file (env OPERATOR_TOKEN_FILE; default: Secret kubetrace-operator).", valueName: "file")) var operatorTokenFile: String?
    @Option(help: ArgumentHelp("Registry host[:port] to check, pull access included (default: the pull Secret's, else blr.vultrcr.com).", valueName: "host")) var registry: String?
    @Option(help: ArgumentHelp("The CA (PEM) the registry must be signed by, instead of the system store.", valueName: "file")) var registryCaFile: String?
    @Option(help: ArgumentHelp("The CA (PEM) the Kubetrace API must be signed by, instead of the system store.", valueName: "file")) var caFile: String?
    @Option(help: "Output format: text or json.") var output = "text"

    var request: DoctorRequest {
        var r = DoctorRequest()
        r.cluster = cluster.selection
        r.apiUrl = apiUrl
        r.allowInsecureHttp = allowInsecureHttp
        r.operatorTokenFile = operatorTokenFile
        r.registry = registry
        r.registryCaFile = registryCaFile
        r.caFile = caFile
        r.output = output
        return r
    }

    func validate() throws {
        do { try request.validate() } catch let e as CLIError { throw ValidationError(e.message) }
    }

    func run() async throws { try await request.run() }
}
