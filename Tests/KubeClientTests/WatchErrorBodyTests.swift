import KubetraceTestKit
import Foundation
import KubeClient
import Testing

/// A non-2xx answer to a watch is read for its Status, never to its end (issue 19).
@Suite(.timeLimit(.minutes(1))) struct WatchErrorBodyTests {
    @Test func anEndlessErrorBodyIsCutAt64KiB() async throws {
        // 500, then a body that never ends (until the client hangs up).
        let server = try LoopbackHTTPServer { write in
            guard write("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n") else { return }
            let filler = LoopbackHTTPServer.chunk(String(repeating: "x", count: 16 << 10))
            guard write(LoopbackHTTPServer.chunk(#"{"kind":"Status","message":""#)) else { return }
            while write(filler) {}
        }
        defer { server.close() }
        let client = try server.client()
        // Draining the body to its end never finishes; reading 64 KiB takes milliseconds.
        let error = try await within(.seconds(20), "the watch's error") { () -> KubeClientError? in
            await expectClientError { _ = try await client.stream(path: "/api/v1/pods", query: [("watch", "1")]) }
        }
        #expect(error?.httpStatus == 500)
        #expect(error?.code != .cancelled)
    }
}
