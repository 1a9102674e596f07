import Foundation
import KubeClient
import KubeTLS
import Logging

/// What a pod worker reacts to (pod_workers.go: updates from the config source, PLEG events,
/// prober results, and its own resync timer).
enum PodWorkerEvent: Sendable {
    case updated(JSONValue)
    case deleted(JSONValue)
    case objectsChanged(namespace: String)
    case containerExited(container: String, instance: Int, exit: ContainerExit, at: Date)
    case probe(container: String, instance: Int, kind: ProbeKind, success: Bool, message: String)
    case tick
}

/// One finished container instance.
struct TerminatedInstance: Sendable {
    var id: String
    var number: Int
    var exitCode: Int32
    var reason: String
    var message: String?
    var startedAt: Date
    var finishedAt: Date
    var finishedInstant: ContinuousClock.Instant
}

/// The kubelet's view of one container of the Pod (the runtime's container statuses, reduced).
struct ContainerRecord: Sendable {
    var spec: JSONValue
    var isInit: Bool
    var imageID: String?
    var running: ContainerInstance?
    var ready = false
    var last: TerminatedInstance?
    var previous: TerminatedInstance?
    var waiting: (reason: String, message: String?)?
    /// Instances started so far; the next one's number (and log file) is this.
    var instances = 0
    /// Killed because its definition changed: started again whatever the restart policy.
    var restartRequested = false
    var name: String { spec["name"]?.stringValue ?? "" }
    var restartCount: Int { max(0, instances - 1) }
}

