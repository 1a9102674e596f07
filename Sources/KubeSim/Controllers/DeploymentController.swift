import Foundation
import KubeClient
import Logging

/// kube-controller-manager's Deployment controller: kubernetes `pkg/controller/deployment/`
/// `deployment_controller.go` (`syncDeployment`), `sync.go`, `rolling.go`, `recreate.go`,
/// `progress.go`. Each method names the Go function it follows. Differences: the store is read
/// directly (no informer lag), the Deployment is kept up to date after each status write (Go
/// goes on with the stale object and retries on the resulting conflict), `rollbackTo` (an
/// extensions/v1beta1 field apps/v1 does not have) is not handled, and the pod-template-hash
/// is computed over JSON (see `PodTemplateHash`).
struct DeploymentController: Sendable {
    let context: ControllerContext
    private var identity: ControllerContext.Identity { ControllerContext.controllerManager }
    private typealias U = DeploymentUtil

    /// `syncDeployment`. Returns when to look again for a progress-deadline check
    /// (`requeueStuckDeployment`), if at all.
    func sync(_ key: ObjectKey) async throws(APIError) -> Duration? {
        guard var d = try? await context.store.get(.deployment, namespace: key.namespace, name: key.name) else { return nil }
        let selector = LabelSelector(d["spec"]?["selector"])
        if selector.isEmpty {
            // "This deployment is selecting all pods. A non-empty selector is required."
            if d.intAt("status", "observedGeneration") < d.metaGeneration {
                var status = d["status"]?.objectValue ?? [:]
                status["observedGeneration"] = .int(d.metaGeneration)
                try await writeStatus(&d, .object(status))
            }
            return nil
        }
        var rsList = try await claimReplicaSets(d, selector: selector)
        if d.metaDeleting {
            try await syncStatusOnly(&d, &rsList)
            return nil
        }
        try await checkPausedConditions(&d)
        if d["spec"]?["paused"] == .bool(true) {
            try await syncScaling(&d, &rsList)
            return nil
        }
        if try await isScalingEvent(&d, &rsList) {
            try await syncScaling(&d, &rsList)
            return nil
        }
        if d.stringAt("spec", "strategy", "type") == "Recreate" {
            try await rolloutRecreate(&d, &rsList)
        } else {
            try await rolloutRolling(&d, &rsList)
        }
        return requeueStuck(d)
    }

    // MARK: ReplicaSets of a Deployment

    /// `getReplicaSetsForDeployment` → controller_ref_manager.go `ClaimReplicaSets`: ours that
    /// match are kept, ours that stopped matching released, matching orphans adopted.
    private func claimReplicaSets(_ d: JSONValue, selector: LabelSelector) async throws(APIError) -> [JSONValue] {
        var owned: [JSONValue] = []
        for rs in await context.list(.replicaSet, namespace: d.metaNamespace) {
            let matches = selector.matches(rs.metaLabels)
            if let ref = rs.metaController {
                guard ref.uid == d.metaUID else { continue }
                if matches {
                    owned.append(rs)
                } else {
                    var released = rs
                    let rest = rs.metaOwners.filter { $0.uid != d.metaUID }
                    released.setMetaField("ownerReferences", rest.isEmpty ? nil : .array(rest.map(\.json)))
                    _ = try? await updateReplicaSet(released)
                }
                continue
            }
            guard matches, !d.metaDeleting, !rs.metaDeleting else { continue }
            var adopted = rs
            adopted.setMetaField("ownerReferences", .array((rs.metaOwners + [OwnerRef.controller(of: d, kind: .deployment)]).map(\.json)))
            if let stored = try? await updateReplicaSet(adopted) { owned.append(stored) }
        }
        return owned
    }

    /// `getPodMapForDeployment`: the Pods of each ReplicaSet, by the ReplicaSet's uid.
    private func podMap(_ d: JSONValue, _ rsList: [JSONValue]) async -> [String: [JSONValue]] {
        let uids = Set(rsList.map(\.metaUID))
        let selector = LabelSelector(d["spec"]?["selector"])
        var map: [String: [JSONValue]] = [:]
        for pod in await context.list(.pod, namespace: d.metaNamespace) where selector.matches(pod.metaLabels) {
            if let owner = pod.metaController?.uid, uids.contains(owner) { map[owner, default: []].append(pod) }
        }
        return map
    }

