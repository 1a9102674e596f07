import Foundation
import KubeClient
import Logging

/// What a reconcile did, for Events, metrics and logs.
struct RepairReport: Sendable {
    var regarding: ObjectReference
    var reason: String
    var note: String
}

/// Kubernetes Events about repairs, aggregated: a repeat of the same reason on the
/// same object within ten minutes bumps the first Event's series count (one PATCH)
/// instead of creating another, so retries never flood the namespace.
actor RepairEvents {
    private let recorder: EventRecorder
    private var recent: [String: (event: EventRecorder.Recorded, count: Int, at: Date)] = [:]
    private let window: TimeInterval = 600

    init(recorder: EventRecorder) { self.recorder = recorder }

    func record(_ report: RepairReport, warning: Bool) async {
        let ref = report.regarding
        let key = "\(ref.kind ?? "")/\(ref.namespace ?? "")/\(ref.name ?? "")/\(report.reason)"
        let now = Date()
        recent = recent.filter { now.timeIntervalSince($0.value.at) < window }
        if let seen = recent[key] {
            let count = seen.count + 1
            recent[key] = (seen.event, count, seen.at)
            await recorder.bump(seen.event, count: count, at: now)
            return
        }
        if let recorded = await recorder.record(regarding: ref, reason: report.reason, note: report.note, warning: warning) {
            recent[key] = (recorded, 1, now)
        }
    }
}
