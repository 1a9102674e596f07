import Foundation
import KubeClient

/// The fields of stored objects the controllers read, by their Go names. Zero values are what a
/// typed client would see after decoding (`int32` 0, empty string, nil map).
extension JSONValue {
    var metaName: String { self["metadata"]?["name"]?.stringValue ?? "" }
    var metaNamespace: String { self["metadata"]?["namespace"]?.stringValue ?? "" }
    var metaUID: String { self["metadata"]?["uid"]?.stringValue ?? "" }
    var metaGeneration: Int { self["metadata"]?["generation"]?.intValue ?? 0 }
    var metaDeleting: Bool { self["metadata"]?["deletionTimestamp"].map { $0 != .null } ?? false }
    var metaCreated: Date? { self["metadata"]?["creationTimestamp"]?.stringValue.flatMap(RFC3339.parse) }
    var metaFinalizers: [String] { self["metadata"]?["finalizers"]?.arrayValue?.compactMap(\.stringValue) ?? [] }

    var metaLabels: [String: String] { Self.stringMap(self["metadata"]?["labels"]) }
    var metaAnnotations: [String: String] { Self.stringMap(self["metadata"]?["annotations"]) }

    static func stringMap(_ v: JSONValue?) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in v?.objectValue ?? [:] { if let s = v.stringValue { out[k] = s } }
        return out
    }

    static func stringObject(_ map: [String: String]) -> JSONValue { .object(map.mapValues { .string($0) }) }

    var metaOwners: [OwnerRef] { self["metadata"]?["ownerReferences"]?.arrayValue?.map(OwnerRef.init) ?? [] }

    /// `metav1.GetControllerOf`: the owner reference with `controller: true`.
    var metaController: OwnerRef? { metaOwners.first { $0.controller } }

    /// An `*int32` spec field with its API default already applied by the store.
    func intAt(_ path: String...) -> Int {
        var v: JSONValue? = self
        for p in path { v = v?[p] }
        if case .double(let d)? = v { return Int(d) }
        return v?.intValue ?? 0
    }

    func stringAt(_ path: String...) -> String? {
        var v: JSONValue? = self
        for p in path { v = v?[p] }
        return v?.stringValue
    }

    /// Sets `metadata.<key>`.
    mutating func setMetaField(_ key: String, _ value: JSONValue?) {
        var meta = self["metadata"]?.objectValue ?? [:]
        meta[key] = value
        self["metadata"] = .object(meta)
    }
}

/// One `metav1.OwnerRef`.
struct OwnerRef: Sendable, Equatable {
    var apiVersion: String
    var kind: String
    var name: String
    var uid: String
    var controller: Bool
    var blockOwnerDeletion: Bool

    init(apiVersion: String, kind: String, name: String, uid: String, controller: Bool, blockOwnerDeletion: Bool) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.uid = uid
        self.controller = controller
        self.blockOwnerDeletion = blockOwnerDeletion
    }

    init(_ v: JSONValue) {
        apiVersion = v["apiVersion"]?.stringValue ?? ""
        kind = v["kind"]?.stringValue ?? ""
        name = v["name"]?.stringValue ?? ""
        uid = v["uid"]?.stringValue ?? ""
        controller = v["controller"] == .bool(true)
        blockOwnerDeletion = v["blockOwnerDeletion"] == .bool(true)
    }

    /// `metav1.NewControllerRef`: controller and blockOwnerDeletion both true.
    static func controller(of owner: JSONValue, kind: ResourceKind) -> OwnerRef {
        OwnerRef(apiVersion: kind.apiVersion, kind: kind.kind, name: owner.metaName, uid: owner.metaUID, controller: true, blockOwnerDeletion: true)
    }

    var json: JSONValue {
        .object(["apiVersion": .string(apiVersion), "kind": .string(kind), "name": .string(name), "uid": .string(uid),
                 "controller": .bool(controller), "blockOwnerDeletion": .bool(blockOwnerDeletion)])
    }
}

/// A `metav1.LabelSelector` (matchLabels and matchExpressions), as
/// k8s.io/apimachinery `pkg/apis/meta/v1/helpers.go` `LabelSelectorAsSelector` reads it: a nil
/// selector selects nothing, an empty one everything.
struct LabelSelector: Sendable {
    enum Operator: Sendable { case `in`, notIn, exists, doesNotExist }
    var matchLabels: [String: String]
    var expressions: [(key: String, op: Operator, values: Set<String>)]
    /// The selector was absent (`labels.Nothing()`).
    var isNil: Bool

