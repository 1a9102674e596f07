import AsyncAlgorithms
import Foundation
import KubeClient
@testable import KubeRuntime
import KubeSim
import KubeTLS
import KubetraceTestKit
import Testing

/// The bad-input catalogue, wire half: what the API server (or something between it and us)
/// can send. Each bad line is skipped with its reason and line number, and the good lines
/// around it still arrive: nothing lost, no crash.
@Suite struct WireCatalogueTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var line: [UInt8]
        /// The decode error reported for it.
        var reason: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "not JSON", line: Array("this is not json".utf8), reason: "The JSON element does not have the requested type."),
        Case(name: "truncated JSON", line: Array(#"{"type":"ADDED","object":{"kind":"Secret","metadata":{"name":"x""#.utf8), reason: "JSON document ended early in the middle of an object or array."),
        Case(name: "a JSON array", line: Array(#"[{"type":"ADDED"}]"#.utf8), reason: "The JSON element does not have the requested type."),
        Case(name: "unknown event type", line: Array(#"{"type":"EXPLODED","object":{}}"#.utf8), reason: #"unknown watch event type "EXPLODED""#),
        Case(name: "event without metadata", line: Array(#"{"type":"ADDED","object":{"kind":"Secret"}}"#.utf8), reason: "ADDED event without metadata.name or metadata.resourceVersion"),
        Case(name: "bookmark without resourceVersion", line: Array(#"{"type":"BOOKMARK","object":{"kind":"Secret","metadata":{}}}"#.utf8), reason: "BOOKMARK without metadata.resourceVersion"),
        Case(name: "name of the wrong type", line: Array(#"{"type":"ADDED","object":{"kind":"Secret","metadata":{"name":7,"resourceVersion":"9"}}}"#.utf8), reason: "ADDED event without metadata.name or metadata.resourceVersion"),
        Case(name: "invalid UTF-8", line: Array(#"{"type":"ADDED","object":{"metadata":{"name":""#.utf8) + [0xFF, 0xFE] + Array(#"","resourceVersion":"9"}}}"#.utf8), reason: "The input is not valid UTF-8"),
        Case(name: "a NUL byte", line: Array(#"{"type":"ADDED",""#.utf8) + [0] + Array(#""object":{}}"#.utf8), reason: "A string is opened, but never closed."),
        Case(name: "nesting 2,000 deep", line: Array((String(repeating: "[", count: 2000) + String(repeating: "]", count: 2000)).utf8), reason: "The JSON element does not have the requested type."),
    ]

    @Test(arguments: cases)
    func badLineIsSkippedWithItsReasonAndNothingAroundItIsLost(c: Case) throws {
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<TestSecret>] = []
        let before = Array(secretLine("ADDED", "before", rv: 2).utf8)
        let after = Array(secretLine("ADDED", "after", rv: 3).utf8)
        _ = try p.consume(before + c.line + [0x0A] + after, into: &out)
        #expect(out.compactMap { $0.projection?.meta.name } == ["before", "after"])
        let errors = p.takeDecodeErrors()
        #expect(errors.count == 1 && errors.first?.line == 2, "\(errors)")
        #expect(errors.first?.reason.contains(c.reason) == true, "\(errors.first?.reason ?? "none") does not say \(c.reason)")
        #expect(p.resourceVersion == "3")
    }

    /// A Secret value that is not base64 arrives as an empty (so: corrupt) value; its other keys
    /// and the rest of the stream are intact.
    @Test func nonBase64SecretDataIsCorruptNotACrash() throws {
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<TestSecret>] = []
        let line = #"{"type":"ADDED","object":{"kind":"Secret","metadata":{"name":"s","namespace":"ns","resourceVersion":"4"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"%%%not base64","kubeconfig":"YQ=="}}}"# + "\n"
        _ = try p.consume(Array((line + secretLine("ADDED", "next", rv: 5)).utf8), into: &out)
        guard case .added(let s)? = out.first else { Issue.record("no event"); return }
        #expect(s.values[".dockerconfigjson"]?.bytes == [])
        #expect(s.values["kubeconfig"]?.string == "a")
        #expect(out.count == 2)
    }

    /// A line past 16 MiB ends the stream with an error naming the limit (the reflector then
    /// resumes from the last resourceVersion); the buffer never grows past it.
    @Test func linesOver16MiBAreRefused() throws {
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<TestSecret>] = []
        _ = try p.consume(Array(secretLine("ADDED", "ok", rv: 2).utf8), into: &out)
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        var refused: (any Error)?
        for _ in 0..<17 where refused == nil {
            do { _ = try p.consume(chunk, into: &out) } catch { refused = error }
        }
        #expect("\(refused.map { "\($0)" } ?? "none")" == "a watch line exceeds 16777216 bytes")
        #expect(out.count == 1)
    }
}

@Suite(.timeLimit(.minutes(1))) struct WireFailureCatalogueTests {
    /// kube-apiserver answers a LIST with 500 when one stored object cannot be decoded (a bad
    /// encryption key, a corrupt etcd value). The error names the object; that watch backs off
    /// and retries, the others carry on, and it syncs once the object is fixed.
    @Test func aListFailingOnOneObjectNamesItAndSparesTheOtherWatches() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: "x")))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "fine", namespace: "x"), type: "Opaque", data: ["a": SecretBytes("b")]))
            _ = try await client.create(ServiceAccount(metadata: ObjectMeta(name: "sa", namespace: "x")))
            let message = #"Internal error occurred: unable to transform key "/registry/secrets/x/broken": invalid padding on input"#
            cluster.faults.failNext(.init(count: 3, status: 500, method: "GET", pathPrefix: "/api/v1/namespaces/x/secrets", message: message))
            let logs = LogSink()
            var options = ReflectorOptions(namespace: "x")
            options.initialBackoff = .milliseconds(50)
            let secrets = Reflector<TestSecret>(client: client, options: options, logger: logs.logger())
            let accounts = Reflector<ServiceAccountProjection>(client: client, options: ReflectorOptions(namespace: "x"), logger: logs.logger())
            let secretEvents = AsyncChannel<[WatchEvent<TestSecret>]>()
            let accountEvents = AsyncChannel<[WatchEvent<ServiceAccountProjection>]>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await secrets.run(into: secretEvents) }
                group.addTask { try await accounts.run(into: accountEvents) }
                // The other watch syncs while the Secrets LIST fails.
                var ai = accountEvents.makeAsyncIterator()
                let firstAccounts = try await ai.next() ?? []
                #expect(firstAccounts.contains { $0.projection?.meta.name == "sa" })
                try await logs.waitFor("/registry/secrets/x/broken", count: 1, timeout: .seconds(10))
                let line = logs.all.first { $0.contains("/registry/secrets/x/broken") } ?? ""
                #expect(line.contains("watch failed; retrying") && line.contains("500"), "\(line)")
                // After the failures, the Secrets watch syncs with nothing lost.
                var si = secretEvents.makeAsyncIterator()
                var names: [String] = []
                while !names.contains("fine") { names += (try await si.next() ?? []).compactMap { $0.projection?.meta.name } }
                #expect(logs.all.filter { $0.contains("/registry/secrets/x/broken") }.count == 3)
                group.cancelAll()
            }
        }
    }

    /// A Status body that is not JSON (a proxy's HTML, the max-in-flight filter's plain text)
    /// still gives an error with the HTTP status and the start of the text.
    @Test func statusBodiesThatAreNotJSON() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            cluster.faults.failNext(.init(count: 1, status: 429, retryAfterSeconds: 3, plainText: true, method: "GET", pathPrefix: "/api/v1/namespaces"))
            do {
                _ = try await client.list(Namespace.self)
                Issue.record("the 429 was not reported")
            } catch let error as KubeClientError {
                #expect(error.httpStatus == 429)
                #expect(error.retryAfter == .seconds(3))
                #expect("\(error)".contains("429") && "\(error)".contains("Too many requests"), "\(error)")
            }
        }
    }

    /// TLS failures name what is wrong, as libcurl words it, with the URL.
    static func versionError(_ cluster: DevCluster, _ edit: (String) -> String) async throws -> String {
        let yaml = edit(cluster.kubeconfigYAML(server: await cluster.url()))
        let client = KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "k", directory: "/")))
        do { _ = try await client.serverVersion(); return "no error" } catch { return "\(error)" }
    }

    @Test func tlsFailuresAreNamed() async throws {
        try await DevCluster.withRunning { cluster in
            // Unknown CA: the kubeconfig trusts another one.
            let other = try CertificateAuthorityPEM.other()
            let ours = try Self.caData(of: cluster.kubeconfigYAML(server: await cluster.url()))
            let unknownCA = try await Self.versionError(cluster) { $0.replacingOccurrences(of: ours, with: other) }
            #expect(unknownCA.contains("SSL certificate problem") && unknownCA.contains("curl error 60"), "\(unknownCA)")
            // Wrong host name: verified as another name than the certificate's.
            let wrongHost = try await Self.versionError(cluster) { $0.replacingOccurrences(of: "    server:", with: "    tls-server-name: wrong.example\n    server:") }
            #expect(wrongHost.contains("wrong.example") && wrongHost.contains("curl error 60"), "\(wrongHost)")
        }
        var expired = DevCluster.Options()
        expired.expiredServingCertificate = true
        try await DevCluster.withRunning(expired) { cluster in
            let e = try await Self.versionError(cluster) { $0 }
            #expect(e.contains("certificate has expired") && e.contains("curl error 60"), "\(e)")
        }
    }

    static func caData(of yaml: String) throws -> String {
        guard let line = yaml.split(separator: "\n").first(where: { $0.contains("certificate-authority-data:") }) else { throw AwaitTimeout(description: "no CA in kubeconfig") }
        return String(line.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
    }
}

enum CertificateAuthorityPEM {
    /// Base64 PEM of a CA nobody issued the devcluster's certificate with.
    static func other() throws -> String {
        Data(try CertificateAuthority.generate(commonName: "someone-else").certificate.certificatePEM.utf8).base64EncodedString()
    }
}
