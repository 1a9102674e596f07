import KubetraceTestKit
import Foundation
@testable import KubeClient
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

    /// The plugin's `exec` entry, to run it with a short timeout.
    func plugin(_ script: String) throws -> (TempDir, KubeConfig.ExecConfig, ClusterConnection.ExecClusterInfo) {
        let (dir, conn) = try setup(script: script)
        guard case .exec(let config, let info) = conn.credentials else { throw TimedOut(what: "no exec credentials in the kubeconfig") }
        return (dir, config, info)
    }

    /// A plugin that ignores SIGTERM (and whose child holds stdout) is killed after the grace
    /// period: the request fails at timeout + 2 s instead of hanging (issue 19).
    @Test(.timeLimit(.minutes(1))) func aPluginIgnoringSIGTERMIsKilled() async throws {
        let (dir, config, info) = try plugin("trap '' TERM\nsleep 600\n")
        let started = ContinuousClock.now
        let error = try await within(.seconds(20), "the plugin run") {
            await expectClientError { _ = try await ExecPlugin.run(config, cluster: info, timeout: 1) }
        }
        #expect(error?.message == "exec plugin plugin.sh: did not finish within 1 s (stopped)")
        #expect(ContinuousClock.now - started < .seconds(10))
        withExtendedLifetime(dir) {}
    }

    /// Cancelling the request stops the plugin at once (SIGTERM, then SIGKILL), not at its timeout.
    @Test(.timeLimit(.minutes(1))) func cancellingStopsThePlugin() async throws {
        let (dir, config, info) = try plugin("trap '' TERM\nsleep 600\n")
        let task = Task { try await ExecPlugin.run(config, cluster: info, timeout: 600) }
        task.cancel()
        let result = try await within(.seconds(20), "the cancelled plugin run") { await task.result }
        guard case .failure(let error) = result else { Issue.record("a cancelled run succeeded"); return }
        #expect((error as? KubeClientError)?.code == .cancelled, "\(error)")
        withExtendedLifetime(dir) {}
    }

    /// Megabytes on stdout are a clear error naming the plugin, read no further than 1 MiB.
    @Test(.timeLimit(.minutes(1))) func oversizedStdoutIsRefused() async throws {
        let (dir, config, info) = try plugin("yes | head -c 10M\n")
        let error = try await within(.seconds(20), "the plugin run") {
            await expectClientError { _ = try await ExecPlugin.run(config, cluster: info, timeout: 30) }
        }
        #expect(error?.message == "exec plugin plugin.sh: printed more than 1024 KiB on stdout; an ExecCredential is far smaller")
        withExtendedLifetime(dir) {}
    }

    /// Endless stderr is drained (the plugin never blocks) and only its start is kept.
    @Test(.timeLimit(.minutes(1))) func endlessStderrIsBounded() async throws {
        let (dir, config, info) = try plugin("head -c 10M /dev/zero | tr '\\0' 'e' >&2\nexit 3\n")
        let error = try await within(.seconds(20), "the plugin run") {
            await expectClientError { _ = try await ExecPlugin.run(config, cluster: info, timeout: 30) }
        }
        #expect(error?.message == "exec plugin plugin.sh: exited with status 3: " + String(repeating: "e", count: 200))
        withExtendedLifetime(dir) {}
    }
}
