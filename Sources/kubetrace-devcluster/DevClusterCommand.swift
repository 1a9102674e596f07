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

    @Flag(help: "Run a node: a kubelet that starts Pods' containers as real processes (private mount, UTS and network namespaces; needs root), kube-controller-manager's Deployment, ReplicaSet and garbage-collector controllers, and a registry emulator.")
    var node = false

    @Option(name: .customLong("image"), help: ArgumentHelp("With --node: an image the node can run and the local program that stands for it (repeatable; user= is the image's USER, root when absent).", valueName: "REF=PATH[,user=UID[:GID]]"))
    var images: [String] = []

    @Option(help: ArgumentHelp("With --node: how long after a Secret or ConfigMap changes the kubelet rewrites the volumes projecting it.", valueName: "seconds"))
    var volumeSyncDelay: Double = 2

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port: must be between 0 and 65535") }
        guard node || images.isEmpty else { throw ValidationError("--image: only with --node") }
        guard !node || geteuid() == 0 else {
            throw ValidationError("--node: needs root (each container gets private mount, UTS and network namespaces, and the node a network interface); run as root, or drop --node")
        }
        for image in images {
            do { _ = try NodeImage.parse(image) } catch { throw ValidationError(error.description) }
        }
        guard volumeSyncDelay >= 0, volumeSyncDelay <= 600 else { throw ValidationError("--volume-sync-delay: must be between 0 and 600 seconds") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var options = DevCluster.Options()
        options.port = port
        options.tls = !insecureHttp
        options.http2 = !disableHttp2Serving
        options.stateDirectory = stateDir
        // kubetrace-operator is built beside this program: install.env puts it on PATH.
        if let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            options.toolDirectory = URL(fileURLWithPath: me).deletingLastPathComponent().path
        }
        if node {
            var n = NodeOptions()
            for flag in images {
                let image = try NodeImage.parse(flag)
                n.images[image.reference] = image
            }
            n.volumeSyncDelay = .milliseconds(Int64(volumeSyncDelay * 1000))
            n.directory = URL(fileURLWithPath: stateDir).appendingPathComponent("node").path
            options.node = n
        }
        let logger = Logger(label: "kubetrace.devcluster")
        let cluster = try DevCluster(options: options, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [cluster], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

