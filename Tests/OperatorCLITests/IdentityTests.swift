import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
@testable import KubetraceOperator
import Logging
import Testing

/// A systemd install's own identity (issue #19): `identity` writes a kubeconfig for the
/// operator's ServiceAccount, and `run` keeps that token in its state directory and renews
/// it through TokenRequest before it expires, instead of running on an admin kubeconfig.
@Suite(.timeLimit(.minutes(2))) struct IdentityTests {
    /// The install as the README does it: manifest, server-side apply.
    func install(_ cluster: DevCluster) async throws -> (InstallIntegrationTests.Setup, KubeClient) {
        let suite = InstallIntegrationTests()
        let s = try await suite.setup(cluster)
        let out = "\(s.dir.path)/kubetrace-operator.yaml"
        let r = try await runCLI(suite.manifestArgs(s, output: out))
        #expect(r.status == 0, "\(r.stderr)")
        let applied = try await runTool("kubectl", ["apply", "--server-side", "-f", out], environment: ["KUBECONFIG": s.kubeconfig])
        #expect(applied.status == 0, "\(applied.stderr)")
        return (s, try await cliClient(cluster))
    }

    @Test func identityWritesAKubeconfigForTheOperatorAccountAndRunRenewsIt() async throws {
        try await DevCluster.withRunning { cluster in
            let (s, admin) = try await install(cluster)
            let kubeconfig = "\(s.dir.path)/identity/kubeconfig"
            try FileManager.default.createDirectory(atPath: "\(s.dir.path)/identity", withIntermediateDirectories: true)
            let r = try await runCLI(["identity", "--kubeconfig", s.kubeconfig, "--namespace", "kubetrace-system", "--token-lifetime", "1h", "--output", kubeconfig])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("a kubeconfig for system:serviceaccount:kubetrace-system:kubetrace-operator, token valid until "), "\(r.stderr)")
            #expect((try FileManager.default.attributesOfItem(atPath: kubeconfig)[.posixPermissions] as? Int) == 0o600)
            let grant = try await admin.get(Role.self, namespace: "kubetrace-system", name: "kubetrace-operator-identity")
            #expect(grant.rules == [PolicyRule(apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create"], resourceNames: ["kubetrace-operator"])])

            // The kubeconfig is the operator's identity: it may read its Secrets, not list Secrets cluster-wide.
            let config = try KubeConfig.load(explicitPath: kubeconfig, environment: [:])
            let connection = try ClusterConnection.from(kubeconfig: config)
            guard case .token(let token) = connection.credentials else { Issue.record("a token user"); return }
            let claims = try #require(OwnToken.claims(of: token.value))
            #expect(claims.namespace == "kubetrace-system" && claims.serviceAccount == "kubetrace-operator")
            #expect(abs(claims.lifetime - 3600) < 2)
            let asOperator = KubeClient(connection: connection)
            _ = try await asOperator.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            let wide = await expectError { _ = try await asOperator.list(Secret.self, namespace: "default") }
            #expect(wide?.httpStatus == 403)

            // `run` as systemd starts it: the kubeconfig and token from LoadCredential, a StateDirectory.
            let credentials = "\(s.dir.path)/credentials"
            let state = "\(s.dir.path)/state"
            try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: kubeconfig, toPath: "\(credentials)/kubeconfig")
            try FileManager.default.copyItem(atPath: s.tokenFile, toPath: "\(credentials)/operator_token")
            let op = try OperatorProcess(["run", "--token-source", "tokenrequest", "--leader-elect", "false"], dir: s.dir, name: "op",
                                         environment: ["CREDENTIALS_DIRECTORY": credentials, "STATE_DIRECTORY": state, "POD_NAMESPACE": "kubetrace-system", "LOG_FORMAT": "json"])
            var stopped = false
            defer { if !stopped { op.signal(SIGKILL) } }
            try await op.lines.waitFor("\"event\":\"own_token_adopted\"", timeout: .seconds(30))
            let adopted = try String(contentsOfFile: "\(state)/token", encoding: .utf8)
            let sameToken = adopted == token.value + "\n"
            #expect(sameToken, "the state directory holds the installed token")
            #expect((try FileManager.default.attributesOfItem(atPath: "\(state)/token")[.posixPermissions] as? Int) == 0o600)
            // It works under that identity: the repair handlers sync and restore a deleted pull Secret reference.
            _ = try await admin.patch(ServiceAccount.self, namespace: "kubetrace-system", name: "kubetrace-readonly-user", .merge(.object(["imagePullSecrets": .null])))
            let repaired = try await awaitObject(admin, ServiceAccount.self, namespace: "kubetrace-system", name: "kubetrace-readonly-user", timeout: .seconds(30),
                                                 "the operator restores the pull Secret reference under its own identity") {
                $0?.imagePullSecrets?.contains(LocalObjectReference(name: "kubetrace-registry")) == true
            }
            #expect(repaired?.imagePullSecrets != nil)
            // SIGTERM stops it, the renewal service included (it must not hold the graceful shutdown).
            op.signal(SIGTERM)
            let exit = try await within(.seconds(30), "the operator stops on SIGTERM") { await op.exited.first { _ in true } }
            stopped = true
            #expect(exit == 0)
            let leaked = op.lines.all.joined().contains(token.value)
            #expect(!leaked, "the token never reaches a log line")
        }
    }

    /// The renewal itself, at a moment past 80 % of the token's life (time as an input): a
    /// TokenRequest for the same account and lifetime, written whole, 0600; the client uses it.
    @Test func renewalRequestsTheSameAccountAndLifetimeAndWritesItPrivately() async throws {
        try await DevCluster.withRunning { cluster in
            let (s, admin) = try await install(cluster)
            let minted = try await admin.requestToken(namespace: "kubetrace-system", serviceAccount: "kubetrace-operator", TokenRequest(audiences: [], expirationSeconds: 1200))
            let first = try #require(minted.status?.token)
            let claims = try #require(OwnToken.claims(of: first.value))
            #expect(claims.renewAt == claims.issuedAt.addingTimeInterval(960), "80 % of 20 minutes")

            let state = "\(s.dir.path)/state"
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            var yaml = cluster.kubeconfigYAML(server: await cluster.url(), token: first.value)
            yaml = yaml.replacingOccurrences(of: "namespace: default", with: "namespace: kubetrace-system")
            let connection = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "identity", directory: "/"))
            let (adopted, adoptedClaims) = try #require(try OwnToken.adopt(connection, stateDirectory: state, names: ObjectNames()))
            #expect(adoptedClaims == claims)
            guard case .tokenFile(let file) = adopted.credentials else { Issue.record("adopted as a token file"); return }
            #expect(file == "\(state)/token")

            let client = KubeClient(connection: adopted)
            let renewal = OwnTokenRenewal(client: client, tokenFile: file, logger: Logger(label: "test"), now: { Date().addingTimeInterval(1000) })
            // The manifest alone does not let the operator mint its own tokens (an in-cluster
            // operator must not outlive its Pod); `identity` grants it for the systemd install.
            let denied = await expectError { _ = try await renewal.renewOnce(claims) }
            #expect(denied?.httpStatus == 403, "\(String(describing: denied))")
            try await IdentityRequest.grantSelfRenewal(admin, ObjectNames())
            let renewed = try await renewal.renewOnce(claims)
            #expect(renewed.serviceAccount == "kubetrace-operator" && renewed.namespace == "kubetrace-system")
            #expect(abs(renewed.lifetime - 1200) < 2, "the same lifetime")
            let written = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .newlines)
            let fresh = written != first.value
            #expect(fresh, "a new token was written")
            #expect(OwnToken.claims(of: written) == renewed)
            #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) == 0o600)
            // The client picks the renewed token up; the renewal loop, standing past 80 %, renews at once.
            _ = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            #expect(renewal.currentClaims() == renewed)

            // A restart prefers the later-expiring token: the renewed one over the installed kubeconfig's.
            let (_, again) = try #require(try OwnToken.adopt(connection, stateDirectory: state, names: ObjectNames()))
            #expect(again == renewed)
            // Past its expiry: a configuration error that says what to do, not a 401 loop.
            let expired = #expect(throws: RefreshFailure.self) { _ = try OwnToken.adopt(connection, stateDirectory: state, names: ObjectNames(), now: Date().addingTimeInterval(3600)) }
            #expect(expired?.isConfiguration == true, "exits 2, as a configuration error")
            #expect(expired?.message.contains("run kubetrace-operator identity again") == true)
            // Another account's token (an admin ServiceAccount, say) is never adopted and kept alive.
            _ = try await admin.create(ServiceAccount(metadata: ObjectMeta(name: "builder", namespace: "kubetrace-system")))
            let other = try #require(try await admin.requestToken(namespace: "kubetrace-system", serviceAccount: "builder", TokenRequest(audiences: [], expirationSeconds: 1200)).status?.token)
            let otherYAML = cluster.kubeconfigYAML(server: await cluster.url(), token: other.value)
            let otherConnection = try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: otherYAML, file: "other", directory: "/"))
            #expect(try OwnToken.adopt(otherConnection, stateDirectory: "\(s.dir.path)/other-state", names: ObjectNames()) == nil)
        }
    }

    @Test func identityNeedsTheManifestApplied() async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))
            let r = try await runCLI(["identity", "--kubeconfig", kubeconfig, "--output", "\(dir.path)/out"])
            #expect(r.status == 2)
            #expect(r.stderr == "kubetrace-operator: error: --namespace: ServiceAccount kubetrace-system/kubetrace-operator not found: apply the manifest first (kubectl apply --server-side -f kubetrace-operator.yaml)\n", "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(dir.path)/out"))
            let short = try await runCLI(["identity", "--kubeconfig", kubeconfig, "--token-lifetime", "5m"])
            #expect(short.status == 2 && short.stderr.contains("--token-lifetime: \"5m\" must be a duration of at least 10m"), "\(short.stderr)")
        }
    }
}
