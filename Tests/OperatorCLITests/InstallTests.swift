import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
@testable import KubetraceOperator
import Testing
import Yams

let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let repositoryRoot = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()

/// Compares with a checked-in file; `KUBETRACE_UPDATE_GOLDEN=1` rewrites it instead.
func expectGolden(_ text: String, _ path: URL) throws {
    if ProcessInfo.processInfo.environment["KUBETRACE_UPDATE_GOLDEN"] == "1" {
        try text.write(to: path, atomically: true, encoding: .utf8)
    }
    let expected = try String(contentsOf: path, encoding: .utf8)
    #expect(text == expected, "\(path.lastPathComponent) differs from the generated output; review, then rerun with KUBETRACE_UPDATE_GOLDEN=1")
}

/// Fixed inputs for the golden manifest (no real credentials).
let goldenInputs: ManifestInputs = {
    var m = ManifestInputs(
    clusterID: "c-123", apiURL: "https://gateway.kubetrace.net", operatorToken: SecretString("kt_op_golden"),
    image: "blr.vultrcr.com/kubetrace/kubetrace-operator@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    server: "https://api.c-123.example:6443", certificateAuthorityPEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    registry: "blr.vultrcr.com", registryUsername: "u", registryPassword: SecretString("p"),
    vultrAPIKey: SecretString("vultr-golden"), registryID: "reg-1")
    m.networkPolicy?.apiServerCIDRs = [CIDR("203.0.113.10")!]
    return m
}()

/// `deploy/base.yaml`: the same documents for placeholder values.
let deployInputs = ManifestInputs(
    clusterID: "set-your-cluster-id", apiURL: "https://gateway.kubetrace.net", operatorToken: SecretString(""),
    image: "blr.vultrcr.com/kubetrace/kubetrace-operator:\(kubetraceVersion)", server: "", certificateAuthorityPEM: nil,
    registry: "blr.vultrcr.com", registryUsername: "", registryPassword: SecretString(""), vultrAPIKey: nil, registryID: nil)

@Suite struct ManifestGoldenTests {
    @Test func manifestMatchesTheGoldenFile() throws {
        try expectGolden(ManifestRenderer.render(goldenInputs), testsDirectory.appendingPathComponent("Golden/manifest.yaml"))
    }

    @Test func deployBaseIsTheRenderersOutput() throws {
        try expectGolden(ManifestRenderer.renderBase(deployInputs), repositoryRoot.appendingPathComponent("deploy/base.yaml"))
    }

    @Test func secretsAreBase64AndDecodable() throws {
        let yaml = ManifestRenderer.render(goldenInputs)
        #expect(!yaml.contains("kt_op_golden"))
        #expect(yaml.contains(Data("kt_op_golden".utf8).base64EncodedString()))
    }
}

/// The external validators the issue names, on the generated manifest and on deploy/.
@Suite(.timeLimit(.minutes(2))) struct ManifestValidationTests {
    static let justifiedSkips = "CKV_K8S_158,CKV_K8S_43,CKV_K8S_38,CKV_SECRET_6"

    @Test func kubernetesValidateAndCheckovPass() async throws {
        let dir = TempDir()
        let manifest = dir.write("manifest.yaml", ManifestRenderer.render(goldenInputs))
        for file in [manifest, repositoryRoot.appendingPathComponent("deploy/base.yaml").path] {
            let v = try await runTool("kubernetes-validate", ["--strict", "-k", "1.32.0", file])
            #expect(v.status == 0, "\(v.stdout)\(v.stderr)")
            #expect(!v.stdout.contains("ERROR"))
        }
        for target in [["-f", manifest], ["-d", repositoryRoot.appendingPathComponent("deploy").path]] {
            let c = try await runTool("checkov", target + ["--framework", "kubernetes", "secrets", "--skip-check", Self.justifiedSkips, "--compact", "--quiet", "--skip-download"])
            #expect(c.status == 0, "\(c.stdout)")
            #expect(!c.stdout.contains("FAILED"))
        }
    }
}

