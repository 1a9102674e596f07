import Foundation
import KubeClient
import Logging

/// kube-controller-manager's service-account controller (pkg/controller/serviceaccount/
/// serviceaccounts_controller.go, `syncNamespace` with the default
/// `ServiceAccountsControllerOptions`): every active namespace has the ServiceAccount `default`;
/// one that is deleted is created again. Pods that name no account get `default` from the
/// ServiceAccount admission, and their token volume needs it to exist.
struct ServiceAccountsController: Sendable {
    static let name = "default"

    let store: ObjectStore
    let logger: Logger

    /// Runs until cancelled.
    func run() async {
        // Subscribed before the first listing, so nothing committed in between is missed.
        let changes = store.hub.observe()
        for (key, _) in await store.stored(.namespace) { await sync(namespace: key.name) }
        for await change in changes {
            switch (change.group, change.resource) {
            case ("", "namespaces") where change.type != "DELETED":
                await sync(namespace: change.name)
            case ("", "serviceaccounts") where change.type == "DELETED" && change.name == Self.name:
                await sync(namespace: change.namespace ?? "")
            default:
                continue
            }
        }
    }

    /// `syncNamespace`: nothing for a namespace that is gone or terminating; else create the
    /// account if it is missing (an AlreadyExists from a racing create is success).
    func sync(namespace: String) async {
        guard !namespace.isEmpty, let ns = try? await store.get(.namespace, namespace: nil, name: namespace),
              ns["metadata"]?["deletionTimestamp"] == nil else { return }
        if (try? await store.get(.serviceAccount, namespace: namespace, name: Self.name)) != nil { return }
        var options = WriteOptions(user: UserInfo(name: "system:serviceaccount:kube-system:service-account-controller", groups: ["system:serviceaccounts", "system:authenticated"]))
        options.manager = "kube-controller-manager"
        let body: JSONValue = .object([
            "apiVersion": .string("v1"), "kind": .string("ServiceAccount"),
            "metadata": .object(["name": .string(Self.name), "namespace": .string(namespace)]),
        ])
        do {
            _ = try await store.create(.serviceAccount, namespace: namespace, body: body, options: options)
        } catch where error.httpCode == 409 {
            return
        } catch {
            logger.info("default service account create failed", metadata: ["k8s.namespace": "\(namespace)", "error": "\(error.status.message ?? "")"])
        }
    }
}
