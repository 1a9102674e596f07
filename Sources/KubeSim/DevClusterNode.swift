import Logging

extension DevCluster {
    /// `--node`: once the listener is up, the node's parts run until the devcluster stops —
    /// kube-controller-manager's controllers (Deployment, ReplicaSet, garbage collector, root CA
    /// publisher, service accounts), the scheduler, the Node's registration, the registry
    /// emulator on the same listener, and the kubelet.
    func runNode() async {
        guard let node = options.node, let network = nodeNetwork else { return }
        let port = await port()
        let serverURL = await url()
        let caPEM = certificateAuthority?.certificate.certificatePEM
        let registry = RegistryEmulator(vultr: vultr, kubetraceAPI: kubetraceAPI, images: node.images, serverURL: { [unowned self] in await self.url() })
        nodeRoutes.registry = { request, body in try await registry.handle(request, body: body) }
        let puller = ImagePuller(images: node.images, registryBaseURL: serverURL, caPEM: caPEM, logger: logger)
        // Pods are created unbound and the scheduler binds them, as in a real cluster.
        let controllers = ControllerManager(store: store, node: node, nodeAddress: network.nodeAddress, logger: logger)
        let publisher = RootCACertPublisher(store: store, caPEM: caPEM, logger: logger)
        let serviceAccounts = ServiceAccountsController(store: store, logger: logger)
        let kubelet = Kubelet(store: store, tokens: tokens, options: node, network: network, apiServerHost: network.nodeAddress, apiServerPort: port,
                              caPEM: caPEM, puller: puller, logger: logger)
        nodeRoutes.podLogs = { namespace, pod, query in try await kubelet.podLogs(namespace: namespace, pod: pod, query: query) }
        logger.info("node ready", metadata: ["node": "\(node.name)", "address": "\(network.nodeAddress)", "pod_cidr": "\(network.podCIDR)",
                                             "images": "\(node.images.keys.sorted().joined(separator: ","))"])
        await withDiscardingTaskGroup { group in
            group.addTask { await controllers.run() }
            group.addTask { await publisher.run() }
            group.addTask { await serviceAccounts.run() }
            group.addTask { await kubelet.run() }
        }
        nodeRoutes.podLogs = nil
        nodeRoutes.registry = nil
    }
}
