import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

@Suite(.timeLimit(.minutes(1))) struct RBACTests {
    /// A ServiceAccount with a Role and binding, and a token minted for it by TokenRequest.
    func serviceAccountClient(_ cluster: DevCluster, admin: KubeClient, rules: [PolicyRule], name: String = "op") async throws -> KubeClient {
        _ = try await admin.create(ServiceAccount(metadata: ObjectMeta(name: name, namespace: "default")))
        _ = try await admin.create(Role(metadata: ObjectMeta(name: name, namespace: "default"), rules: rules))
        _ = try await admin.create(RoleBinding(metadata: ObjectMeta(name: name, namespace: "default"),
                                               subjects: [Subject(kind: "ServiceAccount", name: name, namespace: "default")],
                                               roleRef: RoleRef(kind: "Role", name: name)))
        let minted = try await admin.requestToken(namespace: "default", serviceAccount: name, TokenRequest(audiences: [], expirationSeconds: 600))
        let token = try #require(minted.status?.token.value)
        #expect(JWT.expiry(of: token).map { abs($0.timeIntervalSinceNow - 600) < 5 } == true)
        return try await tokenClient(cluster, token: token)
    }

    @Test func rbacAllowsExactlyWhatIsGranted() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let sa = try await serviceAccountClient(cluster, admin: admin, rules: [
                PolicyRule(apiGroups: [""], resources: ["secrets"], verbs: ["get", "list"]),
                PolicyRule(apiGroups: [""], resources: ["configmaps"], verbs: ["get"], resourceNames: ["allowed"]),
            ])
            _ = try await sa.list(Secret.self, namespace: "default")
            let denied = await expectError { _ = try await sa.create(Secret(metadata: ObjectMeta(name: "x", namespace: "default"))) }
            #expect(denied?.isForbidden == true)
            #expect(denied?.status?.message == #"secrets is forbidden: User "system:serviceaccount:default:op" cannot create resource "secrets" in API group "" in the namespace "default""#)
            let otherNS = await expectError { _ = try await sa.list(Secret.self, namespace: "kube-system") }
            #expect(otherNS?.status?.message == #"secrets is forbidden: User "system:serviceaccount:default:op" cannot list resource "secrets" in API group "" in the namespace "kube-system""#)
            _ = try await admin.create(configMap("allowed"))
            _ = try await admin.create(configMap("hidden"))
            _ = try await sa.get(ConfigMap.self, namespace: "default", name: "allowed")
            let hidden = await expectError { _ = try await sa.get(ConfigMap.self, namespace: "default", name: "hidden") }
            #expect(hidden?.status?.message == #"configmaps "hidden" is forbidden: User "system:serviceaccount:default:op" cannot get resource "configmaps" in API group "" in the namespace "default""#)
            // SelfSubjectAccessReview agrees with enforcement.
            #expect(try await sa.selfSubjectAccessReview(.init(namespace: "default", verb: "list", group: "", resource: "secrets")).allowed)
            #expect(try await !sa.selfSubjectAccessReview(.init(namespace: "default", verb: "delete", group: "", resource: "secrets")).allowed)
            // Deleting the ServiceAccount invalidates its tokens.
            try await admin.delete(ServiceAccount.self, namespace: "default", name: "op")
            let gone = await expectError { _ = try await sa.list(Secret.self, namespace: "default") }
            #expect(gone?.isUnauthorized == true)
        }
    }

    @Test func escalationPreventionAndBindAndEscalateVerbs() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let sa = try await serviceAccountClient(cluster, admin: admin, rules: [
                PolicyRule(apiGroups: ["rbac.authorization.k8s.io"], resources: ["roles", "rolebindings"], verbs: ["get", "create", "update", "patch", "delete"]),
                PolicyRule(apiGroups: [""], resources: ["pods"], verbs: ["get", "list"]),
            ])
            // Granting what it holds is fine; granting more is refused with the API server's message.
            _ = try await sa.create(Role(metadata: ObjectMeta(name: "held", namespace: "default"), rules: [PolicyRule(apiGroups: [""], resources: ["pods"], verbs: ["get"])]))
            let escalating = await expectError {
                _ = try await sa.create(Role(metadata: ObjectMeta(name: "more", namespace: "default"), rules: [PolicyRule(apiGroups: [""], resources: ["secrets"], verbs: ["get"])]))
            }
            #expect(escalating?.isForbidden == true)
            #expect(escalating?.status?.message?.contains("is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}") == true)
            _ = try await admin.create(Role(metadata: ObjectMeta(name: "secret-reader", namespace: "default"), rules: [PolicyRule(apiGroups: [""], resources: ["secrets"], verbs: ["get"])]))
            let binding = RoleBinding(metadata: ObjectMeta(name: "b", namespace: "default"), subjects: [Subject(kind: "User", name: "someone")], roleRef: RoleRef(kind: "Role", name: "secret-reader"))
            let bindDenied = await expectError { _ = try await sa.create(binding) }
            #expect(bindDenied?.isForbidden == true)
            // `bind` on that role name, and `escalate` on roles, lift the checks.
            _ = try await admin.patch(Role.self, namespace: "default", name: "op", .json([.add("/rules/-", .object([
                "apiGroups": .array([.string("rbac.authorization.k8s.io")]), "resources": .array([.string("roles")]),
                "verbs": .array([.string("bind"), .string("escalate")]), "resourceNames": .array([.string("secret-reader"), .string("more")])]))]))
            _ = try await sa.create(binding)
            _ = try await sa.create(Role(metadata: ObjectMeta(name: "more", namespace: "default"), rules: [PolicyRule(apiGroups: [""], resources: ["secrets"], verbs: ["get"])]))
            // roleRef is immutable.
            var changed = try await admin.get(RoleBinding.self, namespace: "default", name: "b")
            changed.roleRef = RoleRef(kind: "Role", name: "held")
            let immutable = await expectError { _ = try await admin.update(changed) }
            #expect(immutable?.isInvalid == true)
        }
    }

    @Test func tokenRequestValidation() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            _ = try await admin.create(ServiceAccount(metadata: ObjectMeta(name: "sa", namespace: "default")))
            let short = await expectError { _ = try await admin.requestToken(namespace: "default", serviceAccount: "sa", TokenRequest(audiences: [], expirationSeconds: 599)) }
            #expect(short?.isInvalid == true)
            #expect(short?.status?.message?.contains("may not specify a duration less than 10 minutes") == true)
            let missing = await expectError { _ = try await admin.requestToken(namespace: "default", serviceAccount: "nope", TokenRequest(audiences: [], expirationSeconds: 600)) }
            #expect(missing?.isNotFound == true)
            let unauthenticated = try await tokenClient(cluster, token: "eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.forged")
            #expect(await expectError { _ = try await unauthenticated.list(Secret.self, namespace: "default") }?.isUnauthorized == true)
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct ServerBehaviourTests {
    @Test func generateNameFinalizersAndNamespaces() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            var meta = ObjectMeta(namespace: "default")
            meta.generateName = "gen-"
            meta.finalizers = ["kubetrace.net/test"]
            let created = try await admin.create(ConfigMap(metadata: meta))
            #expect(created.name.hasPrefix("gen-") && created.name.count == 9)
            try await admin.delete(ConfigMap.self, namespace: "default", name: created.name)
            var marked = try await admin.get(ConfigMap.self, namespace: "default", name: created.name)
            #expect(marked.metadata.deletionTimestamp != nil)
            marked.metadata.finalizers = []
            _ = try await admin.update(marked)
            #expect(await expectError { _ = try await admin.get(ConfigMap.self, namespace: "default", name: created.name) }?.isNotFound == true)
            let noNS = await expectError { _ = try await admin.create(ConfigMap(metadata: ObjectMeta(name: "x", namespace: "absent"))) }
            #expect(noNS?.status?.message == #"namespaces "absent" not found"#)
            let mismatch = await expectError { _ = try await admin.create(ConfigMap(metadata: ObjectMeta(name: "x", namespace: "kube-system")), namespace: "default") }
            #expect(mismatch?.httpStatus == 400 || mismatch?.isNotFound == true)
            let preconditioned = await expectError { try await admin.delete(ConfigMap.self, namespace: "default", name: "x", preconditionUID: "nope") }
            #expect(preconditioned?.isNotFound == true)
        }
    }

    @Test func badInputGetsTheServersStatusErrors() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            let path = "/api/v1/namespaces/default/configmaps"
            let notJSON = await expectError { _ = try await admin.request("POST", path: path, body: Array("{nope".utf8)) }
            #expect(notJSON?.httpStatus == 400)
            let wrongKind = await expectError { _ = try await admin.request("POST", path: path, body: Array(#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.utf8)) }
            // handlers/rest.go `transformDecodeError`, the conversion error after the colon.
            #expect(wrongKind?.status?.message == #"Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion"#)
            let huge = [UInt8](repeating: UInt8(ascii: "a"), count: (3 << 20) + 10)
            let tooLarge = await expectError { _ = try await admin.request("POST", path: path, body: huge) }
            #expect(tooLarge?.httpStatus == 413)
            let badSelector = await expectError { _ = try await admin.list(ConfigMap.self, namespace: "default", options: ListOptions(labelSelector: "a in b")) }
            #expect(badSelector?.httpStatus == 400)
            let badProto = await expectError { _ = try await admin.request("POST", path: path, body: [0x6b, 0x38, 0x73, 0x00, 0x0a, 0xff], contentType: "application/vnd.kubernetes.protobuf") }
            #expect(badProto?.httpStatus == 400)
            let unknownPath = await expectError { _ = try await admin.request("GET", path: "/api/v1/widgets") }
            #expect(unknownPath?.isNotFound == true)
            let badName = await expectError { _ = try await admin.create(configMap("Not_Valid")) }
            #expect(badName?.isInvalid == true)
            // The server still works after all of that.
            _ = try await admin.create(configMap("fine"))
        }
    }

    @Test func injectedFailuresAndLatency() async throws {
        try await DevCluster.withRunning { cluster in
            let admin = try await adminClient(cluster)
            cluster.faults.failNext(.init(count: 2, status: 429, retryAfterSeconds: 1, plainText: true, method: "GET", pathPrefix: "/api/v1/namespaces/default/configmaps"))
            for _ in 0..<2 {
                let e = await expectError { _ = try await admin.list(ConfigMap.self, namespace: "default") }
                #expect(e?.isTooManyRequests == true)
                #expect(e?.retryAfter == .seconds(1))
                #expect(e?.status == nil)
            }
            _ = try await admin.list(ConfigMap.self, namespace: "default")
            // The same through the HTTP control endpoint, as an out-of-process test would.
            _ = try await admin.request("POST", path: "/kubetrace-devcluster/faults/fail", query: [("count", "1"), ("status", "500")])
            #expect(await expectError { _ = try await admin.list(ConfigMap.self, namespace: "default") }?.httpStatus == 500)
            let sa = try await adminClient(cluster)
            _ = sa
            let clock = ContinuousClock()
            cluster.faults.setLatency(.milliseconds(200))
            let t0 = clock.now
            _ = try await admin.list(ConfigMap.self, namespace: "default")
            #expect(clock.now - t0 >= .milliseconds(200))
        }
    }

    @Test func emulatorsAnswerLikeTheRealServices() async throws {
        try await DevCluster.withRunning { cluster in
            let url = await cluster.url()
            let tls = TLSSettings(certificateAuthorityPEM: cluster.certificateAuthority!.certificate.certificatePEM)
            let transport = CurlTransport.shared
            func post(_ token: String, _ body: String) async throws -> HTTPResponse {
                try await transport.send(HTTPRequest(method: "POST", url: "\(url)/kubetrace-api/v1/clusters/c-1/token:refresh",
                                                     headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                                                     body: Array(body.utf8)), tls: tls)
            }
            cluster.kubetraceAPI.configure { $0.tokenLifetime = 20; $0.registryLifetime = 60 }
            let ok = try await post(cluster.operatorToken, #"{"clusterId":"c-1","operatorVersion":"0.1.0"}"#)
            #expect(ok.status == 200)
            let answer = try JSONValue.parse(ok.body)
            let token = try #require(answer["token"]?.stringValue)
            let expiresAt = try #require(answer["expiresAt"]?.stringValue.flatMap(RFC3339.parse))
            #expect(abs(expiresAt.timeIntervalSinceNow - 20) < 3)
            #expect(JWT.expiry(of: token).map { Int($0.timeIntervalSince1970) } == Int(expiresAt.timeIntervalSince1970))
            #expect(answer["registry"]?["server"] == .string("blr.vultrcr.com"))
            #expect(answer["server"] == .string(url))
            #expect(try await post("wrong", #"{"clusterId":"c-1"}"#).status == 401)
            #expect(try await post(cluster.operatorToken, #"{"clusterId":"other"}"#).status == 400)
            cluster.kubetraceAPI.fail(.rateLimited)
            let limited = try await post(cluster.operatorToken, #"{"clusterId":"c-1"}"#)
            #expect(limited.status == 429 && limited.head.header("Retry-After") == "2")
            let ping = try await transport.send(HTTPRequest(url: "\(url)/kubetrace-api/v1/ping"), tls: tls)
            #expect(String(decoding: ping.body, as: UTF8.self) == #"{"ok":true}"#)

            func vultr(_ key: String, _ registry: String) async throws -> HTTPResponse {
                try await transport.send(HTTPRequest(method: "OPTIONS", url: "\(url)/vultr/v2/registry/\(registry)/docker-credentials?expiry_seconds=3600&read_write=false",
                                                     headers: [("Authorization", "Bearer \(key)")]), tls: tls)
            }
            let creds = try await vultr(cluster.vultrAPIKey, DevCluster.vultrRegistryID)
            #expect(creds.status == 200)
            let auth = try #require(try JSONValue.parse(creds.body)["auths"]?["blr.vultrcr.com"]?["auth"]?.stringValue)
            #expect(String(decoding: Data(base64Encoded: auth)!, as: UTF8.self).contains(":"))
            #expect(cluster.vultr.lastExpirySeconds == 3600)
            #expect(try await vultr("bad-key", DevCluster.vultrRegistryID).status == 401)
            #expect(try await vultr(cluster.vultrAPIKey, "unknown").status == 404)
        }
    }
}
