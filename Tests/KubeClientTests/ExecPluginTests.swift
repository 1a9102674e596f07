import Foundation
import KubeClient
import Testing

@Suite struct ExecPluginTests {
    /// Writes an exec plugin script and a kubeconfig that uses it.
    func setup(script: String, provideClusterInfo: Bool = false) throws -> (TempDir, ClusterConnection) {
        let dir = TempDir()
        dir.write("plugin.sh", "#!/bin/sh\n" + script, mode: 0o700)
        let yaml = """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
        users:
        - name: u
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: ./plugin.sh
              args: [--flag]
              env: [{name: PLUGIN_DIR, value: "\(dir.path)"}]
              interactiveMode: Never
              provideClusterInfo: \(provideClusterInfo)
              installHint: install the kubetrace auth plugin
        contexts: [{name: c, context: {cluster: c, user: u}}]
        """
        let config = try KubeConfig.parse(file: dir.write("config", yaml))
        return (dir, try ClusterConnection.from(kubeconfig: config))
    }

    @Test func cachesUntilExpiryAndPassesClusterInfo() async throws {
        let expiry = RFC3339.format(Date().addingTimeInterval(3600))
        let (dir, conn) = try setup(script: """
        echo run >> "$PLUGIN_DIR/runs"
        printf '%s' "$KUBERNETES_EXEC_INFO" > "$PLUGIN_DIR/info"
        echo "$1" > "$PLUGIN_DIR/args"
        echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"exec-token","expirationTimestamp":"\(expiry)"}}'
        """, provideClusterInfo: true)
        let provider = CredentialProvider(conn.credentials)
        let first = try await provider.current()
        let second = try await provider.current()
        #expect(first.bearer?.value == "exec-token")
        #expect(second.bearer?.value == "exec-token")
        #expect(first.expiresAt != nil)
        let runs = try String(contentsOfFile: "\(dir.path)/runs", encoding: .utf8).split(separator: "\n").count
        #expect(runs == 1)
        let info = try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: "\(dir.path)/info"))))
        #expect(info["spec"]?["cluster"]?["server"]?.stringValue == "https://127.0.0.1:1")
        #expect(info["spec"]?["interactive"] == .bool(false))
        #expect(try String(contentsOfFile: "\(dir.path)/args", encoding: .utf8) == "--flag\n")
        // A 401 drops the cache: the plugin runs again.
        await provider.invalidate()
        _ = try await provider.current()
        #expect(try String(contentsOfFile: "\(dir.path)/runs", encoding: .utf8).split(separator: "\n").count == 2)
    }

    @Test func expiredCredentialRunsThePluginAgain() async throws {
        let past = RFC3339.format(Date().addingTimeInterval(-5))
        let (dir, conn) = try setup(script: """
        echo run >> "$PLUGIN_DIR/runs"
        echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"\(past)"}}'
        """)
        let provider = CredentialProvider(conn.credentials)
        _ = try await provider.current()
        _ = try await provider.current()
        #expect(try String(contentsOfFile: "\(dir.path)/runs", encoding: .utf8).split(separator: "\n").count == 2)
    }

    @Test func failuresAreClearAndNeverEchoStdout() async throws {
        let (d1, failing) = try setup(script: "echo 'login required: run kubetrace login' >&2\nexit 3\n")
        let e1 = await expectClientError { _ = try await CredentialProvider(failing.credentials).current() }
        #expect(e1?.message == "exec plugin plugin.sh: exited with status 3: login required: run kubetrace login")

        let (d2, garbage) = try setup(script: "echo 'token=CANARY-plugin-secret'\n")
        let e2 = await expectClientError { _ = try await CredentialProvider(garbage.credentials).current() }
        #expect(e2?.message == "exec plugin plugin.sh: did not print an ExecCredential JSON object on stdout")
        #expect(!(e2?.message.contains("CANARY") ?? true))

        let (d3, badTime) = try setup(script: #"echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"tomorrow"}}'"#)
        let e3 = await expectClientError { _ = try await CredentialProvider(badTime.credentials).current() }
        #expect(e3?.message == "exec plugin plugin.sh: status.expirationTimestamp \"tomorrow\" is not an RFC 3339 time")
        withExtendedLifetime((d1, d2, d3)) {}
    }

    @Test func missingCommandShowsTheInstallHint() async throws {
        let yaml = """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
        users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: kubetrace-no-such-plugin, interactiveMode: Never, installHint: "apt install kubetrace-auth"}}}]
        contexts: [{name: c, context: {cluster: c, user: u}}]
        """
        let conn = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "/f", directory: "/"))
        let e = await expectClientError { _ = try await CredentialProvider(conn.credentials).current() }
        #expect(e?.message == "exec plugin kubetrace-no-such-plugin: command not found: apt install kubetrace-auth")
    }
}