    /// sync.go `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when asked and
    /// missing) with its revision synced, and all the old ones.
    private func getAllReplicaSets(_ d: inout JSONValue, _ rsList: inout [JSONValue], create: Bool) async throws(APIError) -> (new: JSONValue?, old: [JSONValue]) {
        let old = U.findOldReplicaSets(d, rsList)
        let new = try await getNewReplicaSet(&d, &rsList, old: old, create: create)
        return (new, old)
    }

    /// sync.go `getNewReplicaSet`. An existing new ReplicaSet gets the Deployment's annotations,
    /// the next revision and its minReadySeconds; the Deployment gets the revision and, the first
    /// time, `Progressing` `FoundNewReplicaSet`. Otherwise one is created: named
    /// `<deployment>-<pod-template-hash>`, the hash added to its selector and template labels,
    /// sized by `NewRSNewReplicas`; `Progressing` `NewReplicaSetCreated`. A name taken by a
    /// ReplicaSet with another template bumps `status.collisionCount` and fails the sync.
    private func getNewReplicaSet(_ d: inout JSONValue, _ rsList: inout [JSONValue], old: [JSONValue], create: Bool) async throws(APIError) -> JSONValue? {
        let newRevision = U.maxRevision(old) + 1
        let now = context.timestamp
        if let existing = U.findNewReplicaSet(d, rsList) {
            var rs = existing
            let annotationsUpdated = U.setNewReplicaSetAnnotations(d, &rs, newRevision: newRevision, exists: true)
            let minReady = d["spec"]?["minReadySeconds"]
            if annotationsUpdated || rs["spec"]?["minReadySeconds"] != minReady {
                rs["spec"]?["minReadySeconds"] = minReady
                let stored = try await updateReplicaSet(rs)
                replace(&rsList, stored)
                return stored
            }
            var needsUpdate = U.setDeploymentRevision(&d, rs.metaAnnotations[U.revisionAnnotation] ?? "")
            var status = d["status"]?.objectValue ?? [:]
            if U.hasProgressDeadline(d), Conditions.get(.object(status), "Progressing") == nil {
                Conditions.set(&status, U.condition("Progressing", "True", U.foundNewRSReason, "Found new replica set \"\(rs.metaName)\"", now: now))
                needsUpdate = true
            }
            if needsUpdate { try await writeStatus(&d, .object(status)) }
            return rs
        }
        guard create else { return nil }

        let template = d["spec"]?["template"] ?? .object([:])
        let collisionCount = d["status"]?["collisionCount"]?.intValue
        let hash = PodTemplateHash.compute(template, collisionCount: collisionCount)
        var newTemplate = template
        var templateLabels = JSONValue.stringMap(template["metadata"]?["labels"])
        templateLabels[PodTemplateHash.label] = hash
        newTemplate["metadata"]?["labels"] = JSONValue.stringObject(templateLabels)
        var selector = d["spec"]?["selector"] ?? .object([:])
        var matchLabels = JSONValue.stringMap(selector["matchLabels"])
        matchLabels[PodTemplateHash.label] = hash
        selector["matchLabels"] = JSONValue.stringObject(matchLabels)
        var spec: [String: JSONValue] = ["replicas": .int(0), "selector": selector, "template": newTemplate]
        if let minReady = d["spec"]?["minReadySeconds"], minReady != .int(0) { spec["minReadySeconds"] = minReady }
        var rs: JSONValue = .object([
            "apiVersion": .string("apps/v1"), "kind": .string("ReplicaSet"),
            "metadata": .object(["name": .string("\(d.metaName)-\(hash)"), "namespace": .string(d.metaNamespace),
                                 "labels": JSONValue.stringObject(templateLabels),
                                 "ownerReferences": .array([OwnerRef.controller(of: d, kind: .deployment).json])]),
            "spec": .object(spec),
        ])
        let count = U.newRSNewReplicas(d, all: old + [rs], newRS: rs)
        rs["spec"]?["replicas"] = .int(count)
        _ = U.setNewReplicaSetAnnotations(d, &rs, newRevision: newRevision, exists: false)

        let created: JSONValue
        var alreadyExists = false
        do {
            created = try await context.store.create(.replicaSet, namespace: d.metaNamespace, body: rs, options: identity.options())
        } catch where error.status.reason == "AlreadyExists" {
            guard let taken = try? await context.store.get(.replicaSet, namespace: d.metaNamespace, name: rs.metaName) else { throw error }
            if taken.metaController?.uid == d.metaUID, U.equalIgnoreHash(taken["spec"]?["template"], template) {
                created = taken
                alreadyExists = true
            } else {
                // A hash collision: the next sync computes another name.
                var status = d["status"]?.objectValue ?? [:]
                status["collisionCount"] = .int((collisionCount ?? 0) + 1)
                try await writeStatus(&d, .object(status))
                throw error
            }
        } catch {
            if U.hasProgressDeadline(d) {
                var status = d["status"]?.objectValue ?? [:]
                Conditions.set(&status, U.condition("Progressing", "False", U.failedRSCreateReason,
                                                    "Failed to create new replica set \"\(rs.metaName)\": \(error.status.message ?? "")", now: now))
                try? await writeStatus(&d, .object(status))
            }
            throw error
        }
        if !alreadyExists && count > 0 {
            await recordEvent(d, "Scaled up replica set \(created.metaName) from 0 to \(count)")
        }
        rsList.append(created)
        var needsUpdate = U.setDeploymentRevision(&d, String(newRevision))
        var status = d["status"]?.objectValue ?? [:]
        if !alreadyExists && U.hasProgressDeadline(d) {
            Conditions.set(&status, U.condition("Progressing", "True", U.newRSNewReplicasReason, "Created new replica set \"\(created.metaName)\"", now: now))
            needsUpdate = true
        }
        if needsUpdate { try await writeStatus(&d, .object(status)) }
        return created
    }

