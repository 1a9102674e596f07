import Foundation
import KubeClient
import Logging

/// Kubernetes Events about the operator's objects (`events.k8s.io/v1`,
/// falling back to core/v1 where that group is not served).
struct EventRecorder: Sendable {
    let client: KubeClient
    let instance: String
    let logger: Logger

    func record(regarding ref: ObjectReference, reason: String, note: String, warning: Bool) async {
        let now = Date()
        var meta = ObjectMeta(namespace: ref.namespace)
        meta.generateName = "\(ref.name ?? "kubetrace").\(reason.lowercased())."
        var event = Event(metadata: meta)
        event.eventTime = RFC3339.format(now, fractional: true)
        event.reportingController = "kubetrace.net/kubetrace-operator"
        event.reportingInstance = String(instance.prefix(128))
        event.action = reason.hasPrefix("Token") ? "Refresh" : "Repair"
        event.reason = reason
        event.note = String(note.prefix(1024))
        event.type = warning ? "Warning" : "Normal"
        event.regarding = ref
        do {
            _ = try await client.create(event)
        } catch let e as KubeClientError where e.isNotFound {
            var core = CoreEvent(metadata: meta, involvedObject: ref)
            core.reason = reason
            core.message = event.note
            core.type = event.type
            core.source = .init(component: "kubetrace-operator", host: instance)
            core.firstTimestamp = RFC3339.format(now)
            core.lastTimestamp = core.firstTimestamp
            core.count = 1
            _ = try? await client.create(core)
        } catch {
            logger.debug("cannot record an Event", metadata: ["reason": "\(reason)", "error": "\(error)"])
        }
    }
}
