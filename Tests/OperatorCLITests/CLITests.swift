import Foundation
import KubeClient
import KubeSim
import KubetraceTestKit
import Testing

func binaryDirectory() -> URL {
    if let dir = ProcessInfo.processInfo.environment["KUBETRACE_BIN_DIR"] { return URL(fileURLWithPath: dir) }
    // The test runner lives in the build products directory beside the executables.
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
}

/// Runs the built `kubetrace-operator` binary as a user would, with a bare environment.
func runCLI(_ args: [String], environment: [String: String] = [:], timeout: Duration = .seconds(120)) async throws -> ProcessResult {
    var env = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory() + "kt-no-home"].merging(sanitizerEnvironment) { a, _ in a }
    env.merge(environment) { _, new in new }
    return try await runProcess(binaryDirectory().appendingPathComponent("kubetrace-operator"), args, environment: env, timeout: timeout)
}

@Suite(.timeLimit(.minutes(1))) struct CLITests {
    @Test func version() async throws {
        let r = try await runCLI(["version"])
        #expect(r.status == 0)
        #expect(r.stdout == "kubetrace-operator 0.1.0\n")
    }

    @Test(arguments: ["run", "manifest", "doctor", "events"])
    func configurationErrorsExit2NamingTheInput(command: String) async throws {
        let missing = try await runCLI([command, "--kubeconfig", "/nonexistent/kubeconfig"])
        #expect(missing.status == 2)
        #expect(missing.stderr.hasPrefix("kubetrace-operator: error: kubeconfig /nonexistent/kubeconfig: cannot be read ("))

        let dir = TempDir()
        let bad = dir.write("config", """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
        users: [{name: u, user: {client-key-data: "not*base64"}}]
        contexts: [{name: c, context: {cluster: c, user: u}}]
        """)
        let malformed = try await runCLI([command, "--kubeconfig", bad])
        #expect(malformed.status == 2)
        #expect(malformed.stderr == "kubetrace-operator: error: kubeconfig \(bad): users[0].user.client-key-data: not valid base64\n")

        let viaEnv = try await runCLI([command], environment: ["KUBECONFIG": bad])
        #expect(viaEnv.status == 2)
        #expect(viaEnv.stderr.contains("users[0].user.client-key-data: not valid base64"))

        let good = dir.write("good", """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
        contexts: [{name: c, context: {cluster: c}}]
        """)
        let unknownContext = try await runCLI([command, "--kubeconfig", good, "--context", "nope"])
        #expect(unknownContext.status == 2)
        #expect(unknownContext.stderr.contains("--context \"nope\" is not defined (contexts: c)"))
    }

    @Test func usageErrorsExit2() async throws {
        let unknown = try await runCLI(["run", "--bogus"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("Unknown option '--bogus'"))
        let noCommand = try await runCLI(["frobnicate"])
        #expect(noCommand.status == 2)
        let empty = try await runCLI(["run", "--kubeconfig", ""])
        #expect(empty.status == 2)
        #expect(empty.stderr.contains("--kubeconfig: must not be empty"))
        let help = try await runCLI(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("SUBCOMMANDS"))
    }

    @Test func noKubeconfigAtAllSaysWhatToPass() async throws {
        let r = try await runCLI(["doctor"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("no kubeconfig:"))
        #expect(r.stderr.contains("pass --kubeconfig FILE"))
    }

    /// `run` against the devcluster: it refreshes the kubeconfig Secret, and SIGTERM stops it cleanly.
    @Test func runRefreshesAndStopsOnSIGTERM() async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let url = await cluster.url()
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: url))
            let ca = dir.write("ca.crt", cluster.certificateAuthority!.certificate.certificatePEM)
            let client = try await cliClient(cluster)
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: "kubetrace-system")))
            _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "kubetrace-readonly-user", namespace: "kubetrace-system")))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-operator", namespace: "kubetrace-system"), type: "Opaque",
                                               data: ["operator_token": SecretBytes(cluster.operatorToken)]))
            // Watch for the kubeconfig Secret the operator will write.
            let path = Secret.resource.path(namespace: "kubetrace-system")
            let (_, body) = try await client.stream(path: path, query: [("watch", "1"), ("fieldSelector", "metadata.name=kubetrace-kubeconfig")])
            let process = Process()
            process.executableURL = binaryDirectory().appendingPathComponent("kubetrace-operator")
            process.arguments = ["run", "--kubeconfig", kubeconfig, "--namespace", "kubetrace-system", "--api-url", url + "/kubetrace-api",
                                 "--cluster-id", "c-1", "--ca-file", ca]
            process.environment = ["PATH": "/usr/bin:/bin", "HOME": dir.path]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            let (exited, exitedCont) = AsyncStream.makeStream(of: Int32.self)
            process.terminationHandler = { exitedCont.yield($0.terminationStatus); exitedCont.finish() }
            try process.run()
            // Drain stderr as it comes, so a chatty process can never block on a full pipe.
            let stderrBox = DataBox()
            let drained = DispatchGroup()
            drained.enter()
            onOwnThread { stderrBox.data = err.fileHandleForReading.readDataToEndOfFile(); drained.leave() }
            var seen = ""
            for try await chunk in body {
                seen += String(decoding: chunk, as: UTF8.self)
                if seen.contains("\"ADDED\"") || !process.isRunning { break }
            }
            #expect(seen.contains("kubetrace.net/token-expires-at"))
            kill(process.processIdentifier, SIGTERM)
            var status: Int32 = -1
            for await s in exited { status = s }
            #expect(status == 0)
            await withCheckedContinuation { c in drained.notify(queue: .global()) { c.resume() } }
            let stderr = String(decoding: stderrBox.data, as: UTF8.self)
            #expect(stderr.split(separator: "\n").contains { $0.contains("credential refreshed") && $0.contains("kubeconfig-token") }, "\(stderr)")
            #expect(!stderr.contains(cluster.operatorToken) && !stderr.contains(cluster.adminToken))
        }
    }

    @Test func runRefusesAPlainHTTPAPIURL() async throws {
        let dir = TempDir()
        let kubeconfig = dir.write("kubeconfig", """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
        contexts: [{name: c, context: {cluster: c}}]
        """)
        let r = try await runCLI(["run", "--kubeconfig", kubeconfig, "--api-url", "http://api.example.com", "--cluster-id", "c"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--api-url: \"http://api.example.com\" must be https"))
        let short = try await runCLI(["run", "--kubeconfig", kubeconfig, "--token-source", "tokenrequest", "--token-lifetime", "5m"])
        #expect(short.status == 2)
        #expect(short.stderr.contains("--token-lifetime: must be at least 10m"))
    }
}

