import Foundation
import KubeClient

/// What validating admission knows about one write (k8s.io/apiserver `pkg/admission/attributes.go`
/// `attributesRecord`).
struct AdmissionAttributes: Sendable {
    struct GroupVersionKind: Sendable, Equatable {
        var group: String, version: String, kind: String
    }
    /// CREATE, UPDATE or DELETE.
    var operation: String
    /// The resource written (for `…/scale`, the parent: `deployments`).
    var resource: ResourceKind
    /// `status`, `scale` or "".
    var subresource = ""
    /// The kind of `object` (autoscaling/v1 Scale for `…/scale`).
    var kind: GroupVersionKind
    /// The request's namespace; for a Namespace its own name (`handlers/create.go`:
    /// `if len(namespace) == 0 && scope.Resource == namespaceGVR { namespace = name }`).
    var namespace: String
    /// The name on the request: empty for a create by `generateName`.
    var name: String
    var object: JSONValue?
    var oldObject: JSONValue?
    var user: UserInfo
    var dryRun: Bool
}

/// One policy ready to evaluate: every expression compiled.
struct CompiledAdmissionPolicy: Sendable {
    struct Validation: Sendable {
        var program: CELProgram
        var message: String?
        var reason: String?
    }
    var name: String
    var failurePolicyIgnore: Bool
    var matchConditions: [CELProgram]
    var validations: [Validation]
}

/// Enforcement of ValidatingAdmissionPolicies and their bindings, as the ValidatingAdmissionPolicy
/// plugin of k8s.io/apiserver does it (`pkg/admission/plugin/policy/validating/dispatcher.go`
/// `dispatcher.Dispatch`, `validator.go` `validator.Validate`; matching in
/// `pkg/admission/plugin/policy/generic/policy_matcher.go` and `pkg/admission/plugin/policy/matching/matching.go`).
enum ValidatingAdmissionPolicies {
    // MARK: the CEL environment

    /// `request` (apiserver `pkg/admission/plugin/cel/compile.go` `BuildRequestType`).
    static let requestType: CELType = {
        let gvk = CELType.object(name: "kubernetes.GroupVersionKind", fields: ["group": .string, "version": .string, "kind": .string])
        let gvr = CELType.object(name: "kubernetes.GroupVersionResource", fields: ["group": .string, "version": .string, "resource": .string])
        let user = CELType.object(name: "kubernetes.UserInfo", fields: ["username": .string, "uid": .string, "groups": .list(.string), "extra": .map(.list(.string))])
        return .object(name: "kubernetes.AdmissionRequest", fields: [
            "kind": gvk, "resource": gvr, "subResource": .string, "requestKind": gvk, "requestResource": gvr,
            "requestSubResource": .string, "name": .string, "namespace": .string, "operation": .string,
            "userInfo": user, "dryRun": .bool, "options": .dyn,
        ])
    }()

    /// `namespaceObject` (`compile.go` `BuildNamespaceType`; timestamps are `dyn` here).
    static let namespaceType: CELType = .object(name: "kubernetes.Namespace", fields: [
        "metadata": .object(name: "kubernetes.NamespaceMetadata", fields: [
            "name": .string, "generateName": .string, "namespace": .string, "labels": .map(.string), "annotations": .map(.string),
            "UID": .string, "creationTimestamp": .dyn, "deletionGracePeriodSeconds": .int, "deletionTimestamp": .dyn, "generation": .int,
        ]),
        "spec": .object(name: "kubernetes.NamespaceSpec", fields: ["finalizers": .list(.string)]),
        "status": .object(name: "kubernetes.NamespaceStatus", fields: ["conditions": .list(.dyn), "phase": .string]),
    ])

    /// `compile.go` `createEnvForOpts` without params (paramKind is refused) and without the
    /// authorizer and composition variables (not emulated).
    static let variables: [String: CELType] = ["object": .dyn, "oldObject": .dyn, "request": requestType, "namespaceObject": namespaceType]
    static let unsupportedVariables: Set<String> = ["authorizer", "variables"]

    // MARK: compiling

