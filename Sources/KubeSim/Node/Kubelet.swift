import Foundation
import Hummingbird
import KubeClient
import Logging
import Synchronization

/// What the kubelet needs from the image puller (the registry emulator's `ImagePuller` conforms).
protocol ImagePulling: Sendable {
    /// Resolves `reference` to a local image, pulling it with `pullSecrets` (the Pod's
    /// `imagePullSecrets` Secrets that exist, in order) as `policy` (Always, IfNotPresent, Never) says.
    func pull(_ reference: String, pullSecrets: [JSONValue], policy: String) async throws(ImagePullError) -> NodeImage
}

extension ImagePuller: ImagePulling {}

/// The devcluster node's kubelet: one pod worker per Pod bound to the node
/// (pkg/kubelet/pod_workers.go), each running its containers as real processes in a pod
/// sandbox, with volumes, probes, restarts, logs and the Pod's status as the kubelet writes them.
///
/// Writes go through the store's ordinary paths as user `system:node:<name>` (status through
/// the `status` subresource), so watches and resourceVersions behave as over HTTP.
final class Kubelet: Sendable {
    let store: ObjectStore
    let tokens: ServiceAccountTokens
    let options: NodeOptions
    let network: NodeNetwork
    let apiServerHost: String
    let apiServerPort: Int
    let caPEM: String?
    let puller: any ImagePulling
    let logger: Logger
    /// The kubelet root: `pods/<uid>/volumes/…` and `pods/<ns>_<pod>_<uid>/<container>/N.log`.
    let root: String
    let logFiles = ContainerLogFiles()
    let user: UserInfo
    /// The workers by Pod uid.
    private let workers = Mutex<[String: AsyncStream<PodWorkerEvent>.Continuation]>([:])

    init(store: ObjectStore, tokens: ServiceAccountTokens, options: NodeOptions, network: NodeNetwork, apiServerHost: String, apiServerPort: Int,
         caPEM: String?, puller: any ImagePulling, logger: Logger) {
        self.store = store
        self.tokens = tokens
        self.options = options
        self.network = network
        self.apiServerHost = apiServerHost
        self.apiServerPort = apiServerPort
        self.caPEM = caPEM
        self.puller = puller
        self.logger = logger
        root = options.directory ?? (NSTemporaryDirectory() + "kubetrace-kubelet-" + UUID().uuidString.lowercased().prefix(8))
        user = UserInfo(name: "system:node:\(options.name)", groups: ["system:nodes", "system:authenticated"])
    }

    /// Runs until cancelled, then stops every Pod (SIGTERM, its grace period, SIGKILL), their
    /// sandboxes and volumes. Pods stay in the store, as they do when a kubelet stops.
    func run() async {
        // Before anything else: a previous run's tmpfs mounts (tokens) and pod directories.
        Kubelet.removeStaleState(root: root, logger: logger)
        try? FileManager.default.createDirectory(atPath: root + "/pods", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        // Subscribed before the first read, so no change between the two is missed.
        let changes = store.hub.observe()
        await withDiscardingTaskGroup { group in
            for (_, pod) in await store.stored(.pod) { route(pod, deleted: false, group: &group) }
            for await change in changes {
                switch (change.group, change.resource) {
                case ("", "pods"):
                    route(change.object, deleted: change.type == "DELETED", group: &group)
                case ("", "secrets"), ("", "configmaps"), ("", "serviceaccounts"):
                    let ns = change.namespace ?? ""
                    for (_, w) in workers.withLock({ $0 }) { w.yield(.objectsChanged(namespace: ns)) }
                default:
                    continue
                }
            }
            // Cancelled: every worker ends (its stream finishes) and stops its Pod.
            for (_, w) in workers.withLock({ $0 }) { w.finish() }
        }
        logger.info("kubelet stopped", metadata: ["node": "\(options.name)"])
    }

    /// Hands a Pod change to its worker, starting one for a Pod newly bound here
    /// (pod_workers.go `UpdatePod`).
    private func route(_ pod: JSONValue, deleted: Bool, group: inout DiscardingTaskGroup) {
        guard pod["spec"]?["nodeName"]?.stringValue == options.name, let uid = pod["metadata"]?["uid"]?.stringValue else { return }
        if let worker = workers.withLock({ $0[uid] }) {
            worker.yield(deleted ? .deleted(pod) : .updated(pod))
            return
        }
        guard !deleted else { return }
        let (stream, continuation) = AsyncStream.makeStream(of: PodWorkerEvent.self)
        workers.withLock { $0[uid] = continuation }
        let worker = PodWorker(kubelet: self, pod: pod, events: stream, send: continuation)
        group.addTask {
            await worker.run()
            _ = self.workers.withLock { $0.removeValue(forKey: uid) }
        }
    }

    /// The service variables every container gets (`KUBERNETES_SERVICE_HOST` …).
    var serviceEnvironment: [(String, String)] { PodEnvironment.serviceEnvironment(host: apiServerHost, port: apiServerPort) }

    /// Records an Event as the kubelet's recorder does (source `kubelet`, host the node);
    /// repeats of the same reason and message for the same object bump `count`.
    func recordEvent(pod: JSONValue, container: String?, type: String = "Normal", reason: String, message: String) async {
        let meta = pod["metadata"]
        let namespace = meta?["namespace"]?.stringValue ?? "default"
        let podName = meta?["name"]?.stringValue ?? ""
        var involved: [String: JSONValue] = [
            "kind": .string("Pod"), "namespace": .string(namespace), "name": .string(podName),
            "uid": .string(meta?["uid"]?.stringValue ?? ""), "apiVersion": .string("v1"),
        ]
        if let container {
            let isInit = (pod["spec"]?["initContainers"]?.arrayValue ?? []).contains { $0["name"]?.stringValue == container }
            involved["fieldPath"] = .string("spec.\(isInit ? "initContainers" : "containers"){\(container)}")
        }
        let key = EventKey(uid: meta?["uid"]?.stringValue ?? "", container: container, reason: reason, message: message)
        let now = RFC3339.format(Date())
        var writeOptions = WriteOptions(user: user)
        writeOptions.manager = "kubelet"
        if let existing = eventNames.withLock({ $0[key] }),
           var event = try? await store.get(.coreEvent, namespace: namespace, name: existing).objectValue {
            event["count"] = .int((event["count"]?.intValue ?? 1) + 1)
            event["lastTimestamp"] = .string(now)
            if (try? await store.update(.coreEvent, namespace: namespace, name: existing, body: .object(event), options: writeOptions)) != nil { return }
        }
        let name = "\(podName).\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
        let event: JSONValue = .object([
            "apiVersion": .string("v1"), "kind": .string("Event"),
            "metadata": .object(["name": .string(name), "namespace": .string(namespace)]),
            "involvedObject": .object(involved), "reason": .string(reason), "message": .string(message), "type": .string(type),
            "source": .object(["component": .string("kubelet"), "host": .string(options.name)]),
            "firstTimestamp": .string(now), "lastTimestamp": .string(now), "count": .int(1),
            "reportingComponent": .string("kubelet"), "reportingInstance": .string(options.name),
        ])
        if (try? await store.create(.coreEvent, namespace: namespace, body: event, options: writeOptions)) != nil {
            eventNames.withLock { $0[key] = name }
        }
    }

    private struct EventKey: Hashable { var uid: String; var container: String?; var reason: String; var message: String }
    private let eventNames = Mutex<[EventKey: String]>([:])
}
