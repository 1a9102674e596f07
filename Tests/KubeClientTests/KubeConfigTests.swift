import KubetraceTestKit
import Foundation
import KubeClient
import KubeTLS
import Testing

@Suite struct KubeConfigTests {
    static let good = """
    apiVersion: v1
    kind: Config
    current-context: dev
    clusters:
    - name: c1
      cluster:
        server: https://10.0.0.1:6443/
        insecure-skip-tls-verify: true
        tls-server-name: api.internal
    contexts:
    - name: dev
      context: {cluster: c1, user: u1, namespace: team-a}
    users:
    - name: u1
      user:
        token: canary-token-value
    """

    @Test func parsesAndResolvesTheCurrentContext() throws {
        let config = try KubeConfig.parse(yaml: Self.good, file: "/k/config", directory: "/k")
        let conn = try ClusterConnection.from(kubeconfig: config)
        #expect(conn.server == "https://10.0.0.1:6443")
        #expect(conn.namespace == "team-a")
        #expect(conn.tls.insecureSkipVerify)
        #expect(conn.tls.serverName == "api.internal")
        guard case .token(let t) = conn.credentials else { Issue.record("expected a token"); return }
        #expect(t.value == "canary-token-value")
        #expect(conn.source == "kubeconfig /k/config (context dev)")
    }

    @Test func badBase64NamesFileAndField() {
        let yaml = Self.good.replacingOccurrences(of: "    token: canary-token-value", with: "    client-key-data: '***not base64***'")
        #expect(throws: KubeClientError.self) { try KubeConfig.parse(yaml: yaml, file: "/k/config", directory: "/k") }
        do { _ = try KubeConfig.parse(yaml: yaml, file: "/k/config", directory: "/k") } catch {
            #expect(error.message == "kubeconfig /k/config: users[0].user.client-key-data: not valid base64")
            #expect(error.code == .configuration)
        }
    }

    @Test(arguments: [
        ("clusters: {a: b}", "kubeconfig /f: clusters: must be a list, found a mapping"),
        ("clusters:\n- cluster: {server: https://x}", "kubeconfig /f: clusters[0].name: is required"),
        ("clusters:\n- name: a\n  cluster: {insecure-skip-tls-verify: maybe}", "kubeconfig /f: clusters[0].cluster.insecure-skip-tls-verify: must be true or false, found \"maybe\""),
        ("clusters:\n- name: a\n  cluster: {certificate-authority-data: '%%%'}", "kubeconfig /f: clusters[0].cluster.certificate-authority-data: not valid base64"),
        ("contexts:\n- name: a\n  context: {user: u}", "kubeconfig /f: contexts[0].context.cluster: is required"),
        ("users:\n- name: a\n  user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1}}", "kubeconfig /f: users[0].user.exec.interactiveMode: is required for client.authentication.k8s.io/v1"),
        ("users:\n- name: a\n  user: {exec: {command: x, apiVersion: v9}}", "kubeconfig /f: users[0].user.exec.apiVersion: unsupported v9 (use client.authentication.k8s.io/v1)"),
        ("kind: Pod", "kubeconfig /f: kind: must be Config, found Pod"),
        ("- just\n- a list", "kubeconfig /f: document: must be a mapping, found a sequence"),
    ])
    func malformedFilesNameTheField(yaml: String, message: String) {
        do {
            _ = try KubeConfig.parse(yaml: yaml, file: "/f", directory: "/")
            Issue.record("expected an error for \(yaml)")
        } catch {
            #expect(error.message == message)
        }
    }

