import Foundation
import KubeClient

/// A private temporary directory, removed when the value is released.
final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "kt-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String, mode: Int = 0o600) -> String {
        let p = "\(path)/\(name)"
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
        return p
    }
}

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