func runTool(_ tool: String, _ args: [String], environment: [String: String] = [:]) async throws -> ProcessResult {
    try await run(tool, args, environment: environment)
}

@Suite struct ManifestTargetNamespaceTests {
    @Test func listedTargetsGetARoleEachAndTheDeploymentItsVariables() throws {
        var inputs = goldenInputs
        inputs.targetNamespaces = .list(["apps", "web"])
        inputs.targetServiceAccounts = ["default", "builder"]
        let yaml = ManifestRenderer.render(inputs)
        for ns in ["apps", "web"] {
            #expect(yaml.contains("kind: Role\nmetadata:\n  name: kubetrace-operator\n  namespace: \(ns)\n"), "a Role in \(ns)")
            #expect(yaml.contains("kind: RoleBinding\nmetadata:\n  name: kubetrace-operator\n  namespace: \(ns)\n"), "a RoleBinding in \(ns)")
        }
        #expect(yaml.contains("- name: TARGET_NAMESPACES\n          value: \"apps,web\""))
        #expect(yaml.contains("- name: TARGET_SERVICE_ACCOUNTS\n          value: \"default,builder\""))
        #expect(!yaml.contains("ClusterRole"), "nothing cluster-wide for a list")
        // Without targets, nothing of this (the golden file stays as it is).
        #expect(!ManifestRenderer.render(goldenInputs).contains("TARGET_NAMESPACES"))
    }

    @Test func selectorTargetsGetAClusterRole() throws {
        var inputs = goldenInputs
        inputs.targetNamespaces = .selector("kubetrace.net/pull-secret=true")
        let yaml = ManifestRenderer.render(inputs)
        #expect(yaml.contains("kind: ClusterRole\nmetadata:\n  name: kubetrace-operator-targets\n"))
        #expect(yaml.contains("kind: ClusterRoleBinding\nmetadata:\n  name: kubetrace-operator-targets\n"))
        #expect(yaml.contains("selector=kubetrace.net/pull-secret=true"))
        let rules = DesiredRBAC.targetRules(ObjectNames(), selector: true)
        #expect(rules.contains { $0.resources == ["namespaces"] && $0.verbs == ["get", "list", "watch"] })
        #expect(rules.first { $0.resources == ["secrets"] && $0.verbs.contains("delete") }?.resourceNames == ["kubetrace-registry"])
    }
}

/// The NetworkPolicy evaluation the doctor relies on, and the sizing rule.
@Suite struct NetworkPolicyAndSizingTests {
    static let labels = ["app.kubernetes.io/name": "kubetrace-operator"]

