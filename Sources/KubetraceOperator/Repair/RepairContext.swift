import KubeClient
import Logging

/// Shared by the handlers: the client, the names, and a logger.
struct RepairContext: Sendable {
    let client: KubeClient
    let config: RepairConfiguration
    let logger: Logger

    var names: ObjectNames { config.names }
    var operatorNamespace: String { config.names.namespace }

    func objectMeta(_ name: String, namespace: String) -> ObjectMeta {
        ObjectMeta(name: name, namespace: namespace, labels: config.managedLabels)
    }

    func isManaged(_ labels: [String: String]?) -> Bool {
        labels?[RepairConfiguration.managedByKey] == RepairConfiguration.managedByValue
    }
}
