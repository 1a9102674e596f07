import KubetraceTestKit
import Foundation
import KubeClient
import KubeTLS
import Logging
import Testing

@Suite struct RedactionTests {
    static let canary = "CANARY-s3cr3t-7f3a"

    /// Every textual form a value can take on its way to a log line.
    func renderings(_ value: Any) -> [String] {
        var dumped = ""
        dump(value, to: &dumped)
        return ["\(value)", String(describing: value), String(reflecting: value), dumped]
    }

    @Test func secretValuesNeverRender() throws {
        let secret = Secret(metadata: ObjectMeta(name: "s", namespace: "ns"), type: "Opaque", data: ["k": SecretBytes(Self.canary)])
        for text in renderings(secret) {
            #expect(!text.contains(Self.canary), "leaked in: \(text)")
        }
        #expect("\(secret.data!["k"]!)" == "<redacted \(Self.canary.utf8.count) bytes>")
        // The wire form still carries the value, base64-encoded.
        let json = String(decoding: try JSONEncoder().encode(secret), as: UTF8.self)
        #expect(json.contains(Data(Self.canary.utf8).base64EncodedString()))
    }

    @Test func tokensKeysAndConfigsNeverRender() throws {
        let token = SecretString(Self.canary)
        let key = PrivateKeyPEM("-----BEGIN PRIVATE KEY-----\n\(Self.canary)\n-----END PRIVATE KEY-----")
        let yaml = """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
        users: [{name: u, user: {token: \(Self.canary), password: \(Self.canary), username: bob}}]
        contexts: [{name: c, context: {cluster: c, user: u}}]
        """
        let config = try KubeConfig.parse(yaml: yaml, file: "/f", directory: "/")
        let conn = try ClusterConnection.from(kubeconfig: config)
        for value in [token, key, config, conn, TLSSettings(clientKey: key)] as [Any] {
            for text in renderings(value) { #expect(!text.contains(Self.canary), "leaked in: \(text)") }
        }
    }

    @Test func loggerMetadataShowsOnlyTheRedactedForm() {
        let sink = LogSink()
        let logger = sink.logger()
        logger.info("refreshed", metadata: ["token": "\(SecretString(Self.canary))", "data": "\(SecretBytes(Self.canary))"])
        let lines = sink.all
        #expect(lines.count == 1)
        #expect(!lines.joined().contains(Self.canary))
        #expect(lines[0].contains("<redacted>"))
    }
}