    static func policy(_ spec: String) throws -> NetworkPolicyView {
        NetworkPolicyView(try JSONValue.parse(Array(#"{"metadata":{"name":"p"},"spec":\#(spec)}"#.utf8)))
    }

    @Test func cidrsParseAndContain() {
        #expect(CIDR("10.1.0.0/16")?.contains("10.1.200.3") == true)
        #expect(CIDR("10.1.0.0/16")?.contains("10.2.0.1") == false)
        #expect(CIDR("203.0.113.7")?.description == "203.0.113.7/32")
        #expect(CIDR("2001:db8::/32")?.contains("2001:db8:1::5") == true)
        #expect(CIDR("2001:db8::/32")?.contains("10.0.0.1") == false)
        #expect(CIDR("0.0.0.0/0")?.contains("192.0.2.1") == true)
        #expect(CIDR("10.0.0.0/33") == nil && CIDR("example.com") == nil && CIDR("10.0.0.0/x") == nil)
    }

    @Test func theGeneratedPolicyAllowsWhatTheOperatorNeeds() throws {
        var m = goldenInputs
        m.networkPolicy?.apiServerCIDRs = [CIDR("203.0.113.10")!]
        let yaml = ManifestRenderer.networkPolicy(m, m.networkPolicy!).render()
        let json = try JSONValue.parse(Array(try JSONSerialization.data(withJSONObject: try Yams.load(yaml: yaml) as Any)))
        let p = NetworkPolicyView(json)
        let needs = [NetworkPolicyCheck.Need(what: "dns", port: 53, proto: "UDP", address: nil),
                     NetworkPolicyCheck.Need(what: "api", port: 6443, address: "203.0.113.10"),
                     NetworkPolicyCheck.Need(what: "registry", port: 443, address: "198.51.100.4")]
        #expect(NetworkPolicyCheck.missing([p], podLabels: Self.labels, egress: needs)?.map(\.what) == [])
        // Another API server address, or the registry on a port other than 443: blocked.
        let blocked = [NetworkPolicyCheck.Need(what: "api elsewhere", port: 6443, address: "203.0.113.11"),
                       NetworkPolicyCheck.Need(what: "registry 5000", port: 5000, address: "198.51.100.4")]
        #expect(NetworkPolicyCheck.missing([p], podLabels: Self.labels, egress: blocked)?.map(\.what) == ["api elsewhere", "registry 5000"])
        #expect(NetworkPolicyCheck.missing([p], podLabels: Self.labels, ingress: [.init(what: "metrics", port: 8080, address: nil, portName: "metrics")]) == [])
        #expect(NetworkPolicyCheck.missing([p], podLabels: ["app": "other"], egress: blocked) == nil, "a policy for other Pods restricts nothing")
        // A registry on another port is allowed once the manifest lists that port.
        m.networkPolicy?.egressPorts = [443, 5000]
        let withPort = NetworkPolicyView(try JSONValue.parse(Array(try JSONSerialization.data(withJSONObject: try Yams.load(yaml: ManifestRenderer.networkPolicy(m, m.networkPolicy!).render()) as Any))))
        #expect(NetworkPolicyCheck.missing([withPort], podLabels: Self.labels, egress: blocked)?.map(\.what) == ["api elsewhere"])
    }

    @Test func policySemantics() throws {
        let dns = NetworkPolicyCheck.Need(what: "dns", port: 53, proto: "UDP", address: nil)
        let out = NetworkPolicyCheck.Need(what: "out", port: 443, address: "192.0.2.9")
        // Ingress-only policy (policyTypes absent, no egress rules): egress unrestricted.
        #expect(NetworkPolicyCheck.missing([try Self.policy(#"{"podSelector":{},"ingress":[]}"#)], podLabels: Self.labels, egress: [out]) == nil)
        // Egress deny-all.
        let deny = try Self.policy(#"{"podSelector":{},"policyTypes":["Egress"]}"#)
        #expect(NetworkPolicyCheck.missing([deny], podLabels: Self.labels, egress: [dns, out])?.count == 2)
        // A second policy adds to the first (union).
        let allowAll443 = try Self.policy(#"{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"kubetrace-operator"}},"policyTypes":["Egress"],"egress":[{"ports":[{"port":443}]}]}"#)
        #expect(NetworkPolicyCheck.missing([deny, allowAll443], podLabels: Self.labels, egress: [dns, out])?.map(\.what) == ["dns"])
        // ipBlock except; a namespace selector does not reach an outside address; port ranges.
        let except = try Self.policy(#"{"podSelector":{},"policyTypes":["Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"192.0.2.0/24","except":["192.0.2.8/29"]}}]}]}"#)
        #expect(NetworkPolicyCheck.missing([except], podLabels: Self.labels, egress: [out])?.count == 1)
        let selector = try Self.policy(#"{"podSelector":{},"policyTypes":["Egress"],"egress":[{"to":[{"namespaceSelector":{}}],"ports":[{"port":53,"protocol":"UDP"},{"port":400,"endPort":500}]}]}"#)
        #expect(NetworkPolicyCheck.missing([selector], podLabels: Self.labels, egress: [dns, out])?.map(\.what) == ["out"])
        let range = try Self.policy(#"{"podSelector":{},"policyTypes":["Egress"],"egress":[{"ports":[{"port":400,"endPort":500}]}]}"#)
        #expect(NetworkPolicyCheck.missing([range], podLabels: Self.labels, egress: [out]) == [])
        // matchExpressions select the Pod or not.
        let notIn = try Self.policy(#"{"podSelector":{"matchExpressions":[{"key":"app.kubernetes.io/name","operator":"NotIn","values":["kubetrace-operator"]}]},"policyTypes":["Egress"]}"#)
        #expect(NetworkPolicyCheck.missing([notIn], podLabels: Self.labels, egress: [out]) == nil)
    }

    @Test func memoryFollowsTheMeasuredRule() {
        // 48 MiB + 1,250 B per object, × 1.5, rounded up to 16 MiB; limit twice that.
        #expect(MemorySizing.forObjects(0) == MemorySizing(requestMiB: 80, limitMiB: 160))
        #expect(MemorySizing.defaults == MemorySizing(requestMiB: 96, limitMiB: 192))
        #expect(MemorySizing.forObjects(100_000) == MemorySizing(requestMiB: 160, limitMiB: 320))
        #expect(MemorySizing.forObjects(1_000_000).requestMiB > MemorySizing.forObjects(100_000).requestMiB * 5)
    }
}

/// Least privilege, read off the rendered manifest itself: no ClusterRole touches Secrets unless
/// the targets are chosen by selector (which can match any namespace), and even then no rule can
/// read or change any Secret but the pull Secret — only `create`, which RBAC cannot limit by name.
@Suite struct LeastPrivilegeRBACTests {
    static func rules(of yaml: String, kind: String) throws -> [(name: String, rule: [String: Any])] {
        var out: [(String, [String: Any])] = []
        for doc in try Yams.load_all(yaml: yaml) {
            guard let d = doc as? [String: Any], d["kind"] as? String == kind else { continue }
            let name = (d["metadata"] as? [String: Any])?["name"] as? String ?? "?"
            for r in d["rules"] as? [[String: Any]] ?? [] { out.append((name, r)) }
        }
        return out
    }

    static func touchesSecrets(_ rule: [String: Any]) -> Bool {
        let resources = rule["resources"] as? [String] ?? []
        return resources.contains("secrets") || resources.contains("*")
    }

    @Test(arguments: ["none", "list", "selector"])
    func clusterWideSecretAccessOnlyForASelectorAndOnlyByName(targets: String) throws {
        var inputs = goldenInputs
        switch targets {
        case "list": inputs.targetNamespaces = .list(["apps", "web"])
        case "selector": inputs.targetNamespaces = .selector("kubetrace.net/pull-secret=true")
        default: break
        }
        let yaml = ManifestRenderer.render(inputs)
        let cluster = try Self.rules(of: yaml, kind: "ClusterRole").filter { Self.touchesSecrets($0.rule) }
        if targets != "selector" {
            #expect(cluster.isEmpty, "a ClusterRole grants Secrets with targets \(targets): \(cluster.map(\.name))")
        } else {
            #expect(!cluster.isEmpty)
        }
        for (name, rule) in cluster {
            let verbs = Set(rule["verbs"] as? [String] ?? [])
            let byName = rule["resourceNames"] as? [String]
            #expect(byName == ["kubetrace-registry"] || verbs == ["create"], "ClusterRole \(name) grants \(verbs.sorted()) on any Secret")
            #expect(!verbs.contains("*") && !verbs.contains("list") || byName == ["kubetrace-registry"], "ClusterRole \(name) lists Secrets cluster-wide")
        }
        // Namespaced Roles never use wildcards either.
        for (name, rule) in try Self.rules(of: yaml, kind: "Role") + Self.rules(of: yaml, kind: "ClusterRole") {
            #expect(!(rule["verbs"] as? [String] ?? []).contains("*") && !(rule["resources"] as? [String] ?? []).contains("*"), "\(name) uses a wildcard")
        }
    }
}
