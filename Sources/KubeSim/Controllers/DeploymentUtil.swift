import Foundation
import KubeClient

/// The Deployment controller's pure helpers, after kubernetes
/// `pkg/controller/deployment/util/deployment_util.go` (each function names its Go original).
/// ReplicaSets and Deployments are the stored JSON; `*int32` fields read as their defaulted values.
enum DeploymentUtil {
    static let revisionAnnotation = "deployment.kubernetes.io/revision"
    static let revisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
    static let desiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
    static let maxReplicasAnnotation = "deployment.kubernetes.io/max-replicas"

    // Condition reasons (deployment_util.go constants).
    static let newRSNewReplicasReason = "NewReplicaSetCreated"
    static let foundNewRSReason = "FoundNewReplicaSet"
    static let failedRSCreateReason = "ReplicaSetCreateError"
    static let replicaSetUpdatedReason = "ReplicaSetUpdated"
    static let newRSAvailableReason = "NewReplicaSetAvailable"
    static let timedOutReason = "ProgressDeadlineExceeded"
    static let pausedDeployReason = "DeploymentPaused"
    static let resumedDeployReason = "DeploymentResumed"
    static let minimumReplicasAvailable = "MinimumReplicasAvailable"
    static let minimumReplicasUnavailable = "MinimumReplicasUnavailable"

    /// `annotationsToSkip`: never copied from the Deployment to its ReplicaSets.
    static let annotationsToSkip: Set<String> = [
        "kubectl.kubernetes.io/last-applied-configuration", revisionAnnotation, revisionHistoryAnnotation,
        desiredReplicasAnnotation, maxReplicasAnnotation, "deprecated.deployment.rollback.to",
    ]

    static func replicas(_ o: JSONValue) -> Int { o.intAt("spec", "replicas") }

    // MARK: surge and unavailability

    static func isRollingUpdate(_ d: JSONValue) -> Bool { (d.stringAt("spec", "strategy", "type") ?? "RollingUpdate") == "RollingUpdate" }

    /// `ResolveFenceposts`: maxSurge rounded up, maxUnavailable rounded down; both zero → one unavailable.
    static func resolveFenceposts(maxSurge: JSONValue?, maxUnavailable: JSONValue?, desired: Int) -> (surge: Int, unavailable: Int) {
        let surge = IntOrPercent.scaled(maxSurge, total: desired, roundUp: true) ?? 0
        var unavailable = IntOrPercent.scaled(maxUnavailable, total: desired, roundUp: false) ?? 0
        if surge == 0 && unavailable == 0 { unavailable = 1 }
        return (surge, unavailable)
    }

    private static func fenceposts(_ d: JSONValue) -> (surge: Int, unavailable: Int) {
        let ru = d["spec"]?["strategy"]?["rollingUpdate"]
        return resolveFenceposts(maxSurge: ru?["maxSurge"], maxUnavailable: ru?["maxUnavailable"], desired: replicas(d))
    }

    /// `MaxUnavailable`: 0 for Recreate or no replicas; never more than the replicas.
    static func maxUnavailable(_ d: JSONValue) -> Int {
        guard isRollingUpdate(d), replicas(d) > 0 else { return 0 }
        return min(fenceposts(d).unavailable, replicas(d))
    }

    /// `MaxSurge`: 0 for Recreate.
    static func maxSurge(_ d: JSONValue) -> Int { isRollingUpdate(d) ? fenceposts(d).surge : 0 }

    /// `NewRSNewReplicas`: how far the new ReplicaSet may grow now. RollingUpdate: up to
    /// replicas + maxSurge Pods in all; Recreate: straight to the Deployment's replicas.
    static func newRSNewReplicas(_ d: JSONValue, all: [JSONValue], newRS: JSONValue) -> Int {
        guard isRollingUpdate(d) else { return replicas(d) }
        let current = replicaCount(all)
        let maxTotal = replicas(d) + maxSurge(d)
        if current >= maxTotal { return replicas(newRS) }
        let up = min(maxTotal - current, replicas(d) - replicas(newRS))
        return replicas(newRS) + up
    }

