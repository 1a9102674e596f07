import Foundation
import KubeClient
import Logging

/// What every in-process controller shares: the store it reads and writes (through the same
/// write paths as HTTP requests), the clock, and who it writes as.
struct ControllerContext: Sendable {
    let store: ObjectStore
    let now: @Sendable () -> Date
    let logger: Logger

    /// kube-controller-manager's identity and field manager.
    static let controllerManager = Identity(user: "system:kube-controller-manager", manager: "kube-controller-manager")
    static let scheduler = Identity(user: "system:kube-scheduler", manager: "kube-scheduler")
    static func kubelet(_ node: String) -> Identity { Identity(user: "system:node:\(node)", groups: ["system:nodes"], manager: "kubelet") }

    struct Identity: Sendable {
        var user: String
        var groups: [String] = []
        var manager: String

        func options(subresource: String? = nil) -> WriteOptions {
            var o = WriteOptions(user: UserInfo(name: user, groups: groups + ["system:authenticated"]))
            o.manager = manager
            o.subresource = subresource
            return o
        }
    }

    var timestamp: String { RFC3339.format(now()) }

    /// The objects of one kind in one namespace (nil: all).
    func list(_ kind: ResourceKind, namespace: String?) async -> [JSONValue] {
        await store.stored(kind).filter { namespace == nil || $0.key.namespace == namespace }.sorted { $0.key < $1.key }.map(\.value)
    }
}

extension APIError {
    var isNotFound: Bool { httpCode == 404 }
    var isConflict: Bool { httpCode == 409 }
}

extension ControllerContext {
    /// A core/v1 Event as client-go's `record.EventRecorder` writes one (`events_cache.go`
    /// `makeEvent`: named `<object>.<unix nanoseconds in hex>`, count 1). Best effort, as there.
    func recordEvent(on object: JSONValue, kind: ResourceKind, reason: String, message: String, component: String, type: String = "Normal") async {
        let time = now()
        let stamp = RFC3339.format(time)
        let nanos = UInt64(max(0, time.timeIntervalSince1970 * 1e9))
        let event: JSONValue = .object([
            "apiVersion": .string("v1"), "kind": .string("Event"),
            "metadata": .object(["name": .string("\(object.metaName).\(String(nanos, radix: 16))"), "namespace": .string(object.metaNamespace)]),
            "involvedObject": .object(["kind": .string(kind.kind), "namespace": .string(object.metaNamespace), "name": .string(object.metaName),
                                       "uid": .string(object.metaUID), "apiVersion": .string(kind.apiVersion),
                                       "resourceVersion": object["metadata"]?["resourceVersion"] ?? .string("")]),
            "reason": .string(reason), "message": .string(message), "source": .object(["component": .string(component)]),
            "firstTimestamp": .string(stamp), "lastTimestamp": .string(stamp), "count": .int(1), "type": .string(type),
            "reportingComponent": .string(component), "reportingInstance": .string(""),
        ])
        _ = try? await store.create(.coreEvent, namespace: object.metaNamespace, body: event, options: ControllerContext.controllerManager.options())
    }
}