/// One Pod's worker: syncs it on every change (kuberuntime_manager.go `SyncPod` after
/// `computePodActions`), terminates it when it is deleted, and writes its status.
/// Confined to its own task; the tasks it starts (log pumps, exit waiters, probers, timers)
/// talk back through `send`.
actor PodWorker {
    let kubelet: Kubelet
    var pod: JSONValue
    let uid: String
    let namespace: String
    let name: String
    let events: AsyncStream<PodWorkerEvent>
    let send: AsyncStream<PodWorkerEvent>.Continuation
    let clock = ContinuousClock()
    var logger: Logger

    var sandbox: PodSandbox?
    var podIP = ""
    var startTime: Date?
    var volumes: PodVolumes
    var volumesReady = false
    var volumeResyncAt: ContinuousClock.Instant?
    var volumeRetry = ContainerBackoff(initial: .milliseconds(500), max: .seconds(122))
    var sandboxRetryAt: ContinuousClock.Instant?
    var records: [String: ContainerRecord] = [:]
    var crashBackoff: ContainerBackoff
    var pullBackoff: ContainerBackoff
    /// Containers that could not be configured, retried at this time.
    var configRetryAt: [String: ContinuousClock.Instant] = [:]
    var nextTick: ContinuousClock.Instant?
    var lastStatus: JSONValue?
    var terminal = false
    var lastMountError: String?

    init(kubelet: Kubelet, pod: JSONValue, events: AsyncStream<PodWorkerEvent>, send: AsyncStream<PodWorkerEvent>.Continuation) {
        self.kubelet = kubelet
        self.pod = pod
        uid = pod["metadata"]?["uid"]?.stringValue ?? ""
        namespace = pod["metadata"]?["namespace"]?.stringValue ?? ""
        name = pod["metadata"]?["name"]?.stringValue ?? ""
        self.events = events
        self.send = send
        logger = kubelet.logger
        logger[metadataKey: "k8s.pod"] = "\(namespace)/\(name)"
        crashBackoff = ContainerBackoff(initial: kubelet.options.backoffInitial, max: kubelet.options.backoffMax)
        pullBackoff = ContainerBackoff(initial: kubelet.options.backoffInitial, max: kubelet.options.backoffMax)
        let tokens = kubelet.tokens
        let (ns, sa) = (namespace, pod["spec"]?["serviceAccountName"]?.stringValue ?? "default")
        volumes = PodVolumes(podDirectory: "\(kubelet.root)/pods/\(uid)") { saUID, audiences, lifetime, now in
            try tokens.mint(namespace: ns, name: sa, uid: saUID, audiences: audiences, lifetime: TimeInterval(lifetime), now: now)
        }
        for (field, isInit) in [("initContainers", true), ("containers", false)] {
            for c in pod["spec"]?[field]?.arrayValue ?? [] {
                let r = ContainerRecord(spec: c, isInit: isInit)
                records[r.name] = r
            }
        }
    }

    var restartPolicy: String { pod["spec"]?["restartPolicy"]?.stringValue ?? "Always" }
    var initNames: [String] { (pod["spec"]?["initContainers"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue } }
    var containerNames: [String] { (pod["spec"]?["containers"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue } }
    /// pod_workers.go `calculateEffectiveGracePeriod`: the deletion's, else the spec's; at least
    /// `minimumGracePeriodInSeconds` (2) when containers are killed.
    var gracePeriod: Int {
        max(2, pod["metadata"]?["deletionGracePeriodSeconds"]?.intValue ?? pod["spec"]?["terminationGracePeriodSeconds"]?.intValue ?? 30)
    }

    func run() async {
        var deletedFromStore = false
        await withDiscardingTaskGroup { group in
            // A Pod already being deleted when its worker starts (the kubelet restarted) is only stopped.
            let deletingAtStart = pod["metadata"]?["deletionTimestamp"] != nil
            if !deletingAtStart { await sync(&group) }
            loop: for await event in (deletingAtStart ? AsyncStream(PodWorkerEvent.self) { $0.finish() } : events) {
                switch event {
                case .updated(let p):
                    let changed = p["spec"] != pod["spec"] || p["metadata"]?["deletionTimestamp"] != pod["metadata"]?["deletionTimestamp"]
                        || p["metadata"]?["labels"] != pod["metadata"]?["labels"] || p["metadata"]?["annotations"] != pod["metadata"]?["annotations"]
                    pod = p
                    if p["metadata"]?["deletionTimestamp"] != nil { break loop }
                    if !changed { continue }
                    await applySpecChanges(&group)
                case .deleted(let p):
                    pod = p
                    deletedFromStore = true
                    break loop
                case .objectsChanged(let ns):
                    guard ns == namespace, volumesReady else { continue }
                    if volumeResyncAt == nil { volumeResyncAt = clock.now + kubelet.options.volumeSyncDelay }
                case .containerExited(let c, let number, let exit, let at):
                    containerExited(c, number: number, exit: exit, at: at)
                case .probe(let c, let number, let kind, let success, let message):
                    await probeResult(c, number: number, kind: kind, success: success, message: message, group: &group)
                case .tick:
                    if let t = nextTick, t <= clock.now { nextTick = nil }
                }
                await sync(&group)
            }
            // Deleted, or the kubelet is stopping (the stream ended). The kill sequence runs in
            // an unstructured task, awaited, because a cancelled task cannot wait out a grace
            // period (its sleeps end at once).
            let stopping = !deletedFromStore && pod["metadata"]?["deletionTimestamp"] == nil
            await Task { await self.terminate(deleteFromStore: !deletedFromStore && !stopping) }.value
            group.cancelAll()
        }
    }

    /// Takes the new spec for every container's next start. A running container whose image (the
    /// one mutable container field) changed is killed with the Pod's grace period and started
    /// again whatever the restart policy: kuberuntime_manager.go `computePodActions`, where
    /// `containerChanged` compares `HashContainer` (name and image) and the Killing event says
    /// "Container c definition changed, will be restarted". Init containers run to completion
    /// with the spec they started with, as the kubelet's `computeInitContainerActions` does.
    private func applySpecChanges(_ group: inout DiscardingTaskGroup) async {
        for (field, isInit) in [("initContainers", true), ("containers", false)] {
            for c in pod["spec"]?[field]?.arrayValue ?? [] {
                let n = c["name"]?.stringValue ?? ""
                guard var r = records[n] else {
                    records[n] = ContainerRecord(spec: c, isInit: isInit)
                    continue
                }
                let changed = r.spec["image"] != c["image"]
                r.spec = c
                guard changed, !isInit, let running = r.running, !r.restartRequested else {
                    records[n] = r
                    continue
                }
                r.restartRequested = true
                records[n] = r
                await kubelet.recordEvent(pod: pod, container: n, reason: "Killing", message: "Container \(n) definition changed, will be restarted")
                let grace = Duration.seconds(gracePeriod)
                group.addTask { await PodWorker.kill(running.process, instance: running, grace: grace) }
            }
        }
    }

    // MARK: sync

    /// One pass of `SyncPod`: sandbox, volumes, init containers in order, then every container
    /// that should run; then the status, written when it changed.
    func sync(_ group: inout DiscardingTaskGroup) async {
        var wakeups: [ContinuousClock.Instant] = []
        defer { schedule(wakeups.min(), &group) }
        guard !terminal else { await writeStatus(); return }
        if sandbox == nil {
            if let at = sandboxRetryAt, at > clock.now { wakeups.append(at); await writeStatus(); return }
            do {
                let hostname = pod["spec"]?["hostname"]?.stringValue ?? name
                sandbox = try await PodSandbox.create(podUID: uid, hostname: String(hostname.prefix(63)), network: kubelet.network)
                podIP = sandbox!.podIP
                startTime = startTime ?? Date()
                sandboxRetryAt = nil
            } catch {
                logger.info("pod sandbox failed", metadata: ["error": "\(error)"])
                await kubelet.recordEvent(pod: pod, container: nil, type: "Warning", reason: "FailedCreatePodSandBox", message: "Failed to create pod sandbox: \(error)")
                sandboxRetryAt = clock.now + kubelet.options.backoffInitial
                startTime = startTime ?? Date()
                wakeups.append(sandboxRetryAt!)
                await writeStatus()
                return
            }
        }
        let now = clock.now
        let resyncVolumes = !volumesReady || (volumeResyncAt.map { $0 <= now } ?? false)
            || (volumes.nextRefresh.map { $0 <= Date() } ?? false)
        if resyncVolumes {
            if !volumesReady, volumeRetry.isInBackOffSinceUpdate("volumes", now: now), let end = volumeRetry.end("volumes", since: volumeRetry.entries["volumes"]!.lastUpdate) {
                wakeups.append(end)
                await writeStatus()
                return
            }
            let objects = await fetchObjects()
            do {
                try volumes.sync(pod: pod, objects: objects, podIP: podIP, hostIP: kubelet.network.nodeAddress, now: Date())
                volumesReady = true
                volumeResyncAt = nil
                lastMountError = nil
                volumeRetry.reset("volumes")
            } catch {
                if !volumesReady {
                    volumeRetry.next("volumes", at: now)
                    if lastMountError != error.eventMessage {
                        lastMountError = error.eventMessage
                        logger.info("volume set-up failed", metadata: ["volume": "\(error.volume)"])
                    }
                    await kubelet.recordEvent(pod: pod, container: nil, type: "Warning", reason: "FailedMount", message: error.eventMessage)
                    wakeups.append(now + volumeRetry.get("volumes"))
                    await writeStatus()
                    return
                }
                // A running Pod keeps its last good content; the next change retries.
                await kubelet.recordEvent(pod: pod, container: nil, type: "Warning", reason: "FailedMount", message: error.eventMessage)
                volumeResyncAt = nil
            }
        }
        if let t = volumeResyncAt { wakeups.append(t) }
        if let refresh = volumes.nextRefresh {
            wakeups.append(clock.now + .seconds(max(0, refresh.timeIntervalSinceNow)))
        }
        // Init containers, one at a time, each to success (kuberuntime_manager.go
        // `computeInitContainerActions`).
        for n in initNames {
            guard let r = records[n] else { continue }
            if let last = r.last, last.exitCode == 0, r.running == nil { continue }
            if r.running != nil { await writeStatus(); return }
            if r.last != nil, restartPolicy == "Never" { await writeStatus(); return }
            if let w = await ensureStarted(n, &group) { wakeups.append(w) }
            await writeStatus()
            return
        }
        for n in containerNames {
            guard let r = records[n], r.running == nil else { continue }
            if let last = r.last {
                let restart = r.restartRequested || restartPolicy == "Always" || (restartPolicy == "OnFailure" && last.exitCode != 0)
                if !restart { continue }
            }
            if let w = await ensureStarted(n, &group) { wakeups.append(w) }
        }
        await writeStatus()
    }

    /// Starts a container unless a back-off holds it; returns when to try again.
    private func ensureStarted(_ n: String, _ group: inout DiscardingTaskGroup) async -> ContinuousClock.Instant? {
        let now = clock.now
        if let at = configRetryAt[n], at > now { return at }
        configRetryAt[n] = nil
        guard var r = records[n] else { return nil }
        let key = "\(name)_\(namespace)_\(uid)_\(n)"
        if let last = r.last {
            // kuberuntime_manager.go `doBackOff`.
            if crashBackoff.isInBackOff(key, since: last.finishedInstant, now: now) {
                let formatPod = "\(name)_\(namespace)(\(uid))"
                let message = "back-off \(GoDuration.format(crashBackoff.get(key))) restarting failed container=\(n) pod=\(formatPod)"
                if r.waiting?.reason != "CrashLoopBackOff" {
                    await kubelet.recordEvent(pod: pod, container: n, type: "Warning", reason: "BackOff",
                                              message: "Back-off restarting failed container \(n) in pod \(formatPod)")
                }
                r.waiting = ("CrashLoopBackOff", message)
                records[n] = r
                return crashBackoff.end(key, since: last.finishedInstant)
            }
            crashBackoff.next(key, at: last.finishedInstant)
        }
        return await start(n, &group)
    }

    /// kuberuntime_container.go `startContainer`: pull the image, generate the configuration,
    /// create and start the process, then run the probers.
    private func start(_ n: String, _ group: inout DiscardingTaskGroup) async -> ContinuousClock.Instant? {
        guard var r = records[n], let sandbox else { return nil }
        let spec = r.spec
        let reference = spec["image"]?.stringValue ?? ""
        // images/image_manager.go `EnsureImageExists`.
        let policy = spec["imagePullPolicy"]?.stringValue ?? Self.defaultPullPolicy(reference)
        let pullKey = "\(uid)_\(reference)"
        let now = clock.now
        if pullBackoff.isInBackOffSinceUpdate(pullKey, now: now) {
            r.waiting = ("ImagePullBackOff", "Back-off pulling image \"\(reference)\"")
            records[n] = r
            await kubelet.recordEvent(pod: pod, container: n, reason: "BackOff", message: "Back-off pulling image \"\(reference)\"")
            return pullBackoff.entries[pullKey].map { $0.lastUpdate + $0.backoff }
        }
        var pullSecrets: [JSONValue] = []
        for ref in pod["spec"]?["imagePullSecrets"]?.arrayValue ?? [] {
            guard let sn = ref["name"]?.stringValue, let s = try? await kubelet.store.get(.secret, namespace: namespace, name: sn) else { continue }
            pullSecrets.append(s)
        }
        let image: NodeImage
        do {
            if policy != "Never" { await kubelet.recordEvent(pod: pod, container: n, reason: "Pulling", message: "Pulling image \"\(reference)\"") }
            image = try await kubelet.puller.pull(reference, pullSecrets: pullSecrets, policy: policy)
        } catch {
            r.waiting = (error.reason, error.message)
            records[n] = r
            await kubelet.recordEvent(pod: pod, container: n, type: "Warning", reason: "Failed", message: "Failed to pull image \"\(reference)\": \(error.message)")
            await kubelet.recordEvent(pod: pod, container: n, type: "Warning", reason: "Failed", message: "Error: \(error.reason)")
            if error.reason == "ErrImagePull" {
                pullBackoff.next(pullKey, at: clock.now)
                // The pod worker requeues a failed sync (pod_workers.go `completeWork`) before the
                // image back-off ends, so the Pod shows ImagePullBackOff between two pulls.
                return clock.now + pullBackoff.get(pullKey) / 2
            }
            return clock.now + kubelet.options.backoffInitial
        }
        r.imageID = Self.imageID(image)
        // Configuration: environment, security, mounts.
        let objects = await fetchObjects()
        let launch: ContainerLaunch
        do {
            launch = try configure(spec, image: image, objects: objects)
        } catch {
            r.waiting = ("CreateContainerConfigError", error.message)
            records[n] = r
            await kubelet.recordEvent(pod: pod, container: n, type: "Warning", reason: "Failed", message: "Error: \(error.message)")
            let retry = clock.now + kubelet.options.backoffInitial
            configRetryAt[n] = retry
            return retry
        }
        let number = r.instances
        r.instances += 1
        let id = Self.containerID()
        let path = kubelet.logPath(namespace: namespace, pod: name, uid: uid, container: n, instance: number)
        kubelet.logFiles.register(id: id, path: path)
        let log: ContainerLogFile
        do {
            log = try ContainerLogFile(path: path)
        } catch {
            logger.info("cannot open the container log", metadata: ["path": "\(path)", "error": "\(error)"])
            return nil
        }
        let startedAt = Date()
        let process: ContainerProcess
        do {
            process = try await ContainerProcess.start(launch, in: sandbox)
        } catch {
            // containerd's answer to a failed start: the container is exited, code 128, reason StartError.
            log.close()
            r.running = nil
            r.waiting = nil
            r.previous = r.last
            r.last = TerminatedInstance(id: id, number: number, exitCode: 128, reason: "StartError", message: error.description,
                                        startedAt: startedAt, finishedAt: Date(), finishedInstant: clock.now)
            records[n] = r
            await kubelet.recordEvent(pod: pod, container: n, type: "Warning", reason: "Failed", message: "Error: \(error.description)")
            return clock.now
        }
        await kubelet.recordEvent(pod: pod, container: n, reason: "Created", message: "Created container: \(n)")
        await kubelet.recordEvent(pod: pod, container: n, reason: "Started", message: "Started container \(n)")
        kubelet.logFiles.add(log)
        let instance = ContainerInstance(id: id, number: number, process: process, startedAt: startedAt, log: log)
        r.running = instance
        r.restartRequested = false
        r.waiting = nil
        r.ready = false
        records[n] = r
        let send = self.send
        instance.startPump(files: kubelet.logFiles)
        group.addTask {
            let exit = await process.wait()
            instance.exited()
            // Let the pump write the last lines before the exit is reported (bounded: a
            // descendant holding the pipes open must not hold the status).
            await log.waitClosed(atMost: .seconds(1))
            send.yield(.containerExited(container: n, instance: number, exit: exit, at: Date()))
        }
        startProbers(spec, instance: instance, launch: launch, sandbox: sandbox, &group)
        return nil
    }

    /// The image policy the API server defaults (pkg/apis/core/v1/defaults.go
    /// `SetDefaults_Container`): `Always` for `:latest` or no tag, else `IfNotPresent`.
    static func defaultPullPolicy(_ reference: String) -> String {
        if reference.contains("@") { return "IfNotPresent" }
        let last = reference.split(separator: "/").last ?? ""
        guard let colon = last.lastIndex(of: ":") else { return "Always" }
        return last[last.index(after: colon)...] == "latest" ? "Always" : "IfNotPresent"
    }

    /// `repo@sha256:…` as containerd reports a pulled image; our images have no manifest, so
    /// the digest is derived from the reference and the program standing for it.
    static func imageID(_ image: NodeImage) -> String {
        let digest = Crypto.hmacSHA256(key: [], message: Array("\(image.reference)\u{0}\(image.executable)".utf8))
        let repo = image.reference.split(separator: "@").first.map(String.init) ?? image.reference
        let name: String
        if let slash = repo.lastIndex(of: "/"), let colon = repo[slash...].lastIndex(of: ":") { name = String(repo[..<colon]) }
        else if !repo.contains("/"), let colon = repo.lastIndex(of: ":") { name = String(repo[..<colon]) }
        else { name = repo }
        return name + "@sha256:" + digest.map { String(format: "%02x", $0) }.joined()
    }

    /// `containerd://` and 64 hex digits, the shape clients parse (the node is not containerd:
    /// the id is random per instance).
    static func containerID() -> String {
        "containerd://" + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// kuberuntime_container.go `generateContainerConfig` → the runtime's launch.
    private func configure(_ spec: JSONValue, image: NodeImage, objects: PodObjects) throws(ContainerConfigError) -> ContainerLaunch {
        let security = try PodSecurity.resolve(pod: pod, container: spec, image: image)
        let variables = try PodEnvironment.variables(pod: pod, container: spec, objects: objects, serviceEnv: kubelet.serviceEnvironment,
                                                      podIP: podIP, hostIP: kubelet.network.nodeAddress)
        var argv = PodEnvironment.commandLine(container: spec, image: image, environment: variables)
        var mounts: [ContainerMount] = []
        // The image's program is part of the image's filesystem, readable by the container's user
        // whatever the permissions of the host directory it was built in (a 0700 checkout): it is
        // bound read-only at /usr/local/bin/NAME, where the Containerfile installs it.
        if argv.first == image.executable {
            let inImage = "/usr/local/bin/" + (image.executable.split(separator: "/").last.map(String.init) ?? "entrypoint")
            mounts.append(ContainerMount(hostPath: image.executable, containerPath: inImage, readOnly: true))
            argv[0] = inImage
        }
        let hostname = String((pod["spec"]?["hostname"]?.stringValue ?? name).prefix(63))
        let volumesByName = Dictionary((pod["spec"]?["volumes"]?.arrayValue ?? []).map { ($0["name"]?.stringValue ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        for m in spec["volumeMounts"]?.arrayValue ?? [] {
            let vName = m["name"]?.stringValue ?? ""
            guard let volume = volumesByName[vName], var host = volumes.hostPath(of: volume) else {
                throw ContainerConfigError(message: "cannot find volume \"\(vName)\" to mount into container \"\(spec["name"]?.stringValue ?? "")\"")
            }
            var subPath = m["subPath"]?.stringValue ?? ""
            if let expression = m["subPathExpr"]?.stringValue, !expression.isEmpty {
                // kubecontainer.ExpandContainerVolumeMounts: every variable needs a non-empty value.
                var missing = Set<String>()
                subPath = PodEnvironment.expand(expression) { k in
                    let value = variables.last { $0.0 == k }?.1 ?? ""
                    if value.isEmpty { missing.insert(k) }
                    return value
                }
                if !missing.isEmpty { throw ContainerConfigError(message: "missing value for \(missing.sorted().joined(separator: ", "))") }
            }
            if !subPath.isEmpty {
                host = try PodVolumes.subPathHostPath(subPath, volumePath: host, mountName: vName, container: spec["name"]?.stringValue ?? "")
            }
            // API-data volumes are always read-only (pkg/kubelet/kubelet_pods.go `makeMounts`:
            // the plugins report ReadOnly for secret, configMap, downwardAPI, projected).
            let apiData = volume["secret"] != nil || volume["configMap"] != nil || volume["downwardAPI"] != nil || volume["projected"] != nil
            mounts.append(ContainerMount(hostPath: host, containerPath: m["mountPath"]?.stringValue ?? "", readOnly: m["readOnly"] == .bool(true) || apiData))
        }
        // /etc/hosts and /etc/hostname are the runtime's (ContainerProcess.start writes the
        // kubelet-managed hosts file).
        return ContainerLaunch(
            executable: argv[0], arguments: Array(argv.dropFirst()),
            environment: PodEnvironment.processEnvironment(variables, hostname: hostname),
            workingDirectory: spec["workingDir"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "/",
            uid: security.uid, gid: security.gid, supplementalGroups: security.supplementalGroups,
            noNewPrivileges: security.noNewPrivileges, readOnlyRootFilesystem: security.readOnlyRootFilesystem,
            capabilities: security.capabilities, mounts: mounts)
    }

    /// The Secrets, ConfigMaps and service account the Pod refers to, as the kubelet's
    /// managers read them (a missing object is nil).
    func fetchObjects() async -> PodObjects {
        var objects = PodObjects()
        var secrets = Set<String>(), configMaps = Set<String>()
        for v in pod["spec"]?["volumes"]?.arrayValue ?? [] {
            if let s = v["secret"]?["secretName"]?.stringValue { secrets.insert(s) }
            if let c = v["configMap"]?["name"]?.stringValue { configMaps.insert(c) }
            for src in v["projected"]?["sources"]?.arrayValue ?? [] {
                if let s = src["secret"]?["name"]?.stringValue { secrets.insert(s) }
                if let c = src["configMap"]?["name"]?.stringValue { configMaps.insert(c) }
            }
        }
        for field in ["initContainers", "containers"] {
            for c in pod["spec"]?[field]?.arrayValue ?? [] {
                for e in c["env"]?.arrayValue ?? [] {
                    if let s = e["valueFrom"]?["secretKeyRef"]?["name"]?.stringValue { secrets.insert(s) }
                    if let m = e["valueFrom"]?["configMapKeyRef"]?["name"]?.stringValue { configMaps.insert(m) }
                }
                for e in c["envFrom"]?.arrayValue ?? [] {
                    if let s = e["secretRef"]?["name"]?.stringValue { secrets.insert(s) }
                    if let m = e["configMapRef"]?["name"]?.stringValue { configMaps.insert(m) }
                }
            }
        }
        for s in secrets { objects.secrets[s] = .some(try? await kubelet.store.get(.secret, namespace: namespace, name: s)) }
        for c in configMaps { objects.configMaps[c] = .some(try? await kubelet.store.get(.kubeletConfigMap, namespace: namespace, name: c)) }
        let sa = pod["spec"]?["serviceAccountName"]?.stringValue ?? "default"
        objects.serviceAccountName = sa
        objects.serviceAccountUID = (try? await kubelet.store.get(.serviceAccount, namespace: namespace, name: sa))?["metadata"]?["uid"]?.stringValue
        return objects
    }

    // MARK: exits and probes

    private func containerExited(_ n: String, number: Int, exit: ContainerExit, at: Date) {
        guard var r = records[n], let running = r.running, running.number == number else { return }
        let code = exit.exitCode
        // containerd's reasons: Completed for 0, Error otherwise (OOMKilled needs a memory cgroup).
        r.previous = r.last
        r.last = TerminatedInstance(id: running.id, number: number, exitCode: code, reason: code == 0 ? "Completed" : "Error", message: nil,
                                    startedAt: running.startedAt, finishedAt: at, finishedInstant: clock.now)
        r.running = nil
        r.ready = false
        // Killed for a new definition: waiting to start again, the last run in lastState.
        r.waiting = r.restartRequested ? ("ContainerCreating", nil) : nil
        records[n] = r
    }

    private func probeResult(_ n: String, number: Int, kind: ProbeKind, success: Bool, message: String, group: inout DiscardingTaskGroup) async {
        guard var r = records[n], let running = r.running, running.number == number else { return }
        switch kind {
        case .readiness:
            r.ready = success
            records[n] = r
            if !success { await kubelet.recordEvent(pod: pod, container: n, type: "Warning", reason: "Unhealthy", message: "Readiness probe failed: \(message)") }
        case .startup:
            if success { running.markStarted(); return }
            fallthrough
        case .liveness:
            guard !success else { return }
            // kuberuntime_manager.go `computePodActions`: a failed liveness (or startup) probe
            // kills the container, which is then restarted per the restart policy.
            await kubelet.recordEvent(pod: pod, container: n, type: "Warning", reason: "Unhealthy", message: "\(kind.rawValue) probe failed: \(message)")
            await kubelet.recordEvent(pod: pod, container: n, reason: "Killing", message: "Container \(n) failed \(kind.rawValue.lowercased()) probe, will be restarted")
            let grace = r.spec[kind == .liveness ? "livenessProbe" : "startupProbe"]?["terminationGracePeriodSeconds"]?.intValue
                ?? pod["spec"]?["terminationGracePeriodSeconds"]?.intValue ?? 30
            let process = running.process
            group.addTask { await PodWorker.kill(process, instance: running, grace: .seconds(max(2, grace))) }
        }
    }

    /// SIGTERM, then SIGKILL once the grace period passes (kuberuntime_container.go `killContainer`).
    static func kill(_ process: ContainerProcess, instance: ContainerInstance, grace: Duration) async {
        await kill(process, deadline: KillDeadline(.now + grace))
    }

    /// SIGTERM, then SIGKILL at `deadline`, which may move earlier meanwhile.
    static func kill(_ process: ContainerProcess, deadline: KillDeadline) async {
        process.signal(SIGTERM)
        await withTaskGroup(of: Bool.self) { g in
            g.addTask { _ = await process.wait(); return true }
            g.addTask { await deadline.wait(); return Task.isCancelled }
            // The grace period ran out first: SIGKILL, before the group waits for the exit.
            if await g.next() == false { process.signal(SIGKILL) }
            g.cancelAll()
        }
    }

    private func startProbers(_ spec: JSONValue, instance: ContainerInstance, launch: ContainerLaunch, sandbox: PodSandbox, _ group: inout DiscardingTaskGroup) {
        let n = spec["name"]?.stringValue ?? ""
        let startup = spec["startupProbe"].map(ProbeSpec.init)
        if startup == nil { instance.markStarted() }
        let podIP = self.podIP
        let send = self.send
        let exec: @Sendable ([String], Duration) async -> Prober.Outcome = { command, timeout in
            var l = launch
            l.executable = command[0]
            l.arguments = Array(command.dropFirst())
            guard let p = try? await ContainerProcess.start(l, in: sandbox) else { return Prober.Outcome(success: false, message: "exec failed") }
            // Unstructured so the output is read while the exit is awaited; awaited or cancelled below.
            let drain = Task { var out = ""; for await (_, line) in p.output { out += String(decoding: line, as: UTF8.self) }; return out }
            let exit: ContainerExit? = await withTaskGroup(of: ContainerExit?.self) { g in
                g.addTask { await p.wait() }
                g.addTask { try? await Task.sleep(for: timeout); return nil }
                let first = await g.next() ?? nil
                // Timed out: kill it before the group waits for the exit.
                if first == nil { p.signal(SIGKILL) }
                g.cancelAll()
                return first
            }
            guard let exit else { drain.cancel(); return Prober.Outcome(success: false, message: "command timed out") }
            let output = await drain.value
            return Prober.Outcome(success: exit == .exited(0), message: exit == .exited(0) ? "" : "command \(command) exited with \(exit.exitCode): \(output)")
        }
        for (kind, key) in [(ProbeKind.startup, "startupProbe"), (.liveness, "livenessProbe"), (.readiness, "readinessProbe")] {
            guard let probe = spec[key] else { continue }
            let ps = ProbeSpec(probe)
            group.addTask {
                // prober/worker.go `run`: readiness starts Failure, liveness and startup Success;
                // nothing is probed before `initialDelaySeconds`, nor (liveness, readiness)
                // before the startup probe succeeded.
                var counter = ProbeCounter(spec: ps, initial: kind == .readiness ? false : true)
                if ps.initialDelay > 0 {
                    do { try await Task.sleep(for: .seconds(ps.initialDelay)) } catch { return }
                }
                while instance.alive && !Task.isCancelled {
                    if kind != .startup && !instance.started {
                        do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
                        continue
                    }
                    let outcome = await Prober.run(ps, container: spec, podIP: podIP, exec: exec)
                    guard instance.alive else { return }
                    if let changed = counter.record(outcome.success) {
                        send.yield(.probe(container: n, instance: instance.number, kind: kind, success: changed, message: outcome.message))
                        // worker.go: after a liveness or startup failure, hold until a new
                        // container; a started container needs no more startup probes.
                        if kind != .readiness && !changed { return }
                        if kind == .startup && changed { return }
                    }
                    do { try await Task.sleep(for: .seconds(ps.period)) } catch { return }
                }
            }
        }
    }

    // MARK: timers

    /// Arms the worker's one timer for the earliest thing it waits for.
    private func schedule(_ at: ContinuousClock.Instant?, _ group: inout DiscardingTaskGroup) {
        guard let at else { return }
        if let t = nextTick, t > clock.now, t <= at { return }
        nextTick = at
        let send = self.send
        group.addTask {
            try? await Task.sleep(until: at, clock: .continuous)
            send.yield(.tick)
        }
    }

    // MARK: termination

    /// Stops the Pod (pod_workers.go `SyncTerminatingPod` → `killPodWithSyncResult`, then
    /// `SyncTerminatedPod`): SIGTERM to every running container, SIGKILL after the grace period,
    /// the sandbox, the volumes; the final status; then, for a Pod being deleted, the status
    /// manager's delete with grace 0 and the uid as precondition (status_manager.go `syncPod`).
    ///
    /// While the containers stop, the worker keeps reading its events: an update with a shorter
    /// `deletionGracePeriodSeconds` (a later `kubectl delete --grace-period=N`, or `--force`, which
    /// removes the Pod from the store) moves the SIGKILL to now + that period (at least 2 s, as
    /// `killContainer`'s minimum), pod_workers.go `UpdatePod` with `calculateEffectiveGracePeriod`.
    func terminate(deleteFromStore: Bool) async {
        let deadline = KillDeadline(clock.now + .seconds(gracePeriod))
        let processes = records.values.compactMap { $0.running?.process }
        let events = self.events
        enum Outcome { case stopped, watched(removedFromStore: Bool) }
        let removed = await withTaskGroup(of: Outcome.self) { g -> Bool in
            for process in processes {
                g.addTask {
                    await PodWorker.kill(process, deadline: deadline)
                    return .stopped
                }
            }
            guard !processes.isEmpty else { return false }
            g.addTask {
                for await event in events {
                    let update: JSONValue
                    switch event {
                    case .updated(let p), .deleted(let p): update = p
                    default: continue
                    }
                    if let seconds = update["metadata"]?["deletionGracePeriodSeconds"]?.intValue {
                        deadline.shorten(to: .now + .seconds(max(2, seconds)))
                    }
                    if case .deleted = event { return .watched(removedFromStore: true) }
                }
                return .watched(removedFromStore: false)
            }
            var stopping = processes.count
            var removed = false
            while stopping > 0, let outcome = await g.next() {
                switch outcome {
                case .stopped: stopping -= 1
                case .watched(let r): removed = removed || r
                }
            }
            // Every container has stopped: the watcher (if still reading) is done.
            g.cancelAll()
            while let outcome = await g.next() {
                if case .watched(let r) = outcome { removed = removed || r }
            }
            return removed
        }
        let deleteFromStore = deleteFromStore && !removed
        let now = Date()
        for (n, r) in records {
            guard let running = r.running else { continue }
            // The exit as reaped (the waiter task may already be gone), after the last lines.
            let exit = await running.process.wait()
            await running.finishLog(atMost: .seconds(1))
            containerExited(n, number: running.number, exit: exit, at: now)
        }
        for (n, r) in records where r.waiting != nil { records[n]!.waiting = nil }
        await sandbox?.stop()
        volumes.tearDown()
        terminal = true
        if deleteFromStore {
            await writeStatus()
            do {
                _ = try await kubelet.store.delete(.pod, namespace: namespace, name: name, preconditionUID: uid, preconditionRV: nil, user: kubelet.user, gracePeriodSeconds: 0)
            } catch {
                logger.info("pod delete after termination failed", metadata: ["error": "\(error.status.message ?? "")"])
            }
        }
    }
}

extension ContainerLogFile {
    /// Returns once the file is closed, or after `limit`.
    func waitClosed(atMost limit: Duration) async {
        let changes = changes()
        await withTaskGroup(of: Void.self) { g in
            g.addTask { for await _ in changes {} }
            g.addTask { try? await Task.sleep(for: limit) }
            await g.next()
            g.cancelAll()
        }
    }
}

extension ResourceKind {
    /// core/v1 ConfigMaps (the kubelet reads them; ResourceKind names only the kinds the API server special-cases).
    static let kubeletConfigMap = find(group: "", version: "v1", plural: "configmaps")!
}
