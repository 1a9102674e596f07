import HTTPTypes
import Hummingbird
import Synchronization

/// The parts of the API the devcluster's node serves, plugged into the API server once the node
/// is up: `pods/log` (kube-apiserver proxies it to the kubelet's `/containerLogs`, see
/// pkg/registry/core/pod/rest/log.go) and the registry emulator's `/v2/` (Docker Registry HTTP
/// API v2) on the same listener. Without `--node` both stay nil and answer 404, as
/// kube-apiserver answers `pods/log` for a Pod no kubelet runs with an error.
final class NodeRoutes: Sendable {
    /// `GET …/namespaces/NS/pods/NAME/log` after authentication and authorization (`get pods/log`).
    typealias PodLogs = @Sendable (_ namespace: String, _ pod: String, _ query: [String: String]) async throws -> Response
    /// Any request under `/v2/` (no Kubernetes authentication: the registry does its own).
    typealias Registry = @Sendable (_ request: Request, _ body: [UInt8]) async throws -> Response

    private let routes = Mutex<(podLogs: PodLogs?, registry: Registry?)>((nil, nil))

    var podLogs: PodLogs? {
        get { routes.withLock { $0.podLogs } }
        set { routes.withLock { $0.podLogs = newValue } }
    }

    var registry: Registry? {
        get { routes.withLock { $0.registry } }
        set { routes.withLock { $0.registry = newValue } }
    }
}