    // MARK: strategies

    /// rolling.go `rolloutRolling`: scale the new ReplicaSet up as far as maxSurge allows; else
    /// scale old ones down as far as maxUnavailable allows; when complete, prune history.
    private func rolloutRolling(_ d: inout JSONValue, _ rsList: inout [JSONValue]) async throws(APIError) {
        let (newOrNil, old) = try await getAllReplicaSets(&d, &rsList, create: true)
        guard var newRS = newOrNil else { return }
        if let scaled = try await reconcileNewReplicaSet(all: old + [newRS], newRS: newRS, d) {
            newRS = scaled
            try await syncRolloutStatus(all: old + [newRS], newRS: newRS, &d)
            return
        }
        let (scaledDown, oldAfter) = try await reconcileOldReplicaSets(all: old + [newRS], oldActive: U.active(old), newRS: newRS, d)
        if scaledDown {
            let others = old.filter { o in !oldAfter.contains { $0.metaUID == o.metaUID } }
            try await syncRolloutStatus(all: others + oldAfter + [newRS], newRS: newRS, &d)
            return
        }
        if U.deploymentComplete(d, d["status"]) { try await cleanupDeployment(old, d) }
        try await syncRolloutStatus(all: old + [newRS], newRS: newRS, &d)
    }

    /// rolling.go `reconcileNewReplicaSet`: the scaled ReplicaSet, or nil when unchanged.
    private func reconcileNewReplicaSet(all: [JSONValue], newRS: JSONValue, _ d: JSONValue) async throws(APIError) -> JSONValue? {
        let target = U.replicas(newRS) > U.replicas(d) ? U.replicas(d) : U.newRSNewReplicas(d, all: all, newRS: newRS)
        let (scaled, rs) = try await scaleReplicaSetAndRecordEvent(newRS, to: target, d)
        return scaled ? rs : nil
    }

