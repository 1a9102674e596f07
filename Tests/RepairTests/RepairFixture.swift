import Foundation
import KubeClient
import KubeRuntime
import KubeSim
import KubetraceTestKit
@testable import KubetraceOperator
import Logging
import Testing

/// A devcluster with the operator's namespace and a good pull Secret, a repair
/// service running in process, and kubectl as the outside actor.
struct RepairFixture {
    let cluster: DevCluster
    let client: KubeClient
    let dir: TempDir
    let kubeconfig: String
    let logs: LogSink
    let service: RepairService
    let goodDocument: SecretBytes

    static let host = "blr.vultrcr.com"
    static let ns = "kubetrace-system"

    static func dockerConfig(_ host: String, user: String = "robot", password: String = "s3cr3t-pull-password") -> SecretBytes {
        let auth = Data("\(user):\(password)".utf8).base64EncodedString()
        return SecretBytes(JSONValue.object(["auths": .object([host: .object(["username": .string(user), "password": .string(password), "auth": .string(auth)])])]).jsonBytes())
    }

    func kubectl(_ args: [String], stdin: String? = nil) async throws -> ProcessResult {
        let r = try await run("kubectl", args, environment: ["KUBECONFIG": kubeconfig], stdin: stdin)
        #expect(r.status == 0, "kubectl \(args.joined(separator: " ")): \(r.stderr)")
        return r
    }

    /// Runs a fixture; `seed` may add objects before the service starts.
    static func with(_ configure: @escaping @Sendable (inout RepairConfiguration) -> Void = { _ in },
                     client makeClient: (@Sendable (DevCluster, KubeClient) async throws -> KubeClient)? = nil,
                     seed: @escaping @Sendable (KubeClient) async throws -> Void = { _ in },
                     _ body: @escaping @Sendable (RepairFixture) async throws -> Void) async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let admin = try await adminClient(cluster)
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))
            _ = try await admin.create(Namespace(metadata: ObjectMeta(name: ns)))
            let good = dockerConfig(host)
            var pull = Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: ns, labels: ["app.kubernetes.io/managed-by": "kubetrace-operator"]),
                              type: "kubernetes.io/dockerconfigjson", data: [".dockerconfigjson": good])
            pull.metadata.annotations = [PullCredentials.expiryAnnotation: "2031-01-01T00:00:00Z"]
            _ = try await admin.create(pull)
            try await seed(admin)
            var config = RepairConfiguration()
            config.registryHost = host
            config.instance = "test-instance"
            configure(&config)
            let logs = LogSink()
            let operatorClient = try await makeClient?(cluster, admin) ?? admin
            let service = RepairService(client: operatorClient, configuration: config, logger: logs.logger())
            let fixture = RepairFixture(cluster: cluster, client: admin, dir: dir, kubeconfig: kubeconfig, logs: logs, service: service, goodDocument: good)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.runWatches() }
                group.addTask { await service.runWorkers() }
                try await withThrowingTaskGroup(of: Void.self) { wait in
                    wait.addTask { await service.sync.waitUntilSynced() }
                    wait.addTask { try await Task.sleep(for: .seconds(10)); throw AwaitTimeout(description: "watchers did not sync in 10 s") }
                    try await wait.next()
                    wait.cancelAll()
                }
                try await body(fixture)
                group.cancelAll()
            }
        }
    }

    /// The pull Secret's document, once it equals `expected`.
    @discardableResult
    func awaitPullSecret(in namespace: String = ns, equal expected: SecretBytes, _ what: String) async throws -> Secret? {
        try await awaitObject(client, Secret.self, namespace: namespace, name: "kubetrace-registry", what) { s in
            s?.type == "kubernetes.io/dockerconfigjson" && s?.data?[".dockerconfigjson"] == expected
        }
    }

    /// Events (events.k8s.io) about `name` with `reason`, once every Event recorded so far is written
    /// (Events leave the workers' path; bounded by the suite's time limit).
    func events(about name: String, reason: String, in namespace: String = ns) async throws -> [Event] {
        await service.events.waitUntilWritten()
        return try await client.list(Event.self, namespace: namespace).items.filter { $0.regarding?.name == name && $0.reason == reason }
    }
}
