public import KubeClient
import Foundation

public struct AwaitTimeout: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Waits until `predicate` holds for the named object (nil: absent), reading it once
/// and then following a watch from that read — an awaited condition, not a poll.
/// Throws `AwaitTimeout` naming `what` after `timeout`.
@discardableResult
public func awaitObject<T: KubeResource>(_ client: KubeClient, _ type: T.Type, namespace: String?, name: String,
                                         timeout: Duration = .seconds(10), _ what: String,
                                         _ predicate: @escaping @Sendable (T?) -> Bool) async throws -> T? {
    try await withThrowingTaskGroup(of: Box<T>.self) { group in
        group.addTask {
            let field = "metadata.name=\(name)"
            while true {
                let list = try await client.list(T.self, namespace: namespace, options: ListOptions(fieldSelector: field))
                let current = list.items.first
                if predicate(current) { return Box(value: current) }
                let (_, body) = try await client.stream(path: T.resource.path(namespace: namespace),
                                                        query: [("watch", "1"), ("fieldSelector", field), ("resourceVersion", list.metadata.resourceVersion ?? "")])
                var buffer: [UInt8] = []
                for try await chunk in body {
                    buffer += chunk
                    while let nl = buffer.firstIndex(of: 10) {
                        let line = Array(buffer[..<nl])
                        buffer.removeFirst(nl + 1)
                        guard let event = try? JSONValue.parse(line), let kind = event["type"]?.stringValue, kind != "BOOKMARK",
                              let object = event["object"] else { continue }
                        let value = kind == "DELETED" ? nil : try? JSONDecoder().decode(T.self, from: Data(object.jsonBytes()))
                        if predicate(value) { return Box(value: value) }
                    }
                }
                // The server closed the watch: read again and follow anew.
            }
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw AwaitTimeout(description: "timed out after \(timeout) waiting for \(what)")
        }
        let first = try await group.next()!
        group.cancelAll()
        return first.value
    }
}

public struct Box<T: Sendable>: Sendable {
    public var value: T?
}