    /// rolling.go `reconcileOldReplicaSets`: scale old ReplicaSets down by at most
    /// all − (replicas − maxUnavailable) − the new ReplicaSet's unavailable Pods, unhealthy
    /// replicas first (`cleanupUnhealthyReplicas`), then while more than replicas −
    /// maxUnavailable Pods are available (`scaleDownOldReplicaSetsForRollingUpdate`).
    private func reconcileOldReplicaSets(all: [JSONValue], oldActive: [JSONValue], newRS: JSONValue, _ d: JSONValue) async throws(APIError) -> (Bool, [JSONValue]) {
        guard U.replicaCount(oldActive) > 0 else { return (false, oldActive) }
        let minAvailable = U.replicas(d) - U.maxUnavailable(d)
        let newUnavailable = U.replicas(newRS) - newRS.intAt("status", "availableReplicas")
        let maxScaledDown = U.replicaCount(all) - minAvailable - newUnavailable
        guard maxScaledDown > 0 else { return (false, oldActive) }

        // cleanupUnhealthyReplicas
        var old = U.byCreation(oldActive)
        var cleaned = 0
        for i in old.indices {
            if cleaned >= maxScaledDown { break }
            let rs = old[i]
            let unhealthy = U.replicas(rs) - rs.intAt("status", "availableReplicas")
            if U.replicas(rs) == 0 || unhealthy == 0 { continue }
            let down = min(maxScaledDown - cleaned, unhealthy)
            let (_, updated) = try await scaleReplicaSetAndRecordEvent(rs, to: U.replicas(rs) - down, d)
            cleaned += down
            old[i] = updated
        }

        // scaleDownOldReplicaSetsForRollingUpdate
        var scaledDown = 0
        let available = U.availableReplicaCount(old + [newRS])
        if available > minAvailable {
            let total = available - minAvailable
            for i in old.indices {
                if scaledDown >= total { break }
                let rs = old[i]
                if U.replicas(rs) == 0 { continue }
                let down = min(U.replicas(rs), total - scaledDown)
                let (_, updated) = try await scaleReplicaSetAndRecordEvent(rs, to: U.replicas(rs) - down, d)
                scaledDown += down
                old[i] = updated
            }
        }
        return (cleaned + scaledDown > 0, old)
    }

    /// recreate.go `rolloutRecreate`: every old ReplicaSet to 0, wait until no old Pod runs,
    /// then the new ReplicaSet straight to the replicas.
    private func rolloutRecreate(_ d: inout JSONValue, _ rsList: inout [JSONValue]) async throws(APIError) {
        var (newRS, old) = try await getAllReplicaSets(&d, &rsList, create: false)
        var scaledDown = false
        var oldAfter: [JSONValue] = []
        for rs in old {
            if U.replicas(rs) == 0 { oldAfter.append(rs); continue }
            let (scaled, updated) = try await scaleReplicaSetAndRecordEvent(rs, to: 0, d)
            if scaled { scaledDown = true }
            oldAfter.append(updated)
        }
        if scaledDown {
            try await syncRolloutStatus(all: oldAfter + (newRS.map { [$0] } ?? []), newRS: newRS, &d)
            return
        }
        if oldPodsRunning(newRS: newRS, old: old, podMap: await podMap(d, rsList)) {
            try await syncRolloutStatus(all: old + (newRS.map { [$0] } ?? []), newRS: newRS, &d)
            return
        }
        if newRS == nil { (newRS, old) = try await getAllReplicaSets(&d, &rsList, create: true) }
        if let rs = newRS {
            let (_, updated) = try await scaleReplicaSetAndRecordEvent(rs, to: U.replicas(d), d)
            newRS = updated
        }
        if U.deploymentComplete(d, d["status"]) { try await cleanupDeployment(old, d) }
        try await syncRolloutStatus(all: old + (newRS.map { [$0] } ?? []), newRS: newRS, &d)
    }

    /// recreate.go `oldPodsRunning`: old ReplicaSets still report Pods, or a Pod of an old
    /// ReplicaSet is neither Succeeded nor Failed.
    private func oldPodsRunning(newRS: JSONValue?, old: [JSONValue], podMap: [String: [JSONValue]]) -> Bool {
        if U.actualReplicaCount(old) > 0 { return true }
        for (uid, pods) in podMap where uid != newRS?.metaUID {
            for pod in pods where !["Succeeded", "Failed"].contains(PodState.phase(pod)) { return true }
        }
        return false
    }

    // MARK: scaling

    /// deployment_controller.go `isScalingEvent`: an active ReplicaSet was sized for other replicas
    /// than the Deployment's (its desired-replicas annotation).
    private func isScalingEvent(_ d: inout JSONValue, _ rsList: inout [JSONValue]) async throws(APIError) -> Bool {
        let (new, old) = try await getAllReplicaSets(&d, &rsList, create: false)
        for rs in U.active(old + (new.map { [$0] } ?? [])) {
            guard let desired = Int(rs.metaAnnotations[U.desiredReplicasAnnotation] ?? "") else { continue }
            if desired != U.replicas(d) { return true }
        }
        return false
    }