    // MARK: sums over ReplicaSets

    /// `GetReplicaCountForReplicaSets`: the sum of `spec.replicas`.
    static func replicaCount(_ rss: [JSONValue]) -> Int { rss.reduce(0) { $0 + replicas($1) } }
    /// `GetActualReplicaCountForReplicaSets`: the sum of `status.replicas`.
    static func actualReplicaCount(_ rss: [JSONValue]) -> Int { rss.reduce(0) { $0 + $1.intAt("status", "replicas") } }
    static func readyReplicaCount(_ rss: [JSONValue]) -> Int { rss.reduce(0) { $0 + $1.intAt("status", "readyReplicas") } }
    static func availableReplicaCount(_ rss: [JSONValue]) -> Int { rss.reduce(0) { $0 + $1.intAt("status", "availableReplicas") } }

    /// controller_utils.go `FilterActiveReplicaSets`: those with `spec.replicas` > 0.
    static func active(_ rss: [JSONValue]) -> [JSONValue] { rss.filter { replicas($0) > 0 } }

    /// `ReplicaSetsByCreationTimestamp`: oldest first, then by name.
    static func byCreation(_ rss: [JSONValue]) -> [JSONValue] {
        rss.sorted { a, b in
            let ta = a.metaCreated ?? .distantPast, tb = b.metaCreated ?? .distantPast
            return ta == tb ? a.metaName < b.metaName : ta < tb
        }
    }

    // MARK: which ReplicaSet is new

