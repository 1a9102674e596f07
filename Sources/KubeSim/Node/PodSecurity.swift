import KubeClient

/// A container's effective security settings, as the kubelet hands them to the runtime.
struct ContainerSecurity: Sendable, Equatable {
    var uid: UInt32
    var gid: UInt32
    var supplementalGroups: [UInt32]
    var noNewPrivileges: Bool
    var readOnlyRootFilesystem: Bool
    var capabilities: [String]
    /// `seccompProfile.type` as asked (RuntimeDefault, Unconfined, Localhost); recorded, not
    /// enforced: the node installs no seccomp filter.
    var seccompProfile: String?
}

enum PodSecurity {
    /// pkg/securitycontext/util.go `DetermineEffectiveSecurityContext`: the Pod's context with
    /// the container's fields on top (a field set on the container wins).
    static func effective(pod: JSONValue, container: JSONValue) -> [String: JSONValue] {
        var sc = pod["spec"]?["securityContext"]?.objectValue ?? [:]
        for k in ["supplementalGroups", "fsGroup", "fsGroupChangePolicy", "sysctls", "supplementalGroupsPolicy"] { sc[k] = nil }
        for (k, v) in container["securityContext"]?.objectValue ?? [:] { sc[k] = v }
        return sc
    }

    /// pkg/kubelet/kuberuntime/security_context_others.go `verifyRunAsNonRoot`, then the CRI
    /// security context (security_context.go `determineEffectiveSecurityContext`,
    /// `convertToRuntimeCapabilities`, pkg/securitycontext `AddNoNewPrivileges`):
    /// - uid: `runAsUser`, else the image's USER, else 0 (kuberuntime_container.go
    ///   `getImageUser`: an image without USER runs as root);
    /// - gid: `runAsGroup`, else the image user's group when the uid is the image's, else 0;
    /// - supplementary groups: the Pod's `fsGroup`, then `supplementalGroups`;
    /// - capabilities: containerd's default set, minus `drop` (ALL drops every one), plus
    ///   `add`; `privileged` keeps the defaults (no device or full-capability grant here);
    /// - `allowPrivilegeEscalation: false` → no_new_privs.
    /// The runAsNonRoot refusals carry the kubelet's text, `format.Pod` being `name_ns(uid)`.
    static func resolve(pod: JSONValue, container: JSONValue, image: NodeImage) throws(ContainerConfigError) -> ContainerSecurity {
        let sc = effective(pod: pod, container: container)
        let podSC = pod["spec"]?["securityContext"]
        let meta = pod["metadata"]
        let formatPod = "\(meta?["name"]?.stringValue ?? "")_\(meta?["namespace"]?.stringValue ?? "")(\(meta?["uid"]?.stringValue ?? ""))"
        let name = container["name"]?.stringValue ?? ""
        let runAsUser = sc["runAsUser"]?.intValue
        if sc["runAsNonRoot"] == .bool(true) {
            if let runAsUser {
                if runAsUser == 0 {
                    throw ContainerConfigError(message: "container's runAsUser breaks non-root policy (pod: \"\(formatPod)\", container: \(name))")
                }
            } else if (image.user?.uid ?? 0) == 0 {
                // Our images name their user numerically (`--image REF=PATH,user=UID`), so the
                // kubelet's other refusal, "image has non-numeric user (…), cannot verify user is
                // non-root", cannot arise.
                throw ContainerConfigError(message: "container has runAsNonRoot and image will run as root (pod: \"\(formatPod)\", container: \(name))")
            }
        }
        let uid = runAsUser.map { UInt32(clamping: $0) } ?? image.user?.uid ?? 0
        let gid: UInt32
        if let g = sc["runAsGroup"]?.intValue {
            gid = UInt32(clamping: g)
        } else if let user = image.user, user.uid == uid {
            gid = user.gid
        } else {
            gid = 0
        }
        var groups: [UInt32] = []
        if let fs = podSC?["fsGroup"]?.intValue { groups.append(UInt32(clamping: fs)) }
        for g in podSC?["supplementalGroups"]?.arrayValue ?? [] {
            if let v = g.intValue, !groups.contains(UInt32(clamping: v)) { groups.append(UInt32(clamping: v)) }
        }
        var caps = ContainerLaunch.defaultCapabilities
        let drop = (sc["capabilities"]?["drop"]?.arrayValue ?? []).compactMap(\.stringValue).map(capabilityName)
        let add = (sc["capabilities"]?["add"]?.arrayValue ?? []).compactMap(\.stringValue).map(capabilityName)
        if drop.contains("ALL") { caps = [] } else { caps.removeAll { drop.contains($0) } }
        for c in add where c != "ALL" && !caps.contains(c) { caps.append(c) }
        return ContainerSecurity(
            uid: uid, gid: gid, supplementalGroups: groups,
            noNewPrivileges: sc["allowPrivilegeEscalation"] == .bool(false),
            readOnlyRootFilesystem: sc["readOnlyRootFilesystem"] == .bool(true),
            capabilities: caps,
            seccompProfile: sc["seccompProfile"]?["type"]?.stringValue)
    }

    /// Kubernetes names capabilities without the `CAP_` prefix containerd adds; accept both.
    static func capabilityName(_ s: String) -> String {
        let upper = s.uppercased()
        return upper.hasPrefix("CAP_") ? String(upper.dropFirst(4)) : upper
    }

    /// The Pod's `fsGroup`, which volumes are written with.
    static func fsGroup(pod: JSONValue) -> UInt32? {
        pod["spec"]?["securityContext"]?["fsGroup"]?.intValue.map { UInt32(clamping: $0) }
    }
}
