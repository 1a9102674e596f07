// kubetrace-example-controller: a leader-elected controller built on KubeRuntime and
// KubeClient alone — the shape any Swift operator can copy.
//
// For every ConfigMap labelled `example.kubetrace.net/mirror=true` it keeps a copy named
// `<name>-mirror` with the same data (the copy is not labelled, so it is not mirrored in
// turn), and records a Normal Event on the source each time it creates or updates a copy.
// Deleting a source leaves its copy. A Reflector watches on every replica (a standby keeps
// its cache warm); only the leader of the Lease reconciles.
//
//   kubetrace-example-controller [NAMESPACE [LEASE]]
//
// NAMESPACE (env NAMESPACE, default "default") and LEASE (env LEASE_NAME, default
// "kubetrace-example-controller"). The cluster: $KUBECONFIG, else the service account
// when run in a Pod, else ~/.kube/config. Stop it with SIGTERM or Ctrl-C.
import Foundation
import KubeClient
import KubeRuntime
import Logging

func runController() async throws {
    let env = ProcessInfo.processInfo.environment
    let args = Array(CommandLine.arguments.dropFirst())
    let namespace = args.first ?? env["NAMESPACE"] ?? "default"
    let lease = args.dropFirst().first ?? env["LEASE_NAME"] ?? "kubetrace-example-controller"
    let identity = env["POD_NAME"] ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
    let logger = Logger(label: "kubetrace-example-controller")
    let connection = env["KUBECONFIG"] == nil && env["KUBERNETES_SERVICE_HOST"] != nil
        ? try ClusterConnection.inCluster(environment: env)
        : try ClusterConnection.from(kubeconfig: KubeConfig.load(explicitPath: nil, environment: env))
    let client = KubeClient(connection: connection, userAgent: "kubetrace-example-controller", logger: logger)

    var options = ReflectorOptions(namespace: namespace)
    options.labelSelector = "example.kubetrace.net/mirror=true"
    let reflector = Reflector<RawProjection<ConfigMap>>(client: client, options: options, logger: logger)
    let queue = WorkQueue<String>()
    let recorder = EventRecorder(client: client, reporter: .init(controller: "example.kubetrace.net/mirror",
                                 component: "kubetrace-example-controller", instance: identity), logger: logger)
    let elector = LeaderElector(client: client, namespace: namespace, name: lease, identity: identity, logger: logger)

    /// Makes `<name>-mirror` hold the source's data; the source as the reflector's store has it.
    @Sendable func reconcile(_ name: String) async throws {
        guard let source = reflector.store.get(namespace: namespace, name: name) else { return }
        let data = try source.object().data
        let mirror = "\(name)-mirror"
        var action = "Created"
        do {
            var existing = try await client.get(ConfigMap.self, namespace: namespace, name: mirror)
            guard existing.data != data else { return }
            existing.data = data
            _ = try await client.update(existing)
            action = "Updated"
        } catch let e as KubeClientError where e.isNotFound {
            _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: mirror, namespace: namespace), data: data))
        }
        let regarding = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: namespace, name: name, uid: source.meta.uid)
        recorder.record(.init(regarding: regarding, reason: "Mirror\(action)", action: action, note: "\(action) ConfigMap \(mirror)", warning: false))
        logger.info("mirror written", metadata: ["configmap": "\(namespace)/\(name)", "action": "\(action)"])
    }

    let events = WatchChannel<RawProjection<ConfigMap>>()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await reflector.run(into: events) }
        // The handler only computes keys; the queue dedupes them and never hands one out twice at once.
        group.addTask { for await batch in events { for e in batch { if let p = e.projection { await queue.add(p.meta.name) } } } }
        group.addTask {
            try await elector.run {
                await withTaskGroup(of: Void.self) { leading in
                    leading.addTask { await recorder.run() }
                    while let key = await queue.next() {
                        do { try await reconcile(key) } catch {
                            logger.warning("reconcile failed; retrying", metadata: ["configmap": "\(key)", "error": "\(error)"])
                            await queue.add(key, at: Date().addingTimeInterval(2))
                        }
                        await queue.done(key)
                    }
                    leading.cancelAll()
                }
            }
        }
        _ = try await group.next()
        group.cancelAll()
    }
}

LoggingSystem.bootstrap(StreamLogHandler.standardError)
try await runController()
