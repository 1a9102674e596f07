import Foundation
import KubeClient
import Synchronization

/// What each kind's registry strategy does on create and update, as kubernetes/pkg/registry
/// and the defaulters in kubernetes/pkg/apis/<group>/v1/defaults.go do it. Objects arrive
/// with their metadata already filled in by the store (uid, creationTimestamp, name).
enum Strategy {
    typealias Object = [String: JSONValue]

    // MARK: create

    static func prepareForCreate(_ kind: ResourceKind, _ obj: inout Object) throws(APIError) {
        if kind.generation { setMeta(&obj, "generation", .int(1)) }
        switch (kind.group, kind.kind) {
        case ("", "Pod"): try preparePod(&obj)
        case ("", "Service"): try prepareService(&obj)
        case ("apps", "Deployment"): try prepareDeployment(&obj, replicaSet: false)
        case ("apps", "ReplicaSet"): try prepareDeployment(&obj, replicaSet: true)
        case ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): try prepareAdmissionPolicy(&obj)
        case ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): try prepareAdmissionPolicyBinding(&obj)
        case ("apiextensions.k8s.io", "CustomResourceDefinition"): try CustomResources.prepareForCreate(&obj)
        default: break
        }
    }

    // MARK: update

    /// The main resource of a kind with a status subresource keeps the stored `status`
    /// (e.g. pkg/registry/core/pod/strategy.go `podStrategy.PrepareForUpdate`:
    /// `newPod.Status = oldPod.Status`; the same in apps deployment/replicaset, service,
    /// admissionregistration and apiextensions strategies); `metadata.generation` is bumped
    /// when anything but metadata and status changed (`newDeployment.Generation = oldDeployment.Generation + 1`
    /// when `!apiequality.Semantic.DeepEqual(newDeployment.Spec, oldDeployment.Spec)`).
    static func prepareForUpdate(_ kind: ResourceKind, _ obj: inout Object, old: Object) throws(APIError) {
        if kind.statusSubresource {
            obj["status"] = old["status"]
        }
        switch (kind.group, kind.kind) {
        case ("", "Pod"): try validatePodUpdate(&obj, old: old)
        case ("", "Service"): try prepareService(&obj, old: old)
        case ("apps", "Deployment"): try prepareDeployment(&obj, replicaSet: false)
        case ("apps", "ReplicaSet"): try prepareDeployment(&obj, replicaSet: true)
        case ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): try prepareAdmissionPolicy(&obj)
        case ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): try prepareAdmissionPolicyBinding(&obj)
        case ("apiextensions.k8s.io", "CustomResourceDefinition"): try CustomResources.prepareForUpdate(&obj, old: old)
        default: break
        }
        if kind.generation {
            let gen = old["metadata"]?["generation"]?.intValue ?? 1
            // Deployments also count annotation changes: they are copied to the ReplicaSets
            // (pkg/registry/apps/deployment/strategy.go `PrepareForUpdate`).
            let annotationsChanged = kind == .deployment && obj["metadata"]?["annotations"] != old["metadata"]?["annotations"]
            setMeta(&obj, "generation", .int(specChanged(obj, old) || annotationsChanged ? gen + 1 : gen))
        }
    }

    /// `…/status`: everything but `status` is the stored object's. Pods keep the request's
    /// labels and annotations but not its owners (pkg/registry/core/pod/strategy.go
    /// `podStatusStrategy.PrepareForUpdate`: `newPod.Spec = oldPod.Spec`,
    /// `newPod.OwnerReferences = oldPod.OwnerReferences`, QoS class kept); Deployments keep
    /// the stored labels (`deploymentStatusStrategy`); the other kinds reset all metadata
    /// (`metav1.ResetObjectMetaForStatus`: labels, annotations, finalizers, owners,
    /// generation, deletionTimestamp).
    static func prepareForStatusUpdate(_ kind: ResourceKind, _ obj: inout Object, old: Object) {
        var merged = old
        merged["status"] = obj["status"]
        var meta = old["metadata"]?.objectValue ?? [:]
        let requested = obj["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = requested["resourceVersion"]
        meta["managedFields"] = requested["managedFields"]
        switch (kind.group, kind.kind) {
        case ("", "Pod"):
            for k in ["labels", "annotations", "finalizers"] { meta[k] = requested[k] }
            // The QoS class is decided at creation; a status write never changes it.
            merged["status"]?["qosClass"] = old["status"]?["qosClass"]
        case ("apps", "Deployment"), ("apps", "ReplicaSet"), ("", "Service"):
            meta["annotations"] = requested["annotations"]
            meta["finalizers"] = requested["finalizers"]
            meta["ownerReferences"] = requested["ownerReferences"]
            if kind.kind != "Deployment" { meta["labels"] = requested["labels"] }
        default:
            break
        }
        merged["metadata"] = .object(meta)
        obj = merged
    }

    /// `metav1.MicroTime` fields are decoded with the layout `2006-01-02T15:04:05.000000Z07:00`
    /// (apimachinery `pkg/apis/meta/v1/micro_time.go` `UnmarshalJSON` → `time.Parse`), which
    /// wants exactly six fractional digits; anything else fails while the body is decoded
    /// (`handlers/rest.go` `transformDecodeError`), before any strategy runs.
    static func checkMicroTimes(_ kind: ResourceKind, _ obj: Object, as requested: ResourceKind) throws(APIError) {
        let paths: [[String]]
        switch (kind.group, kind.kind) {
        case ("coordination.k8s.io", "Lease"): paths = [["spec", "acquireTime"], ["spec", "renewTime"]]
        case ("", "Event"): paths = [["eventTime"], ["series", "lastObservedTime"]]
        default: return
        }
        for path in paths {
            var v: JSONValue? = .object(obj)
            for p in path { v = v?[p] }
            guard let text = v?.stringValue, !RFC3339.isMicroTime(text) else { continue }
            let rest = text.count > 19 ? String(text.dropFirst(19)) : text
            let version = requested.version
            throw APIError.badRequest("\(requested.kind) in version \"\(version)\" cannot be handled as a \(requested.kind): parsing time \"\(text)\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"\(rest)\" as \".000000\"")
        }
    }

    static func specChanged(_ a: Object, _ b: Object) -> Bool {
        var x = a, y = b
        for k in ["metadata", "status", "apiVersion", "kind"] { x[k] = nil; y[k] = nil }
        return x != y
    }

    /// Fields with `omitempty` vanish when empty: a merge patch that removes the last label
    /// leaves no `labels` (k8s.io/apimachinery `pkg/apis/meta/v1/types.go` ObjectMeta tags:
    /// `labels,omitempty`, `annotations,omitempty`, `finalizers,omitempty`,
    /// `ownerReferences,omitempty`, `managedFields,omitempty`; encoding/json omits an empty map or slice).
    static func dropEmptyMetadata(_ obj: inout Object) {
        guard var meta = obj["metadata"]?.objectValue else { return }
        for k in ["labels", "annotations", "finalizers", "ownerReferences", "managedFields"] {
            switch meta[k] {
            case .object(let o)? where o.isEmpty: meta[k] = nil
            case .array(let a)? where a.isEmpty: meta[k] = nil
            case .null?: meta[k] = nil
            default: break
            }
        }
        obj["metadata"] = .object(meta)
    }

    static func setMeta(_ obj: inout Object, _ key: String, _ value: JSONValue?) {
        var meta = obj["metadata"]?.objectValue ?? [:]
        meta[key] = value
        obj["metadata"] = .object(meta)
    }

    // MARK: Pods

    /// pkg/apis/core/v1/defaults.go `SetDefaults_PodSpec` (dnsPolicy ClusterFirst,
    /// restartPolicy Always, terminationGracePeriodSeconds 30, securityContext {},
    /// schedulerName default-scheduler, enableServiceLinks true), `SetDefaults_Container`
    /// (terminationMessagePath /dev/termination-log, terminationMessagePolicy File,
    /// imagePullPolicy Always for `:latest` or no tag, else IfNotPresent), the admission plugins
    /// ServiceAccount (serviceAccountName default), Priority (priority 0, PreemptLowerPriority)
    /// and DefaultTolerationSeconds (not-ready and unreachable, 300 s); then
    /// pkg/registry/core/pod/strategy.go `podStrategy.PrepareForCreate`:
    /// `pod.Status = api.PodStatus{Phase: api.PodPending, QOSClass: qos.GetPodQOS(pod)}`.
    static func preparePod(_ obj: inout Object) throws(APIError) {
        var spec = obj["spec"]?.objectValue ?? [:]
        let name = obj["metadata"]?["name"]?.stringValue ?? ""
        guard let containers = spec["containers"]?.arrayValue, !containers.isEmpty else {
            throw APIError.invalid(.pod, name, field: "spec.containers", "Required value")
        }
        spec["containers"] = .array(containers.map(defaultContainer))
        if let initContainers = spec["initContainers"]?.arrayValue { spec["initContainers"] = .array(initContainers.map(defaultContainer)) }
        let defaults: [(String, JSONValue)] = [
            ("restartPolicy", .string("Always")), ("dnsPolicy", .string("ClusterFirst")), ("terminationGracePeriodSeconds", .int(30)),
            ("securityContext", .object([:])), ("schedulerName", .string("default-scheduler")), ("enableServiceLinks", .bool(true)),
            ("serviceAccountName", .string("default")), ("priority", .int(0)), ("preemptionPolicy", .string("PreemptLowerPriority")),
        ]
        for (k, v) in defaults where spec[k] == nil || spec[k] == .null { spec[k] = v }
        // The deprecated alias the ServiceAccount plugin keeps in step.
        spec["serviceAccount"] = spec["serviceAccountName"]
        var tolerations = spec["tolerations"]?.arrayValue ?? []
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] where !tolerations.contains(where: { $0["key"]?.stringValue == key }) {
            tolerations.append(.object(["key": .string(key), "operator": .string("Exists"), "effect": .string("NoExecute"), "tolerationSeconds": .int(300)]))
        }
        spec["tolerations"] = .array(tolerations)
        obj["spec"] = .object(spec)
        obj["status"] = .object(["phase": .string("Pending"), "qosClass": .string(qosClass(spec))])
    }

    static func defaultContainer(_ c: JSONValue) -> JSONValue {
        guard var o = c.objectValue else { return c }
        if o["terminationMessagePath"] == nil { o["terminationMessagePath"] = .string("/dev/termination-log") }
        if o["terminationMessagePolicy"] == nil { o["terminationMessagePolicy"] = .string("File") }
        if o["resources"] == nil { o["resources"] = .object([:]) }
        if o["imagePullPolicy"] == nil {
            let image = o["image"]?.stringValue ?? ""
            // defaults.go: a digest or a tag other than latest pulls IfNotPresent.
            let lastPart = image.split(separator: "/").last.map(String.init) ?? image
            let tag = image.contains("@") ? "digest" : (lastPart.split(separator: ":", maxSplits: 1).dropFirst().first.map(String.init) ?? "latest")
            o["imagePullPolicy"] = .string(tag == "latest" ? "Always" : "IfNotPresent")
        }
        if let ports = o["ports"]?.arrayValue {
            o["ports"] = .array(ports.map { p in
                guard var po = p.objectValue else { return p }
                if po["protocol"] == nil { po["protocol"] = .string("TCP") }
                return .object(po)
            })
        }
        return .object(o)
    }

    /// pkg/apis/core/helper/qos `GetPodQOS`: BestEffort with no requests or limits, Guaranteed
    /// when every container's limits equal its requests for cpu and memory, else Burstable.
    static func qosClass(_ spec: Object) -> String {
        let containers = (spec["containers"]?.arrayValue ?? []) + (spec["initContainers"]?.arrayValue ?? [])
        var any = false
        var guaranteed = true
        for c in containers {
            let requests = c["resources"]?["requests"]?.objectValue ?? [:]
            let limits = c["resources"]?["limits"]?.objectValue ?? [:]
            if !requests.isEmpty || !limits.isEmpty { any = true }
            for r in ["cpu", "memory"] {
                guard let l = limits[r] else { guaranteed = false; continue }
                if let q = requests[r], q != l { guaranteed = false }
            }
        }
        if !any { return "BestEffort" }
        return guaranteed ? "Guaranteed" : "Burstable"
    }

    /// pkg/apis/core/validation/validation.go `ValidatePodUpdate`: only images,
    /// activeDeadlineSeconds, terminationGracePeriodSeconds and added tolerations may change.
    static func validatePodUpdate(_ obj: inout Object, old: Object) throws(APIError) {
        guard var spec = obj["spec"]?.objectValue, let oldSpec = old["spec"]?.objectValue else { return }
        // Requests that omit defaulted fields get them, as the decoder's defaulting does.
        var defaulted = obj
        try? preparePod(&defaulted)
        if let d = defaulted["spec"]?.objectValue { spec = d }
        var a = spec, b = oldSpec
        for k in ["activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations"] { a[k] = nil; b[k] = nil }
        func withoutImages(_ v: JSONValue?) -> JSONValue? {
            v?.arrayValue.map { JSONValue.array($0.map { var c = $0.objectValue ?? [:]; c["image"] = nil; return .object(c) }) }
        }
        for k in ["containers", "initContainers"] { a[k] = withoutImages(a[k]); b[k] = withoutImages(b[k]) }
        if a != b {
            let name = obj["metadata"]?["name"]?.stringValue ?? ""
            throw APIError.invalid(.pod, name, field: "spec",
                                   "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")
        }
        obj["spec"] = .object(spec)
    }

    // MARK: Services

    /// pkg/apis/core/v1/defaults.go `SetDefaults_Service` (type ClusterIP, sessionAffinity
    /// None, port protocol TCP, targetPort = port, internalTrafficPolicy Cluster) and the
    /// REST storage's allocation (pkg/registry/core/service/storage/alloc.go: a cluster IP from
    /// the service CIDR, `ipFamilies: [IPv4]`, `ipFamilyPolicy: SingleStack`). The cluster IP
    /// is immutable once set.
    static func prepareService(_ obj: inout Object, old: Object? = nil) throws(APIError) {
        var spec = obj["spec"]?.objectValue ?? [:]
        if spec["type"] == nil { spec["type"] = .string("ClusterIP") }
        if spec["sessionAffinity"] == nil { spec["sessionAffinity"] = .string("None") }
        let type = spec["type"]?.stringValue ?? "ClusterIP"
        if type != "ExternalName" {
            if spec["internalTrafficPolicy"] == nil { spec["internalTrafficPolicy"] = .string("Cluster") }
            if let ip = old?["spec"]?["clusterIP"] {
                // `ValidateServiceUpdate`: the cluster IPs are immutable once allocated; leaving
                // them out of an update keeps them.
                if let asked = spec["clusterIP"], asked != ip, asked != .string("") {
                    let name = old?["metadata"]?["name"]?.stringValue ?? ""
                    let ips = (old?["spec"]?["clusterIPs"]?.arrayValue ?? [ip]).compactMap(\.stringValue).map { "\"\($0)\"" }.joined(separator: ", ")
                    throw APIError.invalid(.service, name, field: "spec.clusterIPs[0]", "Invalid value: []string{\(ips)}: may not change once set")
                }
                spec["clusterIP"] = ip
                spec["clusterIPs"] = old?["spec"]?["clusterIPs"]
            }
            if spec["clusterIP"] == nil {
                let ip = nextServiceIP()
                spec["clusterIP"] = .string(ip)
                spec["clusterIPs"] = .array([.string(ip)])
            }
            if spec["clusterIP"]?.stringValue != "None" || spec["selector"] != nil {
                if spec["ipFamilies"] == nil { spec["ipFamilies"] = .array([.string("IPv4")]) }
                if spec["ipFamilyPolicy"] == nil { spec["ipFamilyPolicy"] = .string("SingleStack") }
            }
        }
        if let ports = spec["ports"]?.arrayValue {
            spec["ports"] = .array(ports.map { p in
                guard var o = p.objectValue else { return p }
                if o["protocol"] == nil { o["protocol"] = .string("TCP") }
                if o["targetPort"] == nil { o["targetPort"] = o["port"] }
                return .object(o)
            })
        }
        obj["spec"] = .object(spec)
        if obj["status"] == nil || old == nil { obj["status"] = old?["status"] ?? .object(["loadBalancer": .object([:])]) }
    }

    /// Cluster IPs from 10.96.0.0/12 (kube-apiserver's default `--service-cluster-ip-range`);
    /// .1 is the `kubernetes` Service's.
    private static let serviceIPs = ServiceIPs()
    static func nextServiceIP() -> String { serviceIPs.next() }

    // MARK: Deployments and ReplicaSets

    /// pkg/apis/apps/v1/defaults.go `SetDefaults_Deployment` (replicas 1, strategy
    /// RollingUpdate with maxUnavailable/maxSurge 25%, revisionHistoryLimit 10,
    /// progressDeadlineSeconds 600) and `SetDefaults_ReplicaSet` (replicas 1); the Pod
    /// template gets the Pod defaults; pkg/apis/apps/validation/validation.go
    /// `ValidateDeploymentSpec`: the selector is required and must match the template's labels.
    static func prepareDeployment(_ obj: inout Object, replicaSet: Bool) throws(APIError) {
        let kind: ResourceKind = replicaSet ? .replicaSet : .deployment
        let name = obj["metadata"]?["name"]?.stringValue ?? ""
        var spec = obj["spec"]?.objectValue ?? [:]
        if spec["replicas"] == nil { spec["replicas"] = .int(1) }
        if !replicaSet {
            var strategy = spec["strategy"]?.objectValue ?? [:]
            if strategy["type"] == nil { strategy["type"] = .string("RollingUpdate") }
            if strategy["type"]?.stringValue == "RollingUpdate" {
                var ru = strategy["rollingUpdate"]?.objectValue ?? [:]
                if ru["maxUnavailable"] == nil { ru["maxUnavailable"] = .string("25%") }
                if ru["maxSurge"] == nil { ru["maxSurge"] = .string("25%") }
                strategy["rollingUpdate"] = .object(ru)
            }
            spec["strategy"] = .object(strategy)
            if spec["revisionHistoryLimit"] == nil { spec["revisionHistoryLimit"] = .int(10) }
            if spec["progressDeadlineSeconds"] == nil { spec["progressDeadlineSeconds"] = .int(600) }
        }
        guard let selector = spec["selector"]?.objectValue, !selector.isEmpty else {
            throw APIError.invalid(kind, name, field: "spec.selector", "Required value")
        }
        var template = spec["template"]?.objectValue ?? [:]
        let labels = template["metadata"]?["labels"]?.objectValue ?? [:]
        let wanted = selector["matchLabels"]?.objectValue ?? [:]
        if wanted.contains(where: { labels[$0.key] != $0.value }) {
            throw APIError.invalid(kind, name, field: "spec.template.metadata.labels",
                                   "Invalid value: \(labelsText(labels)): `selector` does not match template `labels`")
        }
        var podSpec = template["spec"]?.objectValue ?? [:]
        if let containers = podSpec["containers"]?.arrayValue { podSpec["containers"] = .array(containers.map(defaultContainer)) }
        let podDefaults: [(String, JSONValue)] = [
            ("restartPolicy", .string("Always")), ("dnsPolicy", .string("ClusterFirst")), ("terminationGracePeriodSeconds", .int(30)),
            ("securityContext", .object([:])), ("schedulerName", .string("default-scheduler")),
        ]
        for (k, v) in podDefaults where podSpec[k] == nil { podSpec[k] = v }
        template["spec"] = .object(podSpec)
        var templateMeta = template["metadata"]?.objectValue ?? [:]
        if templateMeta["creationTimestamp"] == nil { templateMeta["creationTimestamp"] = .null }
        template["metadata"] = .object(templateMeta)
        spec["template"] = .object(template)
        obj["spec"] = .object(spec)
        if obj["status"] == nil { obj["status"] = .object(replicaSet ? ["replicas": .int(0)] : [:]) }
    }

    /// As Go prints a `map[string]string`: `map[app:web]`.
    static func labelsText(_ labels: [String: JSONValue]) -> String {
        "map[" + labels.keys.sorted().map { "\($0):\(labels[$0]?.stringValue ?? "")" }.joined(separator: " ") + "]"
    }

    /// The `autoscaling/v1` Scale of a Deployment or ReplicaSet
    /// (pkg/registry/apps/deployment/storage/storage.go `scaleFromDeployment`).
    static func scale(of obj: JSONValue, kind: ResourceKind) -> JSONValue {
        let meta = obj["metadata"]
        let selector = obj["spec"]?["selector"]?["matchLabels"]?.objectValue ?? [:]
        return .object([
            "kind": .string("Scale"), "apiVersion": .string("autoscaling/v1"),
            "metadata": .object(["name": meta?["name"] ?? .null, "namespace": meta?["namespace"] ?? .null, "uid": meta?["uid"] ?? .null,
                                 "resourceVersion": meta?["resourceVersion"] ?? .null, "creationTimestamp": meta?["creationTimestamp"] ?? .null]),
            "spec": .object(["replicas": obj["spec"]?["replicas"] ?? .int(0)]),
            "status": .object(["replicas": obj["status"]?["replicas"] ?? .int(0),
                               "selector": .string(selector.keys.sorted().map { "\($0)=\(selector[$0]?.stringValue ?? "")" }.joined(separator: ","))]),
        ])
    }

    // MARK: admission policies

    /// pkg/apis/admissionregistration/v1/defaults.go `SetDefaults_ValidatingAdmissionPolicySpec`
    /// (failurePolicy Fail) and `SetDefaults_MatchResources` (matchPolicy Equivalent,
    /// namespaceSelector and objectSelector `{}`); validation requires `spec.validations`,
    /// `spec.auditAnnotations` or `spec.matchConditions`.
    static func prepareAdmissionPolicy(_ obj: inout Object) throws(APIError) {
        let name = obj["metadata"]?["name"]?.stringValue ?? ""
        var spec = obj["spec"]?.objectValue ?? [:]
        if spec["failurePolicy"] == nil { spec["failurePolicy"] = .string("Fail") }
        if var mc = spec["matchConstraints"]?.objectValue {
            defaultMatchResources(&mc)
            spec["matchConstraints"] = .object(mc)
        } else {
            throw APIError.invalid(.validatingAdmissionPolicy, name, field: "spec.matchConstraints", "Required value")
        }
        if (spec["validations"]?.arrayValue ?? []).isEmpty && (spec["auditAnnotations"]?.arrayValue ?? []).isEmpty {
            throw APIError.invalid(.validatingAdmissionPolicy, name, field: "spec.validations", "Required value: validations or auditAnnotations must contain at least one item")
        }
        obj["spec"] = .object(spec)
        // Enforced policies must be ones the devcluster can evaluate (AdmissionPolicy.swift).
        _ = try ValidatingAdmissionPolicies.compile(.object(obj))
    }

    static func prepareAdmissionPolicyBinding(_ obj: inout Object) throws(APIError) {
        let name = obj["metadata"]?["name"]?.stringValue ?? ""
        var spec = obj["spec"]?.objectValue ?? [:]
        guard let policy = spec["policyName"]?.stringValue, !policy.isEmpty else {
            throw APIError.invalid(.validatingAdmissionPolicyBinding, name, field: "spec.policyName", "Required value")
        }
        if (spec["validationActions"]?.arrayValue ?? []).isEmpty {
            throw APIError.invalid(.validatingAdmissionPolicyBinding, name, field: "spec.validationActions", "Required value")
        }
        if var mr = spec["matchResources"]?.objectValue {
            defaultMatchResources(&mr)
            spec["matchResources"] = .object(mr)
        }
        obj["spec"] = .object(spec)
    }

    private static func defaultMatchResources(_ m: inout Object) {
        if m["matchPolicy"] == nil { m["matchPolicy"] = .string("Equivalent") }
        if m["namespaceSelector"] == nil { m["namespaceSelector"] = .object([:]) }
        if m["objectSelector"] == nil { m["objectSelector"] = .object([:]) }
        for key in ["resourceRules", "excludeResourceRules"] {
            guard let rules = m[key]?.arrayValue else { continue }
            m[key] = .array(rules.map { r in
                guard var o = r.objectValue else { return r }
                if o["scope"] == nil { o["scope"] = .string("*") }
                return .object(o)
            })
        }
    }
}

/// Sequential cluster IPs, process-wide (devclusters in one test process never share a Service).
final class ServiceIPs: Sendable {
    private let counter = Mutex(2)
    func next() -> String {
        let n = counter.withLock { n in defer { n += 1 }; return n }
        return "10.96.\((n >> 8) & 0xff).\(n & 0xff)"
    }
}
