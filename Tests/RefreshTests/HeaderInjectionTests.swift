import KubetraceTestKit
import Foundation
import KubeClient
import KubetraceFormats
@testable import KubetraceOperator
import Testing

/// A credential holding a CR or LF never reaches a header (issue #19), wherever it came from:
/// the Kubetrace API's answer, the operator Secret, or any caller of the transport.
@Suite struct HeaderInjectionTests {
    @Test func theAPIAnswersTokensMustBeOneLine() throws {
        let now = Date()
        func decode(_ json: String) throws(KubetraceAPIAnswer.Problem) -> KubetraceAPIAnswer {
            try KubetraceAPIAnswer.decode(body: Array(json.utf8), dateHeader: nil, sentAt: now, now: now)
        }
        let expires = RFC3339.format(now.addingTimeInterval(3600))
        #expect(throws: KubetraceAPIAnswer.Problem.self) { _ = try decode(#"{"token":"abc\nX-Injected: 1","expiresAt":"\#(expires)"}"#) }
        do { _ = try decode(#"{"token":"abc\nX-Injected: 1","expiresAt":"\#(expires)"}"#) } catch {
            #expect(error.description == "the API answer's token contains a line feed at character 4; a credential must be a single line of printable characters; keeping the current credentials")
        }
        do { _ = try decode(#"{"token":"good","expiresAt":"\#(expires)","operatorToken":"op\r\nX: 1"}"#) } catch {
            #expect(error.description.hasPrefix("the API answer's operatorToken contains a carriage return at character 3"))
        }
        #expect(try decode(#"{"token":"good","expiresAt":"\#(expires)"}"#).token.value == "good")
    }

    @Test func theOperatorTokenIsCheckedBeforeItIsSent() async throws {
        // 127.0.0.1:1 refuses connections: a request that went out would fail as retryable, not as an unusable credential.
        let client = KubetraceAPIClient(endpoint: ExternalEndpoint(baseURL: "http://127.0.0.1:1", tls: TLSSettings()), clusterID: "c",
                                        kubeconfigSecret: ("kubetrace-system", "kubetrace-kubeconfig"))
        do {
            _ = try await client.refresh(operatorToken: SecretString("kt_op_1\nX-Injected: 1"), currentExpiry: nil)
            Issue.record("a multi-line operator token was sent")
        } catch {
            #expect(error.kind == .unusableCredential)
            #expect(error.needsAttention)
            #expect(error.message == "operator_token contains a line feed at character 8; a credential must be a single line of printable characters; not sent to API_URL")
        }
    }

    @Test func theTransportRefusesAHeaderWithALineBreak() async throws {
        let request = HTTPRequest(method: "GET", url: "http://127.0.0.1:1/x?secret=1", headers: [("Authorization", "Bearer a\r\nX-Injected: 1")])
        do {
            _ = try await CurlTransport.shared.send(request)
            Issue.record("sent")
        } catch let e as KubeClientError {
            #expect(e.code == .configuration, "refused before connecting")
            #expect(e.message == "GET http://127.0.0.1:1/x: the Authorization header holds a control character; not sent")
        }
    }
}
