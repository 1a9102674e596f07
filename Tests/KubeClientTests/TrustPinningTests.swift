import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import KubeTLS
import Testing

/// A kubeconfig's CA is the only CA trusted for its server, as in client-go
/// (`rest.TLSClientConfig.CAData` → a pool holding only that CA); the system store is
/// used only when the kubeconfig names none. Shown with a real server whose CA sits in
/// this machine's system trust store (Debian's libcurl loads `/etc/ssl/certs` by default).
@Suite(.serialized, .timeLimit(.minutes(1)),
       .enabled(if: getuid() == 0, "needs root: it adds a CA to the system trust store (/etc/ssl/certs) and removes it afterwards"))
struct TrustPinningTests {
    /// Puts `pem` into the system store the way `update-ca-certificates` links a CA into
    /// libcurl's CA directory (a subject-hash link in /etc/ssl/certs), for `body` only.
    static func withSystemTrust(_ pem: String, _ body: () async throws -> Void) async throws {
        // A link left by a run that was killed points into a removed temporary directory: drop it.
        let certs = "/etc/ssl/certs"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: certs)) ?? [] {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(certs)/\(entry)"),
               target.hasSuffix("/kubetrace-trust-test-ca.pem"), !FileManager.default.fileExists(atPath: target) {
                unlink("\(certs)/\(entry)")
            }
        }
        let dir = TempDir()
        let file = dir.write("kubetrace-trust-test-ca.pem", pem, mode: 0o644)
        let hash = try await run("openssl", ["x509", "-hash", "-noout", "-in", file]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(!hash.isEmpty)
        var index = 0
        while FileManager.default.fileExists(atPath: "\(certs)/\(hash).\(index)") { index += 1 }
        let link = "\(certs)/\(hash).\(index)"
        defer { unlink(link) }
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file)
        try await body()
    }

    static func client(_ cluster: DevCluster, ca: String?) async throws -> KubeClient {
        var yaml = cluster.kubeconfigYAML(server: await cluster.url())
        // Replace the devcluster's own CA with the one under test (or none).
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("certificate-authority-data:") }
        yaml = lines.joined(separator: "\n")
        if let ca {
            yaml = yaml.replacingOccurrences(of: "    server: ", with: "    certificate-authority-data: \(Data(ca.utf8).base64EncodedString())\n    server: ")
        }
        let config = try KubeConfig.parse(yaml: yaml, file: "kubeconfig", directory: "/")
        return KubeClient(connection: try ClusterConnection.from(kubeconfig: config))
    }

    @Test func aKubeconfigCAExcludesTheSystemStore() async throws {
        try await DevCluster.withRunning { cluster in
            let servingCA = try #require(cluster.certificateAuthority).certificate.certificatePEM
            let unrelated = try CertificateAuthority.generate(commonName: "kubetrace-unrelated-ca").certificate.certificatePEM
            try await Self.withSystemTrust(servingCA) { () async throws in
                // With the server's CA only in the system store: trusted when the kubeconfig names no CA ...
                #expect(try await Self.client(cluster, ca: nil).serverVersion().hasPrefix("v1."))
                // ... and refused when it names another one.
                let refused = await expectClientError { _ = try await Self.client(cluster, ca: unrelated).serverVersion() }
                #expect(refused?.code == .transport)
                #expect(refused?.message.contains("certificate") == true, "\(refused?.message ?? "no error")")
                // The kubeconfig's own CA still works.
                #expect(try await Self.client(cluster, ca: servingCA).serverVersion().hasPrefix("v1."))
            }
        }
    }

    @Test func theKubetraceAndVultrClientsPinTheirCAFileToo() async throws {
        // `--ca-file` reaches the transport as the same TLSSettings field; the transport is the one place it is applied.
        try await DevCluster.withRunning { cluster in
            let servingCA = try #require(cluster.certificateAuthority).certificate.certificatePEM
            let unrelated = try CertificateAuthority.generate(commonName: "kubetrace-unrelated-ca").certificate.certificatePEM
            let url = await cluster.url() + "/version"
            try await Self.withSystemTrust(servingCA) { () async throws in
                let ok = try await CurlTransport.shared.send(HTTPRequest(method: "GET", url: url), tls: TLSSettings())
                #expect(ok.status >= 200, "a TLS handshake through system trust gets an HTTP answer")
                let refused = await expectClientError {
                    _ = try await CurlTransport.shared.send(HTTPRequest(method: "GET", url: url), tls: TLSSettings(certificateAuthorityPEM: unrelated))
                }
                #expect(refused?.code == .transport)
            }
        }
    }
}
