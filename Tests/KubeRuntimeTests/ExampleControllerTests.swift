import Foundation
import KubeClient
import KubeRuntime
import KubeSim
import KubetraceTestKit
import Testing

/// The built `kubetrace-example-controller`, beside the test bundle (or in `$KUBETRACE_BIN_DIR`).
func exampleControllerBinary() -> URL {
    let dir = ProcessInfo.processInfo.environment["KUBETRACE_BIN_DIR"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    return dir.appendingPathComponent("kubetrace-example-controller")
}

/// The first core Event in `namespace` with `reason`, followed with a reflector (bounded).
func awaitEvent(_ client: KubeClient, namespace: String, reason: String, regarding name: String) async throws -> CoreEvent {
    try await within(.seconds(30), "a \(reason) Event about \(name)") {
        let reflector = Reflector<RawProjection<CoreEvent>>(client: client, options: ReflectorOptions(namespace: namespace), logger: quiet)
        let channel = WatchChannel<RawProjection<CoreEvent>>()
        return try await withThrowingTaskGroup(of: CoreEvent?.self) { group in
            group.addTask { try await reflector.run(into: channel); return nil }
            for await batch in channel {
                for e in batch {
                    guard case .added(let p) = e, let event = try? p.object() else { continue }
                    if event.reason == reason, event.involvedObject.name == name {
                        group.cancelAll()
                        return event
                    }
                }
            }
            throw TimedOut(what: "the Event watch")
        }
    }
}

/// The example controller as a user runs it: a process against a devcluster, with only a kubeconfig.
@Suite(.timeLimit(.minutes(2))) struct ExampleControllerTests {
    @Test func mirrorsALabelledConfigMapAndRecordsEvents() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let dir = TempDir()
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))
            let ns = "mirrors"
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: ns)))

            let logPath = dir.write("controller.log", "")
            let process = Process()
            process.executableURL = exampleControllerBinary()
            process.arguments = [ns, "example-lease"]
            process.environment = ["PATH": "/usr/bin:/bin", "HOME": dir.path, "KUBECONFIG": kubeconfig].merging(sanitizerEnvironment) { a, _ in a }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: logPath)
            let (exited, exitedCont) = AsyncStream.makeStream(of: Int32.self)
            process.terminationHandler = { exitedCont.yield($0.terminationStatus); exitedCont.finish() }
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            let log = { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

            let label = ["example.kubetrace.net/mirror": "true"]
            _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "settings", namespace: ns, labels: label), data: ["a": "1"]))
            _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "plain", namespace: ns), data: ["b": "2"]))
            let mirror = try await awaitObject(client, ConfigMap.self, namespace: ns, name: "settings-mirror", timeout: .seconds(30), "the mirror") { $0 != nil }
            #expect(mirror?.data == ["a": "1"], "\(log())")
            #expect(mirror?.metadata.labels?["example.kubetrace.net/mirror"] == nil)
            let created = try await awaitEvent(client, namespace: ns, reason: "MirrorCreated", regarding: "settings")
            #expect(created.type == "Normal")

            // A change of the source reaches its mirror, with an Event of its own.
            _ = try await client.patch(ConfigMap.self, namespace: ns, name: "settings", .merge(.object(["data": .object(["a": .string("2")])])))
            try await awaitObject(client, ConfigMap.self, namespace: ns, name: "settings-mirror", timeout: .seconds(30), "the updated mirror") { $0?.data == ["a": "2"] }
            _ = try await awaitEvent(client, namespace: ns, reason: "MirrorUpdated", regarding: "settings")

            // By now the controller has handled everything it saw: the unlabelled one was not among it.
            let plainMirror = await expectError { _ = try await client.get(ConfigMap.self, namespace: ns, name: "plain-mirror") }
            #expect(plainMirror?.isNotFound == true)
            let lease = try await client.get(Lease.self, namespace: ns, name: "example-lease")
            #expect(lease.spec?.holderIdentity?.isEmpty == false)

            kill(process.processIdentifier, SIGTERM)
            _ = try await within(.seconds(20), "the controller's exit") { () -> Int32? in
                for await status in exited { return status }
                return nil
            }
            #expect(!process.isRunning)
        }
    }
}
