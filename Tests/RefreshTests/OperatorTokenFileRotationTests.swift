import Foundation
import KubeClient
import KubeSim
import KubetraceTestKit
@testable import KubetraceOperator
import Logging
import Testing

/// A token the Kubetrace API rotates is kept where the operator reads it from (issue #21): in
/// cluster the mounted Secret, out of cluster the file. Before, with `OPERATOR_TOKEN_FILE` set, the
/// rotated token was only logged about, and once the API revoked the old one every refresh failed.
@Suite(.timeLimit(.minutes(1))) struct OperatorTokenFileRotationTests {
    /// Rotation on every refresh, the replaced token refused at once.
    static func rotating(_ cluster: DevCluster) {
        cluster.kubetraceAPI.configure {
            $0.rotateOperatorToken = true
            $0.rotationGrace = 0
        }
    }

    @Test func outOfClusterTheFileIsRewrittenAndTheNextRefreshUsesIt() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            try await install(client, operatorToken: "not-this-one")
            let dir = TempDir()
            let file = dir.write("operator_token", cluster.operatorToken + "\n")
            var config = await apiConfiguration(cluster)
            config.operatorTokenFile = file
            config.operatorTokenFileOrigin = .hostFile
            Self.rotating(cluster)
            let sink = LogSink()
            let service = RefreshService(client: client, configuration: config, logger: sink.logger())
            _ = try await service.refreshKubeconfigToken()
            let rotated = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(rotated != cluster.operatorToken && cluster.kubetraceAPI.acceptsOperatorToken(rotated))
            #expect(!cluster.kubetraceAPI.acceptsOperatorToken(cluster.operatorToken))
            #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) == 0o600)
            // The next refresh authenticates with the file's (rotated) token.
            _ = try await service.refreshKubeconfigToken()
            #expect(cluster.kubetraceAPI.refreshCount == 2)
            // Out of cluster the Secret is not the source: untouched.
            let secret = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-operator")
            #expect(secret.data?["operator_token"]?.string == "not-this-one")
            let logs = sink.all.joined(separator: "\n")
            #expect(logs.contains("operator token rotated; written to its file"))
            #expect(!logs.contains(rotated) && !logs.contains(cluster.operatorToken))
        }
    }

    /// In cluster the file is the Secret as the kubelet last projected it (a minute or more
    /// behind): the Secret is read first, so a stale file — the one a replica that just became
    /// leader sees — never sends a revoked token.
    @Test func inClusterTheSecretIsWrittenAndReadBeforeTheStaleFile() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            try await install(client, operatorToken: cluster.operatorToken)
            let dir = TempDir()
            // The mounted Secret volume: read-only to the operator, written by the kubelet.
            let file = dir.write("operator_token", cluster.operatorToken + "\n")
            var config = await apiConfiguration(cluster)
            config.operatorTokenFile = file
            config.operatorTokenFileOrigin = .secretVolume
            Self.rotating(cluster)
            let sink = LogSink()
            let leader = RefreshService(client: client, configuration: config, logger: sink.logger())
            _ = try await leader.refreshKubeconfigToken()
            let rotated = try #require(try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-operator").data?["operator_token"]?.string)
            #expect(rotated != cluster.operatorToken && cluster.kubetraceAPI.acceptsOperatorToken(rotated))
            // The file still holds the revoked token (the kubelet's sync delay), yet the next refresh works.
            #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix(cluster.operatorToken))
            #expect(!cluster.kubetraceAPI.acceptsOperatorToken(cluster.operatorToken))
            _ = try await leader.refreshKubeconfigToken()
            #expect(cluster.kubetraceAPI.refreshCount == 2)
            // A new leader (a fresh process) whose file holds an older rotated, revoked token.
            _ = dir.write("operator_token", rotated + "\n")
            #expect(!cluster.kubetraceAPI.acceptsOperatorToken(rotated))
            let next = RefreshService(client: client, configuration: config, logger: sink.logger())
            _ = try await next.refreshKubeconfigToken()
            #expect(cluster.kubetraceAPI.refreshCount == 3)
            let logs = sink.all.joined(separator: "\n")
            #expect(logs.contains("operator token rotated; written to the Secret the token file is mounted from"))
            #expect(!logs.contains("token_refresh_failed"))
            for token in [cluster.operatorToken, rotated] { #expect(!logs.contains(token)) }
        }
    }

    /// A rotation whose Secret write fails does not fail the refresh (the kubeconfig is written;
    /// failing would only make the API rotate again): the token is kept in memory, used, and
    /// written before the next refresh.
    @Test func aRotationTheSecretCannotTakeIsKeptAndWrittenLater() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            try await install(client, operatorToken: cluster.operatorToken)
            var config = await apiConfiguration(cluster)
            config.operatorTokenFileOrigin = .secretVolume
            Self.rotating(cluster)
            let sink = LogSink()
            let service = RefreshService(client: client, configuration: config, logger: sink.logger())
            cluster.faults.failNext(.init(count: 10, status: 500, method: "PUT", pathPrefix: "/api/v1/namespaces/kubetrace-system/secrets/kubetrace-operator"))
            _ = try await service.refreshKubeconfigToken()
            #expect(sink.all.contains { $0.contains("the new token is kept in memory and written again at the next refresh") })
            #expect(try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-operator").data?["operator_token"]?.string == cluster.operatorToken)
            #expect(!cluster.kubetraceAPI.acceptsOperatorToken(cluster.operatorToken))
            cluster.faults.clear()
            // The unsaved token is written first, then used (the Secret's old one is revoked).
            _ = try await service.refreshKubeconfigToken()
            #expect(cluster.kubetraceAPI.refreshCount == 2)
            let stored = try #require(try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-operator").data?["operator_token"]?.string)
            #expect(stored != cluster.operatorToken && cluster.kubetraceAPI.acceptsOperatorToken(stored))
        }
    }
}