    /// Compiles every expression of a policy, or refuses it. A real server accepts a policy
    /// that fails its type check and applies its failurePolicy at request time; the devcluster
    /// refuses, at write time, every policy it could not evaluate exactly (README.md).
    static func compile(_ policy: JSONValue) throws(APIError) -> CompiledAdmissionPolicy {
        let name = policy["metadata"]?["name"]?.stringValue ?? ""
        let spec = policy["spec"] ?? .object([:])
        func refuse(_ field: String, _ detail: String, reason: String = "FieldValueForbidden", type: String = "Forbidden") -> APIError {
            invalidPolicy(name, field: field, cause: reason, "\(type): \(detail)")
        }
        if let paramKind = spec["paramKind"], paramKind != .null {
            throw refuse("spec.paramKind", "the devcluster does not emulate policy parameters (paramKind)")
        }
        if !(spec["variables"]?.arrayValue ?? []).isEmpty {
            throw refuse("spec.variables", "the devcluster does not emulate composition variables")
        }
        if !(spec["auditAnnotations"]?.arrayValue ?? []).isEmpty {
            throw refuse("spec.auditAnnotations", "the devcluster does not emulate audit annotations")
        }
        let failurePolicy = spec["failurePolicy"]?.stringValue ?? "Fail"
        guard failurePolicy == "Fail" || failurePolicy == "Ignore" else {
            throw invalidPolicy(name, field: "spec.failurePolicy", cause: "FieldValueNotSupported",
                                "Unsupported value: \(quote(failurePolicy)): supported values: \"Fail\", \"Ignore\"")
        }
        func program(_ expression: String, field: String) throws(APIError) -> CELProgram {
            do {
                return try CELProgram.compile(expression, variables: variables, unsupportedVariables: unsupportedVariables, expecting: .bool)
            } catch {
                throw invalidPolicy(name, field: field, cause: "FieldValueInvalid", "Invalid value: \(quote(expression)): \(error)")
            }
        }
        var conditions: [CELProgram] = []
        for (i, c) in (spec["matchConditions"]?.arrayValue ?? []).enumerated() {
            conditions.append(try program(c["expression"]?.stringValue ?? "", field: "spec.matchConditions[\(i)].expression"))
        }
        var validations: [CompiledAdmissionPolicy.Validation] = []
        for (i, v) in (spec["validations"]?.arrayValue ?? []).enumerated() {
            if let m = v["messageExpression"]?.stringValue, !m.isEmpty {
                throw refuse("spec.validations[\(i)].messageExpression", "the devcluster does not evaluate messageExpression")
            }
            let reason = v["reason"]?.stringValue
            if let reason, !["Unauthorized", "Forbidden", "Invalid", "RequestEntityTooLarge"].contains(reason) {
                // pkg/apis/admissionregistration/validation `validateValidation`.
                throw invalidPolicy(name, field: "spec.validations[\(i)].reason", cause: "FieldValueNotSupported",
                                    "Unsupported value: \(quote(reason)): supported values: \"Unauthorized\", \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\"")
            }
            validations.append(.init(program: try program(v["expression"]?.stringValue ?? "", field: "spec.validations[\(i)].expression"),
                                     message: v["message"]?.stringValue, reason: reason))
        }
        return CompiledAdmissionPolicy(name: name, failurePolicyIgnore: failurePolicy == "Ignore", matchConditions: conditions, validations: validations)
    }

    /// `errors.NewInvalid` for the policy: `ValidatingAdmissionPolicy.admissionregistration.k8s.io "p" is invalid: field: detail`.
    private static func invalidPolicy(_ name: String, field: String, cause: String, _ detail: String) -> APIError {
        let kind = ResourceKind.validatingAdmissionPolicy
        return APIError(422, "Invalid", "\(kind.kind).\(kind.group) \(quote(name)) is invalid: \(field): \(detail)",
                        details: .init(name: name, group: kind.group, kind: kind.kind, causes: [.init(reason: cause, message: detail, field: field)]))
    }

    static func quote(_ s: String) -> String { StatusEncoding.OrderedJSON.quote(s) }

    // MARK: evaluating

    /// One failed validation (`validating/policy_decision.go` `PolicyDecision` with `ActionDeny`).
    struct Denial: Sendable, Equatable {
        var policy: String
        var binding: String?
        var message: String
        var reason: String?
    }

    struct Outcome: Sendable {
        /// The first denial, as the API error the request fails with.
        var error: APIError?
        var warnings: [String] = []
    }

