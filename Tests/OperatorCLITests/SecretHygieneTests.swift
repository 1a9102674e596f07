import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Synchronization
import Testing

/// Canary secrets through the whole operator — refreshes (with rotated operator tokens and new
/// pull credentials), repairs, API errors, debug logging — in each log format. Every canary is
/// then looked for everywhere a secret could escape: stdout and stderr, the journal, argv, the
/// environment of the child processes it starts, /metrics, Kubernetes Events, `doctor`'s output
/// and the error messages on the way.
@Suite(.timeLimit(.minutes(3))) struct SecretHygieneTests {
    @Test(arguments: ["json", "text"])
    func canariesAppearNowhere(format: String) async throws {
        try await run(format: format)
    }

    @Test(.enabled(if: Journald.canStart, "starting systemd-journald needs root"))
    func canariesAppearNowhereInTheJournal() async throws {
        try await Journald.withRunning { try await run(format: "journald") }
    }

    func run(format: String) async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let url = await cluster.url()
            let ns = "kubetrace-system"
            let client = try await cliClient(cluster)
            let pullPassword = "pull-canary-\(UUID().uuidString)"
            cluster.kubetraceAPI.configure {
                $0.tokenLifetime = 12
                $0.rotateOperatorToken = true
                $0.registryLifetime = 3600
            }
            for n in [ns, "apps"] { _ = try await client.create(Namespace(metadata: ObjectMeta(name: n))) }
            _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "default", namespace: "apps")))
            _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "kubetrace-readonly-user", namespace: ns)))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-operator", namespace: ns), type: "Opaque", data: [
                "operator_token": SecretBytes(cluster.operatorToken), "vultr_api_key": SecretBytes(cluster.vultrAPIKey),
                "registry_id": SecretBytes(DevCluster.vultrRegistryID)]))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: ns), type: "kubernetes.io/dockerconfigjson",
                                               data: [".dockerconfigjson": SecretBytes(#"{"auths":{"blr.vultrcr.com":{"username":"u","password":"\#(pullPassword)","auth":"dTpw"}}}"#)]))

            // The operator's own credentials come from an exec plugin that records the environment
            // it was given: the operator's children must not inherit a secret.
            let plugin = dir.write("credential-plugin", """
            #!/bin/sh
            env > "\(dir.path)/child-env.$$"
            printf '%s' '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"\(cluster.adminToken)"}}'
            """, mode: 0o700)
            let ca = dir.write("ca.crt", cluster.certificateAuthority!.certificate.certificatePEM)
            let kubeconfig = dir.write("kubeconfig", """
            apiVersion: v1
            kind: Config
            current-context: c
            clusters: [{name: c, cluster: {server: "\(url)", certificate-authority: \(ca)}}]
            contexts: [{name: c, context: {cluster: c, user: u}}]
            users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: \(plugin), interactiveMode: Never}}}]
            """)
            let metricsPort = try freeLoopbackPort()
            var environment = ["API_URL": url + "/kubetrace-api", "CLUSTER_ID": "hygiene", "POD_NAMESPACE": ns, "LOG_LEVEL": "debug",
                               "LOG_FORMAT": format, "METRICS_ADDR": "127.0.0.1:\(metricsPort)", "TARGET_NAMESPACES": "apps"]
            let stderrPath = "\(dir.path)/stderr"
            FileManager.default.createFile(atPath: stderrPath, contents: nil)
            if format == "journald" {
                var st = stat()
                stat(stderrPath, &st)
                environment["JOURNAL_STREAM"] = "\(st.st_dev):\(st.st_ino)"
                environment["LOG_FORMAT"] = "auto"
            }
            let args = ["run", "--kubeconfig", kubeconfig, "--ca-file", ca, "--vultr-api-url", url + "/vultr", "--leader-elect", "false"]
            let op = try OperatorProcess(args, dir: dir, name: "op", environment: environment, stderrFile: format == "journald" ? stderrPath : nil, stdoutToo: true)

            // Refreshes: the kubeconfig Secret is written three times (a 12 s token, refreshed at
            // ~80 %), with a rejected operator token and a non-JSON answer in between.
            let seen = Mutex(Set<String>())
            try await awaitObject(client, Secret.self, namespace: ns, name: "kubetrace-kubeconfig", timeout: .seconds(30), "the first refresh") { s in
                seen.withLock { set in
                    if let a = s?.metadata.annotations?["kubetrace.net/token-expires-at"] { set.insert(a) }
                    return !set.isEmpty
                }
            }
            cluster.kubetraceAPI.fail(.unauthorized)
            cluster.kubetraceAPI.fail(.notJSON)
            cluster.vultr.failNext(status: 500)
            try await awaitObject(client, Secret.self, namespace: ns, name: "kubetrace-kubeconfig", timeout: .seconds(60), "two more refreshes") { s in
                seen.withLock { set in
                    if let a = s?.metadata.annotations?["kubetrace.net/token-expires-at"] { set.insert(a) }
                    return set.count >= 3
                }
            }
            // Repairs, one of them through failing writes.
            try await client.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
            try await awaitObject(client, Secret.self, namespace: ns, name: "kubetrace-registry", "the pull Secret recreated") { $0 != nil }
            cluster.faults.failNext(.init(count: 3, status: 500, method: "POST", pathPrefix: "/api/v1/namespaces/apps/secrets"))
            try await awaitObject(client, Secret.self, namespace: "apps", name: "kubetrace-registry", "the copy in apps") { $0 != nil }
            try await client.delete(Secret.self, namespace: "apps", name: "kubetrace-registry")
            try await awaitObject(client, Secret.self, namespace: "apps", name: "kubetrace-registry", "the copy recreated") { $0 != nil }

            // Everywhere a secret could escape, gathered while the operator runs.
            var places: [(String, String)] = []
            places.append(("argv", (try? String(contentsOfFile: "/proc/\(op.pid)/cmdline", encoding: .utf8)) ?? ""))
            let metrics = try await runTool("curl", ["-s", "http://127.0.0.1:\(metricsPort)/metrics"])
            places.append(("/metrics", metrics.stdout))
            let coreEvents = try await client.list(CoreEvent.self, namespace: ns).items.map { "\($0.reason ?? "") \($0.message ?? "")" }
            let events = try await client.list(Event.self, namespace: ns).items.map { "\($0.reason ?? "") \($0.note ?? "")" }
            places.append(("Events", (coreEvents + events).joined(separator: "\n")))
            let doctorKubeconfig = dir.write("doctor.kubeconfig", cluster.kubeconfigYAML(server: url))
            let doctor = try await runCLI(["doctor", "--kubeconfig", doctorKubeconfig, "--namespace", ns, "--ca-file", ca],
                                          environment: ["API_URL": url + "/kubetrace-api", "LOG_LEVEL": "debug"])
            places.append(("doctor", doctor.stdout + doctor.stderr))
            #expect(try await op.stop() == 0)
            let childEnvironments = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("child-env.") }
            places.append(("child environment", try childEnvironments.map { try String(contentsOfFile: "\(dir.path)/\($0)", encoding: .utf8) }.joined()))
            let log = op.log + ((try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")
            places.append(("stdout/stderr", log))
            if format == "journald" {
                let journal = try await runTool("journalctl", ["-o", "json", "--no-pager", "_PID=\(op.pid)"])
                places.append(("journal", journal.stdout))
                #expect(journal.stdout.contains("token_refreshed"), "the journal holds the operator's entries")
            }

            // The canaries, including the ones minted during the run: rotated operator tokens, the
            // read-only token, pull passwords from the API and from Vultr.
            var canaries = [cluster.operatorToken, cluster.vultrAPIKey, cluster.adminToken, pullPassword]
            let opSecret = try await client.get(Secret.self, namespace: ns, name: "kubetrace-operator")
            if let rotated = opSecret.data?["operator_token"]?.string { canaries.append(rotated) }
            let kc = try await client.get(Secret.self, namespace: ns, name: "kubetrace-kubeconfig").data?["kubeconfig"]?.string ?? ""
            canaries += try KubeConfig.parse(yaml: kc, file: "k", directory: "/").users.values.compactMap { $0.token?.value }
            for n in [ns, "apps"] {
                let doc = try await client.get(Secret.self, namespace: n, name: "kubetrace-registry").data?[".dockerconfigjson"]?.bytes ?? []
                for (_, entry) in try JSONValue.parse(doc)["auths"]?.objectValue ?? [:] {
                    if let p = entry["password"]?.stringValue { canaries.append(p) }
                    if let a = entry["auth"]?.stringValue, a.count > 8 { canaries.append(a) }
                }
            }
            canaries = Array(Set(canaries.filter { $0.count >= 8 }))
            #expect(canaries.count >= 7, "the run produced its canaries: \(canaries.count)")

            // The places are real: each holds what it should, so "no canary" means something.
            #expect(places.first { $0.0 == "/metrics" }?.1.contains("kubetrace_credential_refresh") == true)
            #expect(places.first { $0.0 == "Events" }?.1.contains("PullSecretRepaired") == true)
            #expect(places.first { $0.0 == "doctor" }?.1.contains("api-server") == true && places.first { $0.0 == "doctor" }?.1.contains("pull-secret") == true)
            #expect(!childEnvironments.isEmpty, "the exec plugin ran")
            if format != "journald" {
                #expect(log.contains("refreshed") && log.contains("rejected") && log.contains("repaired"), "\(log.suffix(2000))")
            }
            // And the search finds a canary where one is (the plugin holds the admin token).
            #expect(try String(contentsOfFile: plugin, encoding: .utf8).contains(cluster.adminToken))

            for (place, text) in places {
                for canary in canaries where text.contains(canary) {
                    Issue.record("a secret (\(canary.prefix(4))…, \(canary.count) chars) appeared in \(place) [\(format)]")
                }
            }
        }
    }
}

/// A loopback port nothing listens on now (bound and released; the operator binds it next).
func freeLoopbackPort() throws -> Int {
    let (fd, port) = try loopbackSocket(listening: false)
    close(fd)
    return port
}
