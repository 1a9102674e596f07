import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import KubeTLS
import Testing

/// The client against a real HTTPS server on loopback: the devcluster.
@Suite(.timeLimit(.minutes(1))) struct ClientIntegrationTests {
    static func client(_ cluster: DevCluster, token: String? = nil, extraCluster: String = "", user: String? = nil) async throws -> KubeClient {
        var yaml = cluster.kubeconfigYAML(server: await cluster.url(), token: token)
        if !extraCluster.isEmpty {
            yaml = yaml.replacingOccurrences(of: "contexts:\n", with: "\(extraCluster)contexts:\n")
        }
        if let user {
            yaml = yaml.replacingOccurrences(of: "users:\n- name: admin\n  user:\n    token: \(token ?? cluster.adminToken)\n", with: "users:\n- name: admin\n  user:\n\(user)")
        }
        let config = try KubeConfig.parse(yaml: yaml, file: "devcluster", directory: "/")
        return KubeClient(connection: try ClusterConnection.from(kubeconfig: config))
    }

    @Test func crudRoundTripWithTheServersSemantics() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await Self.client(cluster)
            #expect(try await client.serverVersion().hasPrefix("v1.32"))

            var secret = Secret(metadata: ObjectMeta(name: "pull", namespace: "default", labels: ["app": "kt"]), type: "Opaque", data: ["k": SecretBytes("v1")])
            let created = try await client.create(secret)
            #expect(created.metadata.uid != nil)
            #expect(created.data?["k"] == SecretBytes("v1"))
            let rv1 = try #require(created.metadata.resourceVersion)

            let dup = await expectClientError { _ = try await client.create(secret) }
            #expect(dup?.isAlreadyExists == true)
            #expect(dup?.message == "POST /api/v1/namespaces/default/secrets: 409 AlreadyExists: secrets \"pull\" already exists")

            // PUT with the current resourceVersion succeeds; with a stale one it is a Conflict.
            secret = created
            secret.data = ["k": SecretBytes("v2")]
            let updated = try await client.update(secret)
            #expect(updated.metadata.resourceVersion != rv1)
            let stale = await expectClientError { _ = try await client.update(secret) }
            #expect(stale?.isConflict == true)

            // JSON Patch guarded by a test of resourceVersion.
            let wrongRV = await expectClientError {
                _ = try await client.patch(Secret.self, namespace: "default", name: "pull", .json([.test("/metadata/resourceVersion", .string(rv1)), .add("/metadata/labels/x", .string("y"))]))
            }
            #expect(wrongRV?.httpStatus == 422)
            let patched = try await client.patch(Secret.self, namespace: "default", name: "pull", .json([
                .test("/metadata/resourceVersion", .string(updated.metadata.resourceVersion!)), .add("/metadata/labels/x", .string("y"))]))
            #expect(patched.metadata.labels == ["app": "kt", "x": "y"])
            let merged = try await client.patch(Secret.self, namespace: "default", name: "pull", .merge(.object(["metadata": .object(["labels": .object(["x": .null])])])))
            #expect(merged.metadata.labels == ["app": "kt"])

            let got = try await client.get(Secret.self, namespace: "default", name: "pull")
            #expect(got.data?["k"] == SecretBytes("v2"))
            #expect(got.metadata.resourceVersion == merged.metadata.resourceVersion)

            try await client.delete(Secret.self, namespace: "default", name: "pull")
            let gone = await expectClientError { _ = try await client.get(Secret.self, namespace: "default", name: "pull") }
            #expect(gone?.isNotFound == true)
            #expect(gone?.message == "GET /api/v1/namespaces/default/secrets/pull: 404 NotFound: secrets \"pull\" not found")
        }
    }

    @Test func serviceAccountPullSecretsKeepOtherEntries() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await Self.client(cluster)
            let sa = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "reader", namespace: "default"), imagePullSecrets: [LocalObjectReference(name: "other")]))
            let patched = try await client.patch(ServiceAccount.self, namespace: "default", name: "reader", .json([
                .test("/metadata/resourceVersion", .string(sa.metadata.resourceVersion!)),
                .add("/imagePullSecrets/-", .object(["name": .string("kubetrace-registry")]))]))
            #expect(patched.imagePullSecrets == [LocalObjectReference(name: "other"), LocalObjectReference(name: "kubetrace-registry")])
            // A strategic-merge patch replaces the list whole: the field has no merge key.
            let replaced = try await client.patch(ServiceAccount.self, namespace: "default", name: "reader", .strategicMerge(.object(["imagePullSecrets": .array([.object(["name": .string("only")])])])))
            #expect(replaced.imagePullSecrets == [LocalObjectReference(name: "only")])
        }
    }

    @Test func listsPageThroughContinueTokensAndSelect() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await Self.client(cluster)
            for i in 0..<7 {
                _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "cm-\(i)", namespace: "default", labels: ["parity": i % 2 == 0 ? "even" : "odd"])))
            }
            let page = try await client.list(ConfigMap.self, namespace: "default", options: ListOptions(limit: 3))
            #expect(page.items.count == 3)
            #expect(page.metadata.continue?.isEmpty == false)
            #expect(page.metadata.remainingItemCount == 4)
            let all = try await client.listAll(ConfigMap.self, namespace: "default", pageSize: 2)
            #expect(all.items.map(\.name) == (0..<7).map { "cm-\($0)" })
            #expect(!all.resourceVersion.isEmpty)
            let odd = try await client.listAll(ConfigMap.self, namespace: "default", options: ListOptions(labelSelector: "parity in (odd)"))
            #expect(odd.items.map(\.name) == ["cm-1", "cm-3", "cm-5"])
            let named = try await client.list(ConfigMap.self, namespace: "default", options: ListOptions(fieldSelector: "metadata.name=cm-4"))
            #expect(named.items.map(\.name) == ["cm-4"])
            let bad = await expectClientError { _ = try await client.list(ConfigMap.self, namespace: "default", options: ListOptions(fieldSelector: "spec.nope=1")) }
            #expect(bad?.httpStatus == 400)
            #expect(bad?.message.contains("field label not supported: spec.nope") == true)
        }
    }

    @Test func secretRulesOfARealServer() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await Self.client(cluster)
            let body: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("Secret"), "metadata": .object(["name": .string("bad")]), "data": .object(["k": .string("%%%not-base64")])])
            let e = await expectClientError { _ = try await client.request("POST", path: "/api/v1/namespaces/default/secrets", body: body.jsonBytes()) }
            #expect(e?.httpStatus == 400)
            let docker = Secret(metadata: ObjectMeta(name: "reg", namespace: "default"), type: "kubernetes.io/dockerconfigjson", data: [".dockerconfigjson": SecretBytes("{not json")])
            let invalid = await expectClientError { _ = try await client.create(docker) }
            #expect(invalid?.isInvalid == true)
            #expect(invalid?.status?.details?.causes?.first?.field == "data[.dockerconfigjson]")
        }
    }

    @Test func credentialsAreCheckedAndTokenFilesReReadAfter401() async throws {
        try await DevCluster.withRunning { cluster in
            let wrong = try await Self.client(cluster, token: "wrong-token")
            let e = await expectClientError { _ = try await wrong.list(Secret.self, namespace: "default") }
            #expect(e?.isUnauthorized == true)
            #expect(e?.message.hasPrefix("GET /api/v1/namespaces/default/secrets: 401 Unauthorized: Unauthorized") == true)

            let dir = TempDir()
            let tokenFile = dir.write("token", "stale-token\n")
            let client = try await Self.client(cluster, user: "    tokenFile: \(tokenFile)\n")
            let first = await expectClientError { _ = try await client.list(Secret.self, namespace: "default") }
            #expect(first?.isUnauthorized == true)
            // The token rotates on disk: the next 401 drops the cached one and the retry reads the new file.
            dir.write("token", "rotated-token\n")
            cluster.addToken("rotated-token", user: "rotated", groups: ["system:masters"])
            _ = try await client.list(Secret.self, namespace: "default")

            cluster.addBasicUser("alice", password: "pw-1", groups: ["system:masters"])
            let basic = try await Self.client(cluster, user: "    username: alice\n    password: pw-1\n")
            _ = try await basic.list(Secret.self, namespace: "default")
        }
    }

    @Test func tlsVerificationIsOnAndServerNameIsHonoured() async throws {
        try await DevCluster.withRunning { cluster in
            let port = await cluster.port()
            let otherCA = try CertificateAuthority.generate(commonName: "someone-else")
            func client(_ clusterYAML: String) throws -> KubeClient {
                let yaml = """
                current-context: c
                clusters: [{name: c, cluster: {\(clusterYAML)}}]
                users: [{name: u, user: {token: \(cluster.adminToken)}}]
                contexts: [{name: c, context: {cluster: c, user: u}}]
                """
                return KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "t", directory: "/")))
            }
            let caData = b64(cluster.certificateAuthority!.certificate.certificatePEM)
            let untrusted = try client("server: \"https://127.0.0.1:\(port)\", certificate-authority-data: \(b64(otherCA.certificate.certificatePEM))")
            let e = await expectClientError { _ = try await untrusted.serverVersion() }
            #expect(e?.code == .transport)
            #expect(e?.curlCode == 60)
            #expect(e?.message.contains("certificate") == true)

            let insecure = try client("server: \"https://127.0.0.1:\(port)\", insecure-skip-tls-verify: true")
            _ = try await insecure.serverVersion()

            let byName = try client("server: \"https://127.0.0.1:\(port)\", certificate-authority-data: \(caData), tls-server-name: localhost")
            _ = try await byName.serverVersion()
            let wrongName = try client("server: \"https://127.0.0.1:\(port)\", certificate-authority-data: \(caData), tls-server-name: api.wrong.example")
            let e2 = await expectClientError { _ = try await wrongName.serverVersion() }
            #expect(e2?.code == .transport)
            #expect(e2?.curlCode == 60)
        }
    }

    @Test func clientCertificatesFromMemory() async throws {
        var options = DevCluster.Options()
        options.requireClientCertificate = true
        try await DevCluster.withRunning(options) { cluster in
            let port = await cluster.port()
            let ca = cluster.certificateAuthority!
            let cert = try ca.issue(commonName: "admin", organization: "system:masters", usage: .client)
            func client(user: String) throws -> KubeClient {
                let yaml = """
                current-context: c
                clusters: [{name: c, cluster: {server: "https://127.0.0.1:\(port)", certificate-authority-data: \(b64(ca.certificate.certificatePEM))}}]
                users: [{name: u, user: {\(user)}}]
                contexts: [{name: c, context: {cluster: c, user: u}}]
                """
                return KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "t", directory: "/")))
            }
            let withCert = try client(user: "client-certificate-data: \(b64(cert.certificatePEM)), client-key-data: \(b64(cert.privateKey.pem))")
            let list = try await withCert.list(Secret.self, namespace: "default")
            #expect(list.items.isEmpty)
            let without = try client(user: "token: \(cluster.adminToken)")
            let e = await expectClientError { _ = try await without.list(Secret.self, namespace: "default") }
            #expect(e?.code == .transport)
        }
    }

    @Test func cancellationAbortsATransferPromptly() async throws {
        // A listener that accepts connections but never answers.
        let (fd, port) = try loopbackSocket(listening: true)
        defer { close(fd) }

        let yaml = """
        current-context: c
        clusters: [{name: c, cluster: {server: "http://127.0.0.1:\(port)"}}]
        contexts: [{name: c, context: {cluster: c}}]
        """
        let client = KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "t", directory: "/")))
        let (started, startedCont) = AsyncStream.makeStream(of: Void.self)
        let task = Task {
            startedCont.yield()
            return try await client.serverVersion()
        }
        for await _ in started { break }
        task.cancel()
        // The request would otherwise wait for its 60 s timeout; the suite's time limit bounds this.
        let result = await task.result
        guard case .failure(let error) = result else { Issue.record("expected cancellation"); return }
        #expect((error as? KubeClientError)?.code == .cancelled)
    }
}

@Suite(.timeLimit(.minutes(1))) struct BackpressureTests {
    /// A consumer that stops reading pauses the transfer: the client buffers at
    /// most the high watermark plus one libcurl chunk, however much the server has.
    @Test func aStalledConsumerPausesTheTransfer() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await ClientIntegrationTests.client(cluster)
            let big = String(repeating: "x", count: 60_000)
            for i in 0..<100 { _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "cm-\(i)", namespace: "default"), data: ["v": big])) }
            // ~6 MB of initial watch events, against a 4 MiB high watermark.
            let (_, body) = try await client.stream(path: ConfigMap.resource.path(namespace: "default"), query: [("watch", "1")])
            var it = body.makeAsyncIterator()
            let first = try await it.next()
            #expect(first?.isEmpty == false)
            // Nothing synchronises "the transfer has stopped": give it time to overrun, then check it did not.
            try await Task.sleep(for: .milliseconds(500))
            #expect(body.bufferedBytes <= (4 << 20) + (64 << 10))
            #expect(body.bufferedBytes > 0)
            // Reading resumes the transfer and everything arrives.
            var total = first?.count ?? 0
            while total < 6_000_000, let chunk = try await it.next() { total += chunk.count }
            #expect(total >= 6_000_000)
        }
    }
}