    /// `dispatcher.Dispatch`: every policy whose matchConstraints match, every binding of it
    /// whose matchResources match; denials of bindings with `Deny` fail the request with the
    /// first one, `Warn` becomes a warning, `Audit` is not emulated.
    static func evaluate(_ a: AdmissionAttributes, policies: [JSONValue], bindings: [JSONValue], namespaceNamed: (String) -> JSONValue?) -> Outcome {
        // generic/plugin.go `shouldIgnoreResource`: policies never apply to policies and bindings.
        if a.resource.group == "admissionregistration.k8s.io" { return Outcome() }
        var denials: [Denial] = []
        var warnings: [String] = []
        let byPolicy = Dictionary(grouping: bindings) { $0["spec"]?["policyName"]?.stringValue ?? "" }
        let namespace = a.namespace.isEmpty ? nil : namespaceNamed(a.namespace)
        for policy in policies.sorted(by: { name($0) < name($1) }) {
            let policyName = name(policy)
            let ignore = policy["spec"]?["failurePolicy"]?.stringValue == "Ignore"
            // `addConfigError`: a configuration error denies unless the policy says Ignore.
            func configError(_ message: String, binding: String?) {
                if !ignore { denials.append(Denial(policy: policyName, binding: binding, message: message)) }
            }
            guard let constraints = policy["spec"]?["matchConstraints"] else {
                configError("failed to configure policy: policy contained no match constraints, a required field", binding: nil)
                continue
            }
            switch AdmissionMatching.matches(a, constraints, namespace: namespace) {
            case .failure(let e): configError("failed to configure policy: \(e.message)", binding: nil); continue
            case .success(false): continue
            case .success(true): break
            }
            let compiled: CompiledAdmissionPolicy
            do { compiled = try compile(policy) } catch {
                configError("failed to configure policy: \(error.status.message ?? "")", binding: nil)
                continue
            }
            let activation = activation(a, namespace: namespace)
            for binding in (byPolicy[policyName] ?? []).sorted(by: { name($0) < name($1) }) {
                let bindingName = name(binding)
                if let resources = binding["spec"]?["matchResources"] {
                    switch AdmissionMatching.matches(a, resources, namespace: namespace) {
                    case .failure(let e): configError("failed to configure binding: \(e.message)", binding: bindingName); continue
                    case .success(false): continue
                    case .success(true): break
                    }
                }
                for d in validate(compiled, activation) {
                    for action in binding["spec"]?["validationActions"]?.arrayValue ?? [] {
                        switch action.stringValue {
                        case "Deny": denials.append(Denial(policy: policyName, binding: bindingName, message: d.message, reason: d.reason))
                        case "Warn": warnings.append("Validation failed for ValidatingAdmissionPolicy '\(policyName)' with binding '\(bindingName)': \(d.message)")
                        default: break  // Audit: audit annotations are not emulated.
                        }
                    }
                }
            }
        }
        return Outcome(error: denials.first.map { forbidden(a, $0) }, warnings: warnings)
    }

    /// `validator.Validate`: match conditions first (any false: the policy does not apply;
    /// errors: failurePolicy), then each validation; an evaluation error is a denial unless the
    /// policy's failurePolicy is Ignore. Returns the denials (with message and reason).
    static func validate(_ policy: CompiledAdmissionPolicy, _ activation: [String: JSONValue]) -> [(message: String, reason: String?)] {
        var errors: [String] = []
        for condition in policy.matchConditions {
            do {
                if try condition.evaluate(activation) == .bool(false) { return [] }
            } catch {
                errors.append(resultedInError(condition, error))
            }
        }
        if !errors.isEmpty {
            // webhook/matchconditions/matcher.go `Match`: the errors as one aggregate.
            return policy.failurePolicyIgnore ? [] : [(errors.count == 1 ? errors[0] : "[" + errors.joined(separator: ", ") + "]", nil)]
        }
        var out: [(message: String, reason: String?)] = []
        for v in policy.validations {
            do {
                if try v.program.evaluate(activation) == .bool(true) { continue }
                let message = v.message.map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
                    ?? "failed expression: \(v.program.source.trimmingCharacters(in: .whitespaces))"
                out.append((message, v.reason ?? "Invalid"))
            } catch {
                if !policy.failurePolicyIgnore { out.append((resultedInError(v.program, error), nil)) }
            }
        }
        return out
    }

    /// `plugin/cel/activation.go` `Evaluate`: `expression '…' resulted in error: …`.
    private static func resultedInError(_ program: CELProgram, _ error: CELEvalError) -> String {
        "expression '\(program.source)' resulted in error: \(error.message)"
    }

