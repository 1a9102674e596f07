import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// The devcluster serves HTTP/2 over TLS as kube-apiserver does (ALPN `h2`, `http/1.1` kept as
/// the fallback), and plain HTTP as HTTP/1.1 only; real clients negotiate it.
@Suite(.timeLimit(.minutes(2))) struct HTTP2ServingTests {
    /// curl's `%{http_version}` for `url` with `flag` ("2", "1.1").
    func curlVersion(_ flag: String, _ url: String) async throws -> String {
        let r = try await run("curl", [flag, "-sk", "-o", "/dev/null", "-w", "%{http_version}", url])
        #expect(r.status == 0, "curl \(flag): \(r.stderr)")
        return r.stdout
    }

    @Test func curlNegotiatesHTTP2AndHTTP1StillServes() async throws {
        try await DevCluster.withRunning { cluster in
            let url = await cluster.url() + "/healthz"
            let before = cluster.acceptedConnections
            let h2 = try await curlVersion("--http2", url)
            let h1 = try await curlVersion("--http1.1", url)
            #expect(h2 == "2")
            #expect(h1 == "1.1")
            let after = cluster.acceptedConnections
            #expect(after.total - before.total == 2)
            #expect(after.http2 - before.http2 == 1, "only the --http2 connection negotiated h2")
        }
    }

    @Test func plainHTTPAndDisabledHTTP2StayOnHTTP1() async throws {
        var plain = DevCluster.Options()
        plain.tls = false
        try await DevCluster.withRunning(plain) { cluster in
            // Over plain HTTP curl --http2 asks for an h2c upgrade, which the server does not take.
            let version = try await curlVersion("--http2", await cluster.url() + "/healthz")
            #expect(version == "1.1")
            #expect(cluster.acceptedConnections.http2 == 0)
        }
        var http1Only = DevCluster.Options()
        http1Only.http2 = false
        try await DevCluster.withRunning(http1Only) { cluster in
            let version = try await curlVersion("--http2", await cluster.url() + "/healthz")
            #expect(version == "1.1")
            #expect(cluster.acceptedConnections.http2 == 0)
        }
    }

    @Test func kubectlSpeaksHTTP2() async throws {
        try await DevCluster.withRunning { cluster in
            let dir = TempDir()
            // x/net/http2 logs its client connections with GODEBUG=http2debug=1.
            let env = ["KUBECONFIG": dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url())), "GODEBUG": "http2debug=1"]
            let before = cluster.acceptedConnections
            let r = try await run("kubectl", ["get", "secrets", "-A"], environment: env)
            #expect(r.status == 0, "\(r.stderr)")
            let after = cluster.acceptedConnections
            #expect(after.total > before.total)
            #expect(after.http2 - before.http2 == after.total - before.total, "every kubectl connection negotiated h2")
            #expect(r.stderr.contains("http2: Transport"), "kubectl's own log names its HTTP/2 transport")
        }
    }

    /// libcurl resets (RST_STREAM) a stream it read to the end of its Content-Length before it saw
    /// END_STREAM: always for bodies larger than its 64 KiB buffer. x/net/http2 ignores such
    /// resets; NIOHTTP2 would end the connection after 200 in 30 s. Hundreds of requests, small
    /// and large, must share one connection.
    @Test func manyRequestsShareOneConnection() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let big = SecretBytes([UInt8](repeating: 0x62, count: 96 << 10))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "big", namespace: "default"), data: ["blob": big]))
            for i in 0..<250 {
                _ = try await client.create(Secret(metadata: ObjectMeta(name: "small-\(i)", namespace: "default")))
                _ = try await client.get(Secret.self, namespace: "default", name: "big")
            }
            #expect(cluster.acceptedConnections == (1, 1), "every request on the first connection")
        }
    }

    @Test func controlEndpointResetsOneWatchAndSendsGoAway() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let none = await expectError {
                _ = try await client.request("POST", path: "/kubetrace-devcluster/faults/reset-stream", query: [("path", "/api/v1/namespaces/default/configmaps")])
            }
            #expect(none?.httpStatus == 404, "no watch open, nothing to reset")

            // reset-stream: RST_STREAM with INTERNAL_ERROR, as x/net/http2 for a panicked handler.
            var reset = try await openWatch(client, "/api/v1/namespaces/default/configmaps", [])
            var other = try await openWatch(client, "/api/v1/namespaces/default/secrets", [])
            await cluster.waitForWatches(2)
            _ = try await client.request("POST", path: "/kubetrace-devcluster/faults/reset-stream", query: [("path", "/api/v1/namespaces/default/configmaps")])
            do {
                _ = try await reset.next()
                Issue.record("the reset watch went on")
            } catch {
                #expect("\(error)".contains("INTERNAL_ERROR"), "\(error)")
            }
            // The other stream on the connection goes on.
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "still-here", namespace: "default")))
            let event = try await other.next()
            #expect(event?.object["metadata"]?["name"]?.stringValue == "still-here")

            // goaway: the open watch ends cleanly (END_STREAM), then its connection closes.
            _ = try await client.request("POST", path: "/kubetrace-devcluster/faults/goaway")
            let afterGoAway = try await other.next()
            #expect(afterGoAway == nil, "the watch ended without an error")
            try await within(.seconds(10), "the old connection closed") { await cluster.waitForOpenConnections { $0.total == 0 } }
        }
    }
}
