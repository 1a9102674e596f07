import KubeClient
import Synchronization

/// The warnings admission produced for the request being served, for its `Warning` headers.
/// Set per request by `APIServer.respond` as a task local, so the store's write path adds to
/// it without another return value (k8s.io/apiserver `pkg/warning` `AddWarning`, written by
/// `pkg/endpoints/filters/warning.go`; duplicates are dropped there too).
final class AdmissionWarnings: Sendable {
    @TaskLocal static var current: AdmissionWarnings?
    private let messages = Mutex<[String]>([])

    init() {}

    func add(_ message: String) {
        messages.withLock { if !$0.contains(message) { $0.append(message) } }
    }

    var all: [String] { messages.withLock { $0 } }

    /// apimachinery `pkg/util/net/http.go` `NewWarningHeader(299, "-", text)`: `299 - "text"`
    /// with `"` and `\` escaped.
    static func headerValue(_ text: String) -> String {
        var quoted = "\""
        for c in text {
            if c == "\"" || c == "\\" { quoted.append("\\") }
            quoted.append(c)
        }
        return "299 - " + quoted + "\""
    }
}

extension ObjectStore {
    /// Validating admission by the stored ValidatingAdmissionPolicies, on the final object
    /// (after defaulting and the kind's strategy) and before it is stored: `store.go`
    /// `(*Store).create` runs `createValidation` after `rest.BeforeCreate`, `Update` runs
    /// `updateValidation` after `rest.BeforeUpdate`, `Delete` runs `deleteValidation` after
    /// the preconditions. Writes without a user are the devcluster's own and are not admitted.
    /// The admin (system:masters) is not exempt.
    /// `object` and `old` are built only when a policy exists: a write with none pays one lookup.
    func admitByPolicies(_ operation: String, _ kind: ResourceKind, namespace: String?, name: String,
                         object: @autoclosure () -> JSONValue?, old: @autoclosure () -> JSONValue?, options: WriteOptions) throws(APIError) {
        guard let user = options.user else { return }
        let policies = Array(stored(.validatingAdmissionPolicy).values)
        if policies.isEmpty { return }
        let object = object()
        let old = old()
        var a = AdmissionAttributes(operation: operation, resource: kind,
                                    kind: .init(group: kind.group, version: kind.version, kind: kind.kind),
                                    namespace: namespace ?? "", name: name, object: object, oldObject: old,
                                    user: user, dryRun: options.dryRun)
        if kind == .namespace { a.namespace = name }
        if options.admissionSubresource == "scale" {
            // `…/scale` is admitted as the Scale it writes (apps `ScaleREST.Update`).
            a.subresource = "scale"
            a.kind = .init(group: "autoscaling", version: "v1", kind: "Scale")
            a.object = object.map { Strategy.scale(of: $0, kind: kind) }
            a.oldObject = old.map { Strategy.scale(of: $0, kind: kind) }
        } else if let sub = options.subresource {
            a.subresource = sub
        }
        let namespaces = stored(.namespace)
        let outcome = ValidatingAdmissionPolicies.evaluate(
            a, policies: policies, bindings: Array(stored(.validatingAdmissionPolicyBinding).values),
            namespaceNamed: { namespaces[ObjectKey(namespace: "", name: $0)] })
        if let warnings = AdmissionWarnings.current { outcome.warnings.forEach(warnings.add) }
        if let error = outcome.error { throw error }
    }
}
