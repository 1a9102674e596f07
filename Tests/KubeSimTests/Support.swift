import Foundation
import KubeClient
import KubeSim

func adminClient(_ cluster: DevCluster) async throws -> KubeClient {
    let yaml = cluster.kubeconfigYAML(server: await cluster.url())
    return KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "devcluster", directory: "/")))
}

func tokenClient(_ cluster: DevCluster, token: String) async throws -> KubeClient {
    let yaml = cluster.kubeconfigYAML(server: await cluster.url(), token: token)
    return KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "devcluster", directory: "/")))
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

/// A subprocess (kubectl, python3) with captured output.
struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

func run(_ executable: String, _ args: [String], environment: [String: String] = [:], stdin: String? = nil) async throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [executable] + args
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { _, n in n }
    p.environment = env
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    return try await withCheckedThrowingContinuation { cont in
        DispatchQueue.global().async {
            do { try p.run() } catch { cont.resume(throwing: error); return }
            if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
            try? inp.fileHandleForWriting.close()
            let e = Box()
            let g = DispatchGroup()
            g.enter()
            DispatchQueue.global().async { e.data = err.fileHandleForReading.readDataToEndOfFile(); g.leave() }
            let o = out.fileHandleForReading.readDataToEndOfFile()
            g.wait()
            p.waitUntilExit()
            cont.resume(returning: ProcessResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e.data, as: UTF8.self)))
        }
    }
}

final class Box: @unchecked Sendable { var data = Data() }

final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "kt-sim-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let p = "\(path)/\(name)"
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        return p
    }
}

func configMap(_ name: String, labels: [String: String] = [:]) -> ConfigMap {
    ConfigMap(metadata: ObjectMeta(name: name, namespace: "default", labels: labels), data: ["k": name])
}
