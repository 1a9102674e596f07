import Foundation
import KubeClient
import Logging

/// kube-controller-manager's root CA publisher (pkg/controller/certificates/rootcacertpublisher/
/// publisher.go): every namespace holds the ConfigMap `kube-root-ca.crt` with the cluster CA
/// under `ca.crt` and the controller's description annotation; one that is deleted or changed is
/// put back (`syncNamespace`). The default `kube-api-access-*` volume projects it into every Pod.
///
/// A devcluster serving plain HTTP has no CA: the ConfigMap then holds an empty `ca.crt`, so
/// Pods still start.
struct RootCACertPublisher: Sendable {
    static let name = "kube-root-ca.crt"
    static let description = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."

    let store: ObjectStore
    let caPEM: String?
    let logger: Logger

    /// Runs until cancelled.
    func run() async {
        let changes = store.hub.observe()
        for (key, _) in await store.stored(.namespace) { await sync(namespace: key.name) }
        for await change in changes {
            switch (change.group, change.resource) {
            case ("", "namespaces") where change.type != "DELETED":
                await sync(namespace: change.name)
            case ("", "configmaps") where change.name == Self.name:
                await sync(namespace: change.namespace ?? "")
            default:
                continue
            }
        }
    }

    /// `syncNamespace`: create the ConfigMap, or restore its data and annotation.
    func sync(namespace: String) async {
        guard !namespace.isEmpty, let ns = try? await store.get(.namespace, namespace: nil, name: namespace),
              ns["metadata"]?["deletionTimestamp"] == nil else { return }
        var options = WriteOptions(user: UserInfo(name: "system:serviceaccount:kube-system:root-ca-cert-publisher", groups: ["system:serviceaccounts", "system:authenticated"]))
        options.manager = "kube-controller-manager"
        let data: JSONValue = .object(["ca.crt": .string(caPEM ?? "")])
        let annotations: [String: JSONValue] = ["kubernetes.io/description": .string(Self.description)]
        if var existing = try? await store.get(.kubeletConfigMap, namespace: namespace, name: Self.name).objectValue {
            var meta = existing["metadata"]?.objectValue ?? [:]
            var ann = meta["annotations"]?.objectValue ?? [:]
            guard existing["data"] != data || ann["kubernetes.io/description"] != annotations["kubernetes.io/description"] else { return }
            ann.merge(annotations) { _, b in b }
            meta["annotations"] = .object(ann)
            existing["metadata"] = .object(meta)
            existing["data"] = data
            do {
                _ = try await store.update(.kubeletConfigMap, namespace: namespace, name: Self.name, body: .object(existing), options: options)
            } catch {
                logger.info("root CA config map update failed", metadata: ["k8s.namespace": "\(namespace)", "error": "\(error.status.message ?? "")"])
            }
            return
        }
        let body: JSONValue = .object([
            "apiVersion": .string("v1"), "kind": .string("ConfigMap"),
            "metadata": .object(["name": .string(Self.name), "namespace": .string(namespace), "annotations": .object(annotations)]),
            "data": data,
        ])
        do {
            _ = try await store.create(.kubeletConfigMap, namespace: namespace, body: body, options: options)
        } catch where error.httpCode != 409 {
            logger.info("root CA config map create failed", metadata: ["k8s.namespace": "\(namespace)", "error": "\(error.status.message ?? "")"])
        } catch {}
    }
}
