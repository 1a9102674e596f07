import Foundation

/// Seeded generators of realistic watch events, so the benchmark's input is
/// checked in as code, not as megabytes of data.
public struct SampleStream {
    private var rng: SplitMix

    public init(seed: UInt64) { rng = SplitMix(seed: seed) }

    mutating func hex(_ n: Int) -> String { String((0..<n).map { _ in "0123456789abcdef".randomElement(using: &rng)! }) }
    mutating func uid() -> String { "\(hex(8))-\(hex(4))-\(hex(4))-\(hex(4))-\(hex(12))" }

    /// A ~1 KB Secret event.
    public mutating func secretEvent(type: String, index i: Int, resourceVersion rv: Int) -> String {
        let value = Data((0..<420).map { _ in UInt8.random(in: 32...126, using: &rng) }).base64EncodedString()
        return #"{"type":"\#(type)","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"app-secret-\#(i)","namespace":"team-\#(i % 20)","uid":"\#(uid())","resourceVersion":"\#(rv)","creationTimestamp":"2026-11-20T10:00:00Z","labels":{"app.kubernetes.io/name":"app-\#(i % 50)","app.kubernetes.io/managed-by":"helm"},"annotations":{"meta.helm.sh/release-name":"app-\#(i % 50)","meta.helm.sh/release-namespace":"team-\#(i % 20)"},"managedFields":[{"manager":"helm","operation":"Update","apiVersion":"v1","time":"2026-11-20T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:data":{".":{},"f:password":{},"f:username":{}},"f:metadata":{"f:labels":{".":{},"f:app.kubernetes.io/managed-by":{}}},"f:type":{}}}]},"data":{"password":"\#(value)","username":"\#(Data("user-\(i)".utf8).base64EncodedString())"},"type":"Opaque"}}"# + "\n"
    }

    /// A ~5 KB Pod event as kube-apiserver writes it (owners, both managedFields
    /// entries, two containers with env/probes/resources/mounts, a projected
    /// token volume, tolerations, conditions, container statuses).
    public mutating func podEvent(type: String, index i: Int, resourceVersion rv: Int) -> String {
        let rs = "web-\(hex(10))"
        let pod = "\(rs)-\(hex(5))"
        let ns = "team-\(i % 20)"
        let image = "blr.vultrcr.com/kubetrace/web:1.\(i % 30).\(i % 7)"
        let waiting = i % 97 == 0
            ? #"{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image \"\#(image)\""}}"#
            : #"{"running":{"startedAt":"2026-11-20T10:00:05Z"}}"#
        func env(_ n: Int) -> String { (0..<n).map { #"{"name":"ENV_\#($0)","value":"value-\#($0)-\#(i)"}"# }.joined(separator: ",") }
        func container(_ name: String) -> String {
            #"{"name":"\#(name)","image":"\#(image)","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],"env":[\#(env(6)),{"name":"POD_NAME","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}],"resources":{"limits":{"cpu":"500m","memory":"256Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},"volumeMounts":[{"name":"config","mountPath":"/etc/app"},{"name":"kube-api-access-\#(hex(5))","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"livenessProbe":{"httpGet":{"path":"/healthz","port":8080,"scheme":"HTTP"},"initialDelaySeconds":10,"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"readinessProbe":{"httpGet":{"path":"/readyz","port":8080,"scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":5,"successThreshold":1,"failureThreshold":3},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent","securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"runAsNonRoot":true,"capabilities":{"drop":["ALL"]}}}"#
        }
        func status(_ name: String) -> String {
            #"{"name":"\#(name)","state":\#(waiting),"lastState":{},"ready":\#(waiting.contains("waiting") ? "false" : "true"),"restartCount":\#(i % 3),"image":"\#(image)","imageID":"blr.vultrcr.com/kubetrace/web@sha256:\#(hex(64))","containerID":"containerd://\#(hex(64))","started":true}"#
        }
        let managed = #"[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-20T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"\#(uid())\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:env":{},"f:image":{},"f:name":{},"f:resources":{}}},"f:dnsPolicy":{},"f:restartPolicy":{}}}},{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2026-11-20T10:00:06Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:containerStatuses":{},"f:hostIP":{},"f:phase":{},"f:podIP":{},"f:podIPs":{".":{},"k:{\"ip\":\"10.244.\#(i % 250).\#(i % 200)\"}":{}},"f:startTime":{}}},"subresource":"status"}]"#
        let conditions = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"].map {
            #"{"type":"\#($0)","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-20T10:00:06Z"}"#
        }.joined(separator: ",")
        return #"{"type":"\#(type)","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"\#(pod)","generateName":"\#(rs)-","namespace":"\#(ns)","uid":"\#(uid())","resourceVersion":"\#(rv)","creationTimestamp":"2026-11-20T10:00:00Z","labels":{"app":"web","pod-template-hash":"\#(hex(10))"},"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-20T09:59:00Z"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"\#(rs)","uid":"\#(uid())","controller":true,"blockOwnerDeletion":true}],"managedFields":\#(managed)},"spec":{"volumes":[{"name":"config","configMap":{"name":"web-config","defaultMode":420}},{"name":"kube-api-access-\#(hex(5))","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},{"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}],"defaultMode":420}}],"containers":[\#(container("web")),\#(container("sidecar"))],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"web","serviceAccount":"web","nodeName":"node-\#(i % 12)","securityContext":{"seccompProfile":{"type":"RuntimeDefault"}},"imagePullSecrets":[{"name":"kubetrace-registry"}],"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running","conditions":[\#(conditions)],"hostIP":"192.168.1.\#(i % 12)","hostIPs":[{"ip":"192.168.1.\#(i % 12)"}],"podIP":"10.244.\#(i % 250).\#(i % 200)","podIPs":[{"ip":"10.244.\#(i % 250).\#(i % 200)"}],"startTime":"2026-11-20T10:00:00Z","containerStatuses":[\#(status("web")),\#(status("sidecar"))],"qosClass":"Burstable"}}}"# + "\n"
    }
}

/// A small, fast, seedable generator (SplitMix64): the same sequence for the same seed everywhere.
public struct SplitMix: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
