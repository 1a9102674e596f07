import ArgumentParser
import KubetraceOperator

struct IdentityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Write a kubeconfig for the operator's own ServiceAccount (for a systemd install; the operator renews its token).")

    @OptionGroup var cluster: ClusterOptions
    @Option(help: "The token's lifetime, at least 10m; the operator renews it at 80 % of that.") var tokenLifetime = "24h"
    @Option(help: ArgumentHelp("Where to write the kubeconfig (mode 0600), or - for stdout.", valueName: "file|-")) var output = "kubetrace-operator.kubeconfig"

    var request: IdentityRequest {
        var r = IdentityRequest()
        r.cluster = cluster.selection
        r.tokenLifetime = tokenLifetime
        r.output = output
        return r
    }

    func run() async throws { try await request.run() }
}
