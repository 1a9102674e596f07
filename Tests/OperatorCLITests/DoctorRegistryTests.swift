import KubetraceTestKit
import Foundation
import KubeClient
@testable import KubeSim
@testable import KubetraceOperator
import Testing

/// `doctor --registry HOST:PORT`: pull access checked against a Docker v2 registry (the
/// devcluster's registry emulator) with the pull Secret's credentials.
@Suite(.timeLimit(.minutes(2))) struct DoctorRegistryTests {
    static let image = "blr.vultrcr.com/kubetrace/kubetrace-operator:0.1.0"

    @Test func pullAccessPassesWithVultrCredentialsAndFailsWithAWrongPassword() async throws {
        try await DevCluster.withRunning { cluster in
            let url = await cluster.url()
            let port = await cluster.port()
            let registry = RegistryEmulator(vultr: cluster.vultr, kubetraceAPI: cluster.kubetraceAPI,
                                            images: [Self.image: NodeImage(reference: Self.image, executable: "/bin/true")], serverURL: { await cluster.url() })
            cluster.nodeRoutes.registry = { try await registry.handle($0, body: $1) }
            let pem = cluster.certificateAuthority!.certificate.certificatePEM
            let dir = TempDir()
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: url))
            let ca = dir.write("ca.crt", pem)

            // Credentials as the Vultr API issues them.
            let issued = try await CurlTransport.shared.send(
                HTTPRequest(method: "OPTIONS", url: "\(url)/vultr/v2/registry/\(DevCluster.vultrRegistryID)/docker-credentials?expiry_seconds=3600&read_write=false",
                            headers: [("Authorization", "Bearer \(cluster.vultrAPIKey)")]), tls: TLSSettings(certificateAuthorityPEM: pem))
            let auth = try JSONValue.parse(issued.body)["auths"]?["blr.vultrcr.com"]?["auth"]?.stringValue ?? ""
            let decoded = String(decoding: Data(base64Encoded: auth) ?? Data(), as: UTF8.self)
            let colon = try #require(decoded.firstIndex(of: ":"))
            let (user, password) = (String(decoded[..<colon]), String(decoded[decoded.index(after: colon)...]))

            let client = try await adminClient(cluster)
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: "kubetrace-system")))
            func pullSecret(_ password: String) -> Secret {
                let config = JSONValue.object(["auths": .object(["blr.vultrcr.com": .object(["username": .string(user), "password": .string(password),
                                                                                           "auth": .string(Data("\(user):\(password)".utf8).base64EncodedString())])])])
                return Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: "kubetrace-system"), type: "kubernetes.io/dockerconfigjson",
                              data: [".dockerconfigjson": SecretBytes(String(decoding: config.jsonBytes(), as: UTF8.self))])
            }
            _ = try await client.create(pullSecret(password))

            let args = ["doctor", "--kubeconfig", kubeconfig, "--namespace", "kubetrace-system", "--registry", "127.0.0.1:\(port)", "--registry-ca-file", ca]
            let good = try await runCLI(args)
            let goodLine = good.stdout.split(separator: "\n").first { $0.contains("registry-pull") }.map(String.init) ?? ""
            #expect(goodLine.hasPrefix("✓ registry-pull"), "\(good.stdout)\(good.stderr)")
            #expect(goodLine.contains("the pull Secret's credentials for blr.vultrcr.com can pull kubetrace/kubetrace-operator:0.1.0 (at 127.0.0.1:\(port))"))
            #expect(good.stdout.contains("✓ pull-secret            kubetrace-registry is valid for blr.vultrcr.com (the operator image's registry; checked at 127.0.0.1:\(port))"))
            #expect(!good.stdout.contains(password) && !good.stderr.contains(password))
            #expect(registry.manifestsServed == 1)

            let json = try await runCLI(args + ["--output", "json"])
            let checks = try JSONValue.parse(Array(json.stdout.utf8))["checks"]?.arrayValue ?? []
            #expect(checks.first { $0["check"] == .string("registry-pull") }?["ok"] == .bool(true))

            // A wrong password: ✗ with what to do, and no secret in the output.
            var wrong = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            wrong.data = pullSecret("WRONG-canary-pw").data
            _ = try await client.update(wrong)
            let bad = try await runCLI(args)
            #expect(bad.status == 1)
            let badLine = bad.stdout.split(separator: "\n").first { $0.contains("registry-pull") }.map(String.init) ?? ""
            #expect(badLine == "✗ registry-pull          blr.vultrcr.com refused the pull Secret's credentials (user \(user)): token request answered 401", "\(bad.stdout)")
            #expect(bad.stdout.contains("    fix: the pull Secret kubetrace-registry holds wrong or expired credentials for blr.vultrcr.com"))
            #expect(!bad.stdout.contains("WRONG-canary-pw") && !bad.stderr.contains("WRONG-canary-pw") && !bad.stdout.contains(password))
            #expect(registry.tokenRequestsRefused == 1)

            // Without the registry's CA the pull cannot be checked: said on the reachability line, no ✗ of its own.
            let untrusted = try await runCLI(["doctor", "--kubeconfig", kubeconfig, "--namespace", "kubetrace-system", "--registry", "127.0.0.1:\(port)"])
            #expect(!untrusted.stdout.contains("registry-pull"))
            #expect(untrusted.stdout.contains("✓ registry-reachable     127.0.0.1:\(port) accepts connections (pull access not checked: https://127.0.0.1:\(port)/v2/: "), "\(untrusted.stdout)")
        }
    }

    @Test func operatorImageAndChallengeParsing() {
        let pinned = JSONValue.object(["spec": .object(["template": .object(["spec": .object(["containers": .array([.object(["image": .string("blr.vultrcr.com/kubetrace/kubetrace-operator@sha256:" + String(repeating: "a", count: 64))])])])])])])
        let image = Doctor.operatorImage(pinned)
        #expect(image.host == "blr.vultrcr.com" && image.repository == "kubetrace/kubetrace-operator" && image.reference.hasPrefix("sha256:"))
        #expect(Doctor.operatorImage(nil).display == "blr.vultrcr.com/kubetrace/kubetrace-operator:\(kubetraceVersion)")
        let hub = Doctor.operatorImage(.object(["spec": .object(["template": .object(["spec": .object(["containers": .array([.object(["image": .string("busybox")])])])])])]))
        #expect(hub.host == "docker.io" && hub.repository == "library/busybox" && hub.reference == "latest")
        let c = AuthChallenge(header: #"Bearer realm="https://r.example/v2/token",service="blr.vultrcr.com",scope="repository:a/b:pull",error="insufficient_scope""#)
        #expect(c.scheme == "bearer" && c.parameters["realm"] == "https://r.example/v2/token" && c.parameters["error"] == "insufficient_scope")
        // A quoted value may hold an escaped quote (RFC 7235 quoted-string).
        #expect(AuthChallenge(header: #"Bearer realm="a\"b",error=invalid_token"#).parameters == ["realm": "a\"b", "error": "invalid_token"])
        // The token request's query, as Go's url.Values.Encode writes it.
        #expect(encodeQuery([("scope", "repository:kubetrace/kubetrace-operator:pull"), ("service", "blr.vultrcr.com")])
                == "scope=repository%3Akubetrace%2Fkubetrace-operator%3Apull&service=blr.vultrcr.com")
    }
}
