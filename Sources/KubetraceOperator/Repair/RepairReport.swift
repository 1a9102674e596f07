import KubeClient
import KubeRuntime

/// What a reconcile did, for Events, metrics and logs.
struct RepairReport: Sendable {
    var regarding: ObjectReference
    var reason: String
    var note: String

    /// The Event it is recorded as (a restart after a repair is a deletion; the rest are repairs).
    func event(warning: Bool) -> EventRecorder.Note {
        EventRecorder.Note(regarding: regarding, reason: reason, action: reason == "PodRestartedAfterRepair" ? "Delete" : "Repair",
                           note: note, warning: warning)
    }
}

extension EventRecorder.Reporter {
    /// How the operator signs its Events.
    static func kubetraceOperator(instance: String) -> EventRecorder.Reporter {
        EventRecorder.Reporter(controller: "kubetrace.net/kubetrace-operator", component: "kubetrace-operator", instance: instance)
    }
}
