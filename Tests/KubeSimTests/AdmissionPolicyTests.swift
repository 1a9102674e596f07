import KubetraceTestKit
import Foundation
import KubeClient
@testable import KubeSim
import Testing

// MARK: - CEL

/// The CEL subset (CEL.swift), checked against cel-go's semantics
/// (github.com/google/cel-spec `doc/langdef.md`).
@Suite struct CELTests {
    static let object: JSONValue = .object([
        "metadata": .object(["name": .string("kubetrace-registry"), "labels": .object(["app": .string("kt"), "tier": .string("b")])]),
        "type": .string("Opaque"),
        "items": .array([.int(1), .int(2), .int(3)]),
        "flag": .bool(true),
    ])
    static let request: JSONValue = .object([
        "operation": .string("CREATE"), "namespace": .string("kube-system"),
        "userInfo": .object(["username": .string("alice"), "groups": .array([.string("dev"), .string("system:authenticated")])]),
    ])

    func eval(_ source: String) throws -> JSONValue {
        let program = try CELProgram.compile(source, variables: ValidatingAdmissionPolicies.variables, unsupportedVariables: ValidatingAdmissionPolicies.unsupportedVariables)
        return try program.evaluate(["object": Self.object, "oldObject": .null, "request": Self.request, "namespaceObject": .null])
    }

    @Test(arguments: [
        ("1 == 1", true), ("'a' == \"a\"", true), ("1 != 2", true), ("null == null", true),
        ("[1, 2] == [1, 2]", true), ("object.metadata.name == 'kubetrace-registry'", true),
        ("object.type != 'Opaque'", false), ("object.metadata.name == 1", false),  // heterogeneous ==: false
        ("1 < 2", true), ("2 <= 2", true), ("3 > 4", false), ("-3 >= -4", true),
        ("'abc' < 'abd'", true), ("'b' > 'abc'", true), ("false < true", true),
        ("true && false", false), ("true || false", true), ("!false", true), ("!(1 == 1)", false),
        // Commutative error absorption: the absorbing value wins over an error on either side.
        ("false && object.missing == 'x'", false), ("object.missing == 'x' && false", false),
        ("true || object.missing == 'x'", true), ("object.missing == 'x' || true", true),
        ("'dev' in request.userInfo.groups", true), ("'ops' in request.userInfo.groups", false),
        ("object.metadata.name in ['a', 'kubetrace-registry']", true),
        ("'app' in object.metadata.labels", true), ("'nope' in object.metadata.labels", false),
        ("has(object.metadata.labels)", true), ("has(object.metadata.annotations)", false),
        ("has(object.metadata.labels.app)", true),
        ("object.metadata.labels['tier'] == 'b'", true), ("object.items[2] == 3", true),
        ("object.flag ? object.items[0] == 1 : false", true), ("1 > 2 ? true : 2 > 1", true),
        ("object.metadata.name.startsWith('kubetrace-')", true), ("object.metadata.name.endsWith('-registry')", true),
        ("object.metadata.name.contains('trace-reg')", true), ("object.metadata.name.contains('')", true),
        ("object.metadata.name.matches('^kube[a-z]+-r')", true), ("matches(object.metadata.name, 'x$')", false),
        ("object.metadata.name.matches('trace')", true),  // RE2 MatchString: anywhere in the string
        ("object.metadata.name.size() == 18", true), ("size(object.items) == 3", true), ("size('héllo') == 5", true),
        ("size(object.metadata.labels) == 2", true),
        ("request.operation == 'CREATE' && request.namespace == 'kube-system'", true),
        ("object.metadata.name == 'kubetrace-registry' && object.type == 'kubernetes.io/dockerconfigjson' || request.namespace == 'kube-system' && object.metadata.name in ['kubetrace-registry'] && object.type == 'Opaque'", true),
    ] as [(String, Bool)])
    func evaluates(_ source: String, _ expected: Bool) throws {
        #expect(try eval(source) == .bool(expected), "\(source)")
    }

