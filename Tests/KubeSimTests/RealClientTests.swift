import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// Real `kubectl` and the official Python client against the devcluster, unchanged.
@Suite(.timeLimit(.minutes(2))) struct RealClientTests {
    @Test func kubectlRoundTrip() async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let env = ["KUBECONFIG": dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))]
            func kubectl(_ args: String..., stdin: String? = nil) async throws -> ProcessResult {
                try await run("kubectl", Array(args), environment: env, stdin: stdin)
            }
            let created = try await kubectl("create", "secret", "generic", "s1", "--from-literal=token=abc")
            #expect(created.status == 0, "\(created.stderr)")
            #expect(try await kubectl("get", "secret", "s1", "-o", "jsonpath={.data.token}").stdout == Data("abc".utf8).base64EncodedString())
            let applied = try await kubectl("apply", "-f", "-", stdin: """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: c1, namespace: default}
            data: {a: b}
            """)
            #expect(applied.stdout == "configmap/c1 created\n", "\(applied.stderr)")

            // `kubectl get -w` sees the changes made while it watches.
            let admin = try await adminClient(cluster)
            async let watcher = kubectl("get", "configmaps", "-w", "--output-watch-events", "-o", "json", "--request-timeout=10s")
            // kubectl lists first, then watches: wait until its watch is registered (the suite's time limit bounds this).
            await cluster.waitForWatches(1)
            #expect(try await kubectl("label", "configmap", "c1", "x=y").status == 0)
            #expect(try await kubectl("patch", "configmap", "c1", "--type=json", "-p", #"[{"op":"add","path":"/data/z","value":"1"}]"#).status == 0)
            #expect(try await kubectl("delete", "configmap", "c1").status == 0)
            _ = admin
            let watched = try await watcher
            let events = try watched.stdout.split(separator: "\n").map { line -> String in
                let e = try JSONValue.parse(Array(line.utf8))
                return "\(e["type"]?.stringValue ?? "?") \(e["object"]?.name ?? "?")"
            }
            #expect(events == ["ADDED c1", "MODIFIED c1", "MODIFIED c1", "DELETED c1"], "\(watched.stdout) \(watched.stderr)")

            // auth can-i with a service-account token minted by `kubectl create token`.
            #expect(try await kubectl("create", "serviceaccount", "reader").status == 0)
            #expect(try await kubectl("create", "role", "reader", "--verb=get,list", "--resource=secrets").status == 0)
            #expect(try await kubectl("create", "rolebinding", "reader", "--role=reader", "--serviceaccount=default:reader").status == 0)
            let token = try await kubectl("create", "token", "reader").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(JWT.expiry(of: token) != nil)
            #expect(try await kubectl("--token", token, "auth", "can-i", "list", "secrets").stdout == "yes\n")
            let no = try await kubectl("--token", token, "auth", "can-i", "delete", "secrets")
            #expect(no.stdout == "no\n")
            let forbidden = try await kubectl("--token", token, "delete", "secret", "s1")
            #expect(forbidden.status != 0)
            #expect(forbidden.stderr.contains(#"secrets "s1" is forbidden: User "system:serviceaccount:default:reader" cannot delete resource "secrets" in API group "" in the namespace "default""#))
        }
    }

    static let pythonScript = #"""
    import json, sys
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException
    config.load_kube_config(config_file=sys.argv[1])
    v1 = client.CoreV1Api()
    out = {}
    lst = v1.list_namespaced_config_map("default")
    out["listed"] = sorted(i.metadata.name for i in lst.items)
    events = []
    for e in watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=sys.argv[2], timeout_seconds=1):
        events.append([e["type"], e["object"].metadata.name])
    out["events"] = events
    try:
        for e in watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=sys.argv[3], timeout_seconds=1):
            pass
        out["expired"] = None
    except ApiException as ex:
        out["expired"] = ex.status
    print(json.dumps(out))
    """#

    @Test func officialPythonClientListsAndWatches() async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            let kubeconfig = dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))
            let admin = try await adminClient(cluster)
            let a = try await admin.create(configMap("a"))
            _ = try await admin.create(configMap("b"))
            try await admin.delete(ConfigMap.self, namespace: "default", name: "a")
            // An old resourceVersion from a second devcluster history: compact, then create one more.
            let before = try await admin.create(configMap("c"))
            let script = dir.write("check.py", Self.pythonScript)
            // Resume point `a` replays b ADDED, a DELETED, c ADDED; `expiredRV` is gone after compaction.
            let expiredRV = a.metadata.resourceVersion!
            let replay = try await run("python3", [script, kubeconfig, a.metadata.resourceVersion!, expiredRV])
            #expect(replay.status == 0, "\(replay.stderr)")
            let out = try JSONValue.parse(Array(replay.stdout.utf8))
            #expect(out["listed"] == .array([.string("b"), .string("c")]))
            #expect(out["events"] == .array([.array([.string("ADDED"), .string("b")]), .array([.string("DELETED"), .string("a")]), .array([.string("ADDED"), .string("c")])]))
            #expect(out["expired"] == .null)
            await cluster.compactHistory()
            let expired = try await run("python3", [script, kubeconfig, before.metadata.resourceVersion!, expiredRV])
            let out2 = try JSONValue.parse(Array(expired.stdout.utf8))
            #expect(out2["expired"] == .int(410), "\(expired.stderr)")
        }
    }
}
