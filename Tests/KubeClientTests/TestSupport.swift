import Foundation
import KubeClient
import KubetraceTestKit

func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

/// Expects `body` to throw a `KubeClientError` and returns it.
func expectClientError(_ body: () async throws -> Void) async -> KubeClientError? {
    do {
        try await body()
        return nil
    } catch let e as KubeClientError {
        return e
    } catch {
        return nil
    }
}