    /// The variables (`activation.go` `newActivation`): `request` as the unstructured
    /// AdmissionRequest (`condition.go` `CreateAdmissionRequest`: JSON `omitempty` fields
    /// are absent when empty), `namespaceObject` null for cluster-scoped requests.
    static func activation(_ a: AdmissionAttributes, namespace: JSONValue?) -> [String: JSONValue] {
        let gvk: JSONValue = .object(["group": .string(a.kind.group), "version": .string(a.kind.version), "kind": .string(a.kind.kind)])
        let gvr: JSONValue = .object(["group": .string(a.resource.group), "version": .string(a.resource.version), "resource": .string(a.resource.plural)])
        var user: [String: JSONValue] = [:]
        if !a.user.name.isEmpty { user["username"] = .string(a.user.name) }
        if !a.user.groups.isEmpty { user["groups"] = .array(a.user.groups.map { .string($0) }) }
        var request: [String: JSONValue] = [
            "uid": .string(UUID().uuidString.lowercased()),
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "operation": .string(a.operation), "userInfo": .object(user),
            "options": .object(["kind": .string(["CREATE": "CreateOptions", "UPDATE": "UpdateOptions"][a.operation] ?? "DeleteOptions"),
                                "apiVersion": .string("meta.k8s.io/v1")]),
        ]
        if !a.subresource.isEmpty {
            request["subResource"] = .string(a.subresource)
            request["requestSubResource"] = .string(a.subresource)
        }
        if !a.name.isEmpty { request["name"] = .string(a.name) }
        if !a.namespace.isEmpty { request["namespace"] = .string(a.namespace) }
        if a.dryRun { request["dryRun"] = .bool(true) }
        // dispatcher.go: "the namespace object has the namespace of itself": none for Namespaces.
        let isNamespace = a.resource == .namespace
        return [
            "object": a.object ?? .null,
            "oldObject": a.oldObject ?? .null,
            "request": .object(request),
            "namespaceObject": isNamespace ? .null : namespace.map(namespaceObject) ?? .null,
        ]
    }

    /// `condition.go` `CreateNamespaceObject`: status, spec and part of the metadata.
    static func namespaceObject(_ ns: JSONValue) -> JSONValue {
        var meta: [String: JSONValue] = [:]
        for k in ["name", "generateName", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                  "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "finalizers"] {
            meta[k] = ns["metadata"]?[k]
        }
        var out: [String: JSONValue] = ["metadata": .object(meta)]
        out["spec"] = ns["spec"]
        out["status"] = ns["status"]
        return .object(out)
    }

    /// The refusal (`dispatcher.Dispatch`): `admission.NewForbidden` (`pkg/admission/errors.go`:
    /// `<resource> "<name>" is forbidden: <message>`), its reason replaced by the validation's
    /// (default Invalid), the code by `policy_decision.go` `reasonToCode`, and the message
    /// added as a cause.
    static func forbidden(_ a: AdmissionAttributes, _ d: Denial) -> APIError {
        let message = d.binding.map { "ValidatingAdmissionPolicy '\(d.policy)' with binding '\($0)' denied request: \(d.message)" }
            ?? "ValidatingAdmissionPolicy '\(d.policy)' denied request: \(d.message)"
        // `extractResourceName`: the request's name, else the object's name or generateName.
        var name = a.name
        if name.isEmpty { name = a.object?["metadata"]?["name"]?.stringValue ?? "" }
        if name.isEmpty { name = a.object?["metadata"]?["generateName"]?.stringValue ?? "" }
        if name.isEmpty { name = "Unknown" }
        let resource = a.resource.plural + a.resource.groupSuffix
        let reason = d.reason ?? "Invalid"
        return APIError(reasonToCode(reason), reason, "\(resource) \(quote(name)) is forbidden: \(message)",
                        details: .init(name: name, group: a.resource.group.isEmpty ? nil : a.resource.group, kind: a.resource.plural,
                                       causes: [.init(message: message)]))
    }

    /// `policy_decision.go` `reasonToCode`.
    static func reasonToCode(_ reason: String) -> Int {
        switch reason {
        case "Forbidden": 403
        case "Unauthorized": 401
        case "RequestEntityTooLarge": 413
        default: 422
        }
    }

    private static func name(_ obj: JSONValue) -> String { obj["metadata"]?["name"]?.stringValue ?? "" }
}