    init(_ json: JSONValue?) {
        guard let json, json != .null else {
            matchLabels = [:]
            expressions = []
            isNil = true
            return
        }
        isNil = false
        matchLabels = JSONValue.stringMap(json["matchLabels"])
        expressions = (json["matchExpressions"]?.arrayValue ?? []).compactMap { e in
            guard let key = e["key"]?.stringValue else { return nil }
            let op: Operator
            switch e["operator"]?.stringValue {
            case "In": op = .in
            case "NotIn": op = .notIn
            case "Exists": op = .exists
            case "DoesNotExist": op = .doesNotExist
            default: return nil
            }
            return (key, op, Set(e["values"]?.arrayValue?.compactMap(\.stringValue) ?? []))
        }
    }

    /// Selects everything (`metav1.LabelSelector{}`).
    var isEmpty: Bool { !isNil && matchLabels.isEmpty && expressions.isEmpty }

    func matches(_ labels: [String: String]) -> Bool {
        if isNil { return false }
        for (k, v) in matchLabels where labels[k] != v { return false }
        for e in expressions {
            switch e.op {
            case .in: guard let v = labels[e.key], e.values.contains(v) else { return false }
            case .notIn: if let v = labels[e.key], e.values.contains(v) { return false }
            case .exists: if labels[e.key] == nil { return false }
            case .doesNotExist: if labels[e.key] != nil { return false }
            }
        }
        return true
    }
}

/// Pod state as k8s.io/kubernetes `pkg/api/v1/pod/util.go` reads it.
enum PodState {
    /// `IsPodReady`: the Ready condition is True.
    static func isReady(_ pod: JSONValue) -> Bool { readyCondition(pod)?["status"]?.stringValue == "True" }

    static func readyCondition(_ pod: JSONValue) -> JSONValue? {
        pod["status"]?["conditions"]?.arrayValue?.first { $0["type"]?.stringValue == "Ready" }
    }

    /// `IsPodAvailable`: ready, and ready for at least `minReadySeconds` (by the Ready
    /// condition's lastTransitionTime).
    static func isAvailable(_ pod: JSONValue, minReadySeconds: Int, now: Date) -> Bool {
        guard isReady(pod) else { return false }
        if minReadySeconds == 0 { return true }
        guard let since = readyCondition(pod)?["lastTransitionTime"]?.stringValue.flatMap(RFC3339.parse) else { return false }
        return since.addingTimeInterval(TimeInterval(minReadySeconds)) < now
    }

    /// pkg/controller/controller_utils.go `IsPodActive`: not Succeeded, not Failed, not being deleted.
    static func isActive(_ pod: JSONValue) -> Bool {
        let phase = pod["status"]?["phase"]?.stringValue
        return phase != "Succeeded" && phase != "Failed" && !pod.metaDeleting
    }

    static func phase(_ pod: JSONValue) -> String { pod["status"]?["phase"]?.stringValue ?? "" }
}

/// k8s.io/apimachinery `pkg/util/intstr/intstr.go` `GetScaledValueFromIntOrPercent`: an int is
/// itself, `"N%"` is N percent of `total`, rounded up or down.
enum IntOrPercent {
    static func scaled(_ v: JSONValue?, total: Int, roundUp: Bool) -> Int? {
        switch v {
        case .int(let i)?: return i
        case .double(let d)?: return Int(d)
        case .string(let s)? where s.hasSuffix("%"):
            guard let p = Int(s.dropLast()) else { return nil }
            let product = p * total
            return roundUp ? (product + 99) / 100 : product / 100
        case nil, .null?: return 0
        default: return nil
        }
    }
}

/// Conditions (`[]…Condition` keyed by `type`), with the setters of
/// pkg/controller/deployment/util/deployment_util.go `SetDeploymentCondition` /
/// `RemoveDeploymentCondition` (the ReplicaSet ones in pkg/controller/replicaset/replica_set_utils.go
/// are the same).
enum Conditions {
    static func get(_ status: JSONValue?, _ type: String) -> JSONValue? {
        status?["conditions"]?.arrayValue?.first { $0["type"]?.stringValue == type }
    }

    /// A condition whose status and reason are unchanged is left as it is; one whose status is
    /// unchanged keeps its lastTransitionTime.
    static func set(_ status: inout [String: JSONValue], _ condition: JSONValue) {
        let type = condition["type"]?.stringValue ?? ""
        var condition = condition
        let current = get(.object(status), type)
        if let current, current["status"] == condition["status"], current["reason"] == condition["reason"] { return }
        if let current, current["status"] == condition["status"] { condition["lastTransitionTime"] = current["lastTransitionTime"] }
        var list = (status["conditions"]?.arrayValue ?? []).filter { $0["type"]?.stringValue != type }
        list.append(condition)
        status["conditions"] = .array(list)
    }

    static func remove(_ status: inout [String: JSONValue], _ type: String) {
        let list = (status["conditions"]?.arrayValue ?? []).filter { $0["type"]?.stringValue != type }
        status["conditions"] = list.isEmpty ? nil : .array(list)
    }
}