    @Test(arguments: [
        ("object.missing == 'x'", "no such key: missing"),
        ("has(object.spec.replicas)", "no such key: spec"),  // only the last field is tested
        ("object.metadata.labels['zone'] == 'a'", "no such key: zone"),
        ("object.items[5] == 1", "index '5' out of range in list size '3'"),
        ("object.metadata.name < 1", "no such overload"),
        ("true && object.missing == 'x'", "no such key: missing"),
        ("false || object.missing == 'x'", "no such key: missing"),
        ("object.metadata.name.startsWith(object.items[0])", "no such overload"),
        ("oldObject.metadata.name == 'x'", "no such overload"),
    ] as [(String, String)])
    func evaluationErrors(_ source: String, _ message: String) throws {
        #expect(throws: CELEvalError(message: message), "\(source)") { try eval(source) }
    }

    /// Valid CEL outside the subset: refused when compiled, naming the construct and where.
    @Test(arguments: [
        ("object.items.all(i, i > 0)", "<input>:1:14: the macro 'all' is not supported"),
        ("object.items.exists(i, i > 2)", "the macro 'exists' is not supported"),
        ("size(object.items) + 1 == 4", "<input>:1:20: the operator '+' is not supported"),
        ("object.metadata.name.lowerAscii() == 'a'", "the function 'lowerAscii' is not supported"),
        ("int('1') == 1", "<input>:1:1: the function 'int' is not supported"),
        ("{'a': 1}['a'] == 1", "map literals are not supported"),
        ("object.x == 1.5", "double literals not supported"),
        ("object.x == 1u", "unsigned integer literals not supported"),
        ("object.x == b'a'", "bytes literals not supported"),
        ("object.x == r'a'", "raw string literals not supported"),
        ("object.?spec == null", "optional field selection '.?' is not supported"),
        ("authorizer.group('').check('get').allowed()", "the variable 'authorizer' is not supported"),
        ("variables.x == 1", "the variable 'variables' is not supported"),
        (Array(repeating: "true", count: 1_100).joined(separator: " && "), "an expression of more than 2000 tokens not supported"),
    ] as [(String, String)])
    func refusesUnsupported(_ source: String, _ fragment: String) {
        let error = #expect(throws: CELCompileError.self) { try eval(source) }
        #expect(error?.kind == .unsupported)
        #expect(error?.description.hasPrefix("the devcluster cannot evaluate this expression: ") == true)
        #expect(error?.description.contains(fragment) == true, "\(error?.description ?? "")")
    }

    /// Errors a real server's compiler reports too.
    @Test(arguments: [
        ("foo == 1", "compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')"),
        ("params.x == 1", "compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')"),
        ("request.bogus == 'x'", "compilation failed: ERROR: <input>:1:9: undefined field 'bogus'"),
        ("'a' == 1", "compilation failed: ERROR: <input>:1:5: found no matching overload for '_==_' applied to '(string, int)'"),
        ("request.userInfo.username < 1", "found no matching overload for '_<_' applied to '(string, int)'"),
        ("!request.name", "found no matching overload for '!_' applied to '(string)'"),
        ("['a', 1] == []", "expected type 'string' but found 'int'"),
        ("has(object)", "invalid argument to has() macro"),
        ("object.name ==", "Syntax error: mismatched input '<EOF>'"),
        ("object.name = 'a'", "Syntax error: token recognition error at: '='"),
        ("object.metadata.name", "must evaluate to bool but got dyn"),
        ("request.name", "must evaluate to bool but got string"),
        // Nesting is bounded, as cel-go's parser bounds it (MaxRecursionDepth 250): no stack overflow.
        (String(repeating: "(", count: 300) + "true" + String(repeating: ")", count: 300), "expression recursion limit exceeded: 250"),
        (String(repeating: "!", count: 300) + "true", "expression recursion limit exceeded: 250"),
    ] as [(String, String)])
    func rejectsInvalid(_ source: String, _ fragment: String) {
        let error = #expect(throws: CELCompileError.self) {
            try CELProgram.compile(source, variables: ValidatingAdmissionPolicies.variables, unsupportedVariables: ValidatingAdmissionPolicies.unsupportedVariables, expecting: .bool)
        }
        #expect(error?.kind != .unsupported)
        #expect(error?.description.contains(fragment) == true, "\(error?.description ?? "")")
    }
}

// MARK: - enforcement

