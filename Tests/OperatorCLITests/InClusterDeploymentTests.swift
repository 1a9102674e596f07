import KubetraceTestKit
import Foundation
import KubeClient
import KubetraceOperator
import Synchronization
import Testing

/// The docs page's install, as a user does it, against `kubetrace-devcluster --node`: the
/// operator runs as the Deployment the manifest describes, each container a real process that
/// the devcluster's kubelet starts in its own namespaces, as uid 65532, with its Secret volume,
/// probes, image pulls from the registry emulator, rolling updates and restarts.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root: the devcluster's node gives each container private mount, UTS and network namespaces (CI runs as root)"),
       .timeLimit(.minutes(10)))
struct InClusterDeploymentTests {
    static let ns = "kubetrace-system"
    static let operatorImage = "blr.vultrcr.com/kubetrace/kubetrace-operator:\(kubetraceVersion)"
    static let nextImage = "blr.vultrcr.com/kubetrace/kubetrace-operator:0.1.1"
    static let appImage = "blr.vultrcr.com/kubetrace/demo-app:1.0"
    static let appNamespace = "apps"

    @Test func installRunsAsADeploymentAndKeepsTheTokenValidThroughRotationsAndARollout() async throws {
        let dir = TempDir()
        let bin = binaryDirectory()
        let cluster = try NodeCluster.start(stateDirectory: dir.path + "/state", arguments: [
            "--image", "\(Self.operatorImage)=\(bin.path)/kubetrace-operator,user=65532:65532",
            "--image", "\(Self.nextImage)=\(bin.path)/kubetrace-operator,user=65532:65532",
            "--image", "\(Self.appImage)=/bin/sleep",
            "--volume-sync-delay", "1",
        ])
        defer { cluster.stop() }
        let state = try await within(.seconds(60), "the devcluster's state files") { try await cluster.waitUntilReady() }
        let kubectlEnv = ["KUBECONFIG": state.kubeconfig]
        let kubectl: @Sendable ([String], String) async throws -> String = { args, what in
            let r = try await runTool("kubectl", args, environment: kubectlEnv)
            #expect(r.status == 0, "kubectl \(args.joined(separator: " ")) (\(what)): \(r.stderr)")
            guard r.status == 0 else { throw Failure("kubectl \(args.first ?? ""): \(what)") }
            return r.stdout
        }

        // An application Deployment in a target namespace, there before the operator: its
        // ServiceAccount has no pull Secret, so its Pod backs off pulling from the private registry.
        _ = try await kubectl(["create", "namespace", Self.appNamespace], "namespace apps")
        // (As YAML: `kubectl create deployment` sends protobuf, which the devcluster decodes only for core kinds.)
        let demo = dir.write("demo.yaml", """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: demo, namespace: \(Self.appNamespace)}
            spec:
              replicas: 1
              selector: {matchLabels: {app: demo}}
              template:
                metadata: {labels: {app: demo}}
                spec:
                  containers:
                  - {name: demo, image: "\(Self.appImage)", command: [/bin/sleep, "3600"]}
            """)
        _ = try await kubectl(["apply", "--server-side", "-f", demo], "deployment demo")
        let stuck = try await awaitPods(state, namespace: Self.appNamespace, selector: "app=demo", timeout: .seconds(60), "a demo Pod in ImagePullBackOff") { pods in
            pods.contains { $0.waitingReason == "ImagePullBackOff" }
        }
        #expect(stuck.first?.waitingMessage.contains(Self.appImage) == true, "\(stuck)")

        // 20 s read-only tokens from the start, so refreshes come every few seconds.
        try await cluster.control(state, "kubetrace-api", ["tokenLifetime": "20"])

        // The README's install block, word for word, after `. .devcluster/install.env`.
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let block = try #require(Self.installBlock(readme), "README.md: no install block under \"## Installing into a cluster\"")
        // TARGET_NAMESPACES (SPEC's variable, which `manifest` reads) opts namespace apps in.
        let install = try await runTool("bash", ["-c", "set -euo pipefail; . \"$1\"; cd \"$2\"; eval \"$3\"", "install",
                                                 state.directory + "/install.env", dir.path, block], environment: ["TARGET_NAMESPACES": Self.appNamespace])
        if install.status != 0 {
            Issue.record("the README's install block:\n\(install.stdout)\n\(install.stderr)\n\(await cluster.diagnostics(state))")
            return
        }
        #expect(install.stdout.contains("successfully rolled out"), "\(install.stdout)")
        let tokens = try KubeconfigTokenLog.follow(state)
        defer { tokens.stop() }

        // From now on a new operator token on every refresh, the old one refused 5 s later.
        try await cluster.control(state, "kubetrace-api", ["rotateOperatorToken": "true", "rotationGrace": "5"])

        // Two Pods Running and Ready, each a process of uid 65532 that can read its token file.
        let pods = try await awaitPods(state, namespace: Self.ns, selector: "app.kubernetes.io/name=kubetrace-operator", timeout: .seconds(30), "two Ready operator Pods") {
            $0.count == 2 && $0.allSatisfy { $0.phase == "Running" && $0.ready }
        }
        // (Other suites run the same binary: only the processes of these Pods, by their HOSTNAME.)
        // (/proc/PID/exe reads as the container sees it: /usr/local/bin/kubetrace-operator.)
        let processes = OperatorProcesses.find(executable: "kubetrace-operator", hostnames: Set(pods.map(\.name)))
        #expect(processes.count == 2, "\(processes)")
        #expect(processes.allSatisfy { $0.uid == 65532 && $0.gid == 65532 }, "\(processes)")

        // One leader, one of the two Pods (a Pod's hostname is its name).
        let holder = try await awaitLeaseHolder(state, timeout: .seconds(30))
        let leader = try #require(pods.first { holder.hasPrefix($0.name + "_") }, "lease holder \(holder) is none of \(pods.map(\.name))")

        // Refreshes in `kubectl logs`; the API rotates the operator token and revokes the old one.
        let original = try String(contentsOfFile: state.directory + "/operator_token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let leaderLog = try await within(.seconds(90), "two refreshes and a rotation in the leader's log") {
            while true {
                let log = try await kubectl(["logs", "-n", Self.ns, leader.name], "the leader's log")
                if log.components(separatedBy: "\"token_refreshed\"").count > 2, log.contains("\"operator_token_rotated\"") { return log }
                try await tokens.nextChange()
            }
        }
        // No refresh failed: the operator authenticated with each rotated token, never a revoked one.
        #expect(!leaderLog.contains("token_refresh_failed"), "\(leaderLog)")
        // The rotated token reached the file the operator reads, through the Secret and the kubelet.
        let operatorSecret = try await kubectl(["get", "secret", "kubetrace-operator", "-n", Self.ns, "-o", "jsonpath={.data.operator_token}"], "the operator Secret")
        let rotated = String(decoding: Data(base64Encoded: operatorSecret) ?? Data(), as: UTF8.self)
        #expect(!rotated.isEmpty && rotated != original)
        try await within(.seconds(30), "the original operator token refused") {
            while try await cluster.kubetraceAPIAccepts(state, token: original) { try await tokens.nextChange() }
        }
        // Every rotated token goes to the Secret, and the kubelet brings the mounted file up to
        // date: both containers' files move off the original token (each refresh rotates again,
        // so the file may trail the Secret by one rotation, never more).
        let seen = Mutex<Set<String>>([])
        try await within(.seconds(60), "the token files in the containers to follow the Secret") {
            while true {
                let current = String(decoding: Data(base64Encoded: try await kubectl(["get", "secret", "kubetrace-operator", "-n", Self.ns, "-o", "jsonpath={.data.operator_token}"], "the operator Secret")) ?? Data(), as: UTF8.self)
                seen.withLock { _ = $0.insert(current) }
                // Through the container's root: /var/run is a symlink to /run, which /proc/PID/root would
                // resolve against the host's root, so the real path is named.
                let files = processes.map { (try? String(contentsOfFile: "/proc/\($0.pid)/root/run/secrets/kubetrace/operator_token", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "" }
                if files.allSatisfy({ f in f != original && seen.withLock { $0.contains(f) } }) { return }
                try await tokens.nextChange()
            }
        }

        // A deleted pull Secret comes back; the stuck demo Pod recovers after the repair.
        _ = try await kubectl(["delete", "secret", "kubetrace-registry", "-n", Self.ns], "delete the pull Secret")
        try await awaitObject(try state.client(), Secret.self, namespace: Self.ns, name: "kubetrace-registry", timeout: .seconds(30), "the pull Secret back") { $0 != nil }
        _ = try await awaitPods(state, namespace: Self.appNamespace, selector: "app=demo", timeout: .seconds(90), "the demo Pod Running after the repair") { pods in
            pods.contains { $0.phase == "Running" && $0.ready }
        }

        // A rolling update to a second image; the token stays valid throughout (checked at the end).
        _ = try await kubectl(["set", "image", "deployment/kubetrace-operator", "-n", Self.ns, "operator=\(Self.nextImage)"], "set image")
        _ = try await kubectl(["rollout", "status", "deployment/kubetrace-operator", "-n", Self.ns, "--timeout=240s"], "the rollout to 0.1.1")
        let rolled = try await awaitPods(state, namespace: Self.ns, selector: "app.kubernetes.io/name=kubetrace-operator", timeout: .seconds(60), "two Ready Pods of 0.1.1") {
            $0.count == 2 && $0.allSatisfy { $0.ready && $0.image == Self.nextImage }
        }

        // doctor: every check passes against the running install.
        // (The operator token now comes from the Secret: the one in the state directory was rotated away.)
        let doctor = try await runCLI(["doctor", "--kubeconfig", state.kubeconfig, "--api-url", state.apiURL, "--ca-file", state.directory + "/ca.crt",
                                       "--registry", state.registryAddress, "--registry-ca-file", state.directory + "/ca.crt"], timeout: .seconds(60))
        #expect(doctor.status == 0, "doctor:\n\(doctor.stdout)\n\(doctor.stderr)")
        #expect(!doctor.stdout.contains("✗"), "\(doctor.stdout)")

        // A deleted Pod is replaced.
        let victim = rolled[0].name
        _ = try await kubectl(["delete", "pod", victim, "-n", Self.ns, "--wait=false"], "delete a Pod")
        _ = try await awaitPods(state, namespace: Self.ns, selector: "app.kubernetes.io/name=kubetrace-operator", timeout: .seconds(90), "a replacement Pod Ready") {
            $0.filter { $0.name != victim && $0.ready }.count == 2
        }

        for pod in try await listPods(try state.client(), namespace: Self.ns, selector: "app.kubernetes.io/name=kubetrace-operator").0 {
            let log = try await kubectl(["logs", "-n", Self.ns, pod.name], "a 0.1.1 Pod's log")
            #expect(!log.contains("token_refresh_failed"), "\(pod.name): \(log)")
        }

        // The read-only kubeconfig token never lapsed: every new token was written before the one
        // it replaced expired, and the last one still works.
        let history = tokens.history
        #expect(history.count >= 3, "\(history.count) kubeconfig writes")
        for (previous, next) in zip(history, history.dropFirst()) {
            #expect(next.observedAt < previous.expiresAt, "a kubeconfig token expired at \(previous.expiresAt) before the next arrived at \(next.observedAt)")
        }
        #expect((history.last?.expiresAt ?? .distantPast) > Date())
        let readOnly = dir.write("readonly.kubeconfig", try await kubectl(["get", "secret", "kubetrace-kubeconfig", "-n", Self.ns, "-o", "jsonpath={.data.kubeconfig}"], "the kubeconfig Secret")
            .data(using: .utf8).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? "")
        let asReadOnly = try await runTool("kubectl", ["get", "pods", "-n", Self.ns, "--certificate-authority", state.directory + "/ca.crt"], environment: ["KUBECONFIG": readOnly])
        #expect(asReadOnly.status == 0, "the read-only kubeconfig: \(asReadOnly.stderr)")
    }
}

extension InClusterDeploymentTests {
    /// The second `sh` block under "## Installing into a cluster" (the first sets the variables).
    static func installBlock(_ readme: String) -> String? {
        guard let section = readme.range(of: "## Installing into a cluster") else { return nil }
        let blocks = readme[section.upperBound...].components(separatedBy: "```sh\n").dropFirst()
        guard blocks.count >= 2 else { return nil }
        return blocks[blocks.startIndex + 1].components(separatedBy: "```").first
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// One Pod as `kubectl get -o json` shows it.
struct PodView: Sendable, CustomStringConvertible {
    var name: String
    var phase: String
    var ready: Bool
    var image: String
    var waitingReason: String
    var waitingMessage: String
    var description: String { "\(name) \(phase) ready=\(ready) \(waitingReason) \(waitingMessage)" }

    init(_ pod: JSONValue) {
        name = pod["metadata"]?["name"]?.stringValue ?? ""
        phase = pod["status"]?["phase"]?.stringValue ?? ""
        ready = pod["status"]?["conditions"]?.arrayValue?.contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" } ?? false
        image = pod["spec"]?["containers"]?.arrayValue?.first?["image"]?.stringValue ?? ""
        let waiting = pod["status"]?["containerStatuses"]?.arrayValue?.first?["state"]?["waiting"]
        waitingReason = waiting?["reason"]?.stringValue ?? ""
        waitingMessage = waiting?["message"]?.stringValue ?? ""
    }
}

/// Waits (a watch through kubectl, bounded) until the Pods matching `selector` satisfy `condition`.
func awaitPods(_ state: NodeClusterState, namespace: String, selector: String, timeout: Duration, _ what: String,
               _ condition: @escaping @Sendable ([PodView]) -> Bool) async throws -> [PodView] {
    let client = try state.client()
    return try await within(timeout, what) {
        while true {
            let (list, rv) = try await listPods(client, namespace: namespace, selector: selector)
            if condition(list) { return list }
            // Wait for the next change to any of them, then look again.
            let (_, body) = try await client.stream(path: "/api/v1/namespaces/\(namespace)/pods",
                                                    query: [("watch", "1"), ("labelSelector", selector), ("resourceVersion", rv), ("timeoutSeconds", "30")])
            for try await chunk in body where chunk.contains(10) { break }
        }
    }
}

func listPods(_ client: KubeClient, namespace: String, selector: String) async throws -> ([PodView], String) {
    let response = try await client.request("GET", path: "/api/v1/namespaces/\(namespace)/pods", query: [("labelSelector", selector)])
    let list = try JSONValue.parse(response.body)
    let pods = (list["items"]?.arrayValue ?? []).filter { $0["metadata"]?["deletionTimestamp"] == nil }.map(PodView.init)
    return (pods, list["metadata"]?["resourceVersion"]?.stringValue ?? "")
}

func awaitLeaseHolder(_ state: NodeClusterState, timeout: Duration) async throws -> String {
    let client = try state.client()
    let lease = try await awaitObject(client, Lease.self, namespace: InClusterDeploymentTests.ns, name: "kubetrace-operator-leader", timeout: timeout, "a Lease holder") {
        !($0?.spec?.holderIdentity ?? "").isEmpty
    }
    return lease?.spec?.holderIdentity ?? ""
}

/// The operator processes the node started, as `ps` would show them.
enum OperatorProcesses {
    struct Found: Sendable, CustomStringConvertible {
        var pid: Int32
        var uid: UInt32
        var gid: UInt32
        var description: String { "pid \(pid) uid \(uid) gid \(gid)" }
    }

    /// The `run` processes of a program named `executable` whose environment has one of `hostnames` as HOSTNAME
    /// (the kubelet sets it to the Pod's name).
    static func find(executable: String, hostnames: Set<String>) -> [Found] {
        let fm = FileManager.default
        var found: [Found] = []
        for entry in (try? fm.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"), exe.hasSuffix("/" + executable),
                  let cmdline = fm.contents(atPath: "/proc/\(pid)/cmdline"), cmdline.split(separator: 0).dropFirst().first.map({ String(decoding: $0, as: UTF8.self) }) == "run",
                  let environ = fm.contents(atPath: "/proc/\(pid)/environ"),
                  environ.split(separator: 0).contains(where: { hostnames.contains(String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "HOSTNAME=", with: "", options: .anchored)) && $0.starts(with: Array("HOSTNAME=".utf8)) }),
                  let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { continue }
            func field(_ name: String) -> UInt32? {
                status.split(separator: "\n").first { $0.hasPrefix(name + ":") }?.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { UInt32($0) }
            }
            found.append(Found(pid: pid, uid: field("Uid") ?? .max, gid: field("Gid") ?? .max))
        }
        return found
    }
}

/// Every write of the read-only kubeconfig Secret, with the token expiry it carried, as a watch sees them.
final class KubeconfigTokenLog: Sendable {
    struct Entry: Sendable {
        var observedAt: Date
        var expiresAt: Date
    }

    private let entries = Mutex<[Entry]>([])
    private let changes = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    var history: [Entry] { entries.withLock { $0 } }

    static func follow(_ state: NodeClusterState) throws -> KubeconfigTokenLog {
        let log = KubeconfigTokenLog()
        let client = try state.client()
        log.task.withLock {
            $0 = Task {
                var lastExpiry: String?
                while !Task.isCancelled {
                    do {
                        let path = "/api/v1/namespaces/\(InClusterDeploymentTests.ns)/secrets"
                        let query = [("watch", "1"), ("fieldSelector", "metadata.name=kubetrace-kubeconfig"), ("timeoutSeconds", "60")]
                        let (_, body) = try await client.stream(path: path, query: query)
                        var buffer: [UInt8] = []
                        for try await chunk in body {
                            buffer += chunk
                            while let nl = buffer.firstIndex(of: 10) {
                                let line = Array(buffer[..<nl])
                                buffer.removeFirst(nl + 1)
                                let expiry = (try? JSONValue.parse(line))?["object"]?["metadata"]?["annotations"]?["kubetrace.net/token-expires-at"]?.stringValue
                                if let expiry, expiry != lastExpiry, let date = ISO8601DateFormatter().date(from: expiry) {
                                    lastExpiry = expiry
                                    log.entries.withLock { $0.append(Entry(observedAt: Date(), expiresAt: date)) }
                                }
                                log.signal()
                            }
                        }
                    } catch {
                        log.signal()
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
        }
        return log
    }

    /// Returns at the next change of the kubeconfig Secret (a refresh): the operator's pace.
    func nextChange() async throws {
        try Task.checkCancellation()
        await withCheckedContinuation { cont in changes.withLock { $0.append(cont) } }
    }

    private func signal() {
        for c in changes.withLock({ w in defer { w = [] }; return w }) { c.resume() }
    }

    func stop() {
        task.withLock { $0?.cancel() }
        signal()
    }
}

/// The state files of a running `kubetrace-devcluster --node`.
struct NodeClusterState: Sendable {
    var directory: String
    var kubeconfig: String
    var apiURL: String
    var vultrURL: String
    /// host:port of the registry emulator (the devcluster's listener).
    var registryAddress: String
    var server: String

    func client() throws -> KubeClient {
        let config = try KubeConfig.load(explicitPath: kubeconfig, environment: [:])
        return KubeClient(connection: try ClusterConnection.from(kubeconfig: config), userAgent: "kubetrace-e2e")
    }
}

/// `kubetrace-devcluster --node` as a process, as `make devcluster` runs it.
final class NodeCluster: Sendable {
    typealias State = NodeClusterState

    let process: Process
    let stateDirectory: String
    /// The devcluster's log lines (also in `devcluster.log` beside the state directory).
    let log: LogSink
    private let exited = DispatchSemaphore(value: 0)

    private init(process: Process, stateDirectory: String, log: LogSink) {
        self.process = process
        self.stateDirectory = stateDirectory
        self.log = log
    }

    static func start(stateDirectory: String, arguments: [String]) throws -> NodeCluster {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = binaryDirectory().appendingPathComponent("kubetrace-devcluster")
        p.arguments = ["--node", "--state-dir", stateDirectory] + arguments
        let logPath = stateDirectory + "/../devcluster.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let pipe = Pipe()
        p.standardOutput = file
        p.standardError = pipe
        let cluster = NodeCluster(process: p, stateDirectory: stateDirectory, log: LogSink())
        p.terminationHandler = { [exited = cluster.exited] _ in exited.signal() }
        try p.run()
        // Every line to the sink (which the test waits on) and to the log file.
        let reader = pipe.fileHandleForReading
        onOwnThread { [log = cluster.log] in
            var pending = Data()
            while case let chunk = reader.availableData, !chunk.isEmpty {
                file.write(chunk)
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 10) {
                    log.append(String(decoding: pending[..<nl], as: UTF8.self))
                    pending = Data(pending[(nl + 1)...])
                }
            }
        }
        return cluster
    }

    /// The state files, once the devcluster says its node is ready (they are written before).
    func waitUntilReady() async throws -> NodeClusterState {
        do {
            try await log.waitFor("node ready", timeout: .seconds(60))
        } catch {
            throw Failure("kubetrace-devcluster did not get ready: \(log.all.suffix(20).joined(separator: "\n"))")
        }
        func read(_ name: String) throws -> String {
            try String(contentsOfFile: stateDirectory + "/" + name, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let apiURL = try read("api_url")
        let server = String(apiURL.dropLast("/kubetrace-api".count))
        return NodeClusterState(directory: stateDirectory, kubeconfig: stateDirectory + "/kubeconfig", apiURL: apiURL, vultrURL: try read("vultr_api_url"),
                                registryAddress: String(server.dropFirst("https://".count)), server: server)
    }

    func control(_ state: NodeClusterState, _ action: String, _ params: [String: String]) async throws {
        let client = try state.client()
        _ = try await client.request("POST", path: "/kubetrace-devcluster/faults/\(action)", query: params.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// Whether the Kubetrace API emulator still takes `token` (a refresh with it answers 200).
    /// Whether the Kubetrace API emulator still takes `token`: its authenticated ping answers 200
    /// (401 once the token is revoked). The header goes through a 0600 file, never argv.
    func kubetraceAPIAccepts(_ state: NodeClusterState, token: String) async throws -> Bool {
        let header = state.directory + "/../ping-header"
        try PrivateFile.write("Authorization: Bearer \(token)\n", to: header, mode: 0o600)
        defer { try? FileManager.default.removeItem(atPath: header) }
        let r = try await runTool("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", state.directory + "/ca.crt",
                                           "-H", "@" + header, state.apiURL + "/v1/ping"])
        guard r.stdout == "200" || r.stdout == "401" else { throw Failure("the Kubetrace API ping answered \(r.stdout): \(r.stderr)") }
        return r.stdout == "200"
    }

    /// What a failed test prints: the Pods as kubectl shows them, their events, and the
    /// devcluster's last log lines.
    func diagnostics(_ state: NodeClusterState) async -> String {
        var out = ""
        for args in [["get", "pods", "-A", "-o", "wide"], ["describe", "pods", "-n", InClusterDeploymentTests.ns], ["get", "events", "-A"]] {
            let r = try? await runTool("kubectl", args, environment: ["KUBECONFIG": state.kubeconfig])
            out += "$ kubectl \(args.joined(separator: " "))\n\(r?.stdout ?? "")\(r?.stderr ?? "")\n"
        }
        return out + "devcluster log:\n" + log.all.suffix(40).joined(separator: "\n")
    }

    /// SIGTERM (the kubelet stops its Pods and unmounts their volumes), SIGKILL after 30 s.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        if exited.wait(timeout: .now() + 30) == .timedOut { kill(process.processIdentifier, SIGKILL) }
    }
}
