import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// A `kubetrace-operator run` process; its stderr is read line by line into a
/// LogSink as it comes (so tests await lines instead of polling), or goes to a file.
final class OperatorProcess: @unchecked Sendable {
    let process = Process()
    let lines = LogSink()
    let exited: AsyncStream<Int32>
    private let drained = DispatchGroup()

    /// `stdoutToo`: stdout goes to `lines` as well (for commands whose output is the point).
    init(_ args: [String], dir: TempDir, name: String, environment: [String: String] = [:], stderrFile: String? = nil, stdoutToo: Bool = false) throws {
        process.executableURL = binaryDirectory().appendingPathComponent("kubetrace-operator")
        process.arguments = args
        var env = ["PATH": "/usr/bin:/bin", "HOME": dir.path].merging(sanitizerEnvironment) { a, _ in a }
        env.merge(environment) { _, n in n }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = stdoutToo ? pipe : FileHandle.nullDevice
        if let stderrFile {
            process.standardError = FileHandle(forWritingAtPath: stderrFile)
        } else {
            process.standardError = pipe
        }
        let (stream, cont) = AsyncStream.makeStream(of: Int32.self)
        exited = stream
        process.terminationHandler = { cont.yield($0.terminationStatus); cont.finish() }
        try process.run()
        guard stderrFile == nil else { return }
        drained.enter()
        let handle = pipe.fileHandleForReading
        let sink = lines
        onOwnThread { [drained] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending += chunk
                while let nl = pending.firstIndex(of: 10) {
                    sink.append(String(decoding: pending[pending.startIndex..<nl], as: UTF8.self))
                    pending = Data(pending[(nl + 1)...])
                }
            }
            if !pending.isEmpty { sink.append(String(decoding: pending, as: UTF8.self)) }
            drained.leave()
        }
    }

    var pid: Int32 { process.processIdentifier }
    /// Everything written to stderr so far.
    var log: String { lines.all.joined(separator: "\n") }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Sends `signal` and waits (bounded) for the exit status and the end of stderr.
    func stop(_ signal: Int32 = SIGTERM, within: Duration = .seconds(20)) async throws -> Int32 {
        kill(process.processIdentifier, signal)
        return try await withThrowingTaskGroup(of: Int32.self) { group in
            group.addTask {
                var status: Int32 = -1
                for await s in self.exited { status = s }
                await withCheckedContinuation { c in self.drained.notify(queue: .global()) { c.resume() } }
                return status
            }
            group.addTask { try await Task.sleep(for: within); throw AwaitTimeout(description: "the operator did not exit within \(within)") }
            let s = try await group.next()!
            group.cancelAll()
            return s
        }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

@Suite(.timeLimit(.minutes(2))) struct LeaderElectionTests {
    /// Two replicas: only the leader repairs; killing it hands over within the lease
    /// duration; a graceful stop releases the Lease.
    @Test func onlyTheLeaderWritesAndTheOtherTakesOver() async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))
            let client = try await cliClient(cluster)
            let ns = "kubetrace-system"
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: ns)))
            let doc = SecretBytes(#"{"auths":{"blr.vultrcr.com":{"username":"u","password":"pull-pass-canary","auth":"dTpw"}}}"#)
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: ns), type: "kubernetes.io/dockerconfigjson",
                                               data: [".dockerconfigjson": doc]))
            let args = ["run", "--kubeconfig", kubeconfig, "--namespace", ns, "--token-source", "tokenrequest",
                        "--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "500ms"]
            let a = try OperatorProcess(args, dir: dir, name: "a")
            let leaseA = try await awaitObject(client, Lease.self, namespace: ns, name: "kubetrace-operator-leader", timeout: .seconds(20), "the first replica leading") {
                !($0?.spec?.holderIdentity ?? "").isEmpty
            }
            let first = leaseA?.spec?.holderIdentity ?? ""
            #expect(leaseA?.spec?.leaseDurationSeconds == 3)
            let b = try OperatorProcess(args, dir: dir, name: "b")

            // The standby keeps its watches; only the leader repairs.
            _ = try await client.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
            try await awaitObject(client, Secret.self, namespace: ns, name: "kubetrace-registry", "recreated by the leader") { $0?.data?[".dockerconfigjson"] == doc }
            try await a.lines.waitFor("pull_secret_repaired")

            // The leader dies without releasing: the standby takes over once the lease lapses.
            let killedAt = ContinuousClock.now
            _ = try await a.stop(SIGKILL)
            let leaseB = try await awaitObject(client, Lease.self, namespace: ns, name: "kubetrace-operator-leader", timeout: .seconds(15), "the second replica leading") {
                let h = $0?.spec?.holderIdentity ?? ""
                return !h.isEmpty && h != first
            }
            let handover = ContinuousClock.now - killedAt
            #expect(handover <= .seconds(5), "took over after \(handover); lease 3 s, retry 0.5 s")
            #expect(leaseB?.spec?.leaseTransitions == 1)
            _ = try await client.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
            try await awaitObject(client, Secret.self, namespace: ns, name: "kubetrace-registry", "recreated by the new leader") { $0?.data?[".dockerconfigjson"] == doc }
            try await b.lines.waitFor("pull_secret_repaired")

            // Graceful stop: exit 0 and the Lease handed back at once.
            #expect(try await b.stop() == 0)
            let released = try await client.get(Lease.self, namespace: ns, name: "kubetrace-operator-leader")
            #expect(released.spec?.holderIdentity == "")

            let logA = a.log, logB = b.log
            #expect(logA.components(separatedBy: "pull_secret_repaired").count - 1 == 1, "\(logA)")
            #expect(logB.components(separatedBy: "pull_secret_repaired").count - 1 == 1, "\(logB)")
            #expect(logB.contains("leader_acquired") && logB.contains("leader_released"))
            for log in [logA, logB] {
                #expect(!log.contains("pull-pass-canary") && !log.contains(cluster.adminToken))
            }
        }
    }
}
