import Foundation
import KubeClient
import KubeSim
import KubetraceTestKit

func tokenClient(_ cluster: DevCluster, token: String) async throws -> KubeClient {
    try await adminClient(cluster, token: token)
}

/// The lines of a watch response, decoded, as they arrive.
struct WatchLines {
    var iterator: HTTPBody.AsyncIterator
    var buffer: [UInt8] = []
    let body: HTTPBody

    init(_ body: HTTPBody) {
        self.body = body
        iterator = body.makeAsyncIterator()
    }

    /// The next event (`type`, object), or nil when the stream ended.
    mutating func next() async throws -> (type: String, object: JSONValue)? {
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                let v = try JSONValue.parse(line)
                return (v["type"]?.stringValue ?? "", v["object"] ?? .null)
            }
            guard let chunk = try await iterator.next() else { return nil }
            buffer += chunk
        }
    }
}

func openWatch(_ client: KubeClient, _ path: String, _ query: [(String, String)]) async throws -> WatchLines {
    let (_, body) = try await client.stream(path: path, query: [("watch", "1")] + query)
    return WatchLines(body)
}

extension JSONValue {
    var name: String { self["metadata"]?["name"]?.stringValue ?? "" }
    var resourceVersion: String { self["metadata"]?["resourceVersion"]?.stringValue ?? "" }
}

func configMap(_ name: String, labels: [String: String] = [:]) -> ConfigMap {
    ConfigMap(metadata: ObjectMeta(name: name, namespace: "default", labels: labels), data: ["k": name])
}