@Suite(.timeLimit(.minutes(1))) struct DevClusterBinaryTests {
    @Test func startsWritesItsStateAndStopsCleanlyOnSIGTERM() async throws {
        let dir = TempDir()
        let process = Process()
        process.executableURL = binaryDirectory().appendingPathComponent("kubetrace-devcluster")
        process.arguments = ["--state-dir", "\(dir.path)/state"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        let (exited, exitedCont) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { exitedCont.yield($0.terminationStatus); exitedCont.finish() }
        try process.run()
        // "ready" is logged once the state files are written.
        let (listening, listeningCont) = AsyncStream.makeStream(of: Void.self)
        let reader = err.fileHandleForReading
        let seen = DataBox()
        reader.readabilityHandler = { h in
            seen.data.append(h.availableData)
            if String(decoding: seen.data, as: UTF8.self).contains("kubetrace-devcluster ready") { listeningCont.yield() }
        }
        for await _ in listening { break }
        reader.readabilityHandler = nil
        let port = try String(contentsOfFile: "\(dir.path)/state/port", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Int(port) != nil)
        let attrs = try FileManager.default.attributesOfItem(atPath: "\(dir.path)/state/kubeconfig")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        let r = try await runCLI(["doctor", "--kubeconfig", "\(dir.path)/state/kubeconfig"])
        #expect(r.stdout.contains("reachable at https://127.0.0.1:\(port)"))
        kill(process.processIdentifier, SIGTERM)
        var status: Int32 = -1
        for await s in exited { status = s }
        #expect(status == 0)
    }
}

@Suite(.timeLimit(.minutes(1))) struct EventsCommandTests {
    @Test func printsTypedEventsAsJSONLinesWithoutSecretValues() async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))
            let client = try await cliClient(cluster)
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "pull", namespace: "default"), type: "Opaque", data: ["operator_token": SecretBytes("CANARY-events-secret")]))
            _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "sa", namespace: "default")))
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: "sum")))
            let r = try await runCLI(["events", "--kubeconfig", kubeconfig, "--namespace", "default", "--kind", "secrets,serviceaccounts", "--max-events", "2"])
            #expect(r.status == 0, "\(r.stderr)")
            let lines = try r.stdout.split(separator: "\n").map { try JSONValue.parse(Array($0.utf8)) }
            let changes = lines.filter { $0["type"] != .string("synced") }
            #expect(Set(changes.map { "\($0["type"]!.stringValue!) \($0["kind"]!.stringValue!) \($0["namespace"]!.stringValue!)/\($0["name"]!.stringValue!)" })
                    == ["added Secret default/pull", "added ServiceAccount default/sa"])
            #expect(changes.allSatisfy { $0["resourceVersion"]?.stringValue?.isEmpty == false })
            #expect(!r.stdout.contains("CANARY") && !r.stderr.contains("CANARY"))
            let bad = try await runCLI(["events", "--kubeconfig", kubeconfig, "--kind", "widgets"])
            #expect(bad.status == 2)
            #expect(bad.stderr.contains("--kind: unknown kind \"widgets\""))
            // --output summary: no per-event lines; counts, the resourceVersion sum, and the time taken.
            var rvs = 0
            for i in 0..<5 {
                let s = try await client.create(Secret(metadata: ObjectMeta(name: "s-\(i)", namespace: "sum"), type: "Opaque"), namespace: "sum")
                rvs += Int(s.metadata.resourceVersion ?? "") ?? 0
            }
            let summary = try await runCLI(["events", "--kubeconfig", kubeconfig, "--namespace", "sum", "--kind", "secrets", "--max-events", "5", "--output", "summary"])
            #expect(summary.status == 0, "\(summary.stderr)")
            let summaryLines = summary.stdout.split(separator: "\n")
            #expect(summaryLines.count == 1, "\(summary.stdout)")
            let json = try JSONValue.parse(Array((summaryLines.first ?? "").utf8))
            // With --max-events: the resident memory when the last event arrived, and the peak (VmHWM).
            let rss = json["rss_mb"].flatMap { if case .double(let d) = $0 { d } else { $0.intValue.map(Double.init) } } ?? 0
            let peak = json["peak_rss_mb"].flatMap { if case .double(let d) = $0 { d } else { $0.intValue.map(Double.init) } } ?? 0
            #expect(rss > 1 && peak >= rss, "\(summary.stdout)")
            #expect(json["events"] == .int(5))
            #expect(json["by_type"]?["added"] == .int(5))
            #expect(json["resource_version_sum"] == .int(rvs))
            if case .double(let seconds)? = json["seconds"] { #expect(seconds > 0 && seconds < 30) } else { Issue.record("no seconds: \(json)") }
            let badOutput = try await runCLI(["events", "--kubeconfig", kubeconfig, "--output", "yaml"])
            #expect(badOutput.status == 2 && badOutput.stderr.contains("--output: \"yaml\" is not json or summary"))
            let badIdle = try await runCLI(["events", "--kubeconfig", kubeconfig, "--watch-idle-timeout", "soon"])
            #expect(badIdle.status == 2)
            #expect(badIdle.stderr.contains("--watch-idle-timeout: \"soon\" is not a duration"))
        }
    }
}

func cliClient(_ cluster: DevCluster) async throws -> KubeClient { try await adminClient(cluster) }
