import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import KubetraceOperator
import Testing

/// `manifest` → `kubectl apply` → `doctor`, against the devcluster and its emulators.
@Suite(.timeLimit(.minutes(2))) struct InstallIntegrationTests {
    struct Setup {
        let dir: TempDir
        let kubeconfig: String
        let ca: String
        let tokenFile: String
        let vultrKeyFile: String
        let apiURL: String
        let vultrURL: String
    }

    func setup(_ cluster: DevCluster) async throws -> Setup {
        let dir = TempDir()
        let url = await cluster.url()
        return Setup(dir: dir, kubeconfig: dir.write("kubeconfig", cluster.kubeconfigYAML(server: url)),
                     ca: dir.write("ca.crt", cluster.certificateAuthority!.certificate.certificatePEM),
                     tokenFile: dir.write("operator_token", cluster.operatorToken + "\n"),
                     vultrKeyFile: dir.write("vultr_api_key", cluster.vultrAPIKey + "\n"),
                     apiURL: url + "/kubetrace-api", vultrURL: url + "/vultr")
    }

    func manifestArgs(_ s: Setup, output: String) -> [String] {
        ["manifest", "--kubeconfig", s.kubeconfig, "--cluster-id", "c-1", "--api-url", s.apiURL, "--operator-token-file", s.tokenFile,
         "--vultr-api-key-file", s.vultrKeyFile, "--registry-id", DevCluster.vultrRegistryID, "--vultr-api-url", s.vultrURL,
         "--ca-file", s.ca, "--output", output]
    }

    @Test func manifestFromTheVultrAPIAppliesWithKubectl() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let out = "\(s.dir.path)/kubetrace-operator.yaml"
            let r = try await runCLI(manifestArgs(s, output: out))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("never commit or share it"))
            for secret in [cluster.operatorToken, cluster.vultrAPIKey] { #expect(!r.stderr.contains(secret) && !r.stdout.contains(secret)) }
            let mode = try FileManager.default.attributesOfItem(atPath: out)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            #expect(cluster.vultr.issuedCount == 1)
            #expect(cluster.vultr.lastExpirySeconds == 2_592_000)
            // Server-side, as the README installs it: no last-applied-configuration annotation copies
            // every Secret's data into the object (issue #19).
            let applied = try await runTool("kubectl", ["apply", "--server-side", "-f", out], environment: ["KUBECONFIG": s.kubeconfig])
            #expect(applied.status == 0, "\(applied.stderr)")
            #expect(applied.stdout.contains("deployment.apps/kubetrace-operator serverside-applied"), "\(applied.stdout)")
            #expect(applied.stdout.contains("validatingadmissionpolicy.admissionregistration.k8s.io/kubetrace-operator-secret-writes serverside-applied"), "\(applied.stdout)")
            let client = try await cliClient(cluster)
            for name in ["kubetrace-operator", "kubetrace-registry", "kubetrace-kubeconfig"] {
                let secret = try await client.get(Secret.self, namespace: "kubetrace-system", name: name)
                #expect(secret.metadata.annotations?["kubectl.kubernetes.io/last-applied-configuration"] == nil, "\(name)")
            }
            // Applying again is a no-op, not a conflict.
            let again = try await runTool("kubectl", ["apply", "--server-side", "-f", out], environment: ["KUBECONFIG": s.kubeconfig])
            #expect(again.status == 0, "\(again.stderr)")
            let operatorSecret = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-operator")
            // The token file's trailing newline is trimmed.
            #expect(operatorSecret.data?["operator_token"]?.string == cluster.operatorToken)
            let pull = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            let auths = try JSONValue.parse(pull.data![".dockerconfigjson"]!.bytes)["auths"]
            #expect(auths?["blr.vultrcr.com"]?["auth"] != nil)
            let sa = try await client.get(ServiceAccount.self, namespace: "kubetrace-system", name: "kubetrace-readonly-user")
            #expect(sa.imagePullSecrets == [LocalObjectReference(name: "kubetrace-registry")])
        }
    }

    @Test func badInputIsOneClearLineAndExit2() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let out = "\(s.dir.path)/m.yaml"
            func run(_ change: (inout [String]) -> Void) async throws -> ProcessResult {
                var args = manifestArgs(s, output: out)
                change(&args)
                return try await runCLI(args)
            }
            func replace(_ flag: String, _ value: String) -> (inout [String]) -> Void {
                { args in if let i = args.firstIndex(of: flag) { args[i + 1] = value } }
            }
            func drop(_ flags: [String]) -> (inout [String]) -> Void {
                { args in for flag in flags { if let i = args.firstIndex(of: flag) { args.removeSubrange(i ... i + 1) } } }
            }
            let cases: [((inout [String]) -> Void, String)] = [
                (replace("--api-url", "http://api.example.com"), "--api-url: \"http://api.example.com\" must be https"),
                (replace("--kubeconfig", "/nonexistent"), "kubeconfig /nonexistent: cannot be read"),
                (replace("--operator-token-file", "/nonexistent"), "--operator-token-file: cannot read /nonexistent"),
                (replace("--vultr-api-key-file", s.dir.write("wrong", "not-the-key")), "--vultr-api-key-file: the Vultr API rejected the key (401 Invalid API token.)"),
                (replace("--registry-id", "nope"), "--registry-id: registry \"nope\" not found by the Vultr API (404"),
                ({ $0.removeAll { $0 == "--cluster-id" || $0 == "c-1" } }, "missing a required input: --cluster-id (or CLUSTER_ID)"),
                // Every missing input in the one message (issue #19: they used to come one run at a time).
                (drop(["--cluster-id", "--api-url", "--operator-token-file", "--vultr-api-key-file", "--registry-id"]),
                 "missing 4 required inputs: --cluster-id (or CLUSTER_ID); --api-url (or API_URL); --operator-token-file (or OPERATOR_TOKEN_FILE); registry credentials (--vultr-api-key-file with --registry-id, or --registry-username with --registry-password-file)"),
                (replace("--operator-token-file", s.dir.write("multi", "kt_op_one\nInjected: header\n")), "--operator-token-file: \(s.dir.path)/multi contains a line feed at character 10"),
                ({ $0 += ["--registry-username", "u"] }, "use either --vultr-api-key-file with --registry-id, or --registry-username with --registry-password-file"),
                ({ $0 += ["--egress-cidr", "10.0.0.0/33"] }, "--egress-cidr: \"10.0.0.0/33\" is not a CIDR"),
                ({ $0 += ["--api-server-cidr", "10.0.0.1,api.example.com"] }, "--api-server-cidr: \"api.example.com\" is not a CIDR"),
                ({ $0 += ["--ingress-namespace-selector", "team"] }, "--ingress-namespace-selector: \"team\" is not key=value"),
                ({ $0 += ["--network-policy", "maybe"] }, "--network-policy: \"maybe\" is not true or false"),
                ({ $0 += ["--image", "blr.vultrcr.com/kubetrace/kubetrace-operator@sha256:abc"] }, "--image: the digest \"sha256:abc\" must be sha256: followed by 64 lower-case hex digits"),
                ({ $0 += ["--image", "@sha256:" + String(repeating: "a", count: 64)] }, "has no repository"),
            ]
            for (change, message) in cases {
                let r = try await run(change)
                #expect(r.status == 2, "\(message): \(r.stderr)")
                #expect(r.stderr.contains(message), "expected \(message) in \(r.stderr)")
                #expect(!FileManager.default.fileExists(atPath: out), "nothing is written on bad input")
            }
            cluster.vultr.failNext(status: 503)
            let down = try await run { _ in }
            #expect(down.status == 2)
            #expect(down.stderr.contains("--vultr-api-url: the Vultr API failed with 503"))
        }
    }

    /// The install leaves no privilege path (issue #19): with selector targets the operator may
    /// create Secrets anywhere, and the admission policy admits only its pull Secret's name and
    /// type, so it cannot have the token controller fill a ServiceAccount token for it; and
    /// without `escalate`/`bind` it cannot widen the read-only Role it maintains.
    @Test func theInstallClosesThePrivilegePath() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let out = "\(s.dir.path)/kubetrace-operator.yaml"
            let r = try await runCLI(manifestArgs(s, output: out) + ["--target-namespaces", "selector=kubetrace.net/targets=yes"])
            #expect(r.status == 0, "\(r.stderr)")
            let applied = try await runTool("kubectl", ["apply", "--server-side", "-f", out], environment: ["KUBECONFIG": s.kubeconfig])
            #expect(applied.status == 0, "\(applied.stderr)")
            let admin = try await cliClient(cluster)
            if (try? await admin.get(Namespace.self, name: "kube-system")) == nil { _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "kube-system"))) }
            let minted = try await admin.requestToken(namespace: "kubetrace-system", serviceAccount: "kubetrace-operator", TokenRequest(audiences: [], expirationSeconds: 3600))
            let asOperator = try await adminClient(cluster, token: minted.status!.token.value)

            // The attack: a service-account-token Secret under the pull Secret's name in kube-system.
            let attack = Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: "kube-system", annotations: ["kubernetes.io/service-account.name": "default"]),
                                type: "kubernetes.io/service-account-token")
            let refused = await expectError { _ = try await asOperator.create(attack) }
            #expect(refused?.httpStatus == 403)
            #expect(refused?.status?.message == "secrets \"kubetrace-registry\" is forbidden: ValidatingAdmissionPolicy 'kubetrace-operator-secret-writes' with binding 'kubetrace-operator-secret-writes' denied request: "
                + "the operator may write only the pull Secret kubetrace-registry (kubernetes.io/dockerconfigjson) and, in kubetrace-system, its Opaque Secrets kubetrace-operator and kubetrace-kubeconfig",
                "\(String(describing: refused))")
            #expect((try? await admin.get(Secret.self, namespace: "kube-system", name: "kubetrace-registry")) == nil, "nothing stored")
            // Another name is refused too; the pull Secret itself is what the operator may write.
            let other = await expectError { _ = try await asOperator.create(Secret(metadata: ObjectMeta(name: "anything", namespace: "kube-system"), type: "Opaque")) }
            #expect(other?.httpStatus == 403)
            let pull = Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: "kube-system"), type: "kubernetes.io/dockerconfigjson",
                              data: [".dockerconfigjson": SecretBytes(#"{"auths":{}}"#)])
            _ = try await asOperator.create(pull)

            // No escalate: the Role the operator restores cannot be widened by it ...
            var readOnly = try await admin.get(Role.self, namespace: "kubetrace-system", name: "kubetrace-readonly")
            let desired = readOnly.rules ?? []
            readOnly.rules = (readOnly.rules ?? []) + [PolicyRule(apiGroups: ["apps"], resources: ["deployments"], verbs: ["create", "update"])]
            let widened = await expectError { _ = try await asOperator.update(readOnly) }
            #expect(widened?.httpStatus == 403, "\(String(describing: widened))")
            // ... while restoring it, and its binding, still works (the operator holds those read-only rules).
            try await admin.delete(Role.self, namespace: "kubetrace-system", name: "kubetrace-readonly")
            try await admin.delete(RoleBinding.self, namespace: "kubetrace-system", name: "kubetrace-readonly-user")
            _ = try await asOperator.create(Role(metadata: ObjectMeta(name: "kubetrace-readonly", namespace: "kubetrace-system"), rules: desired))
            _ = try await asOperator.create(RoleBinding(metadata: ObjectMeta(name: "kubetrace-readonly-user", namespace: "kubetrace-system"),
                                                        subjects: [Subject(kind: "ServiceAccount", name: "kubetrace-readonly-user", namespace: "kubetrace-system")],
                                                        roleRef: RoleRef(kind: "Role", name: "kubetrace-readonly")))
        }
    }

    /// `--size-from-cluster` counts, page by page, what the operator will watch and
    /// sizes memory from it; a cluster it may not list is one line and exit 2.
    @Test func sizeFromClusterCountsWhatTheOperatorWillWatch() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let client = try await cliClient(cluster)
            for ns in ["kubetrace-system", "team-a", "elsewhere"] { _ = try await client.create(Namespace(metadata: ObjectMeta(name: ns))) }
            // 540 Pods in watched namespaces (510 in one: a second page of 500), 20 elsewhere.
            for (ns, count) in [("kubetrace-system", 510), ("team-a", 30), ("elsewhere", 20)] {
                for i in 0..<count {
                    let pod = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p-\#(i)"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#
                    _ = try await client.request("POST", path: "/api/v1/namespaces/\(ns)/pods", body: Array(pod.utf8))
                }
            }
            for ns in ["kubetrace-system", "team-a"] { _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "builder", namespace: ns))) }
            let out = "\(s.dir.path)/m.yaml"
            let pinned = "registry.example/kubetrace-operator@sha256:" + String(repeating: "0f", count: 32)
            let r = try await runCLI(manifestArgs(s, output: out) + ["--target-namespaces", "team-a", "--size-from-cluster", "--image", pinned])
            #expect(r.status == 0, "\(r.stderr)")
            let accounts = try await client.list(ServiceAccount.self, namespace: "kubetrace-system").items.count + client.list(ServiceAccount.self, namespace: "team-a").items.count
            let total = 540 + accounts
            #expect(r.stderr.contains("--size-from-cluster: \(total) objects to watch (540 Pods, \(accounts) ServiceAccounts, 0 pull Secrets)"), "\(r.stderr)")
            let sizing = MemorySizing.forObjects(total)
            #expect(sizing != MemorySizing.defaults)
            let yaml = try String(contentsOfFile: out, encoding: .utf8)
            #expect(yaml.contains("memory: \(sizing.requestMiB)Mi") && yaml.contains("memory: \(sizing.limitMiB)Mi"), "\(sizing)")
            #expect(yaml.contains("image: \"\(pinned)\""), "a pinned digest goes into the Deployment as given")

            // A ServiceAccount with no permissions: the 403 names the resource; nothing written.
            _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "nobody", namespace: "elsewhere")))
            let token = try await client.requestToken(namespace: "elsewhere", serviceAccount: "nobody", TokenRequest(audiences: [], expirationSeconds: 3600))
            let weak = s.dir.write("weak-kubeconfig", cluster.kubeconfigYAML(server: await cluster.url(), token: token.status!.token.value))
            let out2 = "\(s.dir.path)/m2.yaml"
            var args = manifestArgs(s, output: out2) + ["--size-from-cluster"]
            args[args.firstIndex(of: "--kubeconfig")! + 1] = weak
            let denied = try await runCLI(args)
            #expect(denied.status == 2)
            #expect(denied.stderr.hasPrefix("kubetrace-operator: error: --size-from-cluster: pods is forbidden") && denied.stderr.contains("cannot list resource \"pods\""), "\(denied.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out2))
        }
    }

    /// The policy allows the API server where Pods reach it: the endpoints behind
    /// default/kubernetes (read from the cluster), besides the kubeconfig's server.
    @Test func networkPolicyAllowsTheAPIServerEndpoints() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let client = try await cliClient(cluster)
            if (try? await client.get(Namespace.self, name: "default")) == nil { _ = try await client.create(Namespace(metadata: ObjectMeta(name: "default"))) }
            let endpoints = #"{"apiVersion":"v1","kind":"Endpoints","metadata":{"name":"kubernetes"},"subsets":[{"addresses":[{"ip":"10.0.0.5"},{"ip":"10.0.0.6"}],"ports":[{"name":"https","port":16443,"protocol":"TCP"}]}]}"#
            _ = try await client.request("POST", path: "/api/v1/namespaces/default/endpoints", body: Array(endpoints.utf8))
            let out = "\(s.dir.path)/m.yaml"
            let r = try await runCLI(manifestArgs(s, output: out))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("NetworkPolicy: API server egress to 10.0.0.5/32, 10.0.0.6/32, 127.0.0.1/32 from the API server's endpoints"), "\(r.stderr)")
            let yaml = try String(contentsOfFile: out, encoding: .utf8)
            for needle in ["cidr: 10.0.0.5/32", "cidr: 10.0.0.6/32", "cidr: 127.0.0.1/32", "port: 16443"] { #expect(yaml.contains(needle), "\(needle)") }
            // --api-server-cidr overrides what the cluster says.
            let pinned = try await runCLI(manifestArgs(s, output: out) + ["--api-server-cidr", "192.0.2.10/32"])
            #expect(pinned.status == 0 && !pinned.stderr.contains("NetworkPolicy: API server egress"))
            let yaml2 = try String(contentsOfFile: out, encoding: .utf8)
            #expect(yaml2.contains("cidr: 192.0.2.10/32") && !yaml2.contains("cidr: 10.0.0.5/32"))
        }
    }

    /// A healthy install passes every check; each broken state fails its own.
    @Test func doctorFindsEachBrokenState() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let client = try await cliClient(cluster)
            let port = await cluster.port()
            let registry = "127.0.0.1:\(port)"
            let passwordFile = s.dir.write("registry_password", "pw\n")
            let out = "\(s.dir.path)/m.yaml"
            let gen = try await runCLI(["manifest", "--kubeconfig", s.kubeconfig, "--cluster-id", "c-1", "--api-url", s.apiURL,
                                        "--operator-token-file", s.tokenFile, "--registry", registry, "--registry-username", "u",
                                        "--registry-password-file", passwordFile, "--ca-file", s.ca, "--output", out])
            #expect(gen.status == 0, "\(gen.stderr)")
            #expect(try await runTool("kubectl", ["apply", "-f", out], environment: ["KUBECONFIG": s.kubeconfig]).status == 0)
            // What the running operator would have done: its Pod runs, and the kubeconfig Secret holds a token.
            // A Pod is created Pending; only `pods/status` (the kubelet's write) makes it Running.
            let pod = try JSONValue.parse(Array(#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"kubetrace-operator-abc","labels":{"app.kubernetes.io/name":"kubetrace-operator"}},"spec":{"containers":[{"name":"operator","image":"x"}]}}"#.utf8))
            _ = try await client.request("POST", path: "/api/v1/namespaces/kubetrace-system/pods", body: pod.jsonBytes())
            _ = try await client.request("PATCH", path: "/api/v1/namespaces/kubetrace-system/pods/kubetrace-operator-abc/status",
                                         body: Array(#"{"status":{"phase":"Running"}}"#.utf8), contentType: "application/merge-patch+json")
            let minted = try await client.requestToken(namespace: "kubetrace-system", serviceAccount: "kubetrace-readonly-user", TokenRequest(audiences: [], expirationSeconds: 3600))
            var kc = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-kubeconfig")
            let withToken = kc.data!["kubeconfig"]!.string.replacingOccurrences(of: "  user: {}", with: "  user:\n    token: \(minted.status!.token.value)")
            kc.data = ["kubeconfig": SecretBytes(withToken)]
            _ = try await client.update(kc)

            let doctorArgs = ["doctor", "--kubeconfig", s.kubeconfig, "--namespace", "kubetrace-system", "--ca-file", s.ca, "--registry", registry]
            let healthy = try await runCLI(doctorArgs)
            #expect(healthy.status == 0, "\(healthy.stdout)\(healthy.stderr)")
            #expect(healthy.stdout.contains("all 13 checks passed"), "\(healthy.stdout)")
            #expect(healthy.stdout.contains("✓ admission-policy       kubetrace-operator-secret-writes limits the operator's Secret writes (binding kubetrace-operator-secret-writes, Deny)"), "\(healthy.stdout)")
            #expect(healthy.stdout.contains("✓ network-policy         kubetrace-operator allows DNS, the API server, 443 out and metrics scrapes"))
            #expect(!healthy.stdout.contains(cluster.operatorToken))
            let json = try await runCLI(doctorArgs + ["--output", "json"])
            let doc = try JSONValue.parse(Array(json.stdout.utf8))
            #expect(doc["ok"] == .bool(true))
            #expect(doc["checks"]?.arrayValue?.count == 13)

            func failing() async throws -> [String] {
                let r = try await runCLI(doctorArgs + ["--output", "json"])
                #expect(r.status == 1)
                let d = try JSONValue.parse(Array(r.stdout.utf8))
                return d["checks"]?.arrayValue?.filter { $0["ok"] == .bool(false) }.compactMap { $0["check"]?.stringValue } ?? []
            }
            // SA without the reference.
            _ = try await client.patch(ServiceAccount.self, namespace: "kubetrace-system", name: "kubetrace-readonly-user", .merge(.object(["imagePullSecrets": .null])))
            #expect(try await failing() == ["pull-secret-references"])
            _ = try await client.patch(ServiceAccount.self, namespace: "kubetrace-system", name: "kubetrace-readonly-user", .merge(.object(["imagePullSecrets": .array([.object(["name": .string("kubetrace-registry")])])])))
            // No pull Secret.
            let pull = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            try await client.delete(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            #expect(try await failing() == ["pull-secret"])
            var restored = pull
            restored.metadata = ObjectMeta(name: "kubetrace-registry", namespace: "kubetrace-system")
            _ = try await client.create(restored)
            // A bad operator token.
            cluster.kubetraceAPI.revokeOperatorToken(cluster.operatorToken)
            #expect(try await failing() == ["kubetrace-api"])
            cluster.kubetraceAPI.acceptOperatorToken(cluster.operatorToken)
            // RoleBinding deleted.
            let binding = try await client.get(RoleBinding.self, namespace: "kubetrace-system", name: "kubetrace-readonly-user")
            try await client.delete(RoleBinding.self, namespace: "kubetrace-system", name: "kubetrace-readonly-user")
            #expect(try await failing() == ["rbac-objects"])
            var rb = binding
            rb.metadata = ObjectMeta(name: binding.name, namespace: "kubetrace-system")
            _ = try await client.create(rb)
            // The admission policy unbound: the operator's Secret creates are no longer limited.
            let bindingPath = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/kubetrace-operator-secret-writes"
            let vapBinding = try JSONValue.parse(try await client.request("GET", path: bindingPath).body)
            _ = try await client.request("DELETE", path: bindingPath)
            #expect(try await failing() == ["admission-policy"])
            var recreated = vapBinding
            recreated["metadata"] = .object(["name": .string("kubetrace-operator-secret-writes")])
            _ = try await client.request("POST", path: "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings", body: recreated.jsonBytes())
            // RBAC too narrow: the operator's Role loses leases.
            var role = try await client.get(Role.self, namespace: "kubetrace-system", name: "kubetrace-operator")
            let full = role
            role.rules = role.rules?.filter { $0.resources != ["leases"] }
            _ = try await client.update(role)
            #expect(try await failing() == ["rbac-permissions"])
            var back = try await client.get(Role.self, namespace: "kubetrace-system", name: "kubetrace-operator")
            back.rules = full.rules
            _ = try await client.update(back)
            // A NetworkPolicy that lets only DNS out (kubectl as the outside writer).
            let policyPath = "/apis/networking.k8s.io/v1/namespaces/kubetrace-system/networkpolicies/kubetrace-operator"
            let policy = try JSONValue.parse(try await client.request("GET", path: policyPath).body)
            let dnsOnly = #"{"spec":{"egress":[{"ports":[{"port":53,"protocol":"UDP"}]}]}}"#
            #expect(try await runTool("kubectl", ["-n", "kubetrace-system", "patch", "networkpolicy", "kubetrace-operator", "--type=merge", "-p", dnsOnly],
                                      environment: ["KUBECONFIG": s.kubeconfig]).status == 0)
            #expect(try await failing() == ["network-policy"])
            let blocked = try await runCLI(doctorArgs)
            #expect(blocked.stdout.contains("✗ network-policy         kubetrace-operator blocks: API server 127.0.0.1:\(port); Kubetrace API 127.0.0.1:\(port); registry 127.0.0.1:\(port)"), "\(blocked.stdout)")
            _ = try await client.request("PATCH", path: policyPath, body: JSONValue.object(["spec": policy["spec"]!]).jsonBytes(), contentType: "application/merge-patch+json")
            // API_URL unreachable (and on a port the policy does not let out: the doctor says both).
            let unreachable = try await runCLI(doctorArgs + ["--api-url", "https://127.0.0.1:1", "--output", "json"])
            #expect(unreachable.status == 1)
            let u = try JSONValue.parse(Array(unreachable.stdout.utf8))
            #expect(u["checks"]?.arrayValue?.filter { $0["ok"] == .bool(false) }.compactMap { $0["check"]?.stringValue } == ["network-policy", "kubetrace-api"])
            // And healthy again.
            #expect(try await runCLI(doctorArgs).status == 0)
        }
    }

    @Test func kustomizeBaseAppliesWithItsSecretFiles() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let copy = "\(s.dir.path)/deploy"
            try FileManager.default.copyItem(atPath: repositoryRoot.appendingPathComponent("deploy").path, toPath: copy)
            FileManager.default.createFile(atPath: "\(copy)/secrets/operator_token", contents: Data("kt_op_example".utf8))
            FileManager.default.createFile(atPath: "\(copy)/secrets/dockerconfig.json", contents: Data(#"{"auths":{"blr.vultrcr.com":{"auth":"dTpw"}}}"#.utf8))
            let r = try await runTool("kubectl", ["apply", "--server-side", "-k", copy], environment: ["KUBECONFIG": s.kubeconfig])
            #expect(r.status == 0, "\(r.stderr)")
            let client = try await cliClient(cluster)
            let pull = try await client.get(Secret.self, namespace: "kubetrace-system", name: "kubetrace-registry")
            #expect(pull.type == "kubernetes.io/dockerconfigjson")
            _ = try await client.get(Role.self, namespace: "kubetrace-system", name: "kubetrace-operator")
        }
    }
}
