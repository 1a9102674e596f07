import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// Real kubectl against the devcluster for what an install does: server-side apply of the
/// generated manifest, the monitoring kit once its CRDs exist, and the operator's Events where
/// `kubectl get events` and `kubectl describe` look for them.
@Suite(.timeLimit(.minutes(2))) struct KubectlFidelityTests {
    @Test func generatedManifestAppliesServerSideTwice() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await InstallIntegrationTests().setup(cluster)
            let out = "\(s.dir.path)/kubetrace-operator.yaml"
            let gen = try await runCLI(InstallIntegrationTests().manifestArgs(s, output: out))
            #expect(gen.status == 0, "\(gen.stderr)")
            let env = ["KUBECONFIG": s.kubeconfig]
            let first = try await runTool("kubectl", ["apply", "--server-side", "-f", out], environment: env)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("deployment.apps/kubetrace-operator serverside-applied"), "\(first.stdout)")
            // Re-applying the same file is a no-op for every object, with no conflict.
            let second = try await runTool("kubectl", ["apply", "--server-side", "-f", out], environment: env)
            #expect(second.status == 0, "\(second.stderr)")
            // kubectl is the field manager of what it applied; no last-applied annotation holds Secret data.
            let secret = try await runTool("kubectl", ["get", "secret", "kubetrace-operator", "-n", "kubetrace-system", "--show-managed-fields", "-o", "json"], environment: env)
            let object = try JSONValue.parse(Array(secret.stdout.utf8))
            let managers = object["metadata"]?["managedFields"]?.arrayValue?.map { "\($0["manager"]?.stringValue ?? "")/\($0["operation"]?.stringValue ?? "")" }
            #expect(managers == ["kubectl/Apply"], "\(secret.stdout)")
            #expect(object["metadata"]?["annotations"]?["kubectl.kubernetes.io/last-applied-configuration"] == nil)
            let deployment = try await runTool("kubectl", ["get", "deployment", "kubetrace-operator", "-n", "kubetrace-system", "-o", "jsonpath={.metadata.generation} {.spec.strategy.type}"], environment: env)
            #expect(deployment.stdout == "1 RollingUpdate", "\(deployment.stdout)")
        }
    }

    /// The Prometheus Operator's CRDs (reduced to what kubectl needs: names, scope, a served
    /// storage version with an open schema), then `kubectl apply -k deploy/monitoring` as the
    /// docs say: the Service, the ServiceMonitor, the PrometheusRule and the dashboard ConfigMap.
    @Test func monitoringKitAppliesOnceItsCRDsExist() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await InstallIntegrationTests().setup(cluster)
            let env = ["KUBECONFIG": s.kubeconfig]
            #expect(try await runTool("kubectl", ["create", "namespace", "kubetrace-system"], environment: env).status == 0)
            let missing = try await runTool("kubectl", ["apply", "-k", repositoryRoot.appendingPathComponent("deploy/monitoring").path], environment: env)
            #expect(missing.status != 0 && missing.stderr.contains("ensure CRDs are installed first"), "\(missing.stderr)")
            func crd(_ plural: String, _ kind: String, _ short: String) -> String {
                """
                apiVersion: apiextensions.k8s.io/v1
                kind: CustomResourceDefinition
                metadata:
                  name: \(plural).monitoring.coreos.com
                spec:
                  group: monitoring.coreos.com
                  scope: Namespaced
                  names: {plural: \(plural), kind: \(kind), shortNames: [\(short)], categories: [prometheus-operator]}
                  versions:
                  - name: v1
                    served: true
                    storage: true
                    schema:
                      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
                """
            }
            let crds = s.dir.write("crds.yaml", crd("servicemonitors", "ServiceMonitor", "smon") + "\n---\n" + crd("prometheusrules", "PrometheusRule", "promrule"))
            let installed = try await runTool("kubectl", ["apply", "--server-side", "-f", crds], environment: env)
            #expect(installed.status == 0, "\(installed.stderr)")
            let established = try await runTool("kubectl", ["wait", "--for", "condition=established", "--timeout=10s", "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"], environment: env)
            #expect(established.status == 0, "\(established.stderr)")
            let applied = try await runTool("kubectl", ["apply", "-k", repositoryRoot.appendingPathComponent("deploy/monitoring").path], environment: env)
            #expect(applied.status == 0, "\(applied.stderr)")
            for object in ["service/kubetrace-operator-metrics", "servicemonitor/kubetrace-operator", "prometheusrule/kubetrace-operator", "configmap/kubetrace-operator-dashboard"] {
                let got = try await runTool("kubectl", ["get", "-n", "kubetrace-system", object, "-o", "name"], environment: env)
                #expect(got.status == 0, "\(object): \(got.stderr)")
            }
            let ip = try await runTool("kubectl", ["get", "-n", "kubetrace-system", "service/kubetrace-operator-metrics", "-o", "jsonpath={.spec.clusterIP}"], environment: env)
            #expect(ip.stdout.hasPrefix("10.96."), "\(ip.stdout)")
        }
    }

    /// The operator writes Events through events.k8s.io/v1; kubectl reads core/v1 Events by
    /// field selector (`kubectl describe` searches involvedObject name, namespace, kind and uid).
    /// `kubectl describe secret` shows no Events for any Secret — kubectl's SecretDescriber
    /// never looks them up — so the Secret's are read with `kubectl get events`, and
    /// `kubectl describe serviceaccount` shows the account's.
    @Test func operatorEventsShowInKubectl() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await RunModeTests().setup(cluster)
            let (ns, client, kubeconfig) = (s.ns, s.client, s.kubeconfig)
            let op = try OperatorProcess(RunModeTests().runArgs(s), dir: s.dir, name: "op", environment: ["LOG_FORMAT": "json"])
            try await op.lines.waitFor("\"event\":\"ready\"", timeout: .seconds(30))
            try await client.delete(Secret.self, namespace: ns, name: "kubetrace-registry")
            try await op.lines.waitFor("pull_secret_repaired")
            _ = try await client.patch(ServiceAccount.self, namespace: ns, name: "kubetrace-readonly-user", .merge(.object(["imagePullSecrets": .array([])])))
            try await op.lines.waitFor("service_account_repaired")
            // Events are written after the repair, off its path: wait until both are stored.
            try await awaitEvents(client, namespace: ns, reasons: ["PullSecretRepaired", "ServiceAccountRepaired"])
            let env = ["KUBECONFIG": kubeconfig]
            func events(_ selector: String) async throws -> [JSONValue] {
                let r = try await runTool("kubectl", ["get", "events", "-n", ns, "--field-selector", selector, "-o", "json"], environment: env)
                return try JSONValue.parse(Array(r.stdout.utf8))["items"]?.arrayValue ?? []
            }
            let secretEvents = try await events("involvedObject.kind=Secret,involvedObject.name=kubetrace-registry")
            let accountEvents = try await events("involvedObject.name=kubetrace-readonly-user,involvedObject.kind=ServiceAccount")
            #expect(secretEvents.contains { $0["reason"] == .string("PullSecretRepaired") }, "\(secretEvents)")
            #expect(accountEvents.contains { $0["reason"] == .string("ServiceAccountRepaired") }, "\(accountEvents)")
            let described = try await runTool("kubectl", ["describe", "serviceaccount", "kubetrace-readonly-user", "-n", ns], environment: env)
            let saUID = try await client.get(ServiceAccount.self, namespace: ns, name: "kubetrace-readonly-user").metadata.uid ?? ""
            #expect(described.stdout.contains("ServiceAccountRepaired"), "\(described.stdout) SA uid \(saUID) \(accountEvents.map { $0["involvedObject"]?["uid"]?.stringValue ?? "-" })")
            let table = try await runTool("kubectl", ["get", "events", "-n", ns], environment: env)
            #expect(table.stdout.contains("PullSecretRepaired") && table.stdout.contains("secret/kubetrace-registry"), "\(table.stdout)")
            #expect(try await op.stop() == 0)
        }
    }
}

