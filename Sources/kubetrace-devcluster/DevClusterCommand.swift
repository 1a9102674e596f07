import ArgumentParser
import Foundation
import KubeSim
import Logging
import ServiceLifecycle

/// `kubetrace-devcluster`: the embedded local Kubernetes API, for the demo and the tests.
@main
struct DevClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubetrace-devcluster",
        abstract: "Run the embedded local Kubernetes API on loopback.")

    @Option(help: "Port to listen on (0 picks a free one; the port is written to STATE_DIR/port).")
    var port: Int = 0

    @Option(help: ArgumentHelp("Directory for kubeconfig, port and ca.crt.", valueName: "dir"))
    var stateDir: String = ".devcluster"

    @Flag(help: "Serve plain HTTP instead of HTTPS.")
    var insecureHttp = false

    @Flag(help: "Serve HTTPS as HTTP/1.1 only (kube-apiserver's --disable-http2-serving); HTTP/2 is offered by default.")
    var disableHttp2Serving = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port: must be between 0 and 65535") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var options = DevCluster.Options()
        options.port = port
        options.tls = !insecureHttp
        options.http2 = !disableHttp2Serving
        options.stateDirectory = stateDir
        let logger = Logger(label: "kubetrace.devcluster")
        let cluster = try DevCluster(options: options, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [cluster], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

