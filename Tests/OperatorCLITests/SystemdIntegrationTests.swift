import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// The real systemd tools on the unit file, and the real journald receiving our entries.
@Suite(.timeLimit(.minutes(2))) struct SystemdIntegrationTests {
    static var unitPath: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("systemd/kubetrace-operator.service").path }

    /// The unit as shipped, its ExecStart pointed at the built binary (verify checks that it exists).
    func unitCopy(_ dir: TempDir, replacing: (String) -> String = { $0 }) throws -> String {
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        let binary = binaryDirectory().appendingPathComponent("kubetrace-operator").path
        let local = text.replacingOccurrences(of: "ExecStart=/usr/local/bin/kubetrace-operator", with: "ExecStart=\(binary)")
        return dir.write("kubetrace-operator.service", replacing(local), mode: 0o644)
    }

    @Test func unitVerifiesAndIsHardened() async throws {
        let dir = TempDir()
        let unit = try unitCopy(dir)
        let verify = try await runTool("systemd-analyze", ["verify", unit])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stderr.isEmpty, "\(verify.stderr)")
        let security = try await runTool("systemd-analyze", ["security", "--offline=yes", unit])
        let line = security.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") } ?? ""
        let level = line.split(separator: " ").compactMap { Double($0) }.first
        #expect(level != nil && level! <= 2.0, "\(line)")
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        for directive in ["Type=notify", "NotifyAccess=main", "WatchdogSec=", "Restart=on-failure", "LoadCredential=operator_token:", "LoadCredential=kubeconfig:",
                          "EnvironmentFile=-/etc/kubetrace/operator.env", "DynamicUser=yes", "StateDirectory="] {
            #expect(text.contains(directive), "the unit lacks \(directive)")
        }
        // The checks can fail: a broken directive is caught.
        let broken = try unitCopy(TempDir()) { $0.replacingOccurrences(of: "Type=notify", with: "Type=notifyy") }
        let bad = try await runTool("systemd-analyze", ["verify", broken])
        #expect(bad.status != 0 || !bad.stderr.isEmpty)
    }

    @Test(.enabled(if: Journald.canStart, "starting systemd-journald needs root"))
    func journaldEntriesCarryOurFieldsAndNoSecrets() async throws {
        try await Journald.withRunning {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let url = await cluster.url()
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: url))
            let ca = dir.write("ca.crt", cluster.certificateAuthority!.certificate.certificatePEM)
            let client = try await cliClient(cluster)
            let ns = "kubetrace-system"
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: ns)))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-operator", namespace: ns), type: "Opaque",
                                               data: ["operator_token": SecretBytes(cluster.operatorToken)]))
            let pullPassword = "pull-canary-\(UUID().uuidString.prefix(8))"
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: ns), type: "kubernetes.io/dockerconfigjson",
                                               data: [".dockerconfigjson": SecretBytes(#"{"auths":{"blr.vultrcr.com":{"username":"u","password":"\#(pullPassword)","auth":"dTpw"}}}"#)]))
            // stderr is a file; JOURNAL_STREAM names it, so `auto` picks journald (as under systemd).
            let stderrPath = "\(dir.path)/stderr"
            FileManager.default.createFile(atPath: stderrPath, contents: nil)
            var st = stat()
            stat(stderrPath, &st)
            let op = try OperatorProcess(["run", "--kubeconfig", kubeconfig, "--namespace", ns, "--api-url", url + "/kubetrace-api", "--cluster-id", "c-1", "--ca-file", ca],
                                         dir: dir, name: "op", environment: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"], stderrFile: stderrPath)
            let refreshed = try await awaitObject(client, Secret.self, namespace: ns, name: "kubetrace-kubeconfig", timeout: .seconds(30), "the kubeconfig refreshed") {
                $0?.metadata.annotations?["kubetrace.net/token-expires-at"] != nil
            }
            let token = try KubeConfig.parse(yaml: refreshed?.data?["kubeconfig"]?.string ?? "", file: "k", directory: "/").users.values.compactMap(\.token).first?.value ?? "none"
            try await client.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
            try await awaitObject(client, Secret.self, namespace: ns, name: "kubetrace-registry", "the pull Secret repaired") { $0 != nil }

            // journald stores entries asynchronously: query until both events show (bounded).
            var entries: [JSONValue] = []
            var raw = ""
            let clock = ContinuousClock()
            let end = clock.now + .seconds(15)
            while clock.now < end {
                let r = try await runTool("journalctl", ["-o", "json", "--no-pager", "_PID=\(op.pid)"])
                raw = r.stdout
                entries = raw.split(separator: "\n").compactMap { try? JSONValue.parse(Array($0.utf8)) }
                let events = Set(entries.compactMap { $0["KUBETRACE_EVENT"]?.stringValue })
                if events.contains("token_refreshed") && events.contains("pull_secret_repaired") { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(try await op.stop() == 0)
            let refreshedEntry = entries.first { $0["KUBETRACE_EVENT"]?.stringValue == "token_refreshed" }
            #expect(refreshedEntry?["SYSLOG_IDENTIFIER"]?.stringValue == "kubetrace-operator")
            #expect(refreshedEntry?["PRIORITY"]?.stringValue == "6")
            #expect(refreshedEntry?["KUBETRACE_CLUSTER_ID"]?.stringValue == "c-1")
            #expect(refreshedEntry?["CODE_FILE"]?.stringValue?.hasSuffix("CredentialLoop.swift") == true)
            #expect(Int(refreshedEntry?["CODE_LINE"]?.stringValue ?? "") ?? 0 > 0)
            #expect(refreshedEntry?["CODE_FUNC"]?.stringValue?.isEmpty == false)
            let repaired = entries.first { $0["KUBETRACE_EVENT"]?.stringValue == "pull_secret_repaired" }
            #expect(repaired?["KUBETRACE_OBJECT"]?.stringValue == "kubetrace-system/kubetrace-registry", "\(raw)")
            // No secret anywhere in the journal entries, nor on stderr.
            for canary in [cluster.operatorToken, cluster.adminToken, pullPassword, token] {
                #expect(!raw.contains(canary), "a secret reached the journal")
            }
            let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            #expect(stderr.isEmpty, "journald mode writes nothing to stderr: \(stderr)")
        }
        }
    }
}