/// Returns once Events with every one of `reasons` exist in `namespace`: one list, then a watch
/// from it (an awaited condition, not a poll); throws after `timeout`.
func awaitEvents(_ client: KubeClient, namespace: String, reasons: Set<String>, timeout: Duration = .seconds(15)) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            let list = try await client.list(CoreEvent.self, namespace: namespace)
            var seen = Set(list.items.compactMap(\.reason))
            if reasons.isSubset(of: seen) { return }
            let (_, body) = try await client.stream(path: CoreEvent.resource.path(namespace: namespace),
                                                    query: [("watch", "1"), ("resourceVersion", list.metadata.resourceVersion ?? "")])
            var buffer: [UInt8] = []
            for try await chunk in body {
                buffer += chunk
                while let nl = buffer.firstIndex(of: 10) {
                    let line = Array(buffer[..<nl])
                    buffer.removeFirst(nl + 1)
                    if let reason = (try? JSONValue.parse(line))?["object"]?["reason"]?.stringValue { seen.insert(reason) }
                    if reasons.isSubset(of: seen) { return }
                }
            }
            throw AwaitTimeout(description: "the Event watch ended before \(reasons.subtracting(seen).sorted()) appeared")
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw AwaitTimeout(description: "no Events \(reasons.sorted()) within \(timeout)")
        }
        try await group.next()
        group.cancelAll()
    }
}