/// ValidatingAdmissionPolicy enforcement (AdmissionPolicy.swift) against the policy the
/// operator's install manifest ships, and the rules of k8s.io/apiserver
/// `pkg/admission/plugin/policy/validating/dispatcher.go`.
@Suite(.timeLimit(.minutes(2))) struct AdmissionPolicyTests {
    static let policyName = "kubetrace-operator-secret-writes"
    static let operatorUser = "system:serviceaccount:kubetrace-system:kubetrace-operator"
    static let message = "the operator may write only its pull Secret (kubernetes.io/dockerconfigjson) and, in its own namespace, its own Secrets"

    static let policy: JSONValue = yaml("""
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "kubetrace-operator-secret-writes"},
         "spec": {"failurePolicy": "Fail",
           "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]}]},
           "matchConditions": [{"name": "operator-only", "expression": "request.userInfo.username == 'system:serviceaccount:kubetrace-system:kubetrace-operator'"}],
           "validations": [{"expression": "object.metadata.name == 'kubetrace-registry' && object.type == 'kubernetes.io/dockerconfigjson' || request.namespace == 'kubetrace-system' && object.metadata.name in ['kubetrace-operator', 'kubetrace-kubeconfig'] && object.type == 'Opaque'",
                            "message": "the operator may write only its pull Secret (kubernetes.io/dockerconfigjson) and, in its own namespace, its own Secrets",
                            "reason": "Forbidden"}]}}
        """)
    static let binding: JSONValue = yaml("""
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "kubetrace-operator-secret-writes"},
         "spec": {"policyName": "kubetrace-operator-secret-writes", "validationActions": ["Deny"]}}
        """)

    static func yaml(_ json: String) -> JSONValue { try! JSONValue.parse(Array(json.utf8)) }

    static let vapPath = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
    static let bindingPath = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"

    struct Answer {
        var status: Int
        var body: JSONValue
        var head: HTTPResponseHead
        var message: String { body["message"]?.stringValue ?? "" }
    }

    static func send(_ client: KubeClient, _ method: String, _ path: String, _ body: JSONValue? = nil, query: [(String, String)] = [],
                     contentType: String = "application/json") async throws -> Answer {
        let r = try await client.exchange(method, path: path, query: query, body: body.map { $0.jsonBytes() }, contentType: contentType)
        return Answer(status: r.status, body: (try? JSONValue.parse(r.body)) ?? .null, head: r.head)
    }

    static func secret(_ namespace: String, _ name: String, type: String) -> JSONValue {
        var data: [String: JSONValue] = ["token": .string(Data("t".utf8).base64EncodedString())]
        var annotations: [String: JSONValue] = [:]
        switch type {
        case "kubernetes.io/dockerconfigjson":
            data = [".dockerconfigjson": .string(Data(#"{"auths":{"registry.example":{"auth":"eDp5"}}}"#.utf8).base64EncodedString())]
        case "kubernetes.io/service-account-token":
            // What ValidateSecret requires of this type on a real server, checked before admission.
            annotations = ["kubernetes.io/service-account.name": .string("default")]
        default: break
        }
        return .object(["apiVersion": .string("v1"), "kind": .string("Secret"),
                        "metadata": .object(["name": .string(name), "namespace": .string(namespace), "annotations": .object(annotations)]),
                        "type": .string(type), "data": .object(data)])
    }

    static func secretsPath(_ namespace: String, _ name: String? = nil) -> String {
        "/api/v1/namespaces/\(namespace)/secrets" + (name.map { "/" + $0 } ?? "")
    }

    /// The operator's namespace and ServiceAccount (allowed to write Secrets anywhere by RBAC,
    /// so only the policy stands in the way) and a client with a token minted for it.
    static func operatorClient(_ cluster: DevCluster, admin: KubeClient) async throws -> (client: KubeClient, token: String) {
        _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "kubetrace-system")))
        _ = try await admin.create(ServiceAccount(metadata: ObjectMeta(name: "kubetrace-operator", namespace: "kubetrace-system")))
        _ = try await admin.create(ClusterRole(metadata: ObjectMeta(name: "secret-writer"), rules: [
            PolicyRule(apiGroups: [""], resources: ["secrets"], verbs: ["get", "create", "update", "patch", "delete"])]))
        _ = try await admin.create(ClusterRoleBinding(metadata: ObjectMeta(name: "secret-writer"),
                                                      subjects: [Subject(kind: "ServiceAccount", name: "kubetrace-operator", namespace: "kubetrace-system")],
                                                      roleRef: RoleRef(kind: "ClusterRole", name: "secret-writer")))
        let minted = try await admin.requestToken(namespace: "kubetrace-system", serviceAccount: "kubetrace-operator", TokenRequest(audiences: [], expirationSeconds: 3600))
        let token = try #require(minted.status?.token.value)
        return (try await tokenClient(cluster, token: token), token)
    }

    static func install(_ admin: KubeClient, binding: Bool = true) async throws {
        #expect(try await send(admin, "POST", vapPath, policy).status == 201)
        if binding { #expect(try await send(admin, "POST", bindingPath, Self.binding).status == 201) }
    }

    static func deniedMessage(_ name: String) -> String {
        "secrets \"\(name)\" is forbidden: ValidatingAdmissionPolicy '\(policyName)' with binding '\(policyName)' denied request: \(message)"
    }

    @Test func operatorPolicyAdmitsOnlyTheOperatorsOwnSecrets() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let (op, _) = try await Self.operatorClient(cluster, admin: admin)
            try await Self.install(admin)

            // The service-account-token Secret the pull Secret must never become: refused, nothing stored.
            let refused = try await Self.send(op, "POST", Self.secretsPath("kube-system"), Self.secret("kube-system", "kubetrace-registry", type: "kubernetes.io/service-account-token"))
            #expect(refused.status == 403)
            #expect(refused.body["reason"] == .string("Forbidden"))
            #expect(refused.body["code"] == .int(403))
            #expect(refused.message == Self.deniedMessage("kubetrace-registry"))
            #expect(refused.body["details"] == .object([
                "name": .string("kubetrace-registry"), "kind": .string("secrets"),
                "causes": .array([.object(["message": .string("ValidatingAdmissionPolicy '\(Self.policyName)' with binding '\(Self.policyName)' denied request: \(Self.message)")])]),
            ]))
            #expect(try await Self.send(admin, "GET", Self.secretsPath("kube-system", "kubetrace-registry")).status == 404)
            // dryRun is admitted the same way.
            let dry = try await Self.send(op, "POST", Self.secretsPath("kube-system"), Self.secret("kube-system", "kubetrace-registry", type: "kubernetes.io/service-account-token"), query: [("dryRun", "All")])
            #expect(dry.status == 403)

            // The pull Secret itself, and updating it.
            let pull = try await Self.send(op, "POST", Self.secretsPath("kube-system"), Self.secret("kube-system", "kubetrace-registry", type: "kubernetes.io/dockerconfigjson"))
            #expect(pull.status == 201, "\(pull.body)")
            var changed = pull.body
            changed["metadata"]?["labels"] = .object(["refreshed": .string("yes")])
            #expect(try await Self.send(op, "PUT", Self.secretsPath("kube-system", "kubetrace-registry"), changed).status == 200)

            // Any other name is refused, in any namespace; its own Secrets only in its namespace and Opaque.
            let other = try await Self.send(op, "POST", Self.secretsPath("kube-system"), Self.secret("kube-system", "other-pull", type: "kubernetes.io/dockerconfigjson"))
            #expect(other.status == 403)
            #expect(other.message == Self.deniedMessage("other-pull"))
            for name in ["kubetrace-operator", "kubetrace-kubeconfig"] {
                #expect(try await Self.send(op, "POST", Self.secretsPath("kubetrace-system"), Self.secret("kubetrace-system", name, type: "Opaque")).status == 201)
            }
            #expect(try await Self.send(op, "POST", Self.secretsPath("default"), Self.secret("default", "kubetrace-operator", type: "Opaque")).status == 403)
            #expect(try await Self.send(op, "POST", Self.secretsPath("kubetrace-system"), Self.secret("kubetrace-system", "kubetrace-extra", type: "Opaque")).status == 403)

            // Patches and server-side apply are admitted with the final object.
            _ = try await Self.send(admin, "POST", Self.secretsPath("kubetrace-system"), Self.secret("kubetrace-system", "foreign", type: "Opaque"))
            let patched = try await Self.send(op, "PATCH", Self.secretsPath("kubetrace-system", "foreign"), .object(["metadata": .object(["labels": .object(["x": .string("y")])])]),
                                              contentType: "application/merge-patch+json")
            #expect(patched.status == 403)
            #expect(patched.message == Self.deniedMessage("foreign"))
            let ownPatch = try await Self.send(op, "PATCH", Self.secretsPath("kubetrace-system", "kubetrace-operator"), .object(["metadata": .object(["labels": .object(["x": .string("y")])])]),
                                               contentType: "application/merge-patch+json")
            #expect(ownPatch.status == 200)
            let applied = try await Self.send(op, "PATCH", Self.secretsPath("kube-system", "applied"), Self.secret("kube-system", "applied", type: "Opaque"),
                                              query: [("fieldManager", "kubetrace")], contentType: "application/apply-patch+yaml")
            #expect(applied.status == 403)
            #expect(applied.message == Self.deniedMessage("applied"))

            // Other users, the admin included, are not selected by the match condition.
            #expect(try await Self.send(admin, "POST", Self.secretsPath("kube-system"), Self.secret("kube-system", "sa-token", type: "kubernetes.io/service-account-token")).status == 201)
            // DELETE is not among the policy's operations.
            #expect(try await Self.send(op, "DELETE", Self.secretsPath("kubetrace-system", "foreign")).status == 200)
        }
    }

    @Test func aPolicyWithoutBindingIsNotEnforced() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let (op, _) = try await Self.operatorClient(cluster, admin: admin)
            try await Self.install(admin, binding: false)
            let token = Self.secret("kube-system", "kubetrace-registry", type: "kubernetes.io/service-account-token")
            #expect(try await Self.send(op, "POST", Self.secretsPath("kube-system"), token).status == 201)
            #expect(try await Self.send(admin, "DELETE", Self.secretsPath("kube-system", "kubetrace-registry")).status == 200)
            // A binding naming another policy does not bind this one.
            var elsewhere = Self.binding
            elsewhere["spec"]?["policyName"] = .string("some-other-policy")
            #expect(try await Self.send(admin, "POST", Self.bindingPath, elsewhere).status == 201)
            #expect(try await Self.send(op, "POST", Self.secretsPath("kube-system"), token).status == 201)
            #expect(try await Self.send(admin, "DELETE", Self.secretsPath("kube-system", "kubetrace-registry")).status == 200)
            // Fixing the binding enforces it.
            elsewhere["spec"]?["policyName"] = .string(Self.policyName)
            elsewhere["metadata"] = try await Self.send(admin, "GET", Self.bindingPath + "/" + Self.policyName).body["metadata"]
            #expect(try await Self.send(admin, "PUT", Self.bindingPath + "/" + Self.policyName, elsewhere).status == 200)
            #expect(try await Self.send(op, "POST", Self.secretsPath("kube-system"), token).status == 403)
            #expect(try await Self.send(admin, "DELETE", Self.bindingPath + "/" + Self.policyName).status == 200)
            #expect(try await Self.send(op, "POST", Self.secretsPath("kube-system"), token).status == 201)
        }
    }

    static func configMapPolicy(_ name: String, operations: [String] = ["CREATE", "UPDATE"], failurePolicy: String = "Fail",
                                conditions: [String] = [], validations: [JSONValue], resources: [String] = ["configmaps"]) -> JSONValue {
        var spec: [String: JSONValue] = [
            "failurePolicy": .string(failurePolicy),
            "matchConstraints": .object(["resourceRules": .array([.object([
                "apiGroups": .array([.string("*")]), "apiVersions": .array([.string("*")]),
                "operations": .array(operations.map { .string($0) }), "resources": .array(resources.map { .string($0) })])])]),
            "validations": .array(validations),
        ]
        if !conditions.isEmpty {
            spec["matchConditions"] = .array(conditions.enumerated().map { .object(["name": .string("c\($0.offset)"), "expression": .string($0.element)]) })
        }
        return .object(["apiVersion": .string("admissionregistration.k8s.io/v1"), "kind": .string("ValidatingAdmissionPolicy"),
                        "metadata": .object(["name": .string(name)]), "spec": .object(spec)])
    }

    static func bind(_ policy: String, actions: [String] = ["Deny"], matchResources: JSONValue? = nil) -> JSONValue {
        var spec: [String: JSONValue] = ["policyName": .string(policy), "validationActions": .array(actions.map { .string($0) })]
        spec["matchResources"] = matchResources
        return .object(["apiVersion": .string("admissionregistration.k8s.io/v1"), "kind": .string("ValidatingAdmissionPolicyBinding"),
                        "metadata": .object(["name": .string(policy + "-binding")]), "spec": .object(spec)])
    }

    static func configMap(_ name: String, namespace: String = "default", labels: [String: String] = [:]) -> JSONValue {
        .object(["apiVersion": .string("v1"), "kind": .string("ConfigMap"),
                 "metadata": .object(["name": .string(name), "namespace": .string(namespace), "labels": .object(labels.mapValues { .string($0) })]),
                 "data": .object(["k": .string("v")])])
    }

    @Test func evaluationErrorsFollowTheFailurePolicy() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let expression = "object.metadata.labels.team == 'a'"
            var policy = Self.configMapPolicy("team", validations: [.object(["expression": .string(expression)])])
            #expect(try await Self.send(admin, "POST", Self.vapPath, policy).status == 201)
            #expect(try await Self.send(admin, "POST", Self.bindingPath, Self.bind("team")).status == 201)
            let cmPath = "/api/v1/namespaces/default/configmaps"
            // No labels at all: an evaluation error, which Fail turns into a denial with reason Invalid.
            let failed = try await Self.send(admin, "POST", cmPath, Self.configMap("unlabelled"))
            #expect(failed.status == 422)
            #expect(failed.body["reason"] == .string("Invalid"))
            #expect(failed.message == "configmaps \"unlabelled\" is forbidden: ValidatingAdmissionPolicy 'team' with binding 'team-binding' denied request: expression '\(expression)' resulted in error: no such key: labels")
            // False without a message: `failed expression: …`, reason Invalid (the admin is not exempt).
            let wrongTeam = try await Self.send(admin, "POST", cmPath, Self.configMap("b-team", labels: ["team": "b"]))
            #expect(wrongTeam.status == 422)
            #expect(wrongTeam.message == "configmaps \"b-team\" is forbidden: ValidatingAdmissionPolicy 'team' with binding 'team-binding' denied request: failed expression: \(expression)")
            #expect(try await Self.send(admin, "POST", cmPath, Self.configMap("a-team", labels: ["team": "a"])).status == 201)
            // Ignore admits what fails to evaluate, but still denies what evaluates to false.
            policy["spec"]?["failurePolicy"] = .string("Ignore")
            policy["metadata"] = try await Self.send(admin, "GET", Self.vapPath + "/team").body["metadata"]
            #expect(try await Self.send(admin, "PUT", Self.vapPath + "/team", policy).status == 200)
            #expect(try await Self.send(admin, "POST", cmPath, Self.configMap("unlabelled")).status == 201)
            #expect(try await Self.send(admin, "POST", cmPath, Self.configMap("c-team", labels: ["team": "c"])).status == 422)

            // Match conditions: false skips the policy; an error fails the request under Fail.
            let conditional = Self.configMapPolicy("cond", conditions: ["object.metadata.name.startsWith('guarded-')", "object.metadata.labels.x == 'y'"],
                                                   validations: [.object(["expression": .string("false"), "message": .string("guarded"), "reason": .string("Unauthorized")])])
            #expect(try await Self.send(admin, "POST", Self.vapPath, conditional).status == 201)
            #expect(try await Self.send(admin, "POST", Self.bindingPath, Self.bind("cond")).status == 201)
            #expect(try await Self.send(admin, "POST", cmPath, Self.configMap("free", labels: ["team": "a"])).status == 201)
            let guarded = try await Self.send(admin, "POST", cmPath, Self.configMap("guarded-1", labels: ["team": "a", "x": "y"]))
            #expect(guarded.status == 401)
            #expect(guarded.body["reason"] == .string("Unauthorized"))
            #expect(guarded.message.hasSuffix("denied request: guarded"))
            let broken = try await Self.send(admin, "POST", cmPath, Self.configMap("guarded-2", labels: ["team": "a"]))
            #expect(broken.status == 422)
            #expect(broken.message == "configmaps \"guarded-2\" is forbidden: ValidatingAdmissionPolicy 'cond' with binding 'cond-binding' denied request: expression 'object.metadata.labels.x == 'y'' resulted in error: no such key: x")
        }
    }

    @Test func deleteIsAdmittedWithTheStoredObjectAsOldObject() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let policy = Self.configMapPolicy("keep", operations: ["DELETE"], validations: [
                .object(["expression": .string("object == null && oldObject.metadata.name != 'keep' && request.operation == 'DELETE'")])])
            #expect(try await Self.send(admin, "POST", Self.vapPath, policy).status == 201)
            #expect(try await Self.send(admin, "POST", Self.bindingPath, Self.bind("keep")).status == 201)
            let cmPath = "/api/v1/namespaces/default/configmaps"
            for name in ["keep", "drop"] { #expect(try await Self.send(admin, "POST", cmPath, Self.configMap(name)).status == 201) }
            let refused = try await Self.send(admin, "DELETE", cmPath + "/keep")
            #expect(refused.status == 422)
            #expect(refused.message == "configmaps \"keep\" is forbidden: ValidatingAdmissionPolicy 'keep' with binding 'keep-binding' denied request: failed expression: object == null && oldObject.metadata.name != 'keep' && request.operation == 'DELETE'")
            #expect(try await Self.send(admin, "DELETE", cmPath + "/drop").status == 200)
            // deletecollection fails with the refusal (store.go `DeleteCollection`).
            #expect(try await Self.send(admin, "DELETE", cmPath).status == 422)
            #expect(try await Self.send(admin, "GET", cmPath + "/keep").status == 200)
            // Updates are not selected by this policy.
            var kept = try await Self.send(admin, "GET", cmPath + "/keep").body
            kept["data"] = .object(["k": .string("changed")])
            #expect(try await Self.send(admin, "PUT", cmPath + "/keep", kept).status == 200)
        }
    }

    @Test func selectorsSubresourcesAndWarnings() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let cmPath = { (ns: String) in "/api/v1/namespaces/\(ns)/configmaps" }
            #expect(try await Self.send(admin, "POST", "/api/v1/namespaces", .object(["metadata": .object(["name": .string("prod"), "labels": .object(["env": .string("prod")])])])).status == 201)
            // A binding's namespaceSelector narrows the policy to labelled namespaces.
            let policy = Self.configMapPolicy("labelled", validations: [.object(["expression": .string("has(object.metadata.labels) && 'owner' in object.metadata.labels"), "message": .string("needs an owner")])])
            #expect(try await Self.send(admin, "POST", Self.vapPath, policy).status == 201)
            #expect(try await Self.send(admin, "POST", Self.bindingPath, Self.bind("labelled", matchResources: .object(["namespaceSelector": .object(["matchLabels": .object(["env": .string("prod")])])]))).status == 201)
            let unowned = try await Self.send(admin, "POST", cmPath("prod"), Self.configMap("c", namespace: "prod"))
            #expect(unowned.status == 422, "\(unowned.body)")
            #expect(try await Self.send(admin, "POST", cmPath("default"), Self.configMap("c")).status == 201)
            #expect(try await Self.send(admin, "POST", cmPath("prod"), Self.configMap("c", namespace: "prod", labels: ["owner": "me"])).status == 201)

            // Warn: admitted, with the dispatcher's text in a Warning header.
            let warned = Self.configMapPolicy("warned", validations: [.object(["expression": .string("object.metadata.name != 'w'"), "message": .string("w is discouraged")])])
            #expect(try await Self.send(admin, "POST", Self.vapPath, warned).status == 201)
            #expect(try await Self.send(admin, "POST", Self.bindingPath, Self.bind("warned", actions: ["Warn", "Audit"])).status == 201)
            let w = try await Self.send(admin, "POST", cmPath("default"), Self.configMap("w"))
            #expect(w.status == 201)
            #expect(w.head.header("Warning") == #"299 - "Validation failed for ValidatingAdmissionPolicy 'warned' with binding 'warned-binding': w is discouraged""#)

            // Subresources match only as `resource/subresource`: `deployments/scale` sees the Scale.
            let scalePolicy = Self.configMapPolicy("replicas", operations: ["UPDATE"], validations: [
                .object(["expression": .string("request.subResource == 'scale' && request.kind.kind == 'Scale' && object.spec.replicas <= 3"),
                         "message": .string("at most 3 replicas")])], resources: ["deployments/scale"])
            #expect(try await Self.send(admin, "POST", Self.vapPath, scalePolicy).status == 201)
            #expect(try await Self.send(admin, "POST", Self.bindingPath, Self.bind("replicas")).status == 201)
            let deployment: JSONValue = .object(["apiVersion": .string("apps/v1"), "kind": .string("Deployment"),
                "metadata": .object(["name": .string("d"), "namespace": .string("default")]),
                "spec": .object(["replicas": .int(1), "selector": .object(["matchLabels": .object(["a": .string("b")])]),
                                 "template": .object(["metadata": .object(["labels": .object(["a": .string("b")])]),
                                                      "spec": .object(["containers": .array([.object(["name": .string("c"), "image": .string("i")])])])])])])
            let deployPath = "/apis/apps/v1/namespaces/default/deployments"
            #expect(try await Self.send(admin, "POST", deployPath, deployment).status == 201)
            let scale = { (n: Int) -> JSONValue in .object(["spec": .object(["replicas": .int(n)])]) }
            #expect(try await Self.send(admin, "PATCH", deployPath + "/d/scale", scale(3), contentType: "application/merge-patch+json").status == 200)
            let tooMany = try await Self.send(admin, "PATCH", deployPath + "/d/scale", scale(4), contentType: "application/merge-patch+json")
            #expect(tooMany.status == 422)
            #expect(tooMany.message == "deployments.apps \"d\" is forbidden: ValidatingAdmissionPolicy 'replicas' with binding 'replicas-binding' denied request: at most 3 replicas")
            #expect(tooMany.body["details"]?["group"] == .string("apps"))
            // The main resource is not `deployments/scale`.
            #expect(try await Self.send(admin, "PATCH", deployPath + "/d", scale(9), contentType: "application/merge-patch+json").status == 200)
        }
    }

    @Test func policiesTheDevclusterCannotEvaluateAreRefusedOnWrite() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let macro = Self.configMapPolicy("macro", validations: [.object(["expression": .string("object.data.all(k, k != 'x')")])])
            let refused = try await Self.send(admin, "POST", Self.vapPath, macro)
            #expect(refused.status == 422)
            #expect(refused.body["reason"] == .string("Invalid"))
            #expect(refused.message == #"ValidatingAdmissionPolicy.admissionregistration.k8s.io "macro" is invalid: spec.validations[0].expression: Invalid value: "object.data.all(k, k != 'x')": the devcluster cannot evaluate this expression: <input>:1:13: the macro 'all' is not supported by the devcluster's CEL subset"#)
            #expect(refused.body["details"]?["causes"]?.arrayValue?.first?["field"] == .string("spec.validations[0].expression"))
            let undeclared = try await Self.send(admin, "POST", Self.vapPath, Self.configMapPolicy("undeclared", conditions: ["foo == 1"], validations: [.object(["expression": .string("true")])]))
            #expect(undeclared.status == 422)
            #expect(undeclared.message == #"ValidatingAdmissionPolicy.admissionregistration.k8s.io "undeclared" is invalid: spec.matchConditions[0].expression: Invalid value: "foo == 1": compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')"#)
            var params = Self.configMapPolicy("params", validations: [.object(["expression": .string("true")])])
            params["spec"]?["paramKind"] = .object(["apiVersion": .string("v1"), "kind": .string("ConfigMap")])
            let withParams = try await Self.send(admin, "POST", Self.vapPath, params)
            #expect(withParams.status == 422)
            #expect(withParams.message.contains("spec.paramKind: Forbidden: the devcluster does not emulate policy parameters"))
            var messageExpression = Self.configMapPolicy("msgexpr", validations: [.object(["expression": .string("true"), "messageExpression": .string("'x'")])])
            #expect(try await Self.send(admin, "POST", Self.vapPath, messageExpression).status == 422)
            messageExpression["spec"]?["validations"] = .array([.object(["expression": .string("true")])])
            #expect(try await Self.send(admin, "POST", Self.vapPath, messageExpression).status == 201)
            // None of the refused ones was stored.
            #expect(try await Self.send(admin, "GET", Self.vapPath + "/macro").status == 404)
        }
    }

    /// kubectl as a second client prints the server's message.
    @Test func kubectlShowsTheRefusal() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let (_, token) = try await Self.operatorClient(cluster, admin: admin)
            try await Self.install(admin)
            let dir = TempDir()
            let env = ["KUBECONFIG": dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url()))]
            let result = try await run("kubectl", ["--token", token, "-n", "kube-system", "create", "secret", "generic", "kubetrace-registry", "--from-literal=token=abc"], environment: env)
            #expect(result.status != 0)
            #expect(result.stderr == "error: failed to create secret \(Self.deniedMessage("kubetrace-registry"))\n", "\(result.stderr)")
            let allowed = try await run("kubectl", ["--token", token, "-n", "kubetrace-system", "create", "secret", "generic", "kubetrace-operator", "--from-literal=token=abc"], environment: env)
            #expect(allowed.status == 0, "\(allowed.stderr)")
        }
    }
}
