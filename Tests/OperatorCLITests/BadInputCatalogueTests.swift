import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import KubeTLS
import Testing

/// The bad-input catalogue, command-line half: every case is a real `kubetrace-operator` process
/// against a live devcluster holding the operator's Secrets. Each must exit with the stated code
/// and print exactly the stated error (naming the file, field, flag or variable at fault), and
/// afterwards every Secret must be exactly as before: nothing lost, nothing half-written.
@Suite(.timeLimit(.minutes(3))) struct BadInputCatalogueTests {
    /// One bad input. `{K}` in args, environment and the expected text is the good kubeconfig's
    /// path, `{D}` the case's directory, `{P}` the devcluster's port.
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var args: [String]
        var environment: [String: String] = [:]
        /// Files written into `{D}` first (name → contents, `{K}`/`{D}`/`{P}` substituted).
        var files: [String: String] = [:]
        var exit: Int32 = 2
        /// The whole of stderr, or (with `prefix`) how it starts.
        var stderr: String
        var prefix = false
        var description: String { name }
    }

    static let token = "kt-catalogue-canary-token-5d1e"
    static func kubeconfig(cluster: String = #"{server: "https://127.0.0.1:{P}"}"#, user: String = "{token: \(token)}", context: String = "{cluster: c, user: u}", current: String = "current-context: c") -> String {
        """
        \(current)
        clusters: [{name: c, cluster: \(cluster)}]
        contexts: [{name: c, context: \(context)}]
        users: [{name: u, user: \(user)}]
        """
    }
    static let e = "kubetrace-operator: error: "

    static let cases: [Case] = [
        // Kubeconfig files.
        Case(name: "kubeconfig missing", args: ["run", "--kubeconfig", "{D}/absent"], stderr: e + "kubeconfig {D}/absent: cannot be read (No such file or directory)\n"),
        Case(name: "kubeconfig is a directory", args: ["run", "--kubeconfig", "{D}"], stderr: e + "kubeconfig {D}: cannot be read (", prefix: true),
        Case(name: "kubeconfig not YAML", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": "clusters: [\n"],
             stderr: e + "kubeconfig {D}/k: not valid YAML (line 2, column 1: did not find expected node content)\n"),
        Case(name: "YAML error on a token line does not echo the token", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": "users: [{name: u, user: {token: \"\(token)}]\n"],
             stderr: e + "kubeconfig {D}/k: not valid YAML (line 2, column 1: found unexpected end of stream)\n"),
        Case(name: "kubeconfig is a list", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": "- a\n- b\n"],
             stderr: e + "kubeconfig {D}/k: document: must be a mapping, found a sequence\n"),
        Case(name: "no current-context", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(current: "")],
             stderr: e + "kubeconfig {D}/k: current-context is not set (pass --context NAME; contexts: c)\n"),
        Case(name: "--context unknown", args: ["run", "--kubeconfig", "{K}", "--context", "prod"],
             stderr: e + "kubeconfig {K}: --context \"prod\" is not defined (contexts: kubetrace-devcluster)\n"),
        Case(name: "context names a missing cluster", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(context: "{cluster: x, user: u}")],
             stderr: e + "kubeconfig {D}/k: contexts[0].context.cluster: cluster \"x\" is not defined (clusters: c)\n"),
        Case(name: "context names a missing user", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(context: "{cluster: c, user: x}")],
             stderr: e + "kubeconfig {D}/k: contexts[0].context.user: user \"x\" is not defined (users: u)\n"),
        Case(name: "cluster without server", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(cluster: "{insecure-skip-tls-verify: true}")],
             stderr: e + "kubeconfig {D}/k: clusters[0].cluster.server: is required\n"),
        Case(name: "server not http(s)", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(cluster: "{server: \"ftp://h\"}")],
             stderr: e + "kubeconfig {D}/k: clusters[0].cluster.server: \"ftp://h\" is not an http(s) URL\n"),
        Case(name: "certificate-authority-data not base64", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(cluster: #"{server: "https://127.0.0.1:{P}", certificate-authority-data: "%%%"}"#)],
             stderr: e + "kubeconfig {D}/k: clusters[0].cluster.certificate-authority-data: not valid base64\n"),
        Case(name: "certificate-authority file missing", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(cluster: #"{server: "https://127.0.0.1:{P}", certificate-authority: {D}/no-ca.crt}"#)],
             stderr: e + "kubeconfig {D}/k: clusters[0].cluster.certificate-authority: cannot read {D}/no-ca.crt (No such file or directory)\n"),
        Case(name: "client-certificate-data not base64", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: #"{client-certificate-data: "%%%", client-key-data: "aGk="}"#)],
             stderr: e + "kubeconfig {D}/k: users[0].user.client-certificate-data: not valid base64\n"),
        Case(name: "client-key-data not base64", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: #"{client-certificate-data: "aGk=", client-key-data: "not*base64"}"#)],
             stderr: e + "kubeconfig {D}/k: users[0].user.client-key-data: not valid base64\n"),
        Case(name: "client certificate not PEM", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: #"{client-certificate-data: "aGVsbG8=", client-key-data: "aGk="}"#)],
             stderr: e + "kubeconfig {D}/k: users[0].user.client-certificate-data: not a PEM-encoded X.509 certificate\n"),
        Case(name: "client certificate without key", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: #"{client-certificate-data: "aGVsbG8="}"#)],
             stderr: e + "kubeconfig {D}/k: users[0].user: client-certificate is set but client-key is missing\n"),
        Case(name: "client certificate expired", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: "{client-certificate: {D}/expired.crt, client-key: {D}/expired.key}")],
             stderr: e + "kubeconfig {D}/k: users[0].user.client-certificate: the client certificate expired at ", prefix: true),
        Case(name: "client key does not match the certificate", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: "{client-certificate: {D}/good.crt, client-key: {D}/expired.key}")],
             stderr: e + "kubeconfig {D}/k: users[0].user.client-key: does not match users[0].user.client-certificate\n"),
        Case(name: "tokenFile missing", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: "{tokenFile: {D}/no-token}")],
             stderr: e + "kubeconfig {D}/k: users[0].user.tokenFile: cannot read {D}/no-token (No such file or directory)\n"),
        Case(name: "exec plugin fails", args: ["run", "--kubeconfig", "{D}/k", "--token-source", "tokenrequest"],
             files: ["k": kubeconfig(user: "{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/false, interactiveMode: Never}}")],
             stderr: e + "kubeconfig {D}/k (context c): exec plugin false: exited with status 1\n"),
        Case(name: "exec plugin prints garbage", args: ["run", "--kubeconfig", "{D}/k", "--token-source", "tokenrequest"],
             files: ["k": kubeconfig(user: "{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/echo, args: [not json], interactiveMode: Never}}")],
             stderr: e + "kubeconfig {D}/k (context c): exec plugin echo: did not print an ExecCredential JSON object on stdout\n"),
        Case(name: "exec plugin prints no credential", args: ["run", "--kubeconfig", "{D}/k", "--token-source", "tokenrequest"],
             files: ["k": kubeconfig(user: #"{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/echo, args: ['{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{}}'], interactiveMode: Never}}"#)],
             stderr: e + "kubeconfig {D}/k (context c): exec plugin echo: ExecCredential has neither status.token nor status.clientCertificateData/clientKeyData\n"),
        // Credentials that would reach a header or travel in clear text (issue #19), refused before anything is sent.
        Case(name: "token with a line feed", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: #"{token: "abc\nX-Injected: 1"}"#)],
             stderr: e + "kubeconfig {D}/k: users[0].user.token: contains a line feed at character 4; a credential must be a single line of printable characters\n"),
        Case(name: "tokenFile with a carriage return inside", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(user: "{tokenFile: {D}/t}"), "t": "abc\r\nX-Injected: 1\n"],
             stderr: e + "kubeconfig {D}/k: users[0].user.tokenFile ({D}/t): contains a carriage return at character 4; a credential must be a single line of printable characters\n"),
        Case(name: "exec plugin token with a line feed", args: ["run", "--kubeconfig", "{D}/k", "--token-source", "tokenrequest"],
             files: ["k": kubeconfig(user: #"{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/echo, args: ['{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"a\nb"}}'], interactiveMode: Never}}"#)],
             stderr: e + "kubeconfig {D}/k (context c): exec plugin echo: status.token: contains a line feed at character 2; a credential must be a single line of printable characters\n"),
        Case(name: "plain http to a host named like loopback", args: ["run", "--kubeconfig", "{D}/k"], files: ["k": kubeconfig(cluster: #"{server: "http://127.evil.example:{P}"}"#)],
             stderr: e + "kubeconfig {D}/k: clusters[0].cluster.server: http://127.evil.example:{P} is plain http; credentials are sent only over https (or to a loopback address: 127.0.0.0/8, ::1)\n"),
        Case(name: "exec credentials over plain http", args: ["run", "--kubeconfig", "{D}/k"],
             files: ["k": kubeconfig(cluster: #"{server: "http://192.0.2.1:8080"}"#, user: "{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/false, interactiveMode: Never}}")],
             stderr: e + "kubeconfig {D}/k: clusters[0].cluster.server: http://192.0.2.1:8080 is plain http; credentials are sent only over https (or to a loopback address: 127.0.0.0/8, ::1)\n"),
        Case(name: "KUBECONFIG names a bad file", args: ["run"], environment: ["KUBECONFIG": "{D}/k"], files: ["k": "- x\n"],
             stderr: e + "kubeconfig {D}/k: document: must be a mapping, found a sequence\n"),

        // Flags and environment of `run`, each checked before the first request.
        Case(name: "--log-format", args: ["run", "--kubeconfig", "{K}", "--log-format", "xml"], stderr: e + "--log-format: \"xml\" is not one of auto, json, text, journald\n"),
        Case(name: "LOG_FORMAT", args: ["run", "--kubeconfig", "{K}"], environment: ["LOG_FORMAT": "xml"], stderr: e + "LOG_FORMAT: \"xml\" is not one of auto, json, text, journald\n"),
        Case(name: "--watch-idle-timeout", args: ["run", "--kubeconfig", "{K}", "--watch-idle-timeout", "abc"], stderr: e + "--watch-idle-timeout: \"abc\" is not a duration (e.g. 5m, 90s)\n"),
        Case(name: "WATCH_IDLE_TIMEOUT", args: ["run", "--kubeconfig", "{K}"], environment: ["WATCH_IDLE_TIMEOUT": "soon"], stderr: e + "WATCH_IDLE_TIMEOUT: \"soon\" is not a duration (e.g. 5m, 90s)\n"),
        Case(name: "--safety-margin negative", args: ["run", "--kubeconfig", "{K}", "--safety-margin=-5m"], stderr: e + "--safety-margin: \"-5m\" is not a duration (e.g. 5m, 90s)\n"),
        Case(name: "REFRESH_INTERVAL zero", args: ["run", "--kubeconfig", "{K}"], environment: ["REFRESH_INTERVAL": "0s"], stderr: e + "REFRESH_INTERVAL: \"0s\" is not a duration (e.g. 5m, 90s)\n"),
        Case(name: "lease timing inverted", args: ["run", "--kubeconfig", "{K}", "--lease-duration", "5s", "--renew-deadline", "10s"],
             stderr: e + "--lease-duration, --renew-deadline, --retry-period: need lease duration > renew deadline > retry period > 0 (defaults 15s, 10s, 2s)\n"),
        Case(name: "--api-url plain http", args: ["run", "--kubeconfig", "{K}", "--api-url", "http://api.example.com", "--cluster-id", "c"],
             stderr: e + "--api-url: \"http://api.example.com\" must be https", prefix: true),
        Case(name: "API_URL plain http", args: ["run", "--kubeconfig", "{K}"], environment: ["API_URL": "http://api.example.com", "CLUSTER_ID": "c"],
             stderr: e + "API_URL: \"http://api.example.com\" must be https", prefix: true),
        // Never echoed: the password must not reach the error line.
        Case(name: "API_URL with credentials", args: ["run", "--kubeconfig", "{K}"], environment: ["API_URL": "https://user:kt-url-secret@api.example.com", "CLUSTER_ID": "c"],
             stderr: e + "API_URL: must not carry credentials (user:password@); the operator token goes in a file (OPERATOR_TOKEN_FILE)\n"),
        Case(name: "--api-url not a URL", args: ["run", "--kubeconfig", "{K}", "--api-url", "not a url", "--cluster-id", "c"], stderr: e + "--api-url: \"not a url\" is not a URL\n"),
        Case(name: "API_URL without CLUSTER_ID", args: ["run", "--kubeconfig", "{K}"], environment: ["API_URL": "https://api.example.com"], stderr: e + "--cluster-id (or CLUSTER_ID) is required\n"),
        Case(name: "--vultr-api-url plain http", args: ["run", "--kubeconfig", "{K}", "--vultr-api-url", "http://vultr.example.com"],
             stderr: e + "--vultr-api-url: \"http://vultr.example.com\" must be https", prefix: true),
        Case(name: "--health-addr", args: ["run", "--kubeconfig", "{K}", "--health-addr", "bogus"], stderr: e + "--health-addr: \"bogus\" is not an address (host:port, :port or [v6]:port; off to disable)\n"),
        Case(name: "METRICS_ADDR port out of range", args: ["run", "--kubeconfig", "{K}"], environment: ["METRICS_ADDR": "127.0.0.1:99999"],
             stderr: e + "METRICS_ADDR: \"127.0.0.1:99999\" is not an address (host:port, :port or [v6]:port; off to disable)\n"),
        Case(name: "--target-namespaces bad name", args: ["run", "--kubeconfig", "{K}", "--target-namespaces", "apps,Bad_NS"],
             stderr: e + "--target-namespaces: \"Bad_NS\" is not a namespace name (lower-case letters, digits and '-', at most 63)\n"),
        Case(name: "TARGET_NAMESPACES bad selector", args: ["run", "--kubeconfig", "{K}"], environment: ["TARGET_NAMESPACES": "selector=team in (a"],
             stderr: e + "TARGET_NAMESPACES: selector unbalanced '('\n"),
        Case(name: "--target-service-accounts bad name", args: ["run", "--kubeconfig", "{K}", "--target-service-accounts", "default,Not Valid"],
             stderr: e + "--target-service-accounts: \"Not Valid\" is not a ServiceAccount name\n"),
        Case(name: "--registry-lifetime too short", args: ["run", "--kubeconfig", "{K}", "--registry-lifetime", "10s"], stderr: e + "--registry-lifetime: must be at least 1m\n"),
        Case(name: "--token-source", args: ["run", "--kubeconfig", "{K}", "--token-source", "nope"], stderr: e + "--token-source: \"nope\" is not api or tokenrequest\n"),
        Case(name: "--token-lifetime too short", args: ["run", "--kubeconfig", "{K}", "--token-source", "tokenrequest", "--token-lifetime", "5m"],
             stderr: e + "--token-lifetime: must be at least 10m (the API server refuses shorter TokenRequests)\n"),
        Case(name: "--restart-stuck-pods", args: ["run", "--kubeconfig", "{K}", "--restart-stuck-pods", "maybe"], stderr: e + "--restart-stuck-pods: \"maybe\" is not true or false\n"),
        Case(name: "LEADER_ELECT", args: ["run", "--kubeconfig", "{K}"], environment: ["LEADER_ELECT": "perhaps"], stderr: e + "LEADER_ELECT: \"perhaps\" is not true or false\n"),
        Case(name: "--namespace", args: ["run", "--kubeconfig", "{K}", "--namespace", "Not_Valid"],
             stderr: e + "--namespace: \"Not_Valid\" is not a namespace name (lower-case letters, digits and '-', at most 63)\n"),
        Case(name: "POD_NAMESPACE", args: ["run", "--kubeconfig", "{K}"], environment: ["POD_NAMESPACE": "-x-"],
             stderr: e + "POD_NAMESPACE: \"-x-\" is not a namespace name (lower-case letters, digits and '-', at most 63)\n"),
        Case(name: "--registry with a scheme", args: ["run", "--kubeconfig", "{K}", "--registry", "https://blr.vultrcr.com"],
             stderr: e + "--registry: \"https://blr.vultrcr.com\" is not a registry host (host or host:port, no scheme or path)\n"),
        Case(name: "--operator-token-file missing", args: ["run", "--kubeconfig", "{K}", "--api-url", "https://api.example.com", "--cluster-id", "c", "--operator-token-file", "{D}/none"],
             stderr: e + "--operator-token-file: cannot read {D}/none\n"),
        Case(name: "--operator-token-file empty, API server unreachable", args: ["run", "--kubeconfig", "{D}/k", "--api-url", "https://api.example.com", "--cluster-id", "c", "--operator-token-file", "{D}/empty"],
             files: ["k": kubeconfig(cluster: #"{server: "https://127.0.0.1:1"}"#), "empty": "\n"],
             stderr: e + "--operator-token-file: {D}/empty is empty\n"),
        Case(name: "--api-url plain http to a host named like loopback", args: ["run", "--kubeconfig", "{K}", "--api-url", "http://127.evil.example", "--allow-insecure-http", "--cluster-id", "c"],
             stderr: e + "--api-url: \"http://127.evil.example\" must be https (plain http only to a loopback address with --allow-insecure-http)\n"),
        Case(name: "--ca-file not a certificate", args: ["run", "--kubeconfig", "{K}", "--api-url", "https://api.example.com", "--cluster-id", "c", "--ca-file", "{D}/ca.pem"],
             files: ["ca.pem": "not a certificate\n"], stderr: e + "--ca-file: {D}/ca.pem is not a PEM-encoded X.509 certificate\n"),
        Case(name: "--ca-file missing", args: ["run", "--kubeconfig", "{K}", "--api-url", "https://api.example.com", "--cluster-id", "c", "--ca-file", "{D}/none"],
             stderr: e + "--ca-file: cannot read {D}/none\n"),
        Case(name: "unknown option", args: ["run", "--bogus"], stderr: "Error: Unknown option '--bogus'", prefix: true),

        // Other commands.
        Case(name: "manifest --registry", args: ["manifest", "--kubeconfig", "{K}", "--cluster-id", "c", "--registry", "a/b"],
             stderr: e + "--registry: \"a/b\" is not a registry host (host or host:port, no scheme or path)\n"),
        Case(name: "events --kind", args: ["events", "--kubeconfig", "{K}", "--kind", "widgets"], stderr: "Error: --kind: unknown kind \"widgets\" (use secrets, serviceaccounts, pods)\n", prefix: true),
        Case(name: "backup --recipient", args: ["backup", "--kubeconfig", "{K}", "--recipient", "not-a-key", "--output", "{D}/b.age"],
             stderr: e + "--recipient: ", prefix: true),
        Case(name: "doctor with a bad kubeconfig", args: ["doctor", "--kubeconfig", "{D}/k"], files: ["k": "- x\n"],
             stderr: e + "kubeconfig {D}/k: document: must be a mapping, found a sequence\n"),
    ]

    @Test func everyCaseFailsClearlyAndLosesNothing() async throws {
        #expect(Self.cases.count >= 50)
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let port = "\(await cluster.port())"
            let good = dir.write("good.kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))
            let client = try await adminClient(cluster)
            let ns = "kubetrace-system"
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: ns)))
            for (name, data) in [("kubetrace-operator", ["operator_token": SecretBytes("op-\(Self.token)")]),
                                 ("kubetrace-kubeconfig", ["kubeconfig": SecretBytes(Self.kubeconfig())])] {
                _ = try await client.create(Secret(metadata: ObjectMeta(name: name, namespace: ns), type: "Opaque", data: data))
            }
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: ns), type: "kubernetes.io/dockerconfigjson",
                                               data: [".dockerconfigjson": SecretBytes(#"{"auths":{"blr.vultrcr.com":{"auth":"dTpw"}}}"#)]))
            let before = try await client.list(Secret.self, namespace: ns).items.map { "\($0.metadata.name):\($0.metadata.resourceVersion ?? "")" }.sorted()
            // Client certificates for the certificate cases: one expired, one valid from another key.
            let ca = try CertificateAuthority.generate(commonName: "catalogue-ca")
            let expired = try ca.issue(commonName: "old", usage: .client, notBeforeOffset: -7200, validity: 3600)
            let fresh = try ca.issue(commonName: "new", usage: .client)

            var failures: [String] = []
            for c in Self.cases {
                let caseDir = TempDir()
                func fill(_ s: String) -> String {
                    s.replacingOccurrences(of: "{K}", with: good).replacingOccurrences(of: "{D}", with: caseDir.path).replacingOccurrences(of: "{P}", with: port)
                }
                caseDir.write("expired.crt", expired.certificatePEM)
                caseDir.write("expired.key", expired.privateKey.pem)
                caseDir.write("good.crt", fresh.certificatePEM)
                for (name, text) in c.files { caseDir.write(name, fill(text)) }
                // A bad input fails at once; one still running after 20 s is itself a failure (killed).
                let r = try await runCLI(c.args.map(fill), environment: c.environment.mapValues(fill), timeout: .seconds(20))
                let want = fill(c.stderr)
                let textOK = c.prefix ? r.stderr.hasPrefix(want) : r.stderr == want
                if r.status != c.exit || !textOK {
                    failures.append("\(c.name): exit \(r.status) (want \(c.exit)), stderr \(r.stderr.debugDescription) (want \(c.prefix ? "prefix " : "")\(want.debugDescription))")
                }
                if r.stderr.contains(Self.token) || r.stdout.contains(Self.token) { failures.append("\(c.name): printed the canary token") }
                if r.stderr.split(separator: "\n").count > 4 && !c.args.contains("--bogus") { failures.append("\(c.name): more than a short error: \(r.stderr.prefix(300))") }
            }
            #expect(failures.isEmpty, "\(failures.count) of \(Self.cases.count) cases:\n\(failures.joined(separator: "\n"))")
            let after = try await client.list(Secret.self, namespace: ns).items.map { "\($0.metadata.name):\($0.metadata.resourceVersion ?? "")" }.sorted()
            #expect(after == before, "a bad input changed a Secret")
        }
    }
}
