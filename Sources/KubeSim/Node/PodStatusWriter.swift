import Foundation
import KubeClient

extension PodWorker {
    /// pkg/kubelet/kubelet_pods.go `generateAPIPodStatus` (phase by `getPhase`, conditions by
    /// pkg/kubelet/status/generate.go, container statuses by `convertToAPIContainerStatuses`,
    /// sorted by name), written through `pods/status` only when it changed
    /// (status/status_manager.go `updateStatusInternal` drops unchanged statuses). A condition
    /// keeps its `lastTransitionTime` while its status stays the same.
    func writeStatus() async {
        var status = await buildStatus()
        let old = pod["status"]
        if var conditions = status["conditions"]?.arrayValue {
            let previous = old?["conditions"]?.arrayValue ?? []
            for i in conditions.indices {
                let type = conditions[i]["type"]?.stringValue
                if let p = previous.first(where: { $0["type"]?.stringValue == type }), p["status"] == conditions[i]["status"], var c = conditions[i].objectValue {
                    c["lastTransitionTime"] = p["lastTransitionTime"]
                    conditions[i] = .object(c)
                }
            }
            status["conditions"] = .array(conditions)
        }
        // Fields the kubelet does not own (qosClass from the API server, others' conditions).
        if let qos = old?["qosClass"] { status["qosClass"] = qos }
        let ours: Set<String> = ["PodScheduled", "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"]
        let foreign = (old?["conditions"]?.arrayValue ?? []).filter { !ours.contains($0["type"]?.stringValue ?? "") }
        if !foreign.isEmpty { status["conditions"] = .array((status["conditions"]?.arrayValue ?? []) + foreign) }
        let value = JSONValue.object(status)
        if value == old || value == lastStatus { return }
        // The stored object with our status: a status write also carries labels, annotations
        // and finalizers (`prepareForStatusUpdate`), which must stay as others last set them.
        guard let current = try? await kubelet.store.get(.pod, namespace: namespace, name: name),
              current["metadata"]?["uid"]?.stringValue == uid, var body = current.objectValue else { return }
        if value == current["status"] { lastStatus = value; return }
        body["status"] = value
        var meta = body["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = nil
        body["metadata"] = .object(meta)
        var options = WriteOptions(user: kubelet.user)
        options.subresource = "status"
        options.manager = "kubelet"
        do {
            let stored = try await kubelet.store.update(.pod, namespace: namespace, name: name, body: .object(body), options: options)
            lastStatus = value
            pod["status"] = stored["status"]
            pod["metadata"]?.set("resourceVersion", stored["metadata"]?["resourceVersion"])
        } catch {
            logger.info("pod status update failed", metadata: ["error": "\(error.status.message ?? "")"])
        }
    }

    /// `getPhase`.
    func phase() -> String {
        var initPending = false
        for n in initNames {
            guard let r = records[n] else { continue }
            if let last = r.last, r.running == nil {
                if last.exitCode == 0 { continue }
                if restartPolicy == "Never" { return "Failed" }
            }
            initPending = true
        }
        if initPending { return "Pending" }
        var running = 0, waiting = 0, stopped = 0, succeeded = 0
        for n in containerNames {
            guard let r = records[n] else { continue }
            if r.running != nil { running += 1; continue }
            // Killed for a new definition and about to start again (the kubelet's getPhase counts
            // a waiting container with a last termination as stopped: the Pod stays Running).
            if r.restartRequested && !terminal { running += 1; continue }
            if let last = r.last {
                let restarting = restartPolicy == "Always" || (restartPolicy == "OnFailure" && last.exitCode != 0)
                if restarting && !terminal { stopped += 1; continue }
                stopped += 1
                if last.exitCode == 0 { succeeded += 1 }
                continue
            }
            waiting += 1
        }
        if waiting > 0 { return "Pending" }
        if running > 0 { return "Running" }
        if stopped > 0 {
            if terminal {
                // A terminated Pod's final phase (kubelet_pods.go: `podIsTerminal` → Succeeded only
                // when every container exited 0).
                return stopped == succeeded ? "Succeeded" : "Failed"
            }
            if restartPolicy == "Always" { return "Running" }
            if stopped == succeeded { return "Succeeded" }
            if restartPolicy == "OnFailure" { return "Running" }
            return "Failed"
        }
        return "Pending"
    }

    func buildStatus() async -> [String: JSONValue] {
        let now = RFC3339.format(Date())
        var phase = phase()
        if (phase == "Succeeded" || phase == "Failed") && !terminal {
            // Terminal: nothing runs again; the sandbox and volumes go (kubelet.go
            // `SyncTerminatedPod` once the phase is terminal).
            terminal = true
            await sandbox?.stop()
            volumes.tearDown()
            phase = self.phase()
        }
        func condition(_ type: String, _ ok: Bool, reason: String? = nil, message: String? = nil) -> JSONValue {
            var c: [String: JSONValue] = ["type": .string(type), "status": .string(ok ? "True" : "False"), "lastTransitionTime": .string(now),
                                          "lastProbeTime": .null]
            if let reason, !ok || reason == "PodCompleted" { c["reason"] = .string(reason) }
            if let message, !ok { c["message"] = .string(message) }
            return .object(c)
        }
        let readyFlags = containerNames.map { n -> (String, Bool) in (n, records[n].map(isReady) ?? false) }
        let unready = readyFlags.filter { !$0.1 }.map(\.0)
        let initialized = initNames.allSatisfy { n in records[n]?.last?.exitCode == 0 && records[n]?.running == nil }
        let uninitialized = initNames.filter { n in !(records[n]?.last?.exitCode == 0 && records[n]?.running == nil) }
        let completed = phase == "Succeeded" || phase == "Failed"
        var conditions: [JSONValue] = [
            condition("PodReadyToStartContainers", sandbox != nil && !terminal),
            completed && initialized ? condition("Initialized", true, reason: "PodCompleted")
                : condition("Initialized", initialized, reason: "ContainersNotInitialized", message: "containers with incomplete status: [\(uninitialized.joined(separator: " "))]"),
        ]
        if completed {
            conditions.append(condition("Ready", false, reason: "PodCompleted"))
            conditions.append(condition("ContainersReady", false, reason: "PodCompleted"))
        } else {
            let msg = "containers with unready status: [\(unready.joined(separator: " "))]"
            conditions.append(condition("Ready", unready.isEmpty && initialized, reason: "ContainersNotReady", message: msg))
            conditions.append(condition("ContainersReady", unready.isEmpty && initialized, reason: "ContainersNotReady", message: msg))
        }
        conditions.append(condition("PodScheduled", true))
        var status: [String: JSONValue] = ["phase": .string(phase), "conditions": .array(conditions)]
        let hostIP = kubelet.network.nodeAddress
        status["hostIP"] = .string(hostIP)
        status["hostIPs"] = .array([.object(["ip": .string(hostIP)])])
        if !podIP.isEmpty {
            status["podIP"] = .string(podIP)
            status["podIPs"] = .array([.object(["ip": .string(podIP)])])
        }
        if let startTime { status["startTime"] = .string(RFC3339.format(startTime)) }
        let initStatuses = initNames.sorted().compactMap { records[$0].map { containerStatus($0, podInitialized: true) } }
        if !initStatuses.isEmpty { status["initContainerStatuses"] = .array(initStatuses) }
        status["containerStatuses"] = .array(containerNames.sorted().compactMap { records[$0].map { containerStatus($0, podInitialized: initialized) } })
        return status
    }

    /// Running, started, and passing its readiness probe (none: ready once started).
    func isReady(_ r: ContainerRecord) -> Bool {
        guard let running = r.running, running.started else { return false }
        return r.spec["readinessProbe"] == nil ? true : r.ready
    }

    private func terminatedJSON(_ t: TerminatedInstance) -> JSONValue {
        var o: [String: JSONValue] = [
            "exitCode": .int(Int(t.exitCode)), "reason": .string(t.reason), "startedAt": .string(RFC3339.format(t.startedAt)),
            "finishedAt": .string(RFC3339.format(t.finishedAt)), "containerID": .string(t.id),
        ]
        if t.exitCode > 128 && t.reason != "StartError" { o["signal"] = .int(Int(t.exitCode) - 128) }
        if let m = t.message { o["message"] = .string(m) }
        return .object(o)
    }

    /// One `ContainerStatus`: the current state (running; waiting with the last run in
    /// `lastState`; or terminated for good), `restartCount` the number of the latest run.
    func containerStatus(_ r: ContainerRecord, podInitialized: Bool) -> JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(r.name), "image": .string(r.spec["image"]?.stringValue ?? ""), "imageID": .string(r.imageID ?? ""),
            "restartCount": .int(r.restartCount), "ready": .bool(isReady(r)), "started": .bool(r.running?.started ?? false),
        ]
        var lastState: JSONValue = .object([:])
        if let running = r.running {
            o["state"] = .object(["running": .object(["startedAt": .string(RFC3339.format(running.startedAt))])])
            o["containerID"] = .string(running.id)
            if let last = r.last { lastState = .object(["terminated": terminatedJSON(last)]) }
        } else if let waiting = r.waiting {
            var w: [String: JSONValue] = ["reason": .string(waiting.reason)]
            if let m = waiting.message { w["message"] = .string(m) }
            o["state"] = .object(["waiting": .object(w)])
            if let last = r.last { lastState = .object(["terminated": terminatedJSON(last)]); o["containerID"] = .string(last.id) }
        } else if let last = r.last {
            o["state"] = .object(["terminated": terminatedJSON(last)])
            o["containerID"] = .string(last.id)
            if let previous = r.previous { lastState = .object(["terminated": terminatedJSON(previous)]) }
        } else {
            let reason = !r.isInit && !podInitialized ? "PodInitializing" : "ContainerCreating"
            o["state"] = .object(["waiting": .object(["reason": .string(reason)])])
        }
        o["lastState"] = lastState
        if let mounts = r.spec["volumeMounts"]?.arrayValue, !mounts.isEmpty {
            o["volumeMounts"] = .array(mounts.map { m in
                var v: [String: JSONValue] = ["name": m["name"] ?? .string(""), "mountPath": m["mountPath"] ?? .string("")]
                if m["readOnly"] == .bool(true) { v["readOnly"] = .bool(true); v["recursiveReadOnly"] = .string("Disabled") }
                return .object(v)
            })
        }
        return .object(o)
    }
}

private extension JSONValue {
    mutating func set(_ key: String, _ value: JSONValue?) {
        guard case .object(var o) = self else { return }
        o[key] = value
        self = .object(o)
    }
}
