/// What `kubetrace-devcluster --node` runs: one Node whose kubelet starts each container as a
/// real process (root only: every container gets private mount, UTS and network namespaces),
/// with kube-controller-manager's Deployment, ReplicaSet and garbage-collector controllers.
public struct NodeOptions: Sendable {
    /// The Node object's name (a kubelet registers itself under its hostname).
    public var name = "kubetrace-devcluster-node"
    /// Image reference → the local program that stands for it (`--image REF=PATH`).
    public var images: [String: NodeImage] = [:]
    /// How long after a Secret or ConfigMap changes the kubelet rewrites the volumes that
    /// project it. kubelet's is its sync period (1 min) plus the cache TTL; shorter here so
    /// tests can watch the `..data` swap happen.
    public var volumeSyncDelay: Duration = .seconds(2)
    /// CrashLoopBackOff and image-pull back-off: kubelet starts at 10 s and doubles to 5 min
    /// (pkg/kubelet/kubelet.go `backOffPeriod`, `MaxContainerBackOff`).
    public var backoffInitial: Duration = .seconds(10)
    public var backoffMax: Duration = .seconds(300)
    /// Where the node keeps pod volumes and container logs (the kubelet's root dir and
    /// /var/log/pods); nil: a fresh directory under the state directory or the temporary one.
    public var directory: String?

    public init() {}
}

/// One image the node can run: the reference it answers to and the program that stands for it.
public struct NodeImage: Sendable, Equatable {
    /// As written in a Pod (`blr.vultrcr.com/kubetrace/kubetrace-operator:0.1.0`).
    public var reference: String
    /// Absolute path of the program run as the image's ENTRYPOINT.
    public var executable: String
    /// The image's `USER` (uid, gid); nil is an image without one, which runs as root.
    public var user: (uid: UInt32, gid: UInt32)?

    public init(reference: String, executable: String, user: (uid: UInt32, gid: UInt32)? = nil) {
        self.reference = reference
        self.executable = executable
        self.user = user
    }

    public static func == (a: NodeImage, b: NodeImage) -> Bool {
        a.reference == b.reference && a.executable == b.executable && a.user?.uid == b.user?.uid && a.user?.gid == b.user?.gid
    }

    /// Parses `--image REF=PATH[,user=UID[:GID]]`; the error names the flag and what is wrong.
    public static func parse(_ flag: String) throws(NodeImageParseError) -> NodeImage {
        guard let eq = flag.firstIndex(of: "=") else { throw NodeImageParseError("--image \(flag): expected REF=PATH[,user=UID[:GID]]") }
        let reference = String(flag[..<eq])
        var rest = Substring(flag[flag.index(after: eq)...])
        var user: (UInt32, UInt32)?
        if let comma = rest.range(of: ",user=", options: .backwards) {
            let spec = rest[comma.upperBound...].split(separator: ":", omittingEmptySubsequences: false)
            guard (1...2).contains(spec.count), let uid = UInt32(spec[0]), let gid = spec.count == 2 ? UInt32(spec[1]) : uid else {
                throw NodeImageParseError("--image \(reference): user must be UID or UID:GID")
            }
            user = (uid, gid)
            rest = rest[..<comma.lowerBound]
        }
        guard !reference.isEmpty, !reference.contains(where: \.isWhitespace) else { throw NodeImageParseError("--image \(flag): the image reference is empty or has spaces") }
        guard rest.hasPrefix("/") else { throw NodeImageParseError("--image \(reference): PATH must be absolute, got \"\(rest)\"") }
        return NodeImage(reference: reference, executable: String(rest), user: user)
    }
}

public struct NodeImageParseError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}