    /// sync.go `sync`: scaling (or a paused Deployment): resize without rolling, prune history
    /// when paused, write the status.
    private func syncScaling(_ d: inout JSONValue, _ rsList: inout [JSONValue]) async throws(APIError) {
        let (new, old) = try await getAllReplicaSets(&d, &rsList, create: false)
        let (newAfter, oldAfter) = try await scale(d, newRS: new, old: old)
        if d["spec"]?["paused"] == .bool(true) { try await cleanupDeployment(oldAfter, d) }
        try await syncDeploymentStatus(all: oldAfter + (newAfter.map { [$0] } ?? []), newRS: newAfter, &d)
    }

    /// sync.go `scale`: the only active (or the newest) ReplicaSet takes all the replicas; a
    /// saturated new ReplicaSet scales the old ones to 0; otherwise, for RollingUpdate, the
    /// difference to replicas + maxSurge is shared out in proportion to size
    /// (`GetProportion`), leftovers to the largest.
    private func scale(_ d: JSONValue, newRS: JSONValue?, old: [JSONValue]) async throws(APIError) -> (JSONValue?, [JSONValue]) {
        var newRS = newRS
        var old = old
        func put(_ rs: JSONValue) {
            if rs.metaUID == newRS?.metaUID { newRS = rs } else if let i = old.firstIndex(where: { $0.metaUID == rs.metaUID }) { old[i] = rs }
        }
        if let target = U.findActiveOrLatest(newRS: newRS, old: old) {
            if U.replicas(target) == U.replicas(d) { return (newRS, old) }
            put(try await scaleReplicaSetAndRecordEvent(target, to: U.replicas(d), d).1)
            return (newRS, old)
        }
        if U.isSaturated(d, newRS) {
            for rs in U.active(old) { put(try await scaleReplicaSetAndRecordEvent(rs, to: 0, d).1) }
            return (newRS, old)
        }
        guard U.isRollingUpdate(d) else { return (newRS, old) }
        var all = U.active(old + (newRS.map { [$0] } ?? []))
        let allowed = U.replicas(d) > 0 ? U.replicas(d) + U.maxSurge(d) : 0
        let toAdd = allowed - U.replicaCount(all)
        func newerFirst(_ a: JSONValue, _ b: JSONValue) -> Bool { (a.metaCreated ?? .distantPast) > (b.metaCreated ?? .distantPast) }
        if toAdd > 0 {
            // `ReplicaSetsBySizeNewer`
            all.sort { U.replicas($0) == U.replicas($1) ? newerFirst($0, $1) : U.replicas($0) > U.replicas($1) }
        } else if toAdd < 0 {
            // `ReplicaSetsBySizeOlder`
            all.sort { U.replicas($0) == U.replicas($1) ? newerFirst($1, $0) : U.replicas($0) > U.replicas($1) }
        }
        var added = 0
        var sizes: [String: Int] = [:]
        for rs in all {
            if toAdd != 0 {
                let p = U.proportion(rs, d, toAdd: toAdd, added: added)
                sizes[rs.metaUID] = U.replicas(rs) + p
                added += p
            } else {
                sizes[rs.metaUID] = U.replicas(rs)
            }
        }
        for (i, rs) in all.enumerated() {
            if i == 0 && toAdd != 0 { sizes[rs.metaUID] = max(0, sizes[rs.metaUID]! + toAdd - added) }
            put(try await scaleReplicaSet(rs, to: sizes[rs.metaUID]!, d).1)
        }
        return (newRS, old)
    }

    /// sync.go `scaleReplicaSetAndRecordEvent`: nothing when the size is right already.
    private func scaleReplicaSetAndRecordEvent(_ rs: JSONValue, to size: Int, _ d: JSONValue) async throws(APIError) -> (Bool, JSONValue) {
        if U.replicas(rs) == size { return (false, rs) }
        return try await scaleReplicaSet(rs, to: size, d)
    }

    /// sync.go `scaleReplicaSet`: the new size and the replicas annotations (desired, and
    /// desired + maxSurge) in one update; an event `Scaled up/down replica set X from A to B`.
    private func scaleReplicaSet(_ rs: JSONValue, to size: Int, _ d: JSONValue) async throws(APIError) -> (Bool, JSONValue) {
        let sizeChanges = U.replicas(rs) != size
        let maxReplicas = U.replicas(d) + U.maxSurge(d)
        guard sizeChanges || U.replicasAnnotationsNeedUpdate(rs, desired: U.replicas(d), max: maxReplicas) else { return (false, rs) }
        var copy = rs
        copy["spec"]?["replicas"] = .int(size)
        _ = U.setReplicasAnnotations(&copy, desired: U.replicas(d), max: maxReplicas)
        let stored = try await updateReplicaSet(copy)
        if sizeChanges {
            let direction = U.replicas(rs) < size ? "up" : "down"
            await recordEvent(d, "Scaled \(direction) replica set \(rs.metaName) from \(U.replicas(rs)) to \(size)")
        }
        return (sizeChanges, stored)
    }

