import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
@testable import KubetraceOperator
import Testing

@Suite(.timeLimit(.minutes(2))) struct PullSecretRepairTests {
    @Test func deletedPullSecretIsRecreatedWithAnEvent() async throws {
        try await RepairFixture.with { f in
            // The managed ServiceAccount and RBAC are created at start (they were missing).
            try await awaitObject(f.client, ServiceAccount.self, namespace: RepairFixture.ns, name: "kubetrace-readonly-user", "the managed ServiceAccount") {
                $0?.imagePullSecrets == [LocalObjectReference(name: "kubetrace-registry")]
            }
            let before = try await f.client.get(Secret.self, namespace: RepairFixture.ns, name: "kubetrace-registry")
            _ = try await f.kubectl(["delete", "secret", "kubetrace-registry", "-n", RepairFixture.ns])
            let restored = try await f.awaitPullSecret(equal: f.goodDocument, "the recreated pull Secret")
            #expect(restored?.metadata.uid != before.metadata.uid)
            #expect(restored?.metadata.labels?["app.kubernetes.io/managed-by"] == "kubetrace-operator")
            #expect(restored?.metadata.annotations?[PullCredentials.expiryAnnotation] == "2031-01-01T00:00:00Z")
            try await f.logs.waitFor("pull_secret_repaired")
            let events = try await f.events(about: "kubetrace-registry", reason: "PullSecretRepaired")
            #expect(events.count == 1)
            #expect(events.first?.note?.contains("deleted") == true)
            #expect(events.first?.reportingController == "kubetrace.net/kubetrace-operator")
            // No secret value in any log line.
            #expect(!f.logs.all.joined().contains("s3cr3t-pull-password"))
        }
    }

    @Test func wrongRegistryAndStaleCredentialsAreOverwritten() async throws {
        try await RepairFixture.with { f in
            let foreign = RepairFixture.dockerConfig("other.example.com")
            let patch = #"{"data":{".dockerconfigjson":"\#(Data(foreign.bytes).base64EncodedString())"}}"#
            _ = try await f.kubectl(["patch", "secret", "kubetrace-registry", "-n", RepairFixture.ns, "--type", "merge", "-p", patch])
            try await f.awaitPullSecret(equal: f.goodDocument, "the pull Secret restored after a wrong-registry write")
            // Older credentials for the right registry (an old manifest re-applied): restored too.
            let old = RepairFixture.dockerConfig(RepairFixture.host, user: "old-robot")
            let stale = #"{"metadata":{"annotations":{"kubetrace.net/registry-expires-at":"2029-01-01T00:00:00Z"}},"data":{".dockerconfigjson":"\#(Data(old.bytes).base64EncodedString())"}}"#
            _ = try await f.kubectl(["patch", "secret", "kubetrace-registry", "-n", RepairFixture.ns, "--type", "merge", "-p", stale])
            let s = try await f.awaitPullSecret(equal: f.goodDocument, "the pull Secret restored after a stale write")
            #expect(s?.metadata.annotations?[PullCredentials.expiryAnnotation] == "2031-01-01T00:00:00Z")
            // Newer credentials written by someone else are adopted, not reverted, and copied on.
            let newer = RepairFixture.dockerConfig(RepairFixture.host, user: "new-robot")
            let fresh = #"{"metadata":{"annotations":{"kubetrace.net/registry-expires-at":"2032-01-01T00:00:00Z"}},"data":{".dockerconfigjson":"\#(Data(newer.bytes).base64EncodedString())"}}"#
            _ = try await f.kubectl(["patch", "secret", "kubetrace-registry", "-n", RepairFixture.ns, "--type", "merge", "-p", fresh])
            try await f.logs.waitFor("pull_secret_repaired")
            _ = try await f.kubectl(["delete", "secret", "kubetrace-registry", "-n", RepairFixture.ns])
            try await f.awaitPullSecret(equal: newer, "the pull Secret recreated from the adopted newer credentials")
        }
    }

    /// A team already has an Opaque Secret under the managed name in a target namespace.
    @Test func foreignTypeIsReportedAndOnlyTheOperatorsOwnIsReplaced() async throws {
        try await RepairFixture.with({ $0.targetNamespaces = .list(["team-b"]) }, seed: { admin in
            _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "team-b")))
            _ = try await admin.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: "team-b"), type: "Opaque",
                                              data: ["note": SecretBytes("mine")]))
        }) { f in
            try await f.logs.waitFor("is not managed by kubetrace-operator; delete it")
            let kept = try await f.client.get(Secret.self, namespace: "team-b", name: "kubetrace-registry")
            #expect(kept.type == "Opaque" && kept.data?["note"]?.string == "mine", "never deletes what it does not own")
            let failed = try await f.events(about: "kubetrace-registry", reason: "RepairFailed", in: "team-b")
            #expect(failed.count == 1 && failed.first?.type == "Warning")
            #expect(failed.first?.note?.contains("has type Opaque") == true)
            // Labelled as the operator's: replaced (the type is immutable, so delete and create).
            _ = try await f.kubectl(["label", "secret", "kubetrace-registry", "-n", "team-b", "app.kubernetes.io/managed-by=kubetrace-operator"])
            try await f.awaitPullSecret(in: "team-b", equal: f.goodDocument, "the Opaque Secret replaced by the pull Secret")
        }
    }

    @Test func copiesInTargetNamespacesAreCreatedAndKept() async throws {
        try await RepairFixture.with({ $0.targetNamespaces = .list(["apps"]) }, seed: { admin in
            _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "apps")))
            _ = try await admin.create(ServiceAccount(metadata: ObjectMeta(name: "default", namespace: "apps"), imagePullSecrets: [LocalObjectReference(name: "team-registry")]))
        }) { f in
            try await f.awaitPullSecret(in: "apps", equal: f.goodDocument, "the copy in apps")
            try await awaitObject(f.client, ServiceAccount.self, namespace: "apps", name: "default", "apps/default referencing the copy") {
                $0?.imagePullSecrets == [LocalObjectReference(name: "team-registry"), LocalObjectReference(name: "kubetrace-registry")]
            }
            _ = try await f.kubectl(["delete", "secret", "kubetrace-registry", "-n", "apps"])
            try await f.awaitPullSecret(in: "apps", equal: f.goodDocument, "the copy recreated")
        }
    }

    @Test func selectorTargetsFollowNamespaceLabels() async throws {
        try await RepairFixture.with({ $0.targetNamespaces = .selector("kubetrace.net/pull-secret=true") }) { f in
            _ = try await f.kubectl(["create", "namespace", "team-a"])
            _ = try await f.kubectl(["create", "serviceaccount", "default", "-n", "team-a"])
            _ = try await f.kubectl(["label", "namespace", "team-a", "kubetrace.net/pull-secret=true"])
            try await f.awaitPullSecret(in: "team-a", equal: f.goodDocument, "the copy in the labelled namespace")
            try await awaitObject(f.client, ServiceAccount.self, namespace: "team-a", name: "default", "team-a/default patched") {
                $0?.imagePullSecrets == [LocalObjectReference(name: "kubetrace-registry")]
            }
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct ServiceAccountAndRBACRepairTests {
    @Test func strippedReferenceIsRestoredKeepingOtherEntries() async throws {
        let others = (0..<300).map { LocalObjectReference(name: "other-\($0)") }
        try await RepairFixture.with(seed: { admin in
            _ = try await admin.create(ServiceAccount(metadata: ObjectMeta(name: "kubetrace-readonly-user", namespace: RepairFixture.ns),
                                                      imagePullSecrets: [LocalObjectReference(name: "kubetrace-registry")]))
        }) { f in
            // kubectl replaces the whole list: 300 other entries, ours gone.
            let list = others.map { #"{"name":"\#($0.name)"}"# }.joined(separator: ",")
            _ = try await f.kubectl(["patch", "serviceaccount", "kubetrace-readonly-user", "-n", RepairFixture.ns, "--type", "merge", "-p", #"{"imagePullSecrets":[\#(list)]}"#])
            let sa = try await awaitObject(f.client, ServiceAccount.self, namespace: RepairFixture.ns, name: "kubetrace-readonly-user", "the reference restored") {
                $0?.imagePullSecrets?.contains(LocalObjectReference(name: "kubetrace-registry")) == true
            }
            #expect(sa?.imagePullSecrets == others + [LocalObjectReference(name: "kubetrace-registry")], "other entries kept, in order")
            // Deleted: recreated.
            _ = try await f.kubectl(["delete", "serviceaccount", "kubetrace-readonly-user", "-n", RepairFixture.ns])
            let recreated = try await awaitObject(f.client, ServiceAccount.self, namespace: RepairFixture.ns, name: "kubetrace-readonly-user", "recreated") { $0 != nil }
            #expect(recreated?.imagePullSecrets == [LocalObjectReference(name: "kubetrace-registry")])
            #expect(recreated?.automountServiceAccountToken == false)
            try await f.logs.waitFor("service_account_repaired")
        }
    }

    @Test func roleAndBindingAreRestored() async throws {
        try await RepairFixture.with { f in
            let ns = RepairFixture.ns
            try await awaitObject(f.client, RoleBinding.self, namespace: ns, name: "kubetrace-readonly-user", "the binding created") { $0 != nil }
            try await awaitObject(f.client, Role.self, namespace: ns, name: "kubetrace-readonly", "the role created") { $0 != nil }
            // Rules widened by someone: narrowed back.
            _ = try await f.kubectl(["patch", "role", "kubetrace-readonly", "-n", ns, "--type", "json", "-p", #"[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]"#])
            try await awaitObject(f.client, Role.self, namespace: ns, name: "kubetrace-readonly", "the rules restored") {
                Set($0?.rules ?? []) == Set(DesiredRBAC.readOnlyRules)
            }
            // Binding deleted: restored.
            _ = try await f.kubectl(["delete", "rolebinding", "kubetrace-readonly-user", "-n", ns])
            try await awaitObject(f.client, RoleBinding.self, namespace: ns, name: "kubetrace-readonly-user", "the binding recreated") { $0 != nil }
            // Subjects changed: restored.
            _ = try await f.kubectl(["patch", "rolebinding", "kubetrace-readonly-user", "-n", ns, "--type", "merge", "-p", #"{"subjects":[{"kind":"User","name":"mallory","apiGroup":"rbac.authorization.k8s.io"}]}"#])
            try await awaitObject(f.client, RoleBinding.self, namespace: ns, name: "kubetrace-readonly-user", "the subjects restored") {
                $0?.subjects == [Subject(kind: "ServiceAccount", name: "kubetrace-readonly-user", namespace: ns)]
            }
            // roleRef changed (immutable: someone recreated it with the operator's label): deleted and recreated.
            _ = try await f.kubectl(["delete", "rolebinding", "kubetrace-readonly-user", "-n", ns, "--wait=false"])
            let yaml = """
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {name: kubetrace-readonly-user, namespace: \(ns), labels: {app.kubernetes.io/managed-by: kubetrace-operator}}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
            subjects: [{kind: ServiceAccount, name: kubetrace-readonly-user, namespace: \(ns)}]
            """
            // Racing the operator's own re-creation: whichever lands, the end state must be the desired roleRef.
            _ = try? await run("kubectl", ["create", "-f", "-"], environment: ["KUBECONFIG": f.kubeconfig], stdin: yaml)
            try await awaitObject(f.client, RoleBinding.self, namespace: ns, name: "kubetrace-readonly-user", "the roleRef restored") {
                $0?.roleRef == RoleRef(kind: "Role", name: "kubetrace-readonly")
            }
            try await f.logs.waitFor("rbac_repaired")
            let events = try await f.events(about: "kubetrace-readonly-user", reason: "RBACRepaired")
            #expect(!events.isEmpty)
        }
    }

    /// The operator cannot restore the Role (no permission): a logged reason naming the
    /// missing permission, one aggregated RepairFailed Event, retries backed off.
    @Test func forbiddenRepairNamesThePermission() async throws {
        let operatorUser = "system:serviceaccount:kubetrace-system:kubetrace-operator"
        try await RepairFixture.with(client: { _, admin in
            // The operator's Role without write access to roles.
            var rules = DesiredRBAC.operatorRules(ObjectNames()).filter { !($0.resources ?? []).contains("roles") }
            rules.append(PolicyRule(apiGroups: ["rbac.authorization.k8s.io"], resources: ["roles"], verbs: ["get", "list", "watch"]))
            rules.append(PolicyRule(apiGroups: ["rbac.authorization.k8s.io"], resources: ["rolebindings"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]))
            _ = try await admin.create(Role(metadata: ObjectMeta(name: "kubetrace-operator", namespace: RepairFixture.ns), rules: rules))
            _ = try await admin.create(RoleBinding(metadata: ObjectMeta(name: "kubetrace-operator", namespace: RepairFixture.ns),
                                                   subjects: [Subject(kind: "ServiceAccount", name: "kubetrace-operator", namespace: RepairFixture.ns)],
                                                   roleRef: RoleRef(kind: "Role", name: "kubetrace-operator")))
            return admin.impersonating(user: operatorUser, groups: ["system:serviceaccounts", "system:authenticated"])
        }) { f in
            try await f.logs.waitFor("cannot create resource \"roles\"")
            let line = f.logs.all.first { $0.contains("cannot create resource \"roles\"") } ?? ""
            #expect(line.contains("is forbidden") && line.contains("grant the operator's Role"), "\(line)")
            #expect(line.contains("repair_failed"))
            let failed = try await f.events(about: "kubetrace-readonly", reason: "RepairFailed")
            #expect(failed.count == 1, "aggregated, not one per retry")
            #expect(failed.first?.type == "Warning")
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct LeastPrivilegeRepairTests {
    /// The operator with exactly the RBAC `manifest` grants (its Role, plus the target
    /// Role in `apps`) repairs there: nothing more is needed, nothing is forbidden.
    @Test func targetNamespaceRepairsWorkWithTheManifestsRBAC() async throws {
        let ns = RepairFixture.ns
        try await RepairFixture.with({ $0.targetNamespaces = .list(["apps"]) }, client: { _, admin in
            let names = ObjectNames()
            _ = try await admin.create(Namespace(metadata: ObjectMeta(name: "apps")))
            _ = try await admin.create(ServiceAccount(metadata: ObjectMeta(name: "default", namespace: "apps")))
            _ = try await admin.create(Role(metadata: ObjectMeta(name: "kubetrace-operator", namespace: ns), rules: DesiredRBAC.operatorRules(names)))
            _ = try await admin.create(Role(metadata: ObjectMeta(name: "kubetrace-operator", namespace: "apps"), rules: DesiredRBAC.targetRules(names, selector: false)))
            for where_ in [ns, "apps"] {
                _ = try await admin.create(RoleBinding(metadata: ObjectMeta(name: "kubetrace-operator", namespace: where_),
                                                       subjects: [Subject(kind: "ServiceAccount", name: "kubetrace-operator", namespace: ns)],
                                                       roleRef: RoleRef(kind: "Role", name: "kubetrace-operator")))
            }
            return admin.impersonating(user: "system:serviceaccount:\(ns):kubetrace-operator", groups: ["system:serviceaccounts", "system:authenticated"])
        }) { f in
            try await f.awaitPullSecret(in: "apps", equal: f.goodDocument, "the copy in apps")
            try await awaitObject(f.client, ServiceAccount.self, namespace: "apps", name: "default", "apps/default patched") {
                $0?.imagePullSecrets == [LocalObjectReference(name: "kubetrace-registry")]
            }
            _ = try await f.kubectl(["delete", "secret", "kubetrace-registry", "-n", "apps"])
            try await f.awaitPullSecret(in: "apps", equal: f.goodDocument, "the copy recreated")
            #expect(!f.logs.all.contains { $0.contains("forbidden") }, "\(f.logs.all.filter { $0.contains("forbidden") })")
        }
    }
}
