import Foundation
import KubeClient
import Logging

/// Kubernetes Events about the operator's objects (`events.k8s.io/v1`,
/// falling back to core/v1 where that group is not served).
struct EventRecorder: Sendable {
    let client: KubeClient
    let instance: String
    let logger: Logger

    /// Where a recorded Event lives, to bump its count later.
    struct Recorded: Sendable {
        var core: Bool
        var namespace: String
        var name: String
    }

    @discardableResult
    func record(regarding ref: ObjectReference, reason: String, note: String, warning: Bool) async -> Recorded? {
        let now = Date()
        var meta = ObjectMeta(namespace: ref.namespace)
        meta.generateName = "\(ref.name ?? "kubetrace").\(reason.lowercased())."
        var event = Event(metadata: meta)
        event.eventTime = RFC3339.formatMicro(now)
        event.reportingController = "kubetrace.net/kubetrace-operator"
        event.reportingInstance = String(instance.prefix(128))
        event.action = reason.hasPrefix("Token") ? "Refresh" : reason == "PodRestartedAfterRepair" ? "Delete" : "Repair"
        event.reason = reason
        event.note = String(note.prefix(1024))
        event.type = warning ? "Warning" : "Normal"
        event.regarding = ref
        let ns = ref.namespace ?? "default"
        do {
            let created = try await client.create(event)
            return created.metadata.name.map { Recorded(core: false, namespace: ns, name: $0) }
        } catch let e as KubeClientError where e.isNotFound {
            var core = CoreEvent(metadata: meta, involvedObject: ref)
            core.reason = reason
            core.message = event.note
            core.type = event.type
            core.source = .init(component: "kubetrace-operator", host: instance)
            core.firstTimestamp = RFC3339.format(now)
            core.lastTimestamp = core.firstTimestamp
            core.count = 1
            let created = try? await client.create(core)
            return created?.metadata.name.map { Recorded(core: true, namespace: ns, name: $0) }
        } catch {
            logger.debug("cannot record an Event", metadata: ["reason": "\(reason)", "error": "\(error)"])
            return nil
        }
    }

    /// Raises a recorded Event's count: `series` for events.k8s.io, `count` for core.
    func bump(_ recorded: Recorded, count: Int, at time: Date) async {
        do {
            if recorded.core {
                _ = try await client.patch(CoreEvent.self, namespace: recorded.namespace, name: recorded.name,
                                           .merge(.object(["count": .int(count), "lastTimestamp": .string(RFC3339.format(time))])))
            } else {
                _ = try await client.patch(Event.self, namespace: recorded.namespace, name: recorded.name,
                                           .merge(.object(["series": .object(["count": .int(count), "lastObservedTime": .string(RFC3339.formatMicro(time))])])))
            }
        } catch {
            logger.debug("cannot update an Event", metadata: ["event": "\(recorded.name)", "error": "\(error)"])
        }
    }
}
