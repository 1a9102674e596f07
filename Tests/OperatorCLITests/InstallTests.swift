import Foundation
import KubeClient
import KubeSim
@testable import KubetraceOperator
import Testing

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
let goldenInputs = ManifestInputs(
    clusterID: "c-123", apiURL: "https://gateway.kubetrace.net", operatorToken: SecretString("kt_op_golden"),
    image: "blr.vultrcr.com/kubetrace/kubetrace-operator@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    server: "https://api.c-123.example:6443", certificateAuthorityPEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    registry: "blr.vultrcr.com", registryUsername: "u", registryPassword: SecretString("p"),
    vultrAPIKey: SecretString("vultr-golden"), registryID: "reg-1")

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
    static let justifiedSkips = "CKV_K8S_158,CKV_K8S_43,CKV_K8S_38,CKV2_K8S_6,CKV_SECRET_6"

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
