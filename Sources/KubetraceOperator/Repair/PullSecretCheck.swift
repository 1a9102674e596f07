import Foundation
import KubeClient
import KubeRuntime
import KubetraceFormats

/// Pull credentials known to work: what the operator last wrote or first saw valid.
struct PullCredentials: Sendable, Equatable {
    /// The `.dockerconfigjson` document.
    var document: SecretBytes
    /// From annotation `kubetrace.net/registry-expires-at`, when known.
    var expiresAt: Date?

    static let expiryAnnotation = "kubetrace.net/registry-expires-at"
}

/// The parts of a pull Secret that are judged, from a watch projection or a fresh GET.
struct PullSecretView: Sendable {
    var type: String
    var document: SecretBytes?
    var expiresAt: String?
    var managed: Bool

    init(_ p: ManagedSecret) {
        type = p.type
        document = p.values[".dockerconfigjson"]
        expiresAt = p.meta.annotations[PullCredentials.expiryAnnotation]
        managed = p.meta.labels[RepairConfiguration.managedByKey] == RepairConfiguration.managedByValue
    }

    init(_ s: Secret) {
        type = s.type ?? "Opaque"
        document = s.data?[".dockerconfigjson"]
        expiresAt = s.metadata.annotations?[PullCredentials.expiryAnnotation]
        managed = s.metadata.labels?[RepairConfiguration.managedByKey] == RepairConfiguration.managedByValue
    }
}

/// What is wrong with an observed pull Secret, as a pure judgement.
enum PullSecretProblem: Equatable, Sendable, CustomStringConvertible {
    case missing
    /// The name is taken by a Secret of another type (the type is immutable).
    case foreignType(String)
    case keyMissing
    case notJSON
    case wrongRegistry
    /// Valid, but older than the last known good credentials.
    case stale
    /// A copy in a target namespace that differs from the source.
    case outdatedCopy

    var description: String {
        switch self {
        case .missing: "deleted"
        case .foreignType(let t): "has type \(t), not kubernetes.io/dockerconfigjson"
        case .keyMissing: "lacks key .dockerconfigjson"
        case .notJSON: ".dockerconfigjson is not valid JSON"
        case .wrongRegistry: ".dockerconfigjson has no credentials for the managed registry"
        case .stale: "holds credentials older than the last known good ones"
        case .outdatedCopy: "differs from the source pull Secret"
        }
    }
}

enum PullSecretCheck {
    static let dockerConfigType = "kubernetes.io/dockerconfigjson"

    /// Whether `document` is a docker config JSON with an `auths` entry for `host`.
    static func hasCredentials(_ document: SecretBytes, for host: String) -> Bool {
        DockerConfigJSON.hasCredentials(document, for: host)
    }

    /// The source pull Secret (the operator's namespace) against the last known good credentials.
    static func judgeSource(_ secret: PullSecretView?, host: String, lastKnownGood: PullCredentials?) -> PullSecretProblem? {
        guard let secret else { return .missing }
        if secret.type != dockerConfigType { return .foreignType(secret.type) }
        guard let document = secret.document else { return .keyMissing }
        guard (try? JSONValue.parse(document.bytes))?.objectValue != nil else { return .notJSON }
        guard hasCredentials(document, for: host) else { return .wrongRegistry }
        if let good = lastKnownGood, good.document != document {
            let observed = secret.expiresAt.flatMap(RFC3339.parse)
            if let goodExpiry = good.expiresAt, observed.map({ $0 < goodExpiry }) ?? true { return .stale }
        }
        return nil
    }

    /// A copy in a target namespace must equal the source.
    static func judgeCopy(_ secret: PullSecretView?, source: PullCredentials) -> PullSecretProblem? {
        guard let secret else { return .missing }
        if secret.type != dockerConfigType { return .foreignType(secret.type) }
        guard let document = secret.document else { return .keyMissing }
        return document == source.document ? nil : .outdatedCopy
    }

    /// Whether an image reference is pulled from `host` (`host/path:tag`, `host:port/…`).
    static func image(_ image: String, isOn host: String) -> Bool {
        guard let first = image.split(separator: "/", maxSplits: 1).first, image.contains("/") else { return false }
        return first == host || first.hasPrefix(host + ":")
    }

    static let pullFailureReasons: Set<String> = ["ErrImagePull", "ImagePullBackOff"]

    /// A Pod waiting to pull an image from `host`.
    static func isStuck(_ pod: PodProjection, host: String) -> Bool {
        pod.waiting.contains { pullFailureReasons.contains($0.reason) } && pod.images.contains { image($0, isOn: host) }
    }
}