    /// controller_utils.go `EqualIgnoreHash`: templates equal once the pod-template-hash label is dropped.
    static func equalIgnoreHash(_ a: JSONValue?, _ b: JSONValue?) -> Bool {
        func strip(_ t: JSONValue?) -> JSONValue? {
            guard var t else { return nil }
            if var labels = t["metadata"]?["labels"]?.objectValue {
                labels[PodTemplateHash.label] = nil
                t["metadata"]?["labels"] = labels.isEmpty ? nil : .object(labels)
            }
            return t
        }
        return strip(a) == strip(b)
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template is the Deployment's.
    static func findNewReplicaSet(_ d: JSONValue, _ rss: [JSONValue]) -> JSONValue? {
        byCreation(rss).first { equalIgnoreHash($0["spec"]?["template"], d["spec"]?["template"]) }
    }

    /// `FindOldReplicaSets`: every other one.
    static func findOldReplicaSets(_ d: JSONValue, _ rss: [JSONValue]) -> [JSONValue] {
        let new = findNewReplicaSet(d, rss)?.metaUID
        return rss.filter { $0.metaUID != new }
    }

    /// `Revision`: the revision annotation, 0 when absent or unreadable.
    static func revision(_ o: JSONValue) -> Int { Int(o.metaAnnotations[revisionAnnotation] ?? "") ?? 0 }
    static func maxRevision(_ rss: [JSONValue]) -> Int { rss.map(revision).max() ?? 0 }

    /// `FindActiveOrLatest`: the only ReplicaSet with replicas, or the newest when none has any;
    /// nil when several have.
    static func findActiveOrLatest(newRS: JSONValue?, old: [JSONValue]) -> JSONValue? {
        if newRS == nil && old.isEmpty { return nil }
        let sortedOld = byCreation(old).reversed()
        let all = active(Array(sortedOld) + (newRS.map { [$0] } ?? []))
        switch all.count {
        case 0: return newRS ?? sortedOld.first
        case 1: return all[0]
        default: return nil
        }
    }

    /// `IsSaturated`: the new ReplicaSet has all the replicas, as desired, all available.
    static func isSaturated(_ d: JSONValue, _ rs: JSONValue?) -> Bool {
        guard let rs else { return false }
        guard let desired = Int(rs.metaAnnotations[desiredReplicasAnnotation] ?? "") else { return false }
        return replicas(rs) == replicas(d) && desired == replicas(d) && rs.intAt("status", "availableReplicas") == replicas(d)
    }

    // MARK: annotations

    /// `SetReplicasAnnotations`; true when either changed.
    static func setReplicasAnnotations(_ rs: inout JSONValue, desired: Int, max maxReplicas: Int) -> Bool {
        var a = rs.metaAnnotations
        let before = a
        a[desiredReplicasAnnotation] = String(desired)
        a[maxReplicasAnnotation] = String(maxReplicas)
        guard a != before else { return false }
        rs.setMetaField("annotations", JSONValue.stringObject(a))
        return true
    }

    /// `ReplicasAnnotationsNeedUpdate`.
    static func replicasAnnotationsNeedUpdate(_ rs: JSONValue, desired: Int, max maxReplicas: Int) -> Bool {
        let a = rs.metaAnnotations
        return a[desiredReplicasAnnotation] != String(desired) || a[maxReplicasAnnotation] != String(maxReplicas)
    }

    /// `SetNewReplicaSetAnnotations`: the Deployment's annotations (less `annotationsToSkip`),
    /// the revision when it is behind `newRevision` (keeping the old one in revision-history, as a
    /// rollback does), and for a ReplicaSet about to be created the replicas annotations.
    static func setNewReplicaSetAnnotations(_ d: JSONValue, _ rs: inout JSONValue, newRevision: Int, exists: Bool) -> Bool {
        var a = rs.metaAnnotations
        var changed = false
        for (k, v) in d.metaAnnotations where !annotationsToSkip.contains(k) && a[k] != v {
            a[k] = v
            changed = true
        }
        let oldText = a[revisionAnnotation]
        let old: Int
        if let oldText, !oldText.isEmpty {
            guard let parsed = Int(oldText) else { return false }
            old = parsed
        } else {
            old = 0
        }
        if old < newRevision {
            a[revisionAnnotation] = String(newRevision)
            changed = true
            if let oldText {
                let history = a[revisionHistoryAnnotation] ?? ""
                a[revisionHistoryAnnotation] = history.isEmpty ? oldText : history + "," + oldText
            }
        }
        rs.setMetaField("annotations", JSONValue.stringObject(a))
        if !exists && setReplicasAnnotations(&rs, desired: replicas(d), max: replicas(d) + maxSurge(d)) { changed = true }
        return changed
    }

    /// `SetDeploymentRevision`; true when it changed.
    static func setDeploymentRevision(_ d: inout JSONValue, _ revision: String) -> Bool {
        var a = d.metaAnnotations
        guard a[revisionAnnotation] != revision else { return false }
        a[revisionAnnotation] = revision
        d.setMetaField("annotations", JSONValue.stringObject(a))
        return true
    }

    // MARK: proportional scaling

    /// `GetProportion`: the share of `toAdd` one ReplicaSet gets in a proportional scale.
    static func proportion(_ rs: JSONValue, _ d: JSONValue, toAdd: Int, added: Int) -> Int {
        if replicas(rs) == 0 || toAdd == 0 || toAdd == added { return 0 }
        let fraction = replicaSetFraction(rs, d)
        let allowed = toAdd - added
        return toAdd > 0 ? min(fraction, allowed) : max(fraction, allowed)
    }

    /// `getReplicaSetFraction`: its size scaled from the max-replicas it was sized for to the
    /// Deployment's replicas + maxSurge, rounded half away from zero.
    static func replicaSetFraction(_ rs: JSONValue, _ d: JSONValue) -> Int {
        if replicas(d) == 0 { return -replicas(rs) }
        let deploymentReplicas = replicas(d) + maxSurge(d)
        let annotated = Int(rs.metaAnnotations[maxReplicasAnnotation] ?? "") ?? d.intAt("status", "replicas")
        guard annotated > 0 else { return 0 }
        let size = Double(replicas(rs) * deploymentReplicas) / Double(annotated)
        return Int(size.rounded()) - replicas(rs)
    }

    // MARK: progress

    /// `HasProgressDeadline`: set and not MaxInt32.
    static func hasProgressDeadline(_ d: JSONValue) -> Bool {
        guard let s = d["spec"]?["progressDeadlineSeconds"]?.intValue else { return false }
        return s != Int(Int32.max)
    }

    /// `HasRevisionHistoryLimit`.
    static func hasRevisionHistoryLimit(_ d: JSONValue) -> Bool {
        guard let l = d["spec"]?["revisionHistoryLimit"]?.intValue else { return false }
        return l != Int(Int32.max)
    }

    /// `DeploymentComplete`: every replica updated and available, nothing old left, spec observed.
    static func deploymentComplete(_ d: JSONValue, _ status: JSONValue?) -> Bool {
        let r = replicas(d)
        return status?.intAt("updatedReplicas") == r && status?.intAt("replicas") == r && status?.intAt("availableReplicas") == r
            && (status?.intAt("observedGeneration") ?? 0) >= d.metaGeneration
    }

    /// `DeploymentProgressing`: more updated, fewer old, more ready or more available Pods than before.
    static func deploymentProgressing(_ d: JSONValue, _ new: JSONValue) -> Bool {
        let old = d["status"]
        let oldOld = (old?.intAt("replicas") ?? 0) - (old?.intAt("updatedReplicas") ?? 0)
        let newOld = new.intAt("replicas") - new.intAt("updatedReplicas")
        return new.intAt("updatedReplicas") > (old?.intAt("updatedReplicas") ?? 0) || newOld < oldOld
            || new.intAt("readyReplicas") > (old?.intAt("readyReplicas") ?? 0) || new.intAt("availableReplicas") > (old?.intAt("availableReplicas") ?? 0)
    }

    /// `DeploymentTimedOut`: the Progressing condition was last updated more than
    /// progressDeadlineSeconds ago (and the rollout is not complete).
    static func deploymentTimedOut(_ d: JSONValue, _ status: JSONValue, now: Date) -> Bool {
        guard hasProgressDeadline(d), let cond = Conditions.get(status, "Progressing") else { return false }
        let reason = cond["reason"]?.stringValue
        if reason == newRSAvailableReason { return false }
        if reason == timedOutReason { return true }
        guard let from = cond["lastUpdateTime"]?.stringValue.flatMap(RFC3339.parse) else { return false }
        return from.addingTimeInterval(TimeInterval(d.intAt("spec", "progressDeadlineSeconds"))) < now
    }

    /// `NewDeploymentCondition`.
    static func condition(_ type: String, _ status: String, _ reason: String, _ message: String, now: String) -> JSONValue {
        .object(["type": .string(type), "status": .string(status), "lastUpdateTime": .string(now), "lastTransitionTime": .string(now),
                 "reason": .string(reason), "message": .string(message)])
    }

    /// sync.go `calculateStatus`: the counts over all ReplicaSets, `updatedReplicas` from the
    /// new one, and the Available condition (at least replicas − maxUnavailable available).
    /// Zero counts are omitted, as Go's `omitempty` does.
    static func calculateStatus(_ d: JSONValue, all: [JSONValue], newRS: JSONValue?, now: String) -> JSONValue {
        let available = availableReplicaCount(all)
        let total = replicaCount(all)
        var status = d["status"]?.objectValue ?? [:]
        let counts: [(String, Int)] = [
            ("observedGeneration", d.metaGeneration), ("replicas", actualReplicaCount(all)),
            ("updatedReplicas", newRS.map { actualReplicaCount([$0]) } ?? 0), ("readyReplicas", readyReplicaCount(all)),
            ("availableReplicas", available), ("unavailableReplicas", max(0, total - available)),
        ]
        for (k, v) in counts { status[k] = v == 0 ? nil : .int(v) }
        if available >= replicas(d) - maxUnavailable(d) {
            Conditions.set(&status, condition("Available", "True", minimumReplicasAvailable, "Deployment has minimum availability.", now: now))
        } else {
            Conditions.set(&status, condition("Available", "False", minimumReplicasUnavailable, "Deployment does not have minimum availability.", now: now))
        }
        return .object(status)
    }
}
