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

    @Test func inClusterTheSecretIsWrittenAndTheTokenKeptUntilTheKubeletUpdatesTheFile() async throws {
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
            let service = RefreshService(client: client, configuration: config, logger: sink.logger())
            _ = try await service.refreshKubeconfigToken()
            let secret = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-operator")
            let rotated = try #require(secret.data?["operator_token"]?.string)
            #expect(rotated != cluster.operatorToken && cluster.kubetraceAPI.acceptsOperatorToken(rotated))
            // The file still holds the revoked token (the kubelet's sync delay), yet the next refresh works.
            #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix(cluster.operatorToken))
            #expect(!cluster.kubetraceAPI.acceptsOperatorToken(cluster.operatorToken))
            _ = try await service.refreshKubeconfigToken()
            #expect(cluster.kubetraceAPI.refreshCount == 2)
            // The kubelet catches up with the Secret (rotated again by that refresh): the file decides again.
            let latest = try #require(try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-operator").data?["operator_token"]?.string)
            #expect(latest != rotated)
            _ = dir.write("operator_token", latest + "\n")
            _ = try await service.refreshKubeconfigToken()
            #expect(cluster.kubetraceAPI.refreshCount == 3)
            // A token someone else puts in the file is used as it is (no stale rotation overrides it).
            let replacement = try #require(try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-operator").data?["operator_token"]?.string)
            _ = dir.write("operator_token", replacement + "\n")
            _ = try await service.refreshKubeconfigToken()
            #expect(cluster.kubetraceAPI.refreshCount == 4)
            let logs = sink.all.joined(separator: "\n")
            #expect(logs.contains("operator token rotated; written to the Secret the token file is mounted from"))
            for token in [cluster.operatorToken, rotated, latest] { #expect(!logs.contains(token)) }
        }
    }
}