    /// sync.go `cleanupDeployment`: beyond revisionHistoryLimit, delete the oldest old
    /// ReplicaSets that have no replicas and whose status is current.
    private func cleanupDeployment(_ old: [JSONValue], _ d: JSONValue) async throws(APIError) {
        guard U.hasRevisionHistoryLimit(d) else { return }
        let cleanable = old.filter { !$0.metaDeleting }
        let diff = cleanable.count - d.intAt("spec", "revisionHistoryLimit")
        guard diff > 0 else { return }
        // `ReplicaSetsByRevision`: by revision, then by creation.
        let sorted = cleanable.sorted { a, b in
            let ra = U.revision(a), rb = U.revision(b)
            if ra != rb { return ra < rb }
            return (a.metaCreated ?? .distantPast, a.metaName) < (b.metaCreated ?? .distantPast, b.metaName)
        }
        for rs in sorted.prefix(diff) {
            if rs.intAt("status", "replicas") != 0 || U.replicas(rs) != 0 || rs.metaGeneration > rs.intAt("status", "observedGeneration") { continue }
            do {
                _ = try await context.store.delete(.replicaSet, namespace: rs.metaNamespace, name: rs.metaName, preconditionUID: rs.metaUID, preconditionRV: nil,
                                                   user: identity.options().user)
            } catch where error.isNotFound {}
        }
    }

    // MARK: status

    /// sync.go `checkPausedConditions`: `Progressing` Unknown `DeploymentPaused` / `DeploymentResumed`.
    private func checkPausedConditions(_ d: inout JSONValue) async throws(APIError) {
        guard U.hasProgressDeadline(d) else { return }
        var status = d["status"]?.objectValue ?? [:]
        let cond = Conditions.get(.object(status), "Progressing")
        if cond?["reason"]?.stringValue == U.timedOutReason { return }
        let pausedCond = cond?["reason"]?.stringValue == U.pausedDeployReason
        let paused = d["spec"]?["paused"] == .bool(true)
        if paused && !pausedCond {
            Conditions.set(&status, U.condition("Progressing", "Unknown", U.pausedDeployReason, "Deployment is paused", now: context.timestamp))
        } else if !paused && pausedCond {
            Conditions.set(&status, U.condition("Progressing", "Unknown", U.resumedDeployReason, "Deployment is resumed", now: context.timestamp))
        } else {
            return
        }
        try await writeStatus(&d, .object(status))
    }

    /// sync.go `syncStatusOnly`.
    private func syncStatusOnly(_ d: inout JSONValue, _ rsList: inout [JSONValue]) async throws(APIError) {
        let (new, old) = try await getAllReplicaSets(&d, &rsList, create: false)
        try await syncDeploymentStatus(all: old + (new.map { [$0] } ?? []), newRS: new, &d)
    }

    /// sync.go `syncDeploymentStatus`.
    private func syncDeploymentStatus(all: [JSONValue], newRS: JSONValue?, _ d: inout JSONValue) async throws(APIError) {
        let status = U.calculateStatus(d, all: all, newRS: newRS, now: context.timestamp)
        if d["status"] != status { try await writeStatus(&d, status) }
    }

