import Foundation

/// The Go zero value of each served kind, as kube-apiserver's JSON serializer writes it.
///
/// A watch BOOKMARK carries exactly this: the watch cache makes the object with the storage's
/// `newFunc()` (the kind's zero value), sets only `metadata.resourceVersion` through the
/// versioner, and for the bookmark that ends a watch-list's initial events adds the annotation
/// `k8s.io/initial-events-end: "true"` (k8s.io/apiserver `pkg/storage/cacher/cacher.go`,
/// `Cacher.Watch` / `cacheWatcher.convertToWatchEvent`, and `pkg/storage/cacher/cache_watcher.go`
/// `cacheWatcher.processInterval`). encoding/json then writes every field whose tag lacks
/// `omitempty`: a nil slice or map as `null`, a struct as `{}`, a zero `metav1.Time` as `null`
/// (`Time.MarshalJSON`; `ObjectMeta.CreationTimestamp` is a struct, which `omitempty` never
/// drops). Each body below follows the json tags of k8s.io/api `<group>/<version>/types.go`.
public enum ZeroValue {
    /// What follows `metadata` in the zero value, keyed by `apiVersion kind`; kinds absent here
    /// have nothing but type and object metadata (Secret, ServiceAccount, ConfigMap, Endpoints).
    static let bodies: [String: String] = [
        // core/v1 types.go: PodSpec.Containers `json:"containers"`; PodStatus is a struct.
        "v1 Pod": #""spec":{"containers":null},"status":{}"#,
        // NodeStatus.DaemonEndpoints and NodeInfo are structs; DaemonEndpoint.Port is
        // `json:"Port"` and NodeSystemInfo's strings have no omitempty.
        "v1 Node": #""spec":{},"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":0}},"nodeInfo":{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"","osImage":"","containerRuntimeVersion":"","kubeletVersion":"","kubeProxyVersion":"","operatingSystem":"","architecture":""}}"#,
        // NamespaceSpec and NamespaceStatus: structs, every field omitempty.
        "v1 Namespace": #""spec":{},"status":{}"#,
        // ServiceStatus.LoadBalancer `json:"loadBalancer,omitempty"` is a struct.
        "v1 Service": #""spec":{},"status":{"loadBalancer":{}}"#,
        // Event.InvolvedObject and Source are structs; First/LastTimestamp and EventTime are
        // zero times; ReportingController/ReportingInstance have no omitempty.
        "v1 Event": #""involvedObject":{},"source":{},"firstTimestamp":null,"lastTimestamp":null,"eventTime":null,"reportingComponent":"","reportingInstance":"""#,
        // events/v1 types.go: EventTime `json:"eventTime"`; Regarding and DeprecatedSource structs.
        "events.k8s.io/v1 Event": #""eventTime":null,"regarding":{},"deprecatedSource":{},"deprecatedFirstTimestamp":null,"deprecatedLastTimestamp":null"#,
        // rbac/v1 types.go: Role.Rules `json:"rules"`; RoleRef is a struct of plain strings.
        "rbac.authorization.k8s.io/v1 Role": #""rules":null"#,
        "rbac.authorization.k8s.io/v1 ClusterRole": #""rules":null"#,
        "rbac.authorization.k8s.io/v1 RoleBinding": #""roleRef":{"apiGroup":"","kind":"","name":""}"#,
        "rbac.authorization.k8s.io/v1 ClusterRoleBinding": #""roleRef":{"apiGroup":"","kind":"","name":""}"#,
        // coordination/v1: LeaseSpec's fields are all pointers with omitempty.
        "coordination.k8s.io/v1 Lease": #""spec":{}"#,
        // apps/v1: DeploymentSpec.Selector `json:"selector"` (a pointer), Template a
        // PodTemplateSpec (its ObjectMeta and PodSpec), Strategy a struct. The watch cache
        // holds the internal type, whose `Replicas int32` converts to a non-nil `*int32`
        // (metav1.Convert_int32_To_Pointer_int32), hence `"replicas":0`.
        "apps/v1 Deployment": #""spec":{"replicas":0,"selector":null,"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":null}},"strategy":{}},"status":{}"#,
        // ReplicaSetStatus.Replicas `json:"replicas"` has no omitempty.
        "apps/v1 ReplicaSet": #""spec":{"replicas":0,"selector":null,"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":null}}},"status":{"replicas":0}"#,
        // networking/v1: NetworkPolicySpec.PodSelector is a LabelSelector struct.
        "networking.k8s.io/v1 NetworkPolicy": #""spec":{"podSelector":{}}"#,
        // admissionregistration/v1: the specs' fields are all omitempty.
        "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy": #""spec":{},"status":{}"#,
        "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding": #""spec":{}"#,
        // apiextensions/v1: Group, Names.Plural/Kind, Scope, Versions, Conditions,
        // AcceptedNames and StoredVersions have no omitempty.
        "apiextensions.k8s.io/v1 CustomResourceDefinition": #""spec":{"group":"","names":{"plural":"","kind":""},"scope":"","versions":null},"status":{"conditions":null,"acceptedNames":{"plural":"","kind":""},"storedVersions":null}"#,
    ]

    /// The zero value of `kind` with only the resourceVersion (and, when asked, the
    /// initial-events-end annotation) set: a BOOKMARK's object. Custom resources are
    /// `unstructured.Unstructured`, whose zero value has no fields at all, so their
    /// bookmark carries only type and metadata (no `creationTimestamp`).
    ///
    /// `creationTimestampNull`: kube-apiserver 1.32 and 1.33 write `"creationTimestamp":null`
    /// (the devcluster answers as 1.32); from 1.34 the tag is `omitempty,omitzero`
    /// (apimachinery commit 503b989, "Omit null metadata.creationTimestamp") and it is absent,
    /// in the template's metadata too. Decoders must take both.
    public static func bookmarkObject(apiVersion: String, kind: String, resourceVersion: String, initialEventsEnd: Bool, custom: Bool = false,
                                      creationTimestampNull: Bool = true) -> [UInt8] {
        var s = #"{"kind":"\#(kind)","apiVersion":"\#(apiVersion)","metadata":{"resourceVersion":"\#(resourceVersion)""#
        if !custom && creationTimestampNull { s += #","creationTimestamp":null"# }
        if initialEventsEnd { s += #","annotations":{"k8s.io/initial-events-end":"true"}"# }
        s += "}"
        if !custom, var body = bodies["\(apiVersion) \(kind)"] {
            if !creationTimestampNull { body = body.replacingOccurrences(of: #"{"creationTimestamp":null}"#, with: "{}") }
            s += "," + body
        }
        s += "}"
        return Array(s.utf8)
    }

    /// Every kind with a known zero value, as (apiVersion, kind): for tests that feed each
    /// one through the decoders.
    public static var kinds: [(apiVersion: String, kind: String)] {
        let plain = [("v1", "Secret"), ("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Endpoints")]
        return plain + bodies.keys.sorted().map { key in
            let parts = key.split(separator: " ")
            return (String(parts[0]), String(parts[1]))
        }
    }
}
