import Foundation
import KubeClient
import KubetraceTestKit
@testable import KubetraceOperator
import Testing

/// An error answer from the Kubetrace or Vultr API reaches logs and Events only as its JSON
/// error's own fields, one line, bounded, without anything that looks like a credential (issue 19).
@Suite(.timeLimit(.minutes(1))) struct ErrorBodyTests {
    static let canary = "eyJhbGciOiJFUzI1NiJ9.CANARYerrorbodysecret0123456789.c2lnbmF0dXJl"

    /// A hostile error: a forged log line after a newline, a credential, and 20 KB of text.
    static let hostile = JSONValue.object([
        "error": .string("invalid_token\r\nlevel=error msg=\"forged\" token=\(canary)"),
        "message": .string("Bearer \(canary) " + String(repeating: "padding ", count: 2500)),
    ])

    static func answering(_ status: String, _ body: [UInt8]) throws -> LoopbackHTTPServer {
        let text = String(decoding: body, as: UTF8.self)
        return try LoopbackHTTPServer { write in
            _ = write("HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n\(text)")
        }
    }

    static func expectSafe(_ message: String, _ sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!message.contains(canary), "a credential from the body is never shown", sourceLocation: sourceLocation)
        #expect(!message.unicodeScalars.contains { $0.properties.generalCategory == .control }, "one line: \(message.debugDescription)", sourceLocation: sourceLocation)
        #expect(message.utf8.count < 512, "bounded: \(message.utf8.count) bytes", sourceLocation: sourceLocation)
    }

    @Test(arguments: ["401 Unauthorized", "503 Service Unavailable", "418 I'm a teapot"])
    func kubetraceAPIErrorBodies(status: String) async throws {
        let server = try Self.answering(status, Self.hostile.jsonBytes())
        defer { server.close() }
        let client = KubetraceAPIClient(endpoint: ExternalEndpoint(baseURL: "http://127.0.0.1:\(server.port)", tls: TLSSettings()),
                                        clusterID: "c1", kubeconfigSecret: (namespace: "kubetrace-system", name: "kubetrace-kubeconfig"))
        do {
            _ = try await client.refresh(operatorToken: SecretString("operator-token"), currentExpiry: nil)
            Issue.record("an error answer was accepted")
        } catch {
            Self.expectSafe(error.message)
            // The JSON error's own code still helps: it is kept.
            #expect(error.message.contains("invalid_token"), "\(error.message)")
        }
    }

    @Test func vultrErrorBodies() async throws {
        for status in ["401 Unauthorized", "404 Not Found", "500 Internal Server Error"] {
            let server = try Self.answering(status, Self.hostile.jsonBytes())
            defer { server.close() }
            do {
                _ = try await VultrRegistry.dockerCredentials(ExternalEndpoint(baseURL: "http://127.0.0.1:\(server.port)", tls: TLSSettings()),
                                                              apiKey: SecretString("vultr-key"), registryID: "r1", host: "blr.vultrcr.com", expirySeconds: 3600)
                Issue.record("\(status) was accepted")
            } catch {
                Self.expectSafe(error.message)
                #expect(error.message.contains("invalid_token"), "\(error.message)")
                #expect(error.isConfiguration, "manifest names the flags: exit 2")
            }
        }
    }

    /// The kind decides, not the text: only 401 and 403 are a rejected key, whatever a 500's
    /// body says (the loop once searched the message for "rejected").
    @Test(arguments: [("401 Unauthorized", RefreshFailure.Kind.rejected), ("403 Forbidden", .rejected),
                      ("500 Internal Server Error", .retryable), ("404 Not Found", .retryable)])
    func vultrFailureKinds(status: String, kind: RefreshFailure.Kind) async throws {
        let server = try Self.answering(status, JSONValue.object(["error": .string("request rejected")]).jsonBytes())
        defer { server.close() }
        do {
            _ = try await VultrRegistry.dockerCredentials(ExternalEndpoint(baseURL: "http://127.0.0.1:\(server.port)", tls: TLSSettings()),
                                                          apiKey: SecretString("vultr-key"), registryID: "r1", host: "blr.vultrcr.com", expirySeconds: 3600)
            Issue.record("\(status) was accepted")
        } catch {
            #expect(error.kind == kind, "\(status): \(error.message)")
            #expect(error.message.contains("request rejected"), "the detail is still shown: \(error.message)")
            #expect(error.needsAttention == (kind == .rejected))
        }
    }

    /// Docker credentials are a few hundred bytes: an answer of megabytes is refused at 1 MiB,
    /// not buffered up to the transport's 64 MiB default.
    @Test func vultrAnswerIsBoundedAt1MiB() async throws {
        let huge = Array(#"{"auths":{},"padding":""#.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 2 << 20) + Array(#""}"#.utf8)
        let server = try Self.answering("200 OK", huge)
        defer { server.close() }
        do {
            _ = try await VultrRegistry.dockerCredentials(ExternalEndpoint(baseURL: "http://127.0.0.1:\(server.port)", tls: TLSSettings()),
                                                          apiKey: SecretString("vultr-key"), registryID: "r1", host: "blr.vultrcr.com", expirySeconds: 3600)
            Issue.record("an oversized answer was accepted")
        } catch {
            #expect(error.kind == .retryable)
            #expect(error.message.contains("exceeds \(1 << 20) bytes"), "\(error.message)")
        }
    }

    @Test func sanitizing() {
        #expect(APIErrorDetail.from(Array(#"{"error":"invalid_token","message":"operator token is not valid"}"#.utf8)) == "invalid_token: operator token is not valid")
        #expect(APIErrorDetail.from(Array("<html>secret page\r\n</html>".utf8)) == nil, "a body that is not a JSON error is never echoed")
        #expect(APIErrorDetail.from(Array(#"{"error":"\u0007\n\t"}"#.utf8)) == nil)
        #expect(APIErrorDetail.sanitized("a\u{1B}[31mred\u{2028}b") == "a [31mred b")
        #expect(APIErrorDetail.sanitized("key AbCdEfGhIjKlMnOpQrStUvWxYz012345 leaked") == "key <redacted> leaked")
        let long = APIErrorDetail.from(Array(("{\"error\":\"" + String(repeating: "é ", count: 1000) + "\"}").utf8))
        #expect((long?.utf8.count ?? 0) <= APIErrorDetail.maxBytes && long?.hasSuffix("...") == true)
    }
}