    @Test func invalidYAMLIsAConfigurationError() {
        do {
            _ = try KubeConfig.parse(yaml: "clusters: [unclosed", file: "/f", directory: "/")
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("kubeconfig /f: not valid YAML"))
        }
    }

    @Test func emptyFileIsAnEmptyConfig() throws {
        let c = try KubeConfig.parse(yaml: "", file: "/f", directory: "/")
        #expect(c.contexts.isEmpty)
        do { _ = try ClusterConnection.from(kubeconfig: c); Issue.record("expected an error") } catch {
            #expect(error.message.contains("current-context is not set"))
        }
    }

    @Test func contextErrorsNameWhatIsMissing() throws {
        let c = try KubeConfig.parse(yaml: Self.good, file: "/k/config", directory: "/k")
        do { _ = try ClusterConnection.from(kubeconfig: c, context: "nope"); Issue.record("expected an error") } catch {
            #expect(error.message == "kubeconfig /k/config: --context \"nope\" is not defined (contexts: dev)")
        }
        let dangling = Self.good.replacingOccurrences(of: "cluster: c1, user", with: "cluster: c9, user")
        let d = try KubeConfig.parse(yaml: dangling, file: "/k/config", directory: "/k")
        do { _ = try ClusterConnection.from(kubeconfig: d); Issue.record("expected an error") } catch {
            #expect(error.message == "kubeconfig /k/config: contexts[0].context.cluster: cluster \"c9\" is not defined (clusters: c1)")
        }
    }

    @Test func mergeFollowsFirstWins() throws {
        let dir = TempDir()
        let a = dir.write("a", """
        current-context: ctx-a
        clusters:
        - name: shared
          cluster: {server: https://a.example}
        users:
        - name: u
          user: {token: from-a}
        contexts:
        - name: ctx-a
          context: {cluster: shared, user: u}
        """)
        let b = dir.write("b", """
        current-context: ctx-b
        clusters:
        - name: shared
          cluster: {server: https://b.example}
        - name: only-b
          cluster: {server: https://only-b.example}
        contexts:
        - name: ctx-b
          context: {cluster: only-b, user: u}
        """)
        let missing = "\(dir.path)/does-not-exist"
        let config = try KubeConfig.load(explicitPath: nil, environment: ["KUBECONFIG": "\(missing):\(a)::\(b)"])
        #expect(config.currentContext == "ctx-a")
        #expect(config.clusters["shared"]?.server == "https://a.example")
        #expect(config.clusters["only-b"]?.server == "https://only-b.example")
        let viaB = try ClusterConnection.from(kubeconfig: config, context: "ctx-b")
        #expect(viaB.server == "https://only-b.example")
        guard case .token(let t) = viaB.credentials else { Issue.record("expected token"); return }
        #expect(t.value == "from-a")
        // --kubeconfig means that one file, no merging.
        let only = try KubeConfig.load(explicitPath: b, environment: ["KUBECONFIG": a])
        #expect(only.currentContext == "ctx-b")
        #expect(only.users.isEmpty)
    }

    @Test func relativePathsResolveAgainstTheirFile() throws {
        let dir = TempDir()
        let ca = try CertificateAuthority.generate(commonName: "test-ca")
        dir.write("ca.crt", ca.certificate.certificatePEM)
        dir.write("tok", "  file-token\n")
        let path = dir.write("config", """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", certificate-authority: ca.crt}}]
        users: [{name: u, user: {tokenFile: tok}}]
        contexts: [{name: c, context: {cluster: c, user: u}}]
        """)
        let conn = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(file: path))
        #expect(conn.tls.certificateAuthorityPEM == ca.certificate.certificatePEM)
        guard case .tokenFile(let f) = conn.credentials else { Issue.record("expected tokenFile"); return }
        #expect(f == "\(dir.path)/tok")
    }

    @Test func clientCertificateChecks() throws {
        let ca = try CertificateAuthority.generate(commonName: "test-ca")
        let one = try ca.issue(commonName: "one", usage: .client)
        let two = try ca.issue(commonName: "two", usage: .client)
        func yaml(cert: String, key: String) -> String {
            """
            current-context: c
            clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
            users: [{name: u, user: {client-certificate-data: \(b64(cert)), client-key-data: \(b64(key))}}]
            contexts: [{name: c, context: {cluster: c, user: u}}]
            """
        }
        let ok = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml(cert: one.certificatePEM, key: one.privateKey.pem), file: "/f", directory: "/"))
        #expect(ok.tls.clientCertificatePEM == one.certificatePEM)
        do {
            _ = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml(cert: one.certificatePEM, key: two.privateKey.pem), file: "/f", directory: "/"))
            Issue.record("expected a mismatch error")
        } catch {
            #expect(error.message == "kubeconfig /f: users[0].user.client-key-data: does not match users[0].user.client-certificate-data")
        }
        do {
            _ = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml(cert: "not a cert", key: one.privateKey.pem), file: "/f", directory: "/"))
            Issue.record("expected a PEM error")
        } catch {
            #expect(error.message == "kubeconfig /f: users[0].user.client-certificate-data: not a PEM-encoded X.509 certificate")
        }
    }

    @Test func missingReferencedFileIsNamed() throws {
        let yaml = """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", certificate-authority: /nonexistent/ca.crt}}]
        contexts: [{name: c, context: {cluster: c}}]
        """
        do {
            _ = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "/f", directory: "/"))
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("kubeconfig /f: clusters[0].cluster.certificate-authority: cannot read /nonexistent/ca.crt ("))
        }
    }

    @Test func credentialsNeverGoInClearTextBeyondLoopback() throws {
        let yaml = Self.good.replacingOccurrences(of: "https://10.0.0.1:6443/", with: "http://10.0.0.1:8080")
        do {
            _ = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "/f", directory: "/"))
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("is plain http; credentials are sent only over https"))
        }
        let local = Self.good.replacingOccurrences(of: "https://10.0.0.1:6443/", with: "http://127.0.0.1:8080")
        #expect(try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: local, file: "/f", directory: "/")).server == "http://127.0.0.1:8080")
    }

    @Test func inClusterConfiguration() throws {
        let dir = TempDir()
        let ca = try CertificateAuthority.generate(commonName: "cluster-ca")
        dir.write("token", "sa-token\n")
        dir.write("ca.crt", ca.certificate.certificatePEM)
        dir.write("namespace", "kubetrace-system")
        let conn = try ClusterConnection.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"], serviceAccountDirectory: dir.path)
        #expect(conn.server == "https://[fd00::1]:443")
        #expect(conn.namespace == "kubetrace-system")
        #expect(conn.tls.certificateAuthorityPEM == ca.certificate.certificatePEM)
        do {
            _ = try ClusterConnection.inCluster(environment: [:], serviceAccountDirectory: dir.path)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("unable to load in-cluster configuration"))
        }
    }
}