    /// progress.go `syncRolloutStatus`: the counts and Available (`calculateStatus`), then
    /// Progressing: `NewReplicaSetAvailable` once complete, `ReplicaSetUpdated` (lastUpdateTime
    /// moved) on any progress, `ProgressDeadlineExceeded` once stuck past the deadline; the
    /// ReplicaSets' `ReplicaFailure`.
    private func syncRolloutStatus(all: [JSONValue], newRS: JSONValue?, _ d: inout JSONValue) async throws(APIError) {
        let now = context.timestamp
        var status = U.calculateStatus(d, all: all, newRS: newRS, now: now).objectValue ?? [:]
        if !U.hasProgressDeadline(d) { Conditions.remove(&status, "Progressing") }
        let current = Conditions.get(d["status"], "Progressing")
        let complete = status["replicas"] == status["updatedReplicas"] && current?["reason"]?.stringValue == U.newRSAvailableReason
        if U.hasProgressDeadline(d) && !complete {
            let subject = newRS.map { "ReplicaSet \"\($0.metaName)\"" } ?? "Deployment \"\(d.metaName)\""
            if U.deploymentComplete(d, .object(status)) {
                Conditions.set(&status, U.condition("Progressing", "True", U.newRSAvailableReason, "\(subject) has successfully progressed.", now: now))
            } else if U.deploymentProgressing(d, .object(status)) {
                var condition = U.condition("Progressing", "True", U.replicaSetUpdatedReason, "\(subject) is progressing.", now: now)
                if let current {
                    if current["status"]?.stringValue == "True" { condition["lastTransitionTime"] = current["lastTransitionTime"] }
                    Conditions.remove(&status, "Progressing")
                }
                Conditions.set(&status, condition)
            } else if U.deploymentTimedOut(d, .object(status), now: context.now()) {
                Conditions.set(&status, U.condition("Progressing", "False", U.timedOutReason, "\(subject) has timed out progressing.", now: now))
            }
        }
        if let failure = replicaFailure(all: all, newRS: newRS) {
            Conditions.set(&status, failure)
        } else {
            Conditions.remove(&status, "ReplicaFailure")
        }
        if d["status"] != .object(status) { try await writeStatus(&d, .object(status)) }
    }

    /// progress.go `getReplicaFailures` + `ReplicaSetToDeploymentCondition`: the new
    /// ReplicaSet's ReplicaFailure, else an old one's.
    private func replicaFailure(all: [JSONValue], newRS: JSONValue?) -> JSONValue? {
        for rs in (newRS.map { [$0] } ?? []) + all {
            guard let c = Conditions.get(rs["status"], "ReplicaFailure") else { continue }
            return .object(["type": .string("ReplicaFailure"), "status": c["status"] ?? .string("True"), "reason": c["reason"] ?? .null,
                            "message": c["message"] ?? .null, "lastUpdateTime": c["lastTransitionTime"] ?? .null,
                            "lastTransitionTime": c["lastTransitionTime"] ?? .null])
        }
        return nil
    }

    /// progress.go `requeueStuckDeployment`: while a rollout is under way, look again once the
    /// Progressing condition's lastUpdateTime + progressDeadlineSeconds has passed (plus a second).
    private func requeueStuck(_ d: JSONValue) -> Duration? {
        guard U.hasProgressDeadline(d), let cond = Conditions.get(d["status"], "Progressing") else { return nil }
        if U.deploymentComplete(d, d["status"]) || cond["reason"]?.stringValue == U.timedOutReason { return nil }
        guard let last = cond["lastUpdateTime"]?.stringValue.flatMap(RFC3339.parse) else { return nil }
        let after = last.addingTimeInterval(TimeInterval(d.intAt("spec", "progressDeadlineSeconds"))).timeIntervalSince(context.now())
        return after < 1 ? .milliseconds(100) : .milliseconds(Int((after + 1) * 1000))
    }

    // MARK: writes

    private func writeStatus(_ d: inout JSONValue, _ status: JSONValue) async throws(APIError) {
        var body = d
        body["status"] = status
        d = try await context.store.update(.deployment, namespace: d.metaNamespace, name: d.metaName, body: body, options: identity.options(subresource: "status"))
    }

    private func updateReplicaSet(_ rs: JSONValue) async throws(APIError) -> JSONValue {
        try await context.store.update(.replicaSet, namespace: rs.metaNamespace, name: rs.metaName, body: rs, options: identity.options())
    }

    private func replace(_ list: inout [JSONValue], _ rs: JSONValue) {
        if let i = list.firstIndex(where: { $0.metaUID == rs.metaUID }) { list[i] = rs } else { list.append(rs) }
    }

    /// `dc.eventRecorder.Eventf(d, v1.EventTypeNormal, "ScalingReplicaSet", …)`.
    private func recordEvent(_ d: JSONValue, _ message: String) async {
        await context.recordEvent(on: d, kind: .deployment, reason: "ScalingReplicaSet", message: message, component: "deployment-controller")
    }
}
